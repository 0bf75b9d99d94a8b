"""benchmarks/missing_in_time.py: its "as given" switch really restores the code before the time
fill (and undoes itself), and on the shipped example the fill beats per-frame masks."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import diffupose
import diffupose.lifting.pipeline as pipeline
import diffupose.model.denoiser as denoiser_module
from conftest import require_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COCO = Path(__file__).resolve().parents[1] / "examples" / "coco17_S8_walking.json"


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("missing_in_time")


def test_as_given_switch_hands_per_frame_masks_through_and_restores(bench):
    lifter = diffupose.Lifter.from_pretrained("h36m-det-fast")
    seen = []
    real = lifter.predict
    lifter.predict = lambda x, s, **kw: seen.append(kw["keypoint_mask"]) or real(x, s, **kw)
    kw = dict(lifter=lifter, image_size=(1000, 1002), num_hypotheses=1, progress=False)
    gaps, fill = pipeline.short_gaps, denoiser_module.fill_window_in_time
    with bench.masks_as_given():
        before = diffupose.lift(COCO, **kw)
    assert pipeline.short_gaps is gaps and denoiser_module.fill_window_in_time is fill
    diffupose.lift(COCO, **kw)
    np.testing.assert_array_equal(seen[0], before.present)              # as given: the detector's mask
    assert seen[1].sum() > seen[0].sum()                                 # now: brief gaps interpolated


def test_examples_table_fill_beats_per_frame_masks(bench, shared_data, capsys):
    h36m = require_file(shared_data / "h36m" / "h36m_3d17_train.npz").parent
    rows = bench.examples_table(SimpleNamespace(h36m_dir=str(h36m), models=["h36m-det-fast"]))
    for row in rows[2:]:
        before, now = (float(v) for v in row.strip("|").split("|")[4:6])
        assert now < before - 5, row
