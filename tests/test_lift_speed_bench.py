"""benchmarks/lift_speed.py on a few frames: it lifts with the model's own sampler (DDIM-5 for a
DDPM zoo model, DDIM-1 for the distilled one), names it, and writes every output."""
from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lift_speed(benchmark_script):
    return benchmark_script("lift_speed")


@pytest.mark.parametrize("model, expected", [("h36m-det-fast", {"objective": "ddpm", "sampler": "ddim", "nfe": 1}),
                                             ("h36m", {"objective": "ddpm", "sampler": "ddim", "nfe": 5})])
def test_lifts_with_the_model_own_sampler(lift_speed, monkeypatch, capsys, tmp_path, model, expected):
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", ["lift_speed.py", "--run", model, "--frames", "12",
                                      "--hypotheses", "2", "--threads", "1", "--data-dir", str(tmp_path / "none"),
                                      "--json", str(out)])
    lift_speed.main()
    printed = capsys.readouterr().out
    (row,) = json.loads(out.read_text())["rows"]
    assert row["sampler"] == expected
    assert f"{expected['sampler']} with {expected['nfe']} evaluations" in printed
    assert "mean pose with noise" in printed                       # no H36M file: the stand-in track
    assert set(row["bytes"]) == {"npz", "json", "bvh", "html"} and min(row["bytes"].values()) > 0
    assert 0 < row["sampling_s"] <= row["lift_s"] <= row["end_to_end_s"]
