"""Hypotheses -> one pose, without looking at the 3D ground truth.

- `mean`: the paper's estimate (the plain mean of all hypotheses).
- `median`: the per-coordinate median (robust to a few wild samples).
- `reproject`: per joint, the hypothesis whose 2D reprojection lies closest to the input
  keypoints (in the spirit of D3DP's joint-wise reprojection-based aggregation, JPMA). The
  camera translation is estimated from the 2D input and the mean hypothesis (perspective
  least squares with intrinsics; a weak-perspective fit without them), so it never uses the
  ground-truth root unless a caller passes `root_position` explicitly.

The oracle "best of H" selection (which needs the ground truth) lives in `metrics`, named as
an oracle, not here.
"""
from __future__ import annotations

import numpy as np

from .errors import ConfigError

__all__ = [
    "AGGREGATIONS", "aggregate", "estimate_root_translation", "fit_weak_perspective",
    "project_perspective", "reproject_select",
]

AGGREGATIONS: tuple[str, ...] = ("mean", "median", "reproject")


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _batched_intrinsics(intrinsics, batch: int) -> np.ndarray:
    k = _as_numpy(intrinsics)
    if k.ndim == 1:
        k = np.broadcast_to(k, (batch, 4))
    assert k.shape == (batch, 4), f"intrinsics: expected (B, 4) or (4,), got {k.shape}"
    return k


def estimate_root_translation(pose, keypoints_2d, intrinsics) -> np.ndarray:
    """Camera-frame translation T that best projects a root-relative pose onto the keypoints.

    Perspective model u = fx (X + Tx) / (Z + Tz) + cx (same for v). Multiplying out gives
    equations linear in T:  fx Tx - (u - cx) Tz = (u - cx) Z - fx X  (and the v analogue),
    2J equations in 3 unknowns, solved per sample by linear least squares (the closed-form
    "weak-to-full perspective" root estimate used with VideoPose3D-style lifting).

    pose: (B, J, 3) metres, root-relative, camera frame; keypoints_2d: (B, J, 2) normalised
    screen coords; intrinsics: (B, 4) fx, fy, cx, cy normalised -> (B, 3) metres
    """
    pose = _as_numpy(pose)
    kp = _as_numpy(keypoints_2d)
    batch, joints, _ = pose.shape
    assert kp.shape == (batch, joints, 2), f"keypoints_2d: expected {(batch, joints, 2)}, got {kp.shape}"
    k = _batched_intrinsics(intrinsics, batch)
    f, c = k[:, None, :2], k[:, None, 2:]
    uc = kp - c  # (B, J, 2)
    # Rows for the x equations then the y equations: A (B, 2J, 3), b (B, 2J).
    a = np.zeros((batch, 2 * joints, 3))
    a[:, :joints, 0] = f[:, :, 0]
    a[:, :joints, 2] = -uc[..., 0]
    a[:, joints:, 1] = f[:, :, 1]
    a[:, joints:, 2] = -uc[..., 1]
    b = np.concatenate([uc[..., 0] * pose[..., 2] - f[:, :, 0] * pose[..., 0],
                        uc[..., 1] * pose[..., 2] - f[:, :, 1] * pose[..., 1]], axis=1)
    ata = np.matmul(a.transpose(0, 2, 1), a) + 1e-9 * np.eye(3)
    atb = np.matmul(a.transpose(0, 2, 1), b[..., None])
    return np.linalg.solve(ata, atb)[..., 0]


def project_perspective(points, intrinsics) -> np.ndarray:
    """Pinhole projection in normalised screen units (distortion ignored).

    points: (B, ..., 3) camera frame metres; intrinsics: (B, 4) -> (B, ..., 2)
    """
    points = _as_numpy(points)
    k = _batched_intrinsics(intrinsics, points.shape[0])
    shape = (points.shape[0],) + (1,) * (points.ndim - 2)
    f = k[:, :2].reshape(shape + (2,))
    c = k[:, 2:].reshape(shape + (2,))
    depth = np.maximum(points[..., 2:], 1e-3)
    return f * points[..., :2] / depth + c


def fit_weak_perspective(pose, keypoints_2d) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares orthographic camera u ≈ s X + o (for data without intrinsics).

    pose: (B, J, 3) root-relative; keypoints_2d: (B, J, 2) -> scale (B,), offset (B, 2)
    """
    pose = _as_numpy(pose)
    kp = _as_numpy(keypoints_2d)
    xy = pose[..., :2]
    xy_mean, kp_mean = xy.mean(axis=1, keepdims=True), kp.mean(axis=1, keepdims=True)
    dx, dk = xy - xy_mean, kp - kp_mean
    den = (dx ** 2).sum(axis=(1, 2))
    scale = np.where(den > 0, (dx * dk).sum(axis=(1, 2)) / np.where(den > 0, den, 1.0), 1.0)
    offset = kp_mean[:, 0] - scale[:, None] * xy_mean[:, 0]
    return scale, offset


def reproject_select(hyps, keypoints_2d, intrinsics=None, root_position=None) -> np.ndarray:
    """Per joint, the hypothesis whose reprojection is closest to the input keypoints.

    Samples with finite intrinsics use a perspective camera placed at `root_position` if given,
    else at the root translation estimated from the mean hypothesis
    (`estimate_root_translation`); samples without intrinsics (NaN, e.g. HumanEva) use a
    weak-perspective fit of the mean hypothesis (`fit_weak_perspective`).

    hyps: (B, H, J, 3) metres root-relative; keypoints_2d: (B, J, 2); intrinsics: (B, 4) or
    None; root_position: (B, 3) or None -> (B, J, 3)
    """
    hyps = _as_numpy(hyps)
    batch, num_h, joints, _ = hyps.shape
    kp = _as_numpy(keypoints_2d)
    assert kp.shape == (batch, joints, 2), f"keypoints_2d: expected {(batch, joints, 2)}, got {kp.shape}"
    mean_pose = hyps.mean(axis=1)
    if intrinsics is None:
        k = np.full((batch, 4), np.nan)
    else:
        k = np.array(_batched_intrinsics(intrinsics, batch))
    perspective = np.isfinite(k).all(axis=1)
    projected = np.empty((batch, num_h, joints, 2))
    if perspective.any():
        idx = np.flatnonzero(perspective)
        if root_position is not None:
            root = _as_numpy(root_position)
            assert root.shape == (batch, 3), f"root_position: expected {(batch, 3)}, got {root.shape}"
            root = root[idx]
        else:
            root = estimate_root_translation(mean_pose[idx], kp[idx], k[idx])
        projected[idx] = project_perspective(hyps[idx] + root[:, None, None, :], k[idx])
    if (~perspective).any():
        idx = np.flatnonzero(~perspective)
        scale, offset = fit_weak_perspective(mean_pose[idx], kp[idx])
        projected[idx] = scale[:, None, None, None] * hyps[idx][..., :2] + offset[:, None, None, :]
    distance = np.linalg.norm(projected - kp[:, None], axis=-1)  # (B, H, J)
    best = distance.argmin(axis=1)  # (B, J)
    return np.take_along_axis(hyps, best[:, None, :, None], axis=1)[:, 0]


def aggregate(hyps, method: str = "mean", *, keypoints_2d=None, intrinsics=None, root_position=None):
    """Combine hypotheses into one pose per sample without using the 3D ground truth.

    hyps: (B, H, J, 3) metres root-relative camera frame (numpy or torch) -> (B, J, 3), the
    same array type as the input. `reproject` needs keypoints_2d (B, J, 2); intrinsics (B, 4)
    are optional (NaN rows or None -> weak perspective); root_position (B, 3) is used only when
    given (the prepared data's root is ground truth: do not pass it for a GT-free estimate).
    """
    if method not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {method!r}; known: {', '.join(AGGREGATIONS)}")
    is_torch = hasattr(hyps, "detach")
    arr = _as_numpy(hyps)
    assert arr.ndim == 4 and arr.shape[-1] == 3, f"hyps: expected (B, H, J, 3), got {arr.shape}"
    if method == "mean":
        out = arr.mean(axis=1)
    elif method == "median":
        out = np.median(arr, axis=1)
    else:
        if keypoints_2d is None:
            raise ConfigError("aggregation 'reproject' needs keypoints_2d")
        out = reproject_select(arr, keypoints_2d, intrinsics=intrinsics, root_position=root_position)
    if is_torch:
        import torch

        return torch.as_tensor(out, dtype=hyps.dtype, device=hyps.device)
    dtype = getattr(hyps, "dtype", None)
    return out.astype(dtype) if dtype is not None and np.issubdtype(dtype, np.floating) else out
