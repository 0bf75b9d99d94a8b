"""Post-hoc calibration of the hypotheses (issue 37): the fit, its bands, where it is stored and
that every caller applies it by default without moving the aggregate.

The synthetic case has a known Gaussian posterior: the hypotheses are drawn from N(mu, sigma^2)
and the ground truth from N(mu, (k sigma)^2), i.e. the sampler is over-confident by k = 2. About
their mean (the aggregate), the scaled hypotheses agg + s (h - agg) spread like the ground truth
when s^2 sigma^2 (1 - 1/H) = (k^2 + 1/H) sigma^2, so the fitted joint_scale must recover
s* = sqrt((k^2 + 1/H) / (1 - 1/H)) (2.13 for H = 10; k itself as H grows).
"""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from diffupose.cli import main
from diffupose.errors import ConfigError, DataError
from diffupose.evaluation import metrics
from diffupose.evaluation.calibration import (calibration_report, conformal_factors, fit_calibration,
                                              held_out_calibration, scaled_band_errors, split_halves)
from diffupose.evaluation.protocols import EvalResult, evaluate
from diffupose.inference import zoo
from diffupose.inference.aggregate import coordinate_median
from diffupose.inference.calibration import (CALIBRATION_FILE, Calibration, load_calibrations, save_calibration,
                                             scale_hypotheses)
from diffupose.inference.lifter import Lifter, SamplingSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K, H, J = 2.0, 10, 17
TINY_TRAIN = ["--preset", "tiny", "--set", "train.max_steps=12", "--set", "train.val_every=6",
              "--set", "train.checkpoint_every=6", "--set", "data.max_val_samples=64", "--no-progress"]


def gaussian_case(num: int = 4000, num_h: int = H, k: float = K, seed: int = 0):
    """Hypotheses from N(mu, sigma^2), ground truth from N(mu, (k sigma)^2); the root fixed at 0."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 0.2, (num, J, 3))
    sigma = rng.uniform(0.01, 0.05, (num, J, 1)) * np.linspace(0.5, 1.5, J)[None, :, None]
    hyps = mu[:, None] + sigma[:, None] * rng.normal(size=(num, num_h, J, 3))
    gt = mu + k * sigma * rng.normal(size=(num, J, 3))
    mu[:, 0], hyps[:, :, 0], gt[:, 0] = 0.0, 0.0, 0.0
    groups = np.array([f"seq{i % 20}" for i in range(num)])
    return hyps, hyps.mean(axis=1), gt, np.array(["S8"] * num), groups


def test_gaussian_posterior_calibrated_bands_reach_nominal_coverage():
    hyps, agg, gt, subjects, sequences = gaussian_case()
    calibration, report = held_out_calibration(hyps, agg, gt, "clean", split="val", subjects=subjects,
                                               sequences=sequences)
    expected = math.sqrt((K ** 2 + 1 / H) / (1 - 1 / H))                           # 2.134
    moving = calibration.joint_scale[1:]
    assert calibration.joint_scale[0] == 1.0                                        # the root never moves
    assert np.abs(moving / expected - 1).max() < 0.06, moving
    raw, chosen = report["raw"], report["calibrated"]
    # raw: over-confident by 2: the 90 % band holds about a third of the ground truths
    assert raw["calibration_error"] > 0.3 and raw["coverage"]["0.9"] < 0.45
    # held-out half: the kept bands are calibrated and reach their nominal coverage within 0.03
    assert chosen["calibration_error"] < 0.03
    for level in ("0.5", "0.9", "0.95"):
        assert abs(report["conformal"]["coverage"][level] - float(level)) < 0.03, report["conformal"]["coverage"]
    assert report["chosen"] == "conformal"     # H = 10 hypotheses cannot make a 95 % ball of their own
    assert report["scale"]["calibration_error"] < 0.05
    assert chosen["mpjpe_mm"] == raw["mpjpe_mm"]
    # with many hypotheses the scale itself is k
    hyps, agg, gt, *_ = gaussian_case(num=1500, num_h=50, seed=1)
    big = fit_calibration(hyps, agg, gt, "clean", split="val")
    assert np.abs(big.joint_scale[1:] / math.sqrt((K ** 2 + 1 / 50) / (1 - 1 / 50)) - 1).max() < 0.06


def test_the_fit_refuses_a_test_split_in_one_line(tmp_path, capsys):
    hyps, agg, gt, *_ = gaussian_case(num=100)
    for split, test_split in (("test", "test"), ("S9_S11", "S9_S11")):
        with pytest.raises(ConfigError) as e:
            fit_calibration(hyps, agg, gt, "clean", split=split, test_split=test_split)
        assert "\n" not in str(e.value) and repr(split) in str(e.value) and "test split" in str(e.value)
    with pytest.raises(DataError):
        fit_calibration(hyps[:10], agg[:10], gt[:10], "clean", split="val")             # too few rows


def test_calibration_leaves_the_aggregate_unchanged():
    hyps, agg, gt, *_ = gaussian_case(num=200)
    calibration = fit_calibration(hyps, agg, gt, "clean", split="val")
    scaled = calibration.apply(hyps, agg)
    assert not np.allclose(scaled, hyps)
    np.testing.assert_allclose(scaled.mean(axis=1), agg, atol=1e-12)                   # the mean
    median = coordinate_median(hyps)
    np.testing.assert_allclose(coordinate_median(scale_hypotheses(hyps, median, calibration.joint_scale)), median,
                               atol=1e-12)                                              # scaled about the median
    report = calibration_report(hyps, agg, gt, calibration)
    assert report["raw"]["mpjpe_mm"] == report["calibrated"]["mpjpe_mm"]


def test_the_fast_band_errors_equal_the_metric_on_scaled_hypotheses():
    hyps, agg, gt, *_ = gaussian_case(num=300)
    scale = np.linspace(0.7, 2.5, J)
    direct = metrics.calibration_indicators(scale_hypotheses(hyps, agg, scale), gt).mean(axis=0)
    expected = np.abs(direct - metrics.CALIBRATION_QUANTILES[:, None]).mean(axis=0)
    np.testing.assert_allclose(scaled_band_errors(hyps, agg, gt)(scale), expected, atol=1e-12)


def test_conformal_factors_are_the_finite_sample_quantile():
    hyps, agg, gt, *_ = gaussian_case(num=99)
    factors = conformal_factors(hyps, agg, gt, [0.5, 0.9])
    scores = np.sort(np.linalg.norm(gt - agg, axis=-1) / np.maximum(metrics.hypothesis_spread(hyps), 1e-9), axis=0)
    np.testing.assert_array_equal(factors[0], scores[49])          # ceil(100 * 0.5) = 50th smallest
    np.testing.assert_array_equal(factors[1], scores[89])          # ceil(100 * 0.9) = 90th smallest
    assert np.isinf(conformal_factors(hyps[:5], agg[:5], gt[:5], [0.9])).all()   # ceil(6 * 0.9) = 6 > 5


def test_auroc_is_the_pairwise_probability():
    rng = np.random.default_rng(0)
    score = np.round(rng.normal(size=60), 1)                       # ties count half
    positive = rng.random(60) < 0.3
    pos, neg = score[positive], score[~positive]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert metrics.auroc(score, positive) == pytest.approx(pairs)
    assert math.isnan(metrics.auroc(score, np.zeros(60, bool)))


def test_halves_split_by_sequence():
    subjects = np.array(["S8"] * 6 + ["S9"] * 6)
    sequences = np.array(["a", "a", "b", "b", "c", "c"] * 2)
    half = split_halves(subjects, sequences, seed=3)
    for s in ("S8", "S9"):
        for q in "abc":
            rows = (subjects == s) & (sequences == q)
            assert len(set(half[rows].tolist())) == 1                # a sequence never straddles the halves
    assert 0 < half.sum() < len(half)
    np.testing.assert_array_equal(half, split_halves(subjects, sequences, seed=3))
    with pytest.raises(DataError):
        split_halves(["S8"] * 3, ["a"] * 3)


def test_few_sequences_are_cut_in_time_so_both_halves_hold_every_sequence():
    # HumanEva-I's validation split is 9 (subject, action) chunks: whole chunks would put Box in one half only
    subjects = np.repeat(["S1", "S2", "S3"], 3 * 40)
    sequences = np.tile(np.repeat(["Walk", "Jog", "Box"], 40), 3)
    frames = np.tile(np.arange(40), 9)
    half = split_halves(subjects, sequences, seed=1, frames=frames)
    for s in ("S1", "S2", "S3"):
        for q in ("Walk", "Jog", "Box"):
            rows = (subjects == s) & (sequences == q)
            a, f = half[rows], frames[rows]
            assert a.sum() == 20                                     # half of the sequence in each half
            assert f[a].max() < f[~a].min() or f[~a].max() < f[a].min()   # contiguous blocks in time
    np.testing.assert_array_equal(half, split_halves(subjects, sequences, seed=1, frames=frames))
    # with many sequences the split stays by sequence even when frames are given
    many = np.repeat([f"seq{i}" for i in range(24)], 10)
    by_seq = split_halves(np.array(["S8"] * 240), many, seed=0, frames=np.tile(np.arange(10), 24))
    for q in set(many.tolist()):
        assert len(set(by_seq[many == q].tolist())) == 1
    with pytest.raises(DataError):
        split_halves(["S1"] * 3, ["a"] * 3, frames=[5, 5, 5])


def test_held_out_figures_are_the_mean_over_both_ways_of_every_split():
    # one split of few sequences is a noisy estimate; the report averages 2 x repeats held-out halves
    hyps, agg, gt, subjects, sequences = gaussian_case(num=600, k=1.5, seed=4)
    _, report = held_out_calibration(hyps, agg, gt, "clean", split="val", subjects=subjects, sequences=sequences,
                                     seed=2, repeats=2)
    errors, coverage, radius = [], [], []
    for seed in (2, 3):
        half_a = split_halves(subjects, sequences, seed)
        for fit, held in ((half_a, ~half_a), (~half_a, half_a)):
            fitted = fit_calibration(hyps[fit], agg[fit], gt[fit], "clean", split="val").replace(method="conformal")
            one = calibration_report(hyps[held], agg[held], gt[held], fitted)["calibrated"]
            errors.append(one["calibration_error"])
            coverage.append(one["coverage"]["0.9"])
            radius.append(one["mean_radius_90_mm"])
    conformal = report["conformal"]
    assert conformal["calibration_error"] == pytest.approx(np.mean(errors))
    assert conformal["coverage"]["0.9"] == pytest.approx(np.mean(coverage))
    assert conformal["mean_radius_90_mm"] == pytest.approx(np.mean(radius))
    assert conformal["across_halves"] == {"num": 4, "calibration_error": [min(errors), max(errors)],
                                          "coverage_90": [min(coverage), max(coverage)]}
    assert report["rows"]["repeats"] == 2 and report["rows"]["held_out_halves"] == 4
    assert len(set(errors)) == 4                                   # four different halves, four fits
    with pytest.raises(ConfigError):
        held_out_calibration(hyps, agg, gt, "clean", split="val", subjects=subjects, sequences=sequences, repeats=0)


def test_save_load_round_trip_keeps_other_sources(tmp_path):
    hyps, agg, gt, *_ = gaussian_case(num=100)
    clean = fit_calibration(hyps, agg, gt, "clean", split="val", joint_names=[f"j{i}" for i in range(J)],
                            fitted_on={"data_file": "x.npz"})
    detected = clean.replace(source="detected", method="conformal",
                             conformal_factors=np.where(np.arange(J) == 3, np.inf, clean.conformal_factors))
    save_calibration(tmp_path, clean)
    save_calibration(tmp_path, detected)
    doc = json.loads((tmp_path / CALIBRATION_FILE).read_text())                      # plain JSON, no pickle
    assert set(doc["sources"]) == {"clean", "detected"}
    back = load_calibrations(tmp_path)
    for original in (clean, detected):
        got = back[original.source]
        np.testing.assert_array_equal(got.joint_scale, original.joint_scale)
        np.testing.assert_array_equal(got.conformal_factors, original.conformal_factors)
        assert (got.method, got.levels, got.joint_names, got.fitted_on) == \
               (original.method, original.levels, original.joint_names, original.fitted_on)
    radii = back["detected"].radii(np.full((2, J), 0.01), 0.9)
    assert radii.shape == (2, J) and np.isinf(radii[:, 3]).all()
    with pytest.raises(ConfigError):
        back["clean"].radii(np.full((2, J), 0.01), 0.9)                   # "scale" takes the hypotheses
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(Exception) as e:
        load_calibrations(tmp_path)
    assert "calibration.json" in str(e.value) and "\n" not in str(e.value)
    assert load_calibrations(tmp_path / "nowhere") == {}


def test_zoo_card_entry_keeps_the_checksum(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    card = {"name": "m", "summary": "s", "weights_sha256": "abc", "skeleton": "h36m17"}
    (folder / "card.json").write_text(json.dumps(card))
    hyps, agg, gt, *_ = gaussian_case(num=100)
    calibration = fit_calibration(hyps, agg, gt, "detected", split="val",
                                  fitted_on={"dataset": "h36m", "subjects": ["S8"], "num_hypotheses": 10})
    path, info = zoo.set_card_entry("m", "calibration", {"detected": calibration.summary()}, root=tmp_path)
    stored = json.loads(path.read_text())
    assert stored["weights_sha256"] == "abc" and stored["calibration"]["detected"]["method"] == "scale"
    readme = (folder / "README.md").read_text()
    assert "## Calibration" in readme and "| detected | scale |" in readme


def test_writing_into_a_zoo_folder_from_a_dirty_tree_is_refused_before_sampling(monkeypatch, tmp_path):
    from diffupose.evaluation import calibration as fitting
    seen = {}

    def changed(cwd=None, ignore=()):
        seen["ignore"] = [str(p) for p in ignore]
        return ["diffupose/config.py", "README.md"]

    monkeypatch.setattr(fitting, "git_changed_paths", changed)
    with pytest.raises(ConfigError, match=r"uncommitted changes \(diffupose/config.py and 1 more\).*--allow-dirty"):
        fitting.calibrate_model("h36m", tmp_path / "never_read.npz")
    assert seen["ignore"] == [str(zoo.model_dir("h36m").parent)]   # earlier fits into zoo folders do not count
    # a run folder, or --out elsewhere, names whatever commit it has and is not refused
    with pytest.raises(DataError, match="never_read.npz"):
        fitting.calibrate_model("h36m", tmp_path / "never_read.npz", out=tmp_path / "elsewhere")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_changed_paths_leave_out_the_ignored_folders(tmp_path):
    import subprocess
    from diffupose.utils import git_changed_paths, git_commit
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "model").mkdir()
    for name in ("a.txt", "model/card.json"):
        (tmp_path / name).write_text("1")
    run("init", "-q"); run("add", "."); run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert git_changed_paths(tmp_path) == [] and not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "model/card.json").write_text("2")
    assert git_changed_paths(tmp_path) == ["model/card.json"]
    assert git_changed_paths(tmp_path, ignore=[tmp_path / "model"]) == []
    assert not git_commit(tmp_path, ignore=[tmp_path / "model"]).endswith("-dirty")
    assert git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "a.txt").write_text("2")
    assert git_changed_paths(tmp_path, ignore=[tmp_path / "model"]) == ["a.txt"]
    assert git_changed_paths(tmp_path.parent / "not_a_repo_at_all") == []


# --- the whole path on a tiny trained run ------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_npz):
    run = tmp_path_factory.mktemp("calibration") / "run"
    assert main(["train", "--data", str(synthetic_npz), "--out", str(run), *TINY_TRAIN]) == 0
    return run


@pytest.fixture(scope="module")
def calibrated_run(run_dir, tmp_path_factory, synthetic_npz):
    """A copy of the run, calibrated by `diffupose calibrate` (the run itself stays raw)."""
    copy = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(run_dir, copy)
    report = copy.parent / "held_out.json"
    assert main(["calibrate", "--run", str(copy), "--data", str(synthetic_npz), "--hypotheses", "4",
                 "--max-samples", "400", "--json", str(report)]) == 0
    return copy


def test_calibrate_command_writes_the_file_and_refuses_test(calibrated_run, synthetic_npz, capsys):
    calibrations = load_calibrations(calibrated_run)
    assert set(calibrations) == {"clean"}                          # GT-projection 2D: the clean source
    calibration = calibrations["clean"]
    on = calibration.fitted_on
    assert (on["split"], on["num_rows"], on["num_hypotheses"], on["flip"], on["checkpoint"]) == ("val", 400, 4, True,
                                                                                             "ema")
    assert on["data_file"] == str(synthetic_npz) and on["git_commit"] and on["date"]
    held = calibration.held_out
    assert held["chosen"] == calibration.method and held["rows"]["fit_half"]["rows"] + \
        held["rows"]["report_half"]["rows"] == 400                 # the mean half: the two halves of 400 rows
    assert held["rows"]["held_out_halves"] == 2 * held["rows"]["repeats"]
    report = json.loads((calibrated_run.parent / "held_out.json").read_text())
    assert report["held_out"]["raw"]["calibration_error"] is not None
    capsys.readouterr()
    assert main(["calibrate", "--run", str(calibrated_run), "--data", str(synthetic_npz), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'test'" in err and "test split" in err


def test_lifter_applies_it_by_default_and_calibrated_false_is_the_raw_sampler(run_dir, calibrated_run,
                                                                              synthetic_npz):
    from diffupose.data.prepared import load_prepared

    data = load_prepared(synthetic_npz).select(split="test", max_samples=24, seed=0)
    raw_lifter = Lifter.load(run_dir, checkpoint="ema")
    lifter = Lifter.load(calibrated_run, checkpoint="ema")
    assert raw_lifter.calibrations == {} and set(lifter.calibrations) == {"clean"}
    settings = SamplingSettings(num_hypotheses=4, batch_size=10, seed=3)
    raw = settings.replace(calibrated=False)
    kp = data.keypoints_2d
    # calibrated=False reproduces the raw sampler bit for bit, everywhere
    np.testing.assert_array_equal(lifter.sample(kp, raw), raw_lifter.sample(kp, settings))
    for (_, _, a), (_, _, b) in zip(lifter.iter_hypotheses(kp, raw), raw_lifter.iter_hypotheses(kp, settings)):
        np.testing.assert_array_equal(a, b)
    out_raw, base = lifter.predict(kp, raw), raw_lifter.predict(kp, settings)
    for name in ("hypotheses", "aggregate", "spread"):
        np.testing.assert_array_equal(getattr(out_raw, name), getattr(base, name))
    assert out_raw.calibration["calibrated"] is False and base.calibration["calibrated"] is False
    # by default: calibrated hypotheses, the same aggregate
    out = lifter.predict(kp, settings)
    assert out.calibration["calibrated"] is True and out.calibration["fitted_on"]["split"] == "val"
    np.testing.assert_array_equal(out.aggregate, base.aggregate)
    np.testing.assert_allclose(out.hypotheses.mean(axis=1), base.aggregate, atol=1e-5)
    assert not np.allclose(out.hypotheses, base.hypotheses)
    calibration = lifter.calibrations["clean"]
    np.testing.assert_allclose(out.hypotheses, calibration.apply(base.hypotheses, base.aggregate), atol=1e-6)
    np.testing.assert_allclose(out.radius_90, calibration.radii(out.hypotheses, 0.9), rtol=1e-5)
    sampled, sampled_raw = lifter.sample(kp, settings), lifter.sample(kp, raw)
    assert not np.allclose(sampled, sampled_raw)
    np.testing.assert_allclose(sampled.mean(axis=1), sampled_raw.mean(axis=1), atol=1e-5)
    (_, _, batch), *_ = lifter.iter_hypotheses(kp, settings)                   # the batches predict calibrates
    np.testing.assert_allclose(batch, out.hypotheses[:10], atol=1e-6)


def test_evaluate_reports_raw_and_calibrated_and_lift_writes_radii(run_dir, calibrated_run, synthetic_npz, tmp_path):
    import diffupose
    from diffupose.config import EvalConfig

    ev = EvalConfig(num_hypotheses=4, max_samples=96, checkpoint="ema")
    plain = evaluate(run_dir, synthetic_npz, split="test", eval_cfg=ev, progress=False)
    calibrated = evaluate(calibrated_run, synthetic_npz, split="test", eval_cfg=ev, progress=False)
    assert calibrated.per_action == plain.per_action and calibrated.hypotheses == plain.hypotheses   # raw, once
    assert plain.calibration["calibrated"] is None and "no calibration" in plain.calibration["card"]["reason"]
    figures = calibrated.calibration
    assert figures["raw"] == plain.calibration["raw"]
    cal = figures["calibrated"]
    assert set(cal["coverage"]) == {"0.5", "0.9", "0.95"} and 0.0 <= cal["calibration_error"] <= 1.0
    assert cal["mpjpe_mm"] == pytest.approx(plain.per_action["MPJPE"]["Average"], rel=0.05)
    assert figures["card"]["calibration"]["fitted_on"]["split"] == "val" and figures["card"]["split"] == "test"
    path = calibrated.to_json(tmp_path / "ev.json")
    assert EvalResult.from_json(path).calibration["calibrated"]["calibration_error"] == cal["calibration_error"]
    off = evaluate(calibrated_run, synthetic_npz, split="test", progress=False,
                   eval_cfg=EvalConfig(num_hypotheses=4, max_samples=96, checkpoint="ema", calibrated=False))
    assert off.calibration["calibrated"] is None and off.per_action == plain.per_action

    from diffupose.data.prepared import load_prepared
    kp = load_prepared(synthetic_npz).keypoints_2d[:12]
    result = diffupose.lift(kp, calibrated_run, format="h36m17", num_hypotheses=4, checkpoint="ema",
                            out=tmp_path / "lift", outputs=["npz", "json"], progress=False)
    assert result.radius_90.shape == (12, J) and (result.radius_90 >= 0).all()
    card = result.card["radius_90"]
    assert card["calibrated"] is True and card["fitted_on"]["data_file"] == str(synthetic_npz)
    with np.load(tmp_path / "lift.npz", allow_pickle=False) as f:
        np.testing.assert_allclose(f["radius_90"], result.radius_90)
    doc = json.loads((tmp_path / "lift.json").read_text())
    assert np.asarray(doc["radius_90"]).shape == (12, J) and doc["card"]["radius_90"]["calibrated"] is True
    raw = diffupose.lift(kp, calibrated_run, format="h36m17", num_hypotheses=4, checkpoint="ema", calibrated=False,
                         progress=False)
    assert raw.card["radius_90"]["calibrated"] is False
    np.testing.assert_array_equal(raw.aggregate, result.aggregate)


def test_notebook_cache_report_uses_the_stored_or_a_fresh_calibration(run_dir, calibrated_run, synthetic_npz,
                                                                        tmp_path):
    from diffupose.evaluation.calibration import cache_calibration
    from diffupose.evaluation.hypothesis_cache import run_uncertainty

    common = dict(num_hypotheses=4, max_samples=48, checkpoint="ema", prefixes=[4], progress=False)
    _, cache, _ = run_uncertainty(calibrated_run, synthetic_npz, "test", cache_path=tmp_path / "t.npz", **common)
    calibration, figures, how = cache_calibration(calibrated_run, synthetic_npz, cache, num_hypotheses=4)
    assert "calibration.json" in how and calibration.fitted_on["split"] == "val"
    assert figures["card"]["split"] == "test" and figures["raw"]["num_samples"] == 48
    assert figures["calibrated"]["mpjpe_mm"] == figures["raw"]["mpjpe_mm"]
    _, fresh, how = cache_calibration(run_dir, synthetic_npz, cache, num_hypotheses=4, max_samples=200)
    assert "fitted now" in how and not (run_dir / CALIBRATION_FILE).exists()      # not stored
    assert fresh["calibrated"]["calibration_error"] is not None
    _, val_cache, _ = run_uncertainty(calibrated_run, synthetic_npz, "val", cache_path=tmp_path / "v.npz", **common)
    _, held, _ = cache_calibration(calibrated_run, synthetic_npz, val_cache, num_hypotheses=4)
    assert "held-out halves" in held["card"]["rows"]                               # never in-sample
    assert held["raw"] == calibration.held_out["raw"]


def test_a_calibration_is_applied_only_at_the_settings_it_was_fitted_at():
    """The shipped h36m-det calibration was fitted at N = 10, DDIM-5, flip, mean: at those settings
    the output says calibrated; at N = 1, 2 steps or without flip it gives the raw sampler and
    says why, instead of a radius fitted for other hypotheses (0 at N = 1)."""
    from diffupose import Lifter

    lifter = Lifter.from_pretrained("h36m-det")
    y = np.zeros((3, 17, 2), np.float32)
    own = lifter.default_settings()
    assert lifter.predict(y, own).calibration["calibrated"] is True
    for change, words in [({"num_hypotheses": 1}, "num_hypotheses 10, here 1"), ({"num_steps": 2}, "num_steps 5, here 2"),
                          ({"flip": False}, "flip True, here False")]:
        settings = own.replace(**change)
        assert lifter.calibration_for(settings) is None and lifter.stored_calibration(settings) is not None
        card = lifter.predict(y, settings).calibration
        assert card["calibrated"] is False and words in card["reason"] and "\n" not in card["reason"]
