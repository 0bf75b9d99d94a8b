"""What a person watching a training sees.

On rank 0, `ProgressDisplay` keeps a tqdm bar with
loss / lr / val in its postfix and logs every PROGRESS_EVERY_S seconds (and at each validation)
one `diffupose.train` line: step, loss, lr, steps/s, val MPJPE, elapsed and ETA (the log line
is what reports relay; its durations and ETA come from `utils.format_duration` and
`utils.eta_seconds`, as the report runner's). `LossWindow` sums the loss parts between two
history rows.
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..utils import eta_seconds, format_duration

if TYPE_CHECKING:
    from .state import RunState

__all__ = ["PROGRESS_EVERY_S", "LossWindow", "ProgressDisplay"]

log = logging.getLogger("diffupose.train")     # the name reports relay (progress.ProgressTail)

PROGRESS_EVERY_S = 10.0                        # seconds between progress log lines


class LossWindow:
    """Sample-weighted running sums of the loss parts between two history rows (kept as
    device tensors, so logging costs no host sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.t0 = time.perf_counter()

    def add(self, parts: dict[str, torch.Tensor], n: int) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.float() * n
        self.n += n

    def means(self) -> dict[str, float | None]:
        return {k: float(self.sums[k]) / self.n if self.n and k in self.sums else None
                for k in ("loss", "loss_eps", "loss_2d")}

    def samples_per_s(self, world_size: int) -> float:
        return self.n * world_size / max(time.perf_counter() - self.t0, 1e-9)


class ProgressDisplay:
    """The tqdm bar and the periodic `diffupose.train` log line of one `train` call (rank 0)."""

    def __init__(self, run: "RunState", bar: bool) -> None:
        self.run, self.enabled = run, run.dist.is_main
        self.bar = tqdm(total=run.budget.total_steps, initial=run.step, desc="train", dynamic_ncols=True,
                        disable=not (bar and self.enabled))
        self.last: dict[str, Any] = {}
        self.t_line, self.step_line = time.perf_counter(), run.step
        self.start_step = run.step

    def update(self, row: dict | None, lr: float) -> None:
        """After each optimiser step (taken with `lr`); `row` is its history row, if any."""
        self.bar.update(1)
        if not self.enabled:
            return
        if row is not None:
            self.last.update({k: v for k, v in row.items() if v is not None})
            self.bar.set_postfix(loss=f"{self.last['loss']:.4f}", lr=f"{self.last['lr']:.2e}",
                                 val=f"{self.last['val_mpjpe']:.1f}mm" if "val_mpjpe" in self.last else "-",
                                 refresh=False)
        now = time.perf_counter()
        if now - self.t_line >= PROGRESS_EVERY_S or (row is not None and row["val_mpjpe"] is not None):
            self._line(now, lr)

    def _line(self, now: float, lr: float) -> None:
        run, last = self.run, self.last
        rate = (run.step - self.step_line) / max(now - self.t_line, 1e-9)
        max_minutes = run.cfg.train.max_minutes
        remaining = eta_seconds(run.budget.total_steps - run.step, rate,
                                60 * max_minutes - (now - run.t_call) if max_minutes > 0 else None)
        best = "" if math.isinf(run.best_val) else f" (best {run.best_val:.1f})"
        val = f"{last['val_mpjpe']:.1f} mm{best}" if "val_mpjpe" in last else "-"
        loss = f"{last['loss']:.4f}" if "loss" in last else "-"
        log.info("step %d/%d | loss %s | lr %.2e | %.1f steps/s | val MPJPE %s | %s elapsed | ETA %s",
                 run.step, run.budget.total_steps, loss, lr, rate, val, format_duration(run.elapsed()),
                 format_duration(remaining))
        self.t_line, self.step_line = now, run.step

    def close(self) -> None:
        self.bar.close()
