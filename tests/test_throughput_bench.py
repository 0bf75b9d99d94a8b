"""benchmarks/throughput.py --precision-table: fp32 and bf16 steppers side by side, the table
names the compile mode (a tiny preset, one round, eager: seconds)."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def throughput(benchmark_script):
    return benchmark_script("throughput")


def test_precision_table_measures_both_precisions_and_names_compile(throughput, capsys):
    rows = throughput.precision_table(["tiny"], torch.device("cpu"), rounds=1, repeats=1)
    (row,) = rows
    assert row["preset"] == "tiny" and row["compile"] == "off" and row["batch"] > 0
    assert row["fp32"] > 0 and row["bf16"] > 0
    assert row["speedup"] == pytest.approx(row["bf16"] / row["fp32"])
    table = throughput.format_table(rows, {"device": "cpu"})
    assert "| compile |" in table and "| tiny | 64 |" in table and "| off |" in table
