"""benchmarks/lift_speed.py on a few frames: it lifts with the model's own sampler (DDIM-5 for a
DDPM zoo model, DDIM-1 for the distilled one), names it, and writes every output."""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from diffupose.inference import zoo

from conftest import require_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SHIPPED_ZOO = zoo.ZOO_DIR


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


@pytest.mark.parametrize("argv, message", [(["--run", "h36m", "--frames", "12"], "leave out --frames"),
                                           (["--run", "h36m", "--hypotheses", "2", "--no-flip"],
                                            "leave out --hypotheses, --no-flip"),
                                           (["--run", "h36m-gt"], "not a shipped zoo model name"),
                                           (["--run", "runs/some-run"], "not a shipped zoo model name"),
                                           (["--run", "h36m", "--data-dir", "no-such-dir"], "not the stand-in")])
def test_write_card_only_times_the_card_protocol(lift_speed, monkeypatch, argv, message):
    """--write-card refuses, before any work, a time that is not the card's (N = 10, flip, the
    model's sampler, 1,000 frames) or a model that is not shipped under that name."""
    monkeypatch.setattr(sys, "argv", ["lift_speed.py", *argv, "--write-card"])
    monkeypatch.setattr(lift_speed, "lift", lambda *a, **k: pytest.fail("lifted before refusing"))
    with pytest.raises(SystemExit, match=message):
        lift_speed.main()


def test_write_card_stores_the_time_in_the_card(lift_speed, monkeypatch, capsys, tmp_path, shared_data):
    """The card gets the best end-to-end time (which `diffupose models` prints) and a `lift_speed`
    entry naming the command and the CPU; its README is rewritten from it."""
    data_dir = require_file(shared_data / "h36m" / "h36m_3d17_train.npz").parent
    root = tmp_path / "models"
    shutil.copytree(zoo.ZOO_DIR / "h36m-det-fast", root / "h36m-det-fast")
    monkeypatch.setattr(zoo, "ZOO_DIR", root)
    monkeypatch.setattr(sys, "argv", ["lift_speed.py", "--run", "h36m-det-fast", "--threads", "1",
                                      "--data-dir", str(data_dir), "--write-card"])
    lift_speed.main()
    card = zoo.card("h36m-det-fast", root)
    entry = card["lift_speed"]
    assert card["lift_seconds_per_1000_frames"] == entry["seconds_end_to_end"] > entry["sampling_s"] > 0
    assert entry["command"] == "OMP_NUM_THREADS=1 python benchmarks/lift_speed.py --run h36m-det-fast --repeats 1"
    assert "1 threads" in entry["cpu"] and "1,000-frame" in entry["what"]
    assert f"{entry['seconds_end_to_end']:.2f} s per 1,000 frames" in (root / "h36m-det-fast" / "README.md").read_text()
    assert card["weights_sha256"] == zoo.card("h36m-det-fast", SHIPPED_ZOO)["weights_sha256"]
    assert "wrote" in capsys.readouterr().out
