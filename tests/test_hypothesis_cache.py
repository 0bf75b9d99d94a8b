"""Hypothesis cache: the same samples as `select`, float16 round trip, reuse only when settings,
weights and inputs match, every aggregator x N from one sampling, ground-truth-free rows that do
not move when the ground truth or the stored root moves, and the shared inference path."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from diffupose.evaluation import hypothesis_cache as hc
from diffupose.inference.aggregate import AGGREGATIONS, ORACLES
from diffupose.data.prepared import load_prepared
from diffupose.errors import DataError

SETTINGS = {"num_hypotheses": 12, "sampler": "ddim", "num_steps": 5, "flip": True, "seed": 0}


class GaussianLifter:
    """A stand-in sampler with a known answer: hypotheses = ground truth + offset + noise
    (root kept at zero). Duck-types Lifter.iter_hypotheses and .denoiser."""

    def __init__(self, gt_by_input: dict, sigma: float = 0.03, offset: float = 0.0):
        self.gt_by_input, self.sigma, self.offset = gt_by_input, sigma, offset
        self.denoiser = torch.nn.Linear(2, 2)
        self.calls = 0

    def iter_hypotheses(self, keypoints_2d, settings, keypoint_mask=None, progress=False):
        self.calls += 1
        num_h = settings["num_hypotheses"] if isinstance(settings, dict) else settings.num_hypotheses
        rng = np.random.default_rng(settings["seed"] if isinstance(settings, dict) else settings.seed)
        for start in range(0, len(keypoints_2d), 50):
            stop = min(start + 50, len(keypoints_2d))
            gt = np.stack([self.gt_by_input[k.tobytes()] for k in keypoints_2d[start:stop]])
            hyps = gt[:, None] + self.offset + rng.normal(size=(stop - start, num_h) + gt.shape[1:]) * self.sigma
            hyps[:, :, 0] = 0.0
            yield start, stop, hyps.astype(np.float32)


@pytest.fixture(scope="module")
def data(synthetic_npz):
    return load_prepared(synthetic_npz)


@pytest.fixture()
def lifter(data):
    return GaussianLifter({k.tobytes(): g for k, g in zip(data.keypoints_2d, data.poses_3d.astype(np.float64))})


def test_select_indices_match_prepared_select(data):
    index = hc.select_indices(data, "test", max_samples=100, seed=3)
    chosen = data.select(split="test", max_samples=100, seed=3)
    assert len(index) == 100 and (np.diff(index) > 0).all()
    np.testing.assert_array_equal(data.keypoints_2d[index], chosen.keypoints_2d)
    np.testing.assert_array_equal(data.frame[index], chosen.frame)


def test_round_trip_float16_and_ids(tmp_path, data, lifter):
    cache = hc.build_cache(lifter, data, "test", SETTINGS, max_samples=80, seed=1, progress=False)
    path = hc.save_cache(cache, tmp_path / "c.npz")
    loaded = hc.load_cache(path)
    assert loaded.hypotheses.dtype == np.float16 and loaded.hypotheses.shape == (80, 12, 17, 3)
    np.testing.assert_array_equal(loaded.hypotheses, cache.hypotheses)
    np.testing.assert_array_equal(loaded.index, cache.index)
    for key in hc.ID_KEYS:
        np.testing.assert_array_equal(loaded.ids[key], np.asarray(getattr(data, key))[cache.index])
    assert loaded.settings == SETTINGS and loaded.identity["split"] == "test"
    assert len(loaded.identity["checkpoint"]["sha256"]) == 64
    assert not list(tmp_path.glob(".c.npz*"))                                   # atomic: no temp left
    with np.load(path, allow_pickle=False) as npz:                              # no pickle needed
        assert "meta_json" in npz.files


def test_reuse_only_when_settings_weights_and_inputs_match(tmp_path, data, lifter):
    path = tmp_path / "cache.npz"
    kw = dict(max_samples=60, seed=0, progress=False)
    first, reused = hc.cached_hypotheses(path, lifter, data, "test", SETTINGS, **kw)
    assert not reused and lifter.calls == 1
    again, reused = hc.cached_hypotheses(path, lifter, data, "test", SETTINGS, **kw)
    assert reused and lifter.calls == 1
    np.testing.assert_array_equal(again.hypotheses, first.hypotheses)
    _, reused = hc.cached_hypotheses(path, lifter, data, "test", {**SETTINGS, "num_steps": 2}, **kw)
    assert not reused and lifter.calls == 2                                     # settings changed
    _, reused = hc.cached_hypotheses(path, lifter, data, "test", {**SETTINGS, "num_steps": 2}, max_samples=61,
                                     seed=0, progress=False)
    assert not reused and lifter.calls == 3                                     # other inputs
    with torch.no_grad():
        lifter.denoiser.weight.add_(1.0)
    _, reused = hc.cached_hypotheses(path, lifter, data, "test", {**SETTINGS, "num_steps": 2}, max_samples=61,
                                     seed=0, progress=False)
    assert not reused and lifter.calls == 4                                     # other weights
    path.write_bytes(b"not an npz")
    _, reused = hc.cached_hypotheses(path, lifter, data, "test", SETTINGS, **kw)
    assert not reused and lifter.calls == 5                                     # unreadable: resampled
    with pytest.raises(DataError, match="junk.npz"):
        (tmp_path / "junk.npz").write_bytes(b"x")
        hc.load_cache(tmp_path / "junk.npz")


def test_cache_from_another_file_is_refused(data, lifter):
    cache = hc.build_cache(lifter, data, "test", SETTINGS, max_samples=30, progress=False)
    cache.ids["frame"] = cache.ids["frame"] + 1
    with pytest.raises(DataError, match="ids"):
        hc.evaluate_cache(cache, data)


def test_every_aggregator_and_n_from_one_sampling(data, lifter):
    settings = {**SETTINGS, "num_hypotheses": 20}
    cache = hc.build_cache(lifter, data, "test", settings, max_samples=120, progress=False)
    report = hc.evaluate_cache(cache, data, prefixes=(1, 5, 10, 20, 50))
    names = set(AGGREGATIONS) | set(ORACLES) | {hc.GT_ROOT}
    assert {(r["aggregator"], r["N"]) for r in report.table} == {(a, n) for a in names for n in (1, 5, 10, 20)}
    for row in report.table:
        assert row["oracle"] == (row["aggregator"] in ORACLES or row["aggregator"] == hc.GT_ROOT)
        assert np.isfinite(row["MPJPE"]) and row["num_nan_samples"] == 0
    by = {(r["aggregator"], r["N"]): r["MPJPE"] for r in report.table}
    # Gaussian hypotheses around the truth: averaging more of them helps; the oracles are bounds.
    assert by[("mean", 20)] < by[("mean", 1)]
    assert by[("oracle_joint", 20)] <= by[("oracle_pose", 20)] <= by[("oracle_pose", 5)] <= by[("mean", 1)]
    # N = 1: every aggregator returns the single hypothesis.
    assert len({round(by[(a, 1)], 9) for a in names}) == 1
    # Sections and cards. Hypotheses centred on the truth itself: the truth sits at the centre
    # of every cloud, so the sampler is under-confident (fraction above q at every level).
    cal = report.calibration
    assert all(f > q for f, q in zip(cal["fraction"], cal["quantiles"])) and cal["error"] > 0.2
    assert cal["card"]["oracle"] is False and "hip" not in cal["error_per_joint"]
    assert report.pck_cps["oracle_joint"]["oracle"] and not report.pck_cps["mean"]["oracle"]
    assert 0 <= report.pck_cps["mean"]["pck"]["Average"] <= 100
    assert 0 <= report.pck_cps["mean"]["cps_mm"]["Average"] <= 300
    assert set(report.card["oracle_rows"]) == set(ORACLES) | {hc.GT_ROOT}
    assert report.ambiguity["most_ambiguous_joints"] and "hip" not in report.ambiguity["most_ambiguous_joints"]
    assert set(report.per_joint) == set(report.per_action) == names
    assert report.per_joint["oracle_joint"]["hip"] == pytest.approx(0.0)        # root: exactly zero here
    json.dumps(report.to_dict(), allow_nan=False)


def test_gt_free_rows_ignore_ground_truth_and_stored_root(data, lifter):
    cache = hc.build_cache(lifter, data, "test", SETTINGS, max_samples=60, progress=False)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=data.poses_3d.shape).astype(np.float32) * 0.1
    moved = dataclasses.replace(data, poses_3d=data.poses_3d + noise,
                                root_position=data.root_position + np.float32([0.3, -0.2, 0.5]))
    a = hc.evaluate_cache(cache, data).arrays["predictions"]
    b = hc.evaluate_cache(cache, moved).arrays["predictions"]
    for name in AGGREGATIONS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in (*ORACLES, hc.GT_ROOT):                      # these do use the ground truth
        assert not np.array_equal(a[name], b[name]), name


def test_real_lifter_cache_is_reproducible_and_reused(tmp_path, synthetic_npz):
    """Through the shared inference path: a tiny untrained denoiser, H=4."""
    from diffupose.config import preset
    from diffupose.inference import Lifter
    from diffupose.model import build_denoiser
    from diffupose.geometry.skeleton import get_skeleton

    torch.manual_seed(0)
    cfg = preset("tiny")
    skeleton = get_skeleton("h36m17")
    lifter = Lifter.from_model(build_denoiser(cfg.model, skeleton), cfg, skeleton)
    data = load_prepared(synthetic_npz)
    settings = hc.cache_settings(4, num_steps=2, batch_size=16)
    path = tmp_path / "h.npz"
    cache, reused = hc.cached_hypotheses(path, lifter, data, "test", settings, max_samples=40, progress=False)
    assert not reused and cache.hypotheses.shape == (40, 4, 17, 3)
    direct = lifter.sample(data.keypoints_2d[cache.index[:16]], settings)
    np.testing.assert_allclose(cache.hypotheses[:16].astype(np.float32), direct, atol=2e-3)  # float16
    again, reused = hc.cached_hypotheses(path, lifter, data, "test", settings, max_samples=40, progress=False)
    assert reused
    report = hc.evaluate_cache(again, data, prefixes=(1, 2, 4))
    assert {r["N"] for r in report.table} == {1, 2, 4}
