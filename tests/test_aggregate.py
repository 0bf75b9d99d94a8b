"""Hypothesis aggregation: mean, median and the ground-truth-free reprojection choice."""
import numpy as np
import pytest
import torch

from diffupose.aggregate import (
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
