"""Hypothesis aggregation: mean, median and the ground-truth-free reprojection choice."""
import numpy as np
import pytest
import torch

from diffupose.inference.aggregate import (
              AGGREGATIONS, aggregate, estimate_root_translation, fit_weak_perspective, project_perspective,
          )
from diffupose.errors import ConfigError


def test_mean_and_median_values():
    hyps = np.zeros((2, 3, 4, 3))
    hyps[:, 0] = 1.0
    hyps[:, 1] = 2.0
    hyps[:, 2] = 9.0
    mean = aggregate(hyps, "mean")
    median = aggregate(hyps, "median")
    assert mean.shape == median.shape == (2, 4, 3)
    np.testing.assert_allclose(mean, 4.0)
    np.testing.assert_allclose(median, 2.0)
    # Median is per coordinate, not per hypothesis.
    hyps2 = np.array([[[[0.0, 5.0, 1.0]], [[1.0, 0.0, 2.0]], [[2.0, 1.0, 0.0]]]])
    np.testing.assert_allclose(aggregate(hyps2, "median"), [[[1.0, 1.0, 1.0]]])


def test_torch_in_torch_out():
    hyps = torch.randn(2, 3, 5, 3)
    out = aggregate(hyps, "mean")
    assert isinstance(out, torch.Tensor) and out.dtype == hyps.dtype
    torch.testing.assert_close(out, hyps.mean(dim=1))


def test_unknown_method_lists_choices():
    with pytest.raises(ConfigError) as e:
        aggregate(np.zeros((1, 2, 3, 3)), "best")
    for name in AGGREGATIONS:
        assert name in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError):
        aggregate(np.zeros((1, 2, 3, 3)), "reproject")  # needs keypoints


def _scene(num_h=4, seed=0):
    rng = np.random.default_rng(seed)
    batch, joints = 3, 17
    gt = rng.normal(size=(batch, joints, 3)) * 0.25
    gt[:, 0] = 0.0
    root = np.array([[0.1, -0.2, 5.0], [-0.3, 0.1, 4.0], [0.0, 0.3, 6.0]])
    intrinsics = np.tile([2.3, 2.28, 0.01, -0.02], (batch, 1))
    correct = (np.arange(joints)[None] + np.arange(batch)[:, None]) % num_h  # (B, J)
    hyps = np.repeat(gt[:, None], num_h, axis=1)
    for b in range(batch):
        for j in range(joints):
            for h in range(num_h):
                if h != correct[b, j]:
                    angle = rng.uniform(0, 2 * np.pi)
                    # Same depth, x/y wrong by 20 cm.
                    hyps[b, h, j, :2] += 0.2 * np.array([np.cos(angle), np.sin(angle)])
    return gt, root, intrinsics, hyps


def test_root_translation_exact_for_exact_pose():
    gt, root, intrinsics, _ = _scene()
    kp = project_perspective(gt + root[:, None], intrinsics)
    np.testing.assert_allclose(estimate_root_translation(gt, kp, intrinsics), root, atol=1e-6)


def test_reproject_picks_matching_hypothesis_per_joint():
    gt, root, intrinsics, hyps = _scene()
    kp = project_perspective(gt + root[:, None], intrinsics)
    out = aggregate(hyps, "reproject", keypoints_2d=kp, intrinsics=intrinsics)
    np.testing.assert_allclose(out, gt, atol=1e-12)
    assert np.abs(aggregate(hyps, "mean") - gt).max() > 0.05
    # An explicit root gives the same choice.
    out_root = aggregate(hyps, "reproject", keypoints_2d=kp, intrinsics=intrinsics, root_position=root)
    np.testing.assert_allclose(out_root, gt, atol=1e-12)


def test_reproject_without_intrinsics_weak_perspective():
    gt, _, _, hyps = _scene(seed=3)
    scale, offset = 0.45, np.array([0.05, -0.1])
    kp = scale * gt[..., :2] + offset
    s, o = fit_weak_perspective(gt, kp)
    np.testing.assert_allclose(s, scale)
    np.testing.assert_allclose(o, np.tile(offset, (3, 1)), atol=1e-12)
    nan_k = np.full((3, 4), np.nan)
    for k in (None, nan_k):
        out = aggregate(hyps, "reproject", keypoints_2d=kp, intrinsics=k)
        np.testing.assert_allclose(out, gt, atol=1e-12)


def test_reproject_mixed_intrinsics_rows():
    gt, root, intrinsics, hyps = _scene(seed=5)
    kp = project_perspective(gt + root[:, None], intrinsics)
    kp[1] = 0.4 * gt[1, :, :2]
    intrinsics[1] = np.nan
    out = aggregate(torch.tensor(hyps), "reproject", keypoints_2d=torch.tensor(kp), intrinsics=intrinsics)
    np.testing.assert_allclose(out.numpy(), gt, atol=1e-6)


# --- The full aggregator set --------------------------------------------------------------------

from diffupose.inference import aggregate as agg  # noqa: E402
from diffupose.inference.aggregate import (  # noqa: E402
              ORACLES, camera_distortion, estimate_root_translation as _root, project_camera, reproject_weighted_mean,
          )

_FUNCTIONS = {"mean": agg.mean_pose, "median": agg.coordinate_median, "geometric_median": agg.geometric_median,
              "reproject": agg.reproject_select, "reproject_weighted": agg.reproject_weighted_mean,
              "mode": agg.kernel_mode, "oracle_pose": agg.oracle_best_pose, "oracle_joint": agg.oracle_best_joint}


def test_every_aggregator_is_a_named_function_that_says_whether_it_uses_ground_truth():
    assert set(_FUNCTIONS) == set(AGGREGATIONS) | set(ORACLES)
    assert not set(AGGREGATIONS) & set(ORACLES)
    for name, fn in _FUNCTIONS.items():
        doc = fn.__doc__ or ""
        if name in ORACLES:
            assert "ORACLE, uses the ground truth" in doc, name
        else:
            assert "Ground truth: not used" in doc, name


def _h36m_scene(seed=0, num_h=5):
    """H36M camera with distortion; per joint exactly one hypothesis reprojects onto the input."""
    rng = np.random.default_rng(seed)
    batch, joints = 4, 17
    ids = ["54138969", "55011271", "58860488", "60457274"]
    from diffupose.geometry.camera import load_cameras

    cams = {c.id: c for c in load_cameras("h36m").intrinsics}
    intrinsics = np.stack([cams[i].normalized for i in ids])
    distortion = camera_distortion("h36m", ids)
    gt = rng.normal(size=(batch, joints, 3)) * 0.25
    gt[:, 0] = 0.0
    root = np.array([[0.6, -0.3, 4.0], [-0.5, 0.2, 4.5], [0.8, 0.4, 3.5], [-0.7, -0.2, 5.0]])
    correct = rng.integers(0, num_h, size=(batch, joints))
    hyps = np.repeat(gt[:, None], num_h, axis=1)
    wrong = rng.normal(size=hyps.shape)
    wrong[..., 2] = 0.0
    wrong = 0.15 * wrong / np.linalg.norm(wrong, axis=-1, keepdims=True).clip(1e-9)
    mask = np.arange(num_h)[None, :, None] != correct[:, None, :]
    hyps = hyps + wrong * mask[..., None]
    hyps[:, :, 0] = 0.0
    kp = project_camera(gt + root[:, None], intrinsics, distortion)
    return gt, root, intrinsics, distortion, hyps, kp


def test_distortion_lookup_and_projection_match_the_camera_module():
    from diffupose.geometry.camera import load_cameras
    from diffupose.geometry.projection import normalize_screen_coordinates, project_to_2d

    cam = load_cameras("h36m").intrinsics[2]
    d = camera_distortion("h36m", [cam.id, "unknown"])
    np.testing.assert_allclose(d[0], tuple(cam.radial_distortion) + tuple(cam.tangential_distortion))
    np.testing.assert_array_equal(d[1], 0.0)
    np.testing.assert_array_equal(camera_distortion("synthetic", ["cam1"]), 0.0)
    pts = np.random.default_rng(1).normal(size=(1, 17, 3)) * 0.3 + np.array([0.2, 0.1, 4.0])
    ref = normalize_screen_coordinates(project_to_2d(pts, cam.focal_length, cam.center, cam.radial_distortion,
                                                     cam.tangential_distortion), cam.res_w, cam.res_h)
    np.testing.assert_allclose(project_camera(pts, cam.normalized[None], d[:1]), ref, atol=1e-12)


def test_jpma_with_distortion_picks_the_exact_joint_and_recovers_the_root():
    gt, root, intrinsics, distortion, hyps, kp = _h36m_scene()
    np.testing.assert_allclose(_root(gt, kp, intrinsics, distortion), root, atol=1e-6)
    out = aggregate(hyps, "reproject", keypoints_2d=kp, intrinsics=intrinsics, distortion=distortion)
    np.testing.assert_allclose(out, gt, atol=1e-12)
    # D3DP-style placement at the true root picks the same joints.
    out_root = aggregate(hyps, "reproject", keypoints_2d=kp, intrinsics=intrinsics, distortion=distortion,
                         root_position=root)
    np.testing.assert_allclose(out_root, gt, atol=1e-12)


def test_reproject_weighted_interpolates_between_selection_and_mean():
    gt, root, intrinsics, distortion, hyps, kp = _h36m_scene(seed=2)
    kwargs = dict(keypoints_2d=kp, intrinsics=intrinsics, distortion=distortion)
    cold = reproject_weighted_mean(hyps, temperature=1e-6, **kwargs)
    np.testing.assert_allclose(cold, aggregate(hyps, "reproject", **kwargs), atol=1e-9)
    hot = reproject_weighted_mean(hyps, temperature=1e6, **kwargs)
    np.testing.assert_allclose(hot, hyps.mean(axis=1), atol=1e-6)
    with pytest.raises(ConfigError):
        aggregate(hyps, "reproject_weighted", temperature=0.0, **kwargs)


def test_geometric_median_beats_mean_and_median_on_its_own_objective():
    rng = np.random.default_rng(3)
    hyps = rng.normal(size=(6, 9, 5, 3))
    hyps[:, :2] += 8.0  # two outliers per set
    objective = lambda x: np.linalg.norm(hyps - x[:, None], axis=-1).sum(axis=1)  # noqa: E731
    gm = agg.geometric_median(hyps, num_iterations=50)
    assert (objective(gm) <= objective(hyps.mean(axis=1)) + 1e-9).all()
    assert (objective(gm) <= objective(np.median(hyps, axis=1)) + 1e-9).all()
    assert objective(gm).sum() < objective(hyps.mean(axis=1)).sum() - 1.0
    # Symmetric set: the centre.
    square = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=float)[None, :, None, :] + 2.0
    np.testing.assert_allclose(agg.geometric_median(square), [[[2.0, 2.0, 2.0]]], atol=1e-9)


def test_mode_picks_a_member_of_the_dense_cluster():
    rng = np.random.default_rng(4)
    dense = rng.normal(size=(1, 6, 17, 3)) * 0.01
    far = rng.normal(size=(1, 3, 17, 3)) * 0.3 + 1.0
    hyps = np.concatenate([far[:, :2], dense, far[:, 2:]], axis=1)
    out = aggregate(hyps, "mode")
    assert any(np.array_equal(out[0], dense[0, i]) for i in range(6))
    np.testing.assert_array_equal(aggregate(hyps[:, :1], "mode"), hyps[:, 0])


def test_oracles_need_gt_and_bound_every_hypothesis():
    rng = np.random.default_rng(5)
    hyps, gt = rng.normal(size=(7, 8, 17, 3)), rng.normal(size=(7, 17, 3))
    with pytest.raises(ConfigError, match="ORACLE"):
        aggregate(hyps, "oracle_pose")
    err = lambda p: np.linalg.norm(p - gt, axis=-1).mean(axis=-1)  # noqa: E731
    each = np.linalg.norm(hyps - gt[:, None], axis=-1).mean(axis=-1)
    pose, joint = aggregate(hyps, "oracle_pose", gt=gt), aggregate(hyps, "oracle_joint", gt=gt)
    np.testing.assert_allclose(err(pose), each.min(axis=1))
    assert (err(joint) <= err(pose) + 1e-12).all()


def test_gt_free_aggregators_ignore_ground_truth_and_root():
    gt, root, intrinsics, distortion, hyps, kp = _h36m_scene(seed=6)
    rng = np.random.default_rng(7)
    for method in AGGREGATIONS:
        kw = dict(keypoints_2d=kp, intrinsics=intrinsics, distortion=distortion)
        a = aggregate(hyps, method, gt=gt, **kw)
        b = aggregate(hyps, method, gt=gt + rng.normal(size=gt.shape), **kw)
        np.testing.assert_array_equal(a, b, err_msg=method)


@pytest.mark.parametrize("method", ["geometric_median", "reproject_weighted", "mode"])
def test_new_aggregators_torch_in_torch_out(method):
    gt, root, intrinsics, distortion, hyps, kp = _h36m_scene(seed=8)
    out = aggregate(torch.tensor(hyps, dtype=torch.float32), method, keypoints_2d=kp, intrinsics=intrinsics)
    assert isinstance(out, torch.Tensor) and out.shape == (4, 17, 3) and out.dtype == torch.float32
