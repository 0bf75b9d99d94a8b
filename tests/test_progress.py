"""Terminal progress of reports: the training ETA, the event file and its throttled reader."""
from __future__ import annotations

import json

import pytest

from diffupose.workbench.progress import (PROGRESS_ENV, ProgressTail, TrainingProgress, emit, format_duration,
                                          format_event)


def test_training_progress_rate_and_eta(monkeypatch):
    clock = iter([0.0, 10.0, 20.0])
    monkeypatch.setattr("diffupose.workbench.progress.time.perf_counter", lambda: next(clock))
    p = TrainingProgress(total_steps=1000)                   # started at t=0
    first = p.update({"step": 100, "loss": 0.5})             # t=10: no rate from one row
    assert first["steps_per_s"] is None and first["eta_s"] is None and first["percent"] == 10
    second = p.update({"step": 300, "loss": 0.4})            # t=20: 200 steps in 10 s
    assert second["steps_per_s"] == pytest.approx(20.0)
    assert second["eta_s"] == pytest.approx(700 / 20.0)


def test_training_progress_from_epochs_and_wall_clock_cap(monkeypatch):
    clock = iter([0.0, 30.0, 60.0])
    monkeypatch.setattr("diffupose.workbench.progress.time.perf_counter", lambda: next(clock))
    p = TrainingProgress(total_steps=0, epochs=10, max_minutes=2.0)
    p.update({"step": 50, "epoch": 0.5})                     # 100 steps per epoch -> 1000 steps
    row = p.update({"step": 60, "epoch": 0.6})               # 10 steps in 30 s: 2970 s left by rate
    assert row["total_steps"] == 1000
    assert row["eta_s"] == pytest.approx(60.0)               # ... but the 2-minute cap ends it in 60 s


def test_format_duration_and_event():
    assert format_duration(75) == "1:15" and format_duration(3723) == "1:02:03" and format_duration(None) == "?"
    line = format_event({"kind": "train", "label": "training", "step": 50, "total_steps": 200, "percent": 25.0,
                         "steps_per_s": 12.5, "loss": 0.1234, "val_mpjpe": 61.25, "eta_s": 12})
    assert line == "training: step 50/200 (25%) · 12.5 steps/s · loss 0.1234 · val MPJPE 61.2 mm · ETA 0:12"
    assert format_event({"kind": "unknown"}) is None


def test_emit_is_a_no_op_outside_a_report_and_appends_inside(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert emit("message", message="x") is False
    path = tmp_path / "p.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    assert emit("train", step=1, loss=float("nan"))          # NaN does not break the line
    assert emit("message", message="two")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["kind"] for e in events] == ["train", "message"] and events[0]["loss"] == "nan"


def test_tail_throttles_training_and_keeps_validation_rows(tmp_path, monkeypatch):
    path = tmp_path / "p.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    shown: list[str] = []
    tail = ProgressTail(path, lambda event, line: shown.append(line), min_interval_s=3600)
    emit("log", logger="diffupose.train", level="INFO", message="step 10 loss 0.5")   # before any train event
    for step in range(10, 110, 10):
        emit("log", logger="diffupose.train", level="INFO", message=f"step {step} loss 0.5")
        emit("train", label="training", step=step, loss=0.5, val_mpjpe=40.0 if step == 50 else None)
    emit("log", logger="diffupose.evaluate", level="WARNING", message="3 samples are NaN")
    path.write_text(path.read_text() + '{"kind": "train", "step": 1')   # a half-written line waits
    tail.poll()
    tail.stop()
    train = [line for line in shown if line.startswith("training")]
    assert [line.split(" · ")[0] for line in train] == ["training: step 10", "training: step 50", "training: step 100"]
    assert sum("diffupose.train" in line for line in shown) == 1            # dropped once train events come
    assert any("3 samples are NaN" in line for line in shown)


def test_eta_is_the_steps_left_at_the_rate_capped_by_the_budget():
    from diffupose.utils import eta_seconds

    assert eta_seconds(100, 4.0) == 25.0 and eta_seconds(-5, 4.0) == 0.0
    assert eta_seconds(100, None) is None and eta_seconds(100, 0.0) is None
    assert eta_seconds(100, 4.0, budget_left_s=10.0) == 10.0 and eta_seconds(100, None, budget_left_s=-3.0) == 0.0
    import diffupose.workbench.progress
    import diffupose.training.progress
    assert diffupose.workbench.progress.format_duration is diffupose.training.progress.format_duration   # one formatter
