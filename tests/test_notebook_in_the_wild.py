"""Notebook 07 (in the wild) executed by papermill with tiny-profile sizes on a tiny model; the
test reads back the `in_the_wild` section its last cell recorded. (The full report sequence in
test_notebooks.py runs it too once 07 is listed in `diffupose.profiles.NOTEBOOKS`.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from diffupose.cli import main
from diffupose.reports import execute_notebook, notebook_dir

pytestmark = pytest.mark.timeout(600)

NOTEBOOK = notebook_dir() / "07_in_the_wild.ipynb"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coco17_S8_walking.json"
TINY_TRAIN = ["--preset", "tiny", "--set", "train.max_steps=12", "--set", "train.val_every=6",
              "--set", "train.checkpoint_every=6", "--set", "data.max_val_samples=64", "--no-progress"]


def test_notebook_follows_the_style_rules():
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    assert nb.metadata["kernelspec"] == {"name": "python3", "display_name": "Python 3", "language": "python"}
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "synthetic" in nb.cells[0].source.lower()
    assert len([c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), "outputs committed"
            assert not re.search(r"^\s*(def|class) ", cell.source, re.M), "def/class in a notebook"
    assert "record_metrics" in [c for c in nb.cells if c.cell_type == "code"][-1].source


def test_notebook_runs_in_the_tiny_profile(tmp_path, synthetic_npz):
    run = tmp_path / "run"
    assert main(["train", "--data", str(synthetic_npz), "--out", str(run), *TINY_TRAIN]) == 0
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    params = {"run_dir": str(run), "keypoints_path": str(EXAMPLE), "max_frames": 12, "num_hypotheses": 2,
              "num_steps": 2, "viewer_frames": 4, "device": "cpu", "out_dir": str(out_dir)}
    execute_notebook(NOTEBOOK, out_dir / "07_in_the_wild.ipynb", params)
    section = json.loads((out_dir / "metrics.json").read_text())["in_the_wild"]
    assert section["format"] == "coco17" and section["num_samples"] == 12 and section["num_hypotheses"] == 2
    assert section["missing_joints"] > 0 and section["missing_joint_handling"].startswith("filled")
    assert section["mean_spread_mm"] > 0 and section["spread_missing_mm"] is not None
    assert section["root_relative"] is False                 # the notebook passes the H36M focal length
    assert set(section["files"]) == {"npz", "json", "bvh", "html"}
    for path in section["files"].values():
        assert Path(path).is_file()
    page = Path(section["files"]["html"]).read_text()
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page)
    assert "synthetic" in section["card"]["input_note"]
