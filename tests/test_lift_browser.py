"""The lift viewer in a real browser: headless Chromium with networking off opens the HTML that
`diffupose lift` writes (self-contained, moved alone to a new folder; no CDN), checks that the 3D figure rendered
(WebGL canvas, slider), that no script threw and nothing was fetched, and saves a screenshot.
Skipped when no chromium binary is installed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from diffupose.cli import main

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "coco17_S8_walking.json"
TINY_TRAIN = ["--preset", "tiny", "--set", "train.max_steps=12", "--set", "train.val_every=6",
              "--set", "train.checkpoint_every=6", "--set", "data.max_val_samples=64", "--no-progress"]


@pytest.fixture(scope="module")
def viewer(tmp_path_factory, synthetic_npz, chromium) -> Path:
    tmp = tmp_path_factory.mktemp("lift_browser")
    assert main(["train", "--data", str(synthetic_npz), "--out", str(tmp / "run"), *TINY_TRAIN]) == 0
    assert main(["lift", "--run", str(tmp / "run"), "--keypoints", str(EXAMPLE), "--image-size", "1000", "1002",
                 "--hypotheses", "3", "--steps", "2", "--out", str(tmp / "out" / "walk"), "--outputs", "html"]) == 0
    moved = tmp / "elsewhere" / "walk.html"                 # the page alone in a new folder still works
    moved.parent.mkdir()
    (tmp / "out" / "walk.html").rename(moved)
    return moved


def test_viewer_renders_offline(viewer, tmp_path, chromium):
    assert sorted(p.name for p in viewer.parent.iterdir()) == ["walk.html"]
    result = chromium(viewer.as_uri(), tmp_path / "profile-dom", "--dump-dom", window="1280,1000")
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if "Uncaught" in line or "Failed to load resource" in line]
    assert not errors, "\n".join(errors[:5])
    dom = result.stdout
    assert re.search(r'<div[^>]+class="[^"]*js-plotly-plot', dom), "the figure did not render"
    assert "gl-container" in dom and "<canvas" in dom, "no WebGL canvas for the 3D scene"
    assert "slider" in dom, "no frame slider"
    shot = tmp_path / "viewer.png"
    result = chromium(viewer.as_uri(), tmp_path / "profile-shot", f"--screenshot={shot}", window="1280,1000")
    assert shot.exists() and shot.stat().st_size > 5000, result.stderr[-2000:]
