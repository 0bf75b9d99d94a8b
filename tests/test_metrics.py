"""Metrics against hand-computed cases."""
import numpy as np
import pytest
import torch

from diffupose.evaluation import metrics


def _rotation(axis, angle):
    axis = np.asarray(axis, dtype=float)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.fixture
def poses():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 17, 3)) * 0.3


def test_mpjpe_hand_computed():
    gt = np.zeros((2, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    np.testing.assert_allclose(metrics.mpjpe(pred, gt), [2.5, 1.5])
    np.testing.assert_allclose(metrics.per_joint_errors(pred, gt), [[5.0, 0.0], [1.0, 2.0]])


def test_accepts_torch_and_asserts_shapes(poses):
    out = metrics.mpjpe(torch.tensor(poses), torch.tensor(poses + 1.0))
    assert isinstance(out, np.ndarray) and out.shape == (4,)
    np.testing.assert_allclose(out, np.sqrt(3.0))
    with pytest.raises(AssertionError):
        metrics.mpjpe(poses, poses[:, :16])
    with pytest.raises(AssertionError):
        metrics.p_mpjpe(poses[..., :2], poses[..., :2])


def test_similarity_transform_has_zero_p_mpjpe(poses):
    r = _rotation([0.3, -1.0, 0.5], 1.1)
    pred = 1.7 * poses @ r.T + np.array([0.4, -0.2, 3.0])
    assert (metrics.mpjpe(pred, poses) > 0.1).all()
    np.testing.assert_allclose(metrics.p_mpjpe(pred, poses), 0.0, atol=1e-9)
    np.testing.assert_allclose(metrics.procrustes_align(pred, poses), poses, atol=1e-9)


def test_reflection_is_not_allowed_hand_value():
    # Axis-aligned "cross": +-1 on x, +-2 on y and z. Mirror x. Cross-covariance is
    # diag(-2, 8, 8)/18; the best proper rotation is the identity (flip back the weakest
    # direction), scale (8 + 8 - 2)/18 = 7/9. Errors: x joints 1 + 7/9 = 16/9, the other four
    # 2 * 2/9 = 4/9 -> mean (2*16/9 + 4*4/9) / 6 = 8/9.
    gt = np.array([[[1, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 2], [0, 0, -2]]], dtype=float)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(metrics.p_mpjpe(mirrored, gt), [8 / 9], rtol=1e-9)
    aligned = metrics.procrustes_align(mirrored, gt)
    np.testing.assert_allclose(aligned, mirrored * 7 / 9, atol=1e-9)


def test_reflection_of_generic_pose_is_penalised(poses):
    mirrored = poses * np.array([1.0, -1.0, 1.0])  # mirror through the xz plane
    assert (metrics.p_mpjpe(mirrored, poses) > 0.01).all()


def test_n_mpjpe_scale_only(poses):
    np.testing.assert_allclose(metrics.n_mpjpe(0.6 * poses, poses), 0.0, atol=1e-12)
    assert (metrics.mpjpe(0.6 * poses, poses) > 0.01).all()
    # Translation is not removed by N-MPJPE.
    assert (metrics.n_mpjpe(poses + 0.5, poses) > 0.01).all()


def test_hypothesis_metrics_hand_computed():
    gt = np.zeros((2, 1, 3))
    # Sample 0: one hypothesis is exact, so best-of-H (0) <= error of the mean (1/3).
    # Sample 1: two hypotheses symmetric about the truth plus an exact one.
    hyps = np.array([
        [[[0.0, 0, 0]], [[1.0, 0, 0]], [[0.0, 0, 0]]],
        [[[1.0, 0, 0]], [[-1.0, 0, 0]], [[0.0, 0, 0]]],
    ])  # (B=2, H=3, J=1, 3)
    out = metrics.hypothesis_metrics(hyps, gt)
    # Sample 0: mean (1/3, 0, 0); sample 1: hypotheses (1,0,0), (-1,0,0), (0,0,0) -> mean 0.
    np.testing.assert_allclose(out["mean_of_hypotheses"], [1 / 3, 0.0])
    np.testing.assert_allclose(out["oracle_best_of_h"], [0.0, 0.0])
    np.testing.assert_allclose(out["hypothesis_errors"], [[0, 1, 0], [1, 1, 0]])
    # Spread: sample 0 distances to (1/3,0,0): 1/3, 2/3, 1/3 -> 4/9; sample 1: 1, 1, 0 -> 2/3.
    np.testing.assert_allclose(out["spread"], [4 / 9, 2 / 3])
    np.testing.assert_allclose(out["per_joint_spread"], [(4 / 9 + 2 / 3) / 2])


def test_oracle_per_sample_bounds():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(32, 17, 3))
    hyps = gt[:, None] + rng.normal(size=(32, 5, 17, 3)) * 0.2
    hyps[:, 3] = gt  # one exact hypothesis per sample
    mean_err = metrics.mean_of_hypotheses(hyps, gt)
    best = metrics.oracle_best_of_h(hyps, gt)
    assert (best <= mean_err).all() and (best == 0).all() and (mean_err > 0).all()
    # Always true: the oracle is below the average hypothesis error, and the mean pose's
    # error is below it too (convexity).
    rand = gt[:, None] + rng.normal(size=(32, 5, 17, 3))
    errs = metrics.hypothesis_errors(rand, gt)
    assert (metrics.oracle_best_of_h(rand, gt) <= errs.mean(axis=1)).all()
    assert (metrics.mean_of_hypotheses(rand, gt) <= errs.mean(axis=1) + 1e-12).all()


def test_symmetric_hypotheses_beat_the_oracle():
    gt = np.zeros((1, 2, 3))
    d = np.array([[0.5, 0, 0], [0, 0.5, 0]])
    hyps = np.stack([gt[0] + d, gt[0] - d])[None]
    assert metrics.mean_of_hypotheses(hyps, gt)[0] == 0.0
    assert metrics.oracle_best_of_h(hyps, gt)[0] == pytest.approx(0.5)


def test_action_table_protocol_unequal_frames():
    # Directions: 4 frames over two subjects (1, 2, 3 from S9 and 10 from S11) -> 16/4 = 4.
    # Eating: 1 frame -> 6. Average = (4 + 6) / 2 = 5 (frame-weighted would give 22/5 = 4.4).
    errors = np.array([1.0, 2.0, 3.0, 10.0, 6.0])
    actions = ["Directions", "Directions", "Directions", "Directions", "Eating"]
    subjects = ["S9", "S9", "S9", "S11", "S11"]
    table = metrics.action_table(errors, actions, subjects)
    assert table == {"Directions": 4.0, "Eating": 6.0, "Average": 5.0}
    assert list(metrics.action_table(errors, actions, order=["Eating", "Directions"])) == \
        ["Eating", "Directions", "Average"]
    with pytest.raises(AssertionError):
        metrics.action_table(errors, actions[:4])


def test_subject_tables():
    errors = np.array([1.0, 3.0, 5.0, 7.0, 2.0])
    subjects = ["S1", "S1", "S2", "S2", "S1"]
    actions = ["Walking", "Walking", "Walking", "Jog", "Jog"]
    assert metrics.subject_table(errors, subjects) == {"S1": 2.0, "S2": 6.0, "Average": 4.0}
    cells = metrics.subject_action_table(errors, subjects, actions, action_order=["Walking", "Jog"])
    assert list(cells) == ["Walking", "Jog", "Average"]
    assert cells["Walking"] == {"S1": 2.0, "S2": 5.0, "Average": 3.5}
    assert cells["Jog"] == {"S1": 2.0, "S2": 7.0, "Average": 4.5}
    assert cells["Average"]["Average"] == pytest.approx((2 + 5 + 2 + 7) / 4)


# --- Non-finite samples are counted, never dropped silently ----------------------------------------

def test_action_table_counts_nan_samples_and_can_refuse_them(caplog):
    from diffupose.errors import DataError

    errors = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    actions = np.array(["A", "A", "A", "B", "B"])
    with caplog.at_level("WARNING", logger="diffupose.metrics"):
        table, nans = metrics.action_table(errors, actions, return_nan=True)
    assert table == {"A": 2.0, "B": 5.0, "Average": 3.5}
    assert nans == {"A": 1, "B": 1, "Average": 2}
    assert "2 of 5 samples" in caplog.text
    assert metrics.action_table(errors, actions) == table            # default: exclude, same numbers
    with pytest.raises(DataError, match="2 of 5 samples have non-finite errors"):
        metrics.action_table(errors, actions, nan_policy="raise")
    with pytest.raises(DataError):
        metrics.subject_table(errors, actions, nan_policy="raise")
    cells, counts = metrics.subject_action_table(errors, np.array(["S1"] * 5), actions, return_nan=True)
    assert counts["Average"] == 2 and cells["A"]["S1"] == 2.0
    clean, none = metrics.action_table(np.ones(3), ["A", "B", "B"], return_nan=True)
    assert none == {"A": 0, "B": 0, "Average": 0}


# --- Probabilistic metrics -------------------------------------------------------------------------

def _gaussian_set(scale_hyps, num=3000, num_h=50, seed=0):
    """Ground truth and hypotheses drawn around the same (unknown) centre; hypotheses with
    `scale_hyps` times the ground truth's spread (1 = calibrated, < 1 = over-confident)."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=(num, 17, 3))
    sigma = rng.uniform(0.02, 0.1, size=(num, 17, 1))
    gt = centre + rng.normal(size=centre.shape) * sigma
    hyps = centre[:, None] + rng.normal(size=(num, num_h, 17, 3)) * sigma[:, None] * scale_hyps
    return hyps, gt


def test_calibrated_sampler_has_near_zero_calibration_error_overconfident_does_not():
    hyps, gt = _gaussian_set(1.0)
    cal = metrics.quantile_calibration(hyps, gt, actions=np.where(np.arange(3000) % 2, "A", "B"))
    # Sampling noise: 3000 x 17 indicators per level; the median fitted to the hypotheses adds
    # a small O(1/H) bias.
    assert cal["error"] < 0.03
    np.testing.assert_allclose(cal["fraction"], metrics.CALIBRATION_QUANTILES, atol=0.04)
    assert set(cal["per_action"]) == {"A", "B", "Average"} and cal["per_action"]["Average"] < 0.04
    over = metrics.quantile_calibration(*_gaussian_set(0.5))
    assert over["error"] > 0.15 and over["error"] > 5 * cal["error"]
    assert all(f < q for f, q in zip(over["fraction"], over["quantiles"]))       # over-confident
    under = metrics.quantile_calibration(*_gaussian_set(2.0))
    assert all(f > q for f, q in zip(under["fraction"][1:], under["quantiles"][1:]))  # under-confident


def test_calibration_skips_the_root_and_counts_nan():
    hyps, gt = _gaussian_set(1.0, num=200, num_h=20)
    hyps[:, :, 0] = 0.0
    gt[:, 0] = 0.0
    hyps[3, 4] = np.nan
    cal = metrics.quantile_calibration(hyps, gt, joint_names=[f"j{i}" for i in range(17)])
    assert "j0" not in cal["error_per_joint"] and len(cal["error_per_joint"]) == 16
    assert cal["num_nan_samples"] == 1 and cal["num_samples"] == 200


def test_rank_correlation_known_cases():
    np.testing.assert_allclose(metrics.rankdata([3, 1, 2, 2]), [4, 1, 2.5, 2.5])
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)      # 1 - 6*2/(4*15)
    # Ties averaged: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4) -> 4.5 / sqrt(4.5 * 5)
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert metrics.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert np.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))
    x = np.random.default_rng(0).normal(size=(5, 9))
    np.testing.assert_allclose(metrics.spearman(x, np.exp(x), axis=1), 1.0)    # monotone map
    np.testing.assert_allclose(metrics.spearman(x, np.exp(x), axis=0), 1.0)


def test_spread_error_spearman_per_sample_and_per_joint():
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.01, 0.1, size=(40, 17))
    spread[:, 0] = 0.0
    errors = spread ** 2                                  # monotone in the spread: the model knows
    errors[:, 0] = 0.0
    out = metrics.spread_error_spearman(spread, errors, actions=["A"] * 20 + ["B"] * 20)
    assert out["per_sample"] == pytest.approx(1.0) and out["per_joint_mean"] == pytest.approx(1.0)
    assert out["pooled"] == pytest.approx(1.0) and "0" not in out["per_joint"]
    assert out["per_action"]["A"] == pytest.approx(1.0)
    anti = metrics.spread_error_spearman(spread, -errors)
    assert anti["per_sample"] == pytest.approx(-1.0)
    noise = metrics.spread_error_spearman(spread, rng.uniform(size=spread.shape))
    assert abs(noise["per_joint_mean"]) < 0.2


def test_pck_and_correct_poses_score_hand_computed():
    gt = np.zeros((2, 4, 3))
    pred = np.zeros((2, 4, 3))
    pred[0, :, 0] = [0.0, 0.1, 0.2, 0.05]   # errors 0, 100, 200, 50 mm: max 200 mm
    pred[1, :, 1] = [0.4, 0.0, 0.0, 0.0]    # max 400 mm: never a correct pose under 300 mm
    np.testing.assert_allclose(metrics.pck(pred, gt), [0.75, 0.75])
    np.testing.assert_allclose(metrics.per_joint_pck(pred, gt), [0.5, 1.0, 0.5, 1.0])
    np.testing.assert_allclose(metrics.correct_poses_score(pred, gt), [0.1, 0.0])
    # Area under the correct-poses curve, numerically: mean(CPS) = 50 mm.
    t = np.linspace(0, 0.3, 30001)
    worst = metrics.per_joint_errors(pred, gt).max(axis=1)
    curve = (worst[None] < t[:, None]).mean(axis=1)
    area = ((curve[1:] + curve[:-1]) / 2 * np.diff(t)).sum()
    assert area == pytest.approx(metrics.correct_poses_score(pred, gt).mean(), abs=1e-4)


def test_p_mpjpe_of_a_non_finite_sample_is_nan_not_an_svd_failure():
    from diffupose.evaluation.metrics import p_mpjpe

    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 17, 3))
    pred = gt + rng.normal(scale=0.01, size=gt.shape)
    pred[2, 5] = np.nan
    out = p_mpjpe(pred, gt)
    assert np.isnan(out[2]) and np.isfinite(out[[0, 1, 3]]).all()
    np.testing.assert_allclose(out[[0, 1, 3]], p_mpjpe(pred[[0, 1, 3]], gt[[0, 1, 3]]))
