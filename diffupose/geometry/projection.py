"""Projection: world <-> camera frames, perspective projection with VideoPose3D's lens
distortion and its inverse, root placement from 2D, and screen normalisation.

Conventions (Human3.6M / VideoPose3D):

- orientation `q` is a unit quaternion (w, x, y, z) rotating camera axes into world axes
  (camera-to-world); translation `t` is the camera centre in world coordinates, metres;
- world -> camera: `X_cam = R(q)^T (X - t)`; camera -> world: `X = R(q) X_cam + t`;
- camera frame: x right, y down, z forward (depth);
- projection: `x = X/Z` (clamped to [-1, 1] as VideoPose3D does), radial (k1, k2, k3) and
  tangential (p1, p2) distortion in VideoPose3D's form (`distort`), then `u = f * x + c`;
- screen normalisation: `uv / w * 2 - [1, h / w]` (x in [-1, 1], aspect ratio kept);
- batched cameras (`project_camera`, `undistort_points`, `estimate_root_translation`):
  intrinsics (B, 4) fx, fy, cx, cy and distortion (B, 5) k1, k2, k3, p1, p2, one per sample.

Two projections, one distortion model: `project_to_2d` projects with one camera given in
pixels (as the dataset loaders do); `project_camera` with one camera per sample in normalised
screen units (as the aggregation and root placement do; depth floored at 1 mm, and the
[-1, 1] clamp applied only with distortion, as before). Both distort with `distort`.

Hand-written on purpose: OpenCV's `projectPoints` / `undistortPoints` take one camera per call
(no per-sample cameras over a batch) and OpenCV is not a dependency; VideoPose3D's distortion
(with its clamp) is a few lines of numpy.
"""
from __future__ import annotations

import numpy as np

from ..utils import as_numpy
from .rotations import check_last_axis, quaternion_to_matrix

__all__ = [
    "world_to_camera", "camera_to_world", "distort", "undistort", "project_to_2d", "project_pinhole",
    "batched_intrinsics", "batched_distortion", "project_camera", "project_perspective", "undistort_points",
    "estimate_root_translation", "fit_weak_perspective",
    "normalize_screen_coordinates", "image_coordinates", "normalize_intrinsics",
]


# ----------------------------------------------------------------------------------------------
# Rigid transforms


def _rigid_args(name: str, points, orientation, translation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 (..., 3) points, rotation matrix R(q) (3, 3) and translation (3,), shape-checked."""
    points = np.asarray(points, dtype=np.float64)
    check_last_axis(f"{name} points", points, 3)
    q = np.asarray(orientation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    if q.shape != (4,) or t.shape != (3,):
        raise ValueError(f"{name}: orientation must be (4,), translation (3,); got {q.shape}, {t.shape}")
    # A matrix product is the same rotation as qrot(q, .) and much faster on big arrays.
    return points, quaternion_to_matrix(q), t


def world_to_camera(points, orientation, translation) -> np.ndarray:
    """`X_cam = R(q)^T (X - t)`.

    points: (..., 3) metres, world frame
    orientation: (4,) quaternion (w, x, y, z), camera-to-world
    translation: (3,) metres, camera centre in the world frame
    returns: (..., 3) metres, camera frame (float64)
    """
    points, rot, t = _rigid_args("world_to_camera", points, orientation, translation)
    return (points - t) @ rot


def camera_to_world(points, orientation, translation) -> np.ndarray:
    """`X = R(q) X_cam + t`, the inverse of `world_to_camera`.

    points: (..., 3) metres, camera frame -> (..., 3) metres, world frame
    """
    points, rot, t = _rigid_args("camera_to_world", points, orientation, translation)
    return points @ rot.T + t


# ----------------------------------------------------------------------------------------------
# Lens distortion (VideoPose3D's model) on the normalised image plane


def _distortion_terms(xy: np.ndarray, radial: np.ndarray, tangential: np.ndarray):
    """r2 = |xy|^2, the radial factor 1 + k1 r2 + k2 r2^2 + k3 r2^3 and the tangential dot p.xy,
    each (..., 1)."""
    r2 = np.sum(xy ** 2, axis=-1, keepdims=True)
    factor = 1.0 + radial[..., :1] * r2 + radial[..., 1:2] * r2 ** 2 + radial[..., 2:3] * r2 ** 3
    tan = np.sum(tangential * xy, axis=-1, keepdims=True)
    return r2, factor, tan


def distort(xy, radial, tangential) -> np.ndarray:
    """VideoPose3D's distortion of image-plane points x = X/Z:
    `x_d = x * (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p.x) + p * r2`, r2 = |x|^2.

    xy: (..., 2); radial: (..., 3) k1, k2, k3 and tangential: (..., 2) p1, p2, broadcast
    against xy (a (3,) / (2,) camera, or (B, 1, ..., 3) per sample) -> (..., 2)
    """
    xy, radial, tangential = (np.asarray(a, dtype=np.float64) for a in (xy, radial, tangential))
    r2, factor, tan = _distortion_terms(xy, radial, tangential)
    return xy * (factor + tan) + tangential * r2


def undistort(xy_distorted, radial, tangential, num_iterations: int = 10) -> np.ndarray:
    """The inverse of `distort` by fixed-point iteration x <- (x_d - p r2) / (radial + p.x),
    started at x = x_d. Shapes as `distort`."""
    xy_distorted, radial, tangential = (np.asarray(a, dtype=np.float64) for a in (xy_distorted, radial, tangential))
    x = xy_distorted.copy()
    for _ in range(num_iterations):
        r2, factor, tan = _distortion_terms(x, radial, tangential)
        x = (xy_distorted - tangential * r2) / (factor + tan)
    return x


# ----------------------------------------------------------------------------------------------
# One camera


def project_to_2d(points, focal_length, center, radial_distortion=(0.0, 0.0, 0.0),
                  tangential_distortion=(0.0, 0.0)) -> np.ndarray:
    """Perspective projection with VideoPose3D's distortion model.

    points: (..., 3) camera frame (any length unit; only ratios matter), Z > 0
    focal_length, center: (2,) in the output unit (pixels, or normalised screen units)
    radial_distortion: (3,) k1, k2, k3; tangential_distortion: (2,) p1, p2
    returns: (..., 2) image coordinates in the unit of focal_length / center

    As VideoPose3D: `x = clip(X/Z, -1, 1)`, `r2 = |x|^2`,
    `x_d = x * (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p.x) + p * r2`, `u = f * x_d + c`.
    """
    points = np.asarray(points, dtype=np.float64)
    check_last_axis("project_to_2d points", points, 3)
    f = np.asarray(focal_length, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    k = np.asarray(radial_distortion, dtype=np.float64)
    p = np.asarray(tangential_distortion, dtype=np.float64)
    if f.shape != (2,) or c.shape != (2,) or k.shape != (3,) or p.shape != (2,):
        raise ValueError("project_to_2d: focal_length/center must be (2,), radial (3,), tangential (2,)")
    xy = np.clip(points[..., :2] / points[..., 2:], -1.0, 1.0)
    return f * distort(xy, k, p) + c


def project_pinhole(points, intrinsics) -> np.ndarray:
    """Distortion-free pinhole projection `u = f * X/Z + c`.

    points: (..., 3) camera frame; intrinsics: (..., 4) fx, fy, cx, cy (broadcast) -> (..., 2)
    """
    points = np.asarray(points, dtype=np.float64)
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    check_last_axis("project_pinhole points", points, 3)
    check_last_axis("project_pinhole intrinsics", intrinsics, 4)
    return intrinsics[..., :2] * points[..., :2] / points[..., 2:] + intrinsics[..., 2:]


# ----------------------------------------------------------------------------------------------
# One camera per sample (normalised screen units)


def batched_intrinsics(intrinsics, batch: int) -> np.ndarray:
    """(B, 4) or (4,) fx, fy, cx, cy (numpy or torch) -> (B, 4) float64 (a broadcast view)."""
    k = as_numpy(intrinsics)
    if k.ndim == 1:
        k = np.broadcast_to(k, (batch, 4))
    assert k.shape == (batch, 4), f"intrinsics: expected (B, 4) or (4,), got {k.shape}"
    return k


def batched_distortion(distortion, batch: int) -> np.ndarray | None:
    """(B, 5) or (5,) k1, k2, k3, p1, p2, or None -> (B, 5) float64 or None."""
    if distortion is None:
        return None
    d = as_numpy(distortion)
    if d.ndim == 1:
        d = np.broadcast_to(d, (batch, 5))
    assert d.shape == (batch, 5), f"distortion: expected (B, 5) or (5,) k1, k2, k3, p1, p2, got {d.shape}"
    return d


def project_camera(points, intrinsics, distortion=None) -> np.ndarray:
    """Perspective projection in normalised screen units with optional distortion.

    Equals `project_to_2d` (VideoPose3D: x = clip(X/Z, -1, 1), then radial/tangential
    distortion, then u = f x + c), vectorised over samples with per-sample cameras; depth is
    floored at 1e-3 and, without distortion, x = X/Z is not clamped.
    points: (B, ..., 3) camera frame metres; intrinsics: (B, 4); distortion: (B, 5) or None
    -> (B, ..., 2)
    """
    points = as_numpy(points)
    batch = points.shape[0]
    k = batched_intrinsics(intrinsics, batch)
    shape = (batch,) + (1,) * (points.ndim - 2)
    f = k[:, :2].reshape(shape + (2,))
    c = k[:, 2:].reshape(shape + (2,))
    depth = np.maximum(points[..., 2:], 1e-3)
    xy = points[..., :2] / depth
    d = batched_distortion(distortion, batch)
    if d is not None:
        xy = distort(np.clip(xy, -1.0, 1.0), d[:, :3].reshape(shape + (3,)), d[:, 3:].reshape(shape + (2,)))
    return f * xy + c


def project_perspective(points, intrinsics) -> np.ndarray:
    """Pinhole projection in normalised screen units (no distortion).

    points: (B, ..., 3) camera frame metres; intrinsics: (B, 4) -> (B, ..., 2)
    """
    return project_camera(points, intrinsics, None)


def undistort_points(keypoints_2d, intrinsics, distortion, num_iterations: int = 10) -> np.ndarray:
    """Remove the lens distortion from keypoints: the pinhole keypoints whose distorted
    projection gives the input (`undistort` on the image plane, per-sample cameras).

    keypoints_2d: (B, J, 2) normalised; intrinsics: (B, 4); distortion: (B, 5) -> (B, J, 2)
    """
    kp = as_numpy(keypoints_2d)
    batch = kp.shape[0]
    k = batched_intrinsics(intrinsics, batch)
    d = batched_distortion(distortion, batch)
    f, c = k[:, None, :2], k[:, None, 2:]
    x = undistort((kp - c) / f, d[:, None, :3], d[:, None, 3:], num_iterations)
    return f * x + c


# ----------------------------------------------------------------------------------------------
# Root placement


def estimate_root_translation(pose, keypoints_2d, intrinsics, distortion=None) -> np.ndarray:
    """Camera-frame translation T that best projects a root-relative pose onto the keypoints.

    Perspective model u = fx (X + Tx) / (Z + Tz) + cx (same for v). Multiplying out gives
    equations linear in T:  fx Tx - (u - cx) Tz = (u - cx) Z - fx X  (and the v analogue),
    2J equations in 3 unknowns, solved per sample by linear least squares (the closed-form
    "weak-to-full perspective" root estimate used with VideoPose3D-style lifting). With
    `distortion` the keypoints are undistorted first (`undistort_points`).

    pose: (B, J, 3) metres, root-relative, camera frame; keypoints_2d: (B, J, 2) normalised
    screen coords; intrinsics: (B, 4) fx, fy, cx, cy normalised; distortion: (B, 5) or None
    -> (B, 3) metres
    """
    pose = as_numpy(pose)
    kp = as_numpy(keypoints_2d)
    batch, joints, _ = pose.shape
    assert kp.shape == (batch, joints, 2), f"keypoints_2d: expected {(batch, joints, 2)}, got {kp.shape}"
    k = batched_intrinsics(intrinsics, batch)
    if distortion is not None:
        kp = undistort_points(kp, k, distortion)
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


def fit_weak_perspective(pose, keypoints_2d) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares orthographic camera u ≈ s X + o (for data without intrinsics).

    pose: (B, J, 3) root-relative; keypoints_2d: (B, J, 2) -> scale (B,), offset (B, 2)
    """
    pose = as_numpy(pose)
    kp = as_numpy(keypoints_2d)
    xy = pose[..., :2]
    xy_mean, kp_mean = xy.mean(axis=1, keepdims=True), kp.mean(axis=1, keepdims=True)
    dx, dk = xy - xy_mean, kp - kp_mean
    den = (dx ** 2).sum(axis=(1, 2))
    scale = np.where(den > 0, (dx * dk).sum(axis=(1, 2)) / np.where(den > 0, den, 1.0), 1.0)
    offset = kp_mean[:, 0] - scale[:, None] * xy_mean[:, 0]
    return scale, offset


# ----------------------------------------------------------------------------------------------
# Screen normalisation


def normalize_screen_coordinates(uv, w: int, h: int) -> np.ndarray:
    """Pixels -> normalised screen coordinates `uv / w * 2 - [1, h / w]`.

    uv: (..., 2) pixels of a w x h image -> (..., 2), x in [-1, 1]
    """
    uv = np.asarray(uv)
    check_last_axis("normalize_screen_coordinates uv", uv, 2)
    return uv / w * 2.0 - np.array([1.0, h / w], dtype=uv.dtype if uv.dtype.kind == "f" else np.float64)


def image_coordinates(xy, w: int, h: int) -> np.ndarray:
    """Normalised screen coordinates -> pixels, the inverse of `normalize_screen_coordinates`.

    xy: (..., 2) normalised -> (..., 2) pixels of a w x h image
    """
    xy = np.asarray(xy)
    check_last_axis("image_coordinates xy", xy, 2)
    return (xy + np.array([1.0, h / w])) * w / 2.0


def normalize_intrinsics(focal_length, center, w: int, h: int) -> np.ndarray:
    """Pixel intrinsics -> (4,) fx, fy, cx, cy in normalised screen units, so that
    `normalize_screen_coordinates(f * X/Z + c) == f_n * X/Z + c_n`."""
    f = np.asarray(focal_length, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    return np.array([f[0] / w * 2.0, f[1] / w * 2.0, c[0] / w * 2.0 - 1.0, c[1] / w * 2.0 - h / w])
