"""Progress of a report on the terminal, without bloating the executed notebooks.

The report runner (`diffupose.workbench.reports.run_report`) gives each notebook kernel the path of a
progress file in the environment variable DIFFUPOSE_PROGRESS_FILE. Inside the kernel,
`reports.setup_notebook()` forwards the `diffupose` loggers to that file (`ProgressFileHandler`)
and `reports.TrainingCurveDisplay` writes one event per training history row (step, loss,
validation MPJPE, steps/s, ETA). Every event is one JSON line appended to the file (`emit`,
which lives in `diffupose.utils` so that every floor may report progress). The runner
reads the file while the notebook runs (`ProgressTail`, a thread) and prints each event as one
log line on its own terminal, throttled (`min_interval_s`), together with the cell being run
(`cell i/n`, elapsed time) that papermill reports. The executed notebook keeps only its
figures and one status line per training.

Event kinds (the `kind` field): `train` (a history row with `eta_s`, `steps_per_s`), `log` (a
record of a `diffupose` logger), `static_export` (which renderer wrote static figures).
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..utils import PROGRESS_ENV, emit, eta_seconds, format_duration, progress_file

__all__ = [
    "PROGRESS_ENV", "progress_file", "emit", "ProgressFileHandler", "TrainingProgress", "format_duration",
    "format_event", "ProgressTail",
]

log = logging.getLogger(__name__)


class ProgressFileHandler(logging.Handler):
    """A logging handler that writes records as `log` events to the progress file."""

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102 - logging API
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the caller
            message = str(record.msg)
        emit("log", logger=record.name, level=record.levelname, message=message)


class TrainingProgress:
    """Steps/s and ETA from the history rows `train()` hands to its callback.

    total_steps: the run's optimiser-step budget (`train.max_steps`; 0: from epochs, then the
    rows' `epoch` field gives the steps per epoch); epochs: `train.epochs`; max_minutes: the
    wall-clock cap of this `train()` call (0: none). The ETA is the smaller of the remaining
    steps at the current rate and the remaining wall-clock budget.
    """

    def __init__(self, total_steps: int = 0, epochs: int = 0, max_minutes: float = 0.0):
        self.total_steps = int(total_steps or 0)
        self.epochs = int(epochs or 0)
        self.max_minutes = float(max_minutes or 0.0)
        self.started = time.perf_counter()
        self._first: tuple[int, float] | None = None   # (step, wall time) of the first row seen

    @classmethod
    def from_config(cls, cfg) -> "TrainingProgress":
        tc = cfg.train
        return cls(total_steps=tc.max_steps, epochs=tc.epochs, max_minutes=tc.max_minutes)

    def total(self, row: dict) -> int | None:
        if self.total_steps > 0:
            return self.total_steps
        step, epoch = row.get("step"), row.get("epoch")
        if self.epochs > 0 and step and epoch:
            return int(round(self.epochs * step / epoch))
        return None

    def update(self, row: dict) -> dict[str, Any]:
        """One history row -> {step, total_steps, percent, steps_per_s, eta_s, elapsed_s, loss,
        val_mpjpe}."""
        now = time.perf_counter()
        step = int(row.get("step") or 0)
        if self._first is None:  # the rate counts from the first row (a resumed run starts mid-way)
            self._first = (step, now)
        elapsed = now - self.started
        done = step - self._first[0]
        rate = done / (now - self._first[1]) if now > self._first[1] and done > 0 else None
        total = self.total(row)
        eta = eta_seconds(total - step if total is not None else 0, rate if total is not None else None,
                          self.max_minutes * 60.0 - elapsed if self.max_minutes > 0 else None)
        return {"step": step, "total_steps": total,
                "percent": (100.0 * step / total) if total else None,
                "steps_per_s": rate, "eta_s": eta, "elapsed_s": elapsed,
                "loss": row.get("loss"), "val_mpjpe": row.get("val_mpjpe")}


def _num(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, (int, float)) and math.isfinite(value) else "?"


def format_training(p: dict[str, Any]) -> str:
    """A training progress dict (TrainingProgress.update) -> one line."""
    total = p.get("total_steps")
    parts = [f"step {p.get('step')}" + (f"/{total} ({p['percent']:.0f}%)" if total and p.get("percent") is not None else "")]
    if p.get("steps_per_s"):
        parts.append(f"{p['steps_per_s']:.1f} steps/s")
    parts.append(f"loss {_num(p.get('loss'), '{:.4f}')}")
    if p.get("val_mpjpe") is not None:
        parts.append(f"val MPJPE {_num(p.get('val_mpjpe'), '{:.1f}')} mm")
    parts.append(f"ETA {format_duration(p.get('eta_s'))}")
    return " · ".join(parts)


def format_event(event: dict[str, Any]) -> str | None:
    """A progress-file event -> one terminal line (None: nothing to show)."""
    kind = event.get("kind")
    if kind == "train":
        label = event.get("label") or "training"
        return f"{label}: {format_training(event)}"
    if kind == "log":
        return f"{event.get('logger')}: {event.get('message')}"
    if kind == "static_export":
        return f"static figures: {event.get('renderer')} ({event.get('reason')})"
    if kind == "message":
        return str(event.get("message"))
    return None


class ProgressTail:
    """Follows a progress file in a thread and hands each event to `sink(event, line)`.

    Throttling: `train` events and INFO records of `diffupose.train` are shown at most every
    `min_interval_s` seconds (validation rows and warnings always); while a notebook sends
    `train` events, the per-step log lines of `diffupose.train` are dropped (the events say
    the same with an ETA). `heartbeat(elapsed_idle)` is called when nothing was shown for
    `heartbeat_s` seconds (the runner prints which cell is still running).
    """

    def __init__(self, path: str | os.PathLike, sink: Callable[[dict, str], None], *,
                 min_interval_s: float = 10.0, poll_s: float = 0.5, heartbeat_s: float = 60.0,
                 heartbeat: Callable[[float], None] | None = None):
        self.path = Path(path)
        self.sink = sink
        self.min_interval_s = float(min_interval_s)
        self.poll_s = float(poll_s)
        self.heartbeat_s = float(heartbeat_s)
        self.heartbeat = heartbeat
        self.events: list[dict] = []
        self._offset = 0
        self._buffer = b""
        self._last_shown: dict[str, float] = {}
        self._pending: dict[str, dict] = {}
        self._saw_train_events = False
        self._last_output = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "ProgressTail":
        self._thread = threading.Thread(target=self._run, name="diffupose-progress-tail", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after reading what is left (the last training row is always shown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.poll()
        for key, event in list(self._pending.items()):
            self._show(key, event, force=True)
        self._pending.clear()

    def __enter__(self) -> "ProgressTail":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
                if self.heartbeat is not None and time.monotonic() - self._last_output > self.heartbeat_s:
                    self._last_output = time.monotonic()
                    self.heartbeat(self.heartbeat_s)
            except Exception as e:  # progress must never kill the report
                log.debug("progress tail: %s", e)

    # -- reading --------------------------------------------------------------------------------
    def poll(self) -> None:
        """Read the new complete lines of the file and show what passes the throttle."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        data = self._buffer + chunk
        *lines, self._buffer = data.split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            self._consider(event)

    def _consider(self, event: dict) -> None:
        kind = event.get("kind")
        now = time.monotonic()
        if kind == "train":
            self._saw_train_events = True
            for key in [k for k in self._pending if k.startswith("log:diffupose.train")]:
                del self._pending[key]                 # the train events say it with an ETA
            key = f"train:{event.get('label')}"
            if event.get("val_mpjpe") is not None or event.get("final"):
                self._show(key, event, force=True)
            elif now - self._last_shown.get(key, -math.inf) >= self.min_interval_s:
                self._show(key, event)
            else:
                self._pending[key] = event
            return
        if kind == "log" and event.get("logger", "").startswith("diffupose.train") and event.get("level") == "INFO":
            if self._saw_train_events:
                return
            key = f"log:{event.get('logger')}"
            if now - self._last_shown.get(key, -math.inf) >= self.min_interval_s:
                self._show(key, event)
            else:
                self._pending[key] = event
            return
        self._show(str(kind), event, force=True)

    def _show(self, key: str, event: dict, force: bool = False) -> None:
        line = format_event(event)
        self._pending.pop(key, None)
        if line is None:
            return
        self._last_shown[key] = time.monotonic()
        self._last_output = time.monotonic()
        self.sink(event, line)
