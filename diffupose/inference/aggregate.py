"""Hypotheses -> one pose.

Two groups, kept apart everywhere (tables, cards, figures):

GROUND-TRUTH FREE (`AGGREGATIONS`): what a user without 3D ground truth can run.
- `mean` (`mean_pose`): the paper's estimate, the plain mean of all hypotheses.
- `median` (`coordinate_median`): the per-coordinate median (robust to a few wild samples).
- `geometric_median` (`geometric_median`): per joint, the 3D point minimising the summed
  Euclidean distance to the hypotheses (Weiszfeld iterations from the mean).
- `reproject` (`reproject_select`): per joint, the hypothesis whose 2D reprojection lies closest
  to the input keypoints, in the spirit of D3DP's joint-wise reprojection-based multi-hypothesis
  aggregation (JPMA). The camera translation (root) is estimated from the 2D input and the mean
  hypothesis; D3DP's released code places the hypotheses with the ground-truth root instead,
  which is available here only as an explicit `root_position` (then it is NOT ground-truth free).
- `reproject_weighted` (`reproject_weighted_mean`): per joint, the softmax-weighted mean of the
  hypotheses with weights exp(-e / temperature), e the reprojection error in normalised screen
  units (1 px of a 1000 px wide image = 0.002); default temperature 0.01 (about 5 px).
- `mode` (`kernel_mode`): the hypothesis with the highest Gaussian kernel density among the
  others (pose-wise; bandwidth = the median pairwise distance of the sample's hypotheses).

ORACLES (`ORACLES`, need the 3D ground truth to choose; bounds, not estimates):
- `oracle_pose` (`oracle_best_pose`): per sample, the hypothesis with the smallest MPJPE.
- `oracle_joint` (`oracle_best_joint`): per joint, the hypothesis closest to the ground truth.

Camera model: with finite intrinsics (fx, fy, cx, cy in normalised screen units) a perspective
camera, plus VideoPose3D's radial/tangential distortion when `distortion` (k1, k2, k3, p1, p2)
is given (`camera_distortion` looks it up from the packaged calibration by camera id); without
intrinsics (NaN rows, e.g. HumanEva) a weak-perspective camera fitted to the mean hypothesis.
The camera maths (projection, distortion and undistortion, root placement, the weak-perspective
fit, the distortion lookup) lives in `diffupose.geometry`; this module re-exports those names.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..geometry.camera import camera_distortion
from ..geometry.projection import (batched_distortion, batched_intrinsics, estimate_root_translation,
                                   fit_weak_perspective, project_camera, project_perspective, undistort_points)
from ..utils import as_numpy

__all__ = [
    "AGGREGATIONS", "ORACLES", "USES_GROUND_TRUTH", "DEFAULT_TEMPERATURE",
    "aggregate", "mean_pose", "coordinate_median", "geometric_median", "reproject_select",
    "reproject_weighted_mean", "kernel_mode", "oracle_best_pose", "oracle_best_joint",
    "estimate_root_translation", "fit_weak_perspective", "project_perspective", "project_camera",
    "undistort_points", "camera_distortion", "reprojection_errors", "hypothesis_spread",
]

AGGREGATIONS: tuple[str, ...] = ("mean", "median", "geometric_median", "reproject", "reproject_weighted", "mode")
ORACLES: tuple[str, ...] = ("oracle_pose", "oracle_joint")
USES_GROUND_TRUTH = {**{m: False for m in AGGREGATIONS}, **{m: True for m in ORACLES}}
DEFAULT_TEMPERATURE = 0.01   # normalised screen units (~5 px for a 1000 px wide image)


def _hyps(hyps) -> np.ndarray:
    arr = as_numpy(hyps)
    assert arr.ndim == 4 and arr.shape[-1] == 3, f"hyps: expected (B, H, J, 3), got {arr.shape}"
    return arr


def hypothesis_spread(hyps) -> np.ndarray:
    """Mean distance of the hypotheses to their mean, per sample and joint (ground-truth free; the
    Lifter reports it beside the aggregate, evaluation.metrics re-exports it).

    hyps: (B, H, J, 3) -> (B, J)
    """
    hyps = _hyps(hyps)
    centre = hyps.mean(axis=1, keepdims=True)
    return np.linalg.norm(hyps - centre, axis=-1).mean(axis=1)


def reprojection_errors(hyps, keypoints_2d, intrinsics=None, distortion=None, root_position=None) -> np.ndarray:
    """Per hypothesis and joint, the 2D distance between its reprojection and the input.

    Samples with finite intrinsics use a perspective camera (with `distortion` if given) placed
    at `root_position` if given (GROUND TRUTH in the prepared data), else at the root estimated
    from the mean hypothesis (`estimate_root_translation`, ground-truth free); samples without
    intrinsics (NaN) use a weak-perspective fit of the mean hypothesis (`fit_weak_perspective`).

    hyps: (B, H, J, 3) metres root-relative; keypoints_2d: (B, J, 2); intrinsics: (B, 4) or
    None; distortion: (B, 5) or None; root_position: (B, 3) or None -> (B, H, J) screen units
    """
    hyps = _hyps(hyps)
    batch, num_h, joints, _ = hyps.shape
    kp = as_numpy(keypoints_2d)
    assert kp.shape == (batch, joints, 2), f"keypoints_2d: expected {(batch, joints, 2)}, got {kp.shape}"
    mean = hyps.mean(axis=1)
    k = np.full((batch, 4), np.nan) if intrinsics is None else np.array(batched_intrinsics(intrinsics, batch))
    d = batched_distortion(distortion, batch)
    perspective = np.isfinite(k).all(axis=1)
    projected = np.empty((batch, num_h, joints, 2))
    if perspective.any():
        idx = np.flatnonzero(perspective)
        dist = None if d is None else d[idx]
        if root_position is not None:
            root = as_numpy(root_position)
            assert root.shape == (batch, 3), f"root_position: expected {(batch, 3)}, got {root.shape}"
            root = root[idx]
        else:
            root = estimate_root_translation(mean[idx], kp[idx], k[idx], dist)
        projected[idx] = project_camera(hyps[idx] + root[:, None, None, :], k[idx], dist)
    if (~perspective).any():
        idx = np.flatnonzero(~perspective)
        scale, offset = fit_weak_perspective(mean[idx], kp[idx])
        projected[idx] = scale[:, None, None, None] * hyps[idx][..., :2] + offset[:, None, None, :]
    return np.linalg.norm(projected - kp[:, None], axis=-1)


# --- Ground-truth-free aggregators ------------------------------------------------------------

def mean_pose(hyps) -> np.ndarray:
    """The paper's estimate: the mean of the hypotheses. Ground truth: not used.

    hyps: (B, H, J, 3) -> (B, J, 3)
    """
    return _hyps(hyps).mean(axis=1)


def coordinate_median(hyps) -> np.ndarray:
    """Per-coordinate median of the hypotheses. Ground truth: not used.

    hyps: (B, H, J, 3) -> (B, J, 3)
    """
    return np.median(_hyps(hyps), axis=1)


def geometric_median(hyps, num_iterations: int = 5, eps: float = 1e-6) -> np.ndarray:
    """Per joint, the geometric median of the H hypothesis points (Weiszfeld's algorithm,
    `num_iterations` re-weightings from the mean, distances floored at `eps` metres).
    Ground truth: not used.

    hyps: (B, H, J, 3) -> (B, J, 3)
    """
    hyps = _hyps(hyps)
    x = hyps.mean(axis=1)
    for _ in range(num_iterations):
        w = 1.0 / np.maximum(np.linalg.norm(hyps - x[:, None], axis=-1), eps)   # (B, H, J)
        x = (w[..., None] * hyps).sum(axis=1) / w.sum(axis=1)[..., None]
    return x


def reproject_select(hyps, keypoints_2d, intrinsics=None, root_position=None, distortion=None) -> np.ndarray:
    """JPMA-style joint-wise selection: per joint, the hypothesis whose reprojection is closest
    to the input keypoints (`reprojection_errors` for the camera). Ground truth: not used,
    unless the caller passes the prepared data's `root_position` (which is ground truth).

    hyps: (B, H, J, 3) metres root-relative; keypoints_2d: (B, J, 2); intrinsics: (B, 4) or
    None; root_position: (B, 3) or None; distortion: (B, 5) or None -> (B, J, 3)
    """
    hyps = _hyps(hyps)
    best = reprojection_errors(hyps, keypoints_2d, intrinsics, distortion, root_position).argmin(axis=1)
    return np.take_along_axis(hyps, best[:, None, :, None], axis=1)[:, 0]


def reproject_weighted_mean(hyps, keypoints_2d, intrinsics=None, root_position=None, distortion=None,
                            temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """Per joint, the mean of the hypotheses weighted by softmax(-e / temperature) over H, e the
    reprojection error (`reprojection_errors`) in normalised screen units. temperature -> 0 is
    `reproject_select`, -> inf is `mean_pose`. Ground truth: not used (same root caveat as
    `reproject_select`).

    hyps: (B, H, J, 3) -> (B, J, 3)
    """
    if not temperature > 0:
        raise ConfigError(f"reproject_weighted: temperature must be > 0, got {temperature}")
    hyps = _hyps(hyps)
    logits = -reprojection_errors(hyps, keypoints_2d, intrinsics, distortion, root_position) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)                                    # (B, H, J)
    return (w[..., None] * hyps).sum(axis=1)


def kernel_mode(hyps, bandwidth: float | None = None) -> np.ndarray:
    """Mode estimate: the hypothesis with the highest Gaussian kernel density among the others,
    density_i = sum_{k != i} exp(-|x_i - x_k|^2 / (2 h^2)) over whole poses (J x 3 vectors);
    h = `bandwidth` (metres, pose-vector norm) or per sample the median pairwise distance.
    Ground truth: not used.

    hyps: (B, H, J, 3) -> (B, J, 3)
    """
    hyps = _hyps(hyps)
    batch, num_h = hyps.shape[:2]
    if num_h == 1:
        return hyps[:, 0].copy()
    flat = hyps.reshape(batch, num_h, -1)
    sq = (flat ** 2).sum(axis=-1)
    d2 = np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * np.matmul(flat, flat.transpose(0, 2, 1)), 0.0)
    off = ~np.eye(num_h, dtype=bool)
    if bandwidth is None:
        h2 = np.median(d2[:, off], axis=1)                                # (B,) median squared distance
        h2 = np.where(h2 > 0, h2, 1.0)
    else:
        h2 = np.full(batch, float(bandwidth) ** 2)
    density = (np.exp(-d2 / (2.0 * h2[:, None, None])) * off).sum(axis=2)  # (B, H)
    return hyps[np.arange(batch), density.argmax(axis=1)]


# --- Oracles (use the 3D ground truth to choose) ----------------------------------------------

def oracle_best_pose(hyps, gt) -> np.ndarray:
    """ORACLE, uses the ground truth: per sample the hypothesis with the smallest MPJPE.

    hyps: (B, H, J, 3), gt: (B, J, 3) -> (B, J, 3)
    """
    hyps, gt = _hyps(hyps), as_numpy(gt)
    best = np.linalg.norm(hyps - gt[:, None], axis=-1).mean(axis=-1).argmin(axis=1)
    return hyps[np.arange(len(hyps)), best]


def oracle_best_joint(hyps, gt) -> np.ndarray:
    """ORACLE, uses the ground truth: per joint the hypothesis closest to the ground truth.

    hyps: (B, H, J, 3), gt: (B, J, 3) -> (B, J, 3)
    """
    hyps, gt = _hyps(hyps), as_numpy(gt)
    best = np.linalg.norm(hyps - gt[:, None], axis=-1).argmin(axis=1)   # (B, J)
    return np.take_along_axis(hyps, best[:, None, :, None], axis=1)[:, 0]


def aggregate(hyps, method: str = "mean", *, keypoints_2d=None, intrinsics=None, root_position=None,
              distortion=None, gt=None, temperature: float = DEFAULT_TEMPERATURE):
    """Combine hypotheses into one pose per sample (dispatcher over the named functions above).

    hyps: (B, H, J, 3) metres root-relative camera frame (numpy or torch) -> (B, J, 3), the
    same array type as the input. `method` in AGGREGATIONS (ground-truth free) or ORACLES
    (need `gt` (B, J, 3)). `reproject` / `reproject_weighted` need keypoints_2d (B, J, 2);
    intrinsics (B, 4) are optional (NaN rows or None -> weak perspective), distortion (B, 5)
    optional; root_position (B, 3) is used only when given (the prepared data's root is ground
    truth: do not pass it for a ground-truth-free estimate).
    """
    if method not in AGGREGATIONS and method not in ORACLES:
        raise ConfigError(f"unknown aggregation {method!r}; known: {', '.join(AGGREGATIONS)} "
                          f"(oracles, need the ground truth: {', '.join(ORACLES)})")
    is_torch = hasattr(hyps, "detach")
    arr = _hyps(hyps)
    if method in ORACLES and gt is None:
        raise ConfigError(f"aggregation {method!r} is an ORACLE and needs the ground truth (gt=)")
    if method in ("reproject", "reproject_weighted") and keypoints_2d is None:
        raise ConfigError(f"aggregation {method!r} needs keypoints_2d")
    if method == "mean":
        out = mean_pose(arr)
    elif method == "median":
        out = coordinate_median(arr)
    elif method == "geometric_median":
        out = geometric_median(arr)
    elif method == "reproject":
        out = reproject_select(arr, keypoints_2d, intrinsics=intrinsics, root_position=root_position,
                               distortion=distortion)
    elif method == "reproject_weighted":
        out = reproject_weighted_mean(arr, keypoints_2d, intrinsics=intrinsics, root_position=root_position,
                                      distortion=distortion, temperature=temperature)
    elif method == "mode":
        out = kernel_mode(arr)
    elif method == "oracle_pose":
        out = oracle_best_pose(arr, gt)
    else:
        out = oracle_best_joint(arr, gt)
    if is_torch:
        import torch

        return torch.as_tensor(out, dtype=hyps.dtype, device=hyps.device)
    dtype = getattr(hyps, "dtype", None)
    return out.astype(dtype) if dtype is not None and np.issubdtype(dtype, np.floating) else out
