"""benchmarks/train_step.py: the five parts of a training step are timed on real rows of a
prepared file and add up to the steps/s it reports (tiny preset, eager, a few steps: seconds)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train_step(benchmark_script):
    return benchmark_script("train_step")


def test_breakdown_parts_add_up_and_the_table_names_them(train_step, synthetic_npz):
    row = train_step.breakdown("tiny", synthetic_npz, ["train.compile=off", "train.amp=off"], steps=3, warmup=1)
    assert row["preset"] == "tiny" and row["batch"] == 64 and row["window"] == 1
    assert row["compiled"] is False and row["amp"] == "fp32"
    assert all(row[p] > 0 for p in train_step.PARTS)
    assert row["total"] == pytest.approx(sum(row[p] for p in train_step.PARTS))
    assert row["steps_per_s"] == pytest.approx(1000.0 / row["total"])
    table = train_step.format_table([row], "header line")
    assert table.startswith("header line") and "| inputs ms |" in table and "| tiny | 64 | 1 | fp32 | no |" in table


def test_a_windowed_preset_times_its_window_gather(train_step, synthetic_npz):
    row = train_step.breakdown("tiny", synthetic_npz, ["train.compile=off", "model.window=9"], steps=2, warmup=1)
    assert row["window"] == 9 and row["inputs"] > 0
