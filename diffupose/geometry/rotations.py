"""Every rotation of the package: axis matrices, Euler angles (BVH), quaternions, shortest arcs
and the SVD rotation fit (Kabsch / similarity Procrustes).

Pure numpy, batched over any leading axes, float64. Conventions: matrices act on column vectors
(`v' = R v`); quaternions are (w, x, y, z) (Human3.6M / VideoPose3D); Euler angles are in
degrees, in BVH channel order, `R = R_first @ R_second @ R_third`.

Why hand-written and not `scipy.spatial.transform.Rotation`:
- Euler angles (BVH): `Rotation.as_euler("ZXY")` does the job, but not to the same numbers.
  It decomposes exactly up to the lock, where `euler_zxy_from_matrix` treats |x| > ~89.997
  degrees as locked (y = 0), so BVH files with near-lock frames would print other values, and
  issue 19 asks for identical numbers; elsewhere the angles differ in the last bits, which
  still flip about 1 in 50,000 printed 6-decimal values. Importing scipy.spatial.transform
  would also cost every `import diffupose` about half a second. Switch when reproducing old
  BVH files to the digit no longer matters.
- Axis matrices: one-axis rotations with arbitrary batch shape are a `np.stack`; Rotation
  round-trips through quaternions and would not give the same bits to the synthetic data.
- Procrustes: no library batches a per-frame similarity fit with the reflection fix
  (`scipy.linalg.orthogonal_procrustes` takes one pair and allows reflections;
  `scipy.spatial.procrustes` standardises both sets and returns a disparity).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "check_last_axis", "axis_rotation", "rotation_x", "rotation_y", "rotation_z", "matrix_from_euler",
    "euler_zxy_from_matrix", "qrot", "qinverse", "quaternion_to_matrix", "quaternion_from_matrix",
    "shortest_arc", "svd_rotation", "kabsch", "procrustes_align",
]


def check_last_axis(name: str, x: np.ndarray, size: int) -> None:
    """ValueError naming `name` unless the last axis of `x` has `size` entries."""
    if x.shape[-1] != size:
        raise ValueError(f"{name}: expected last axis of size {size}, got shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------------------------
# Axis matrices and Euler angles


def axis_rotation(axis: str, angle) -> np.ndarray:
    """Rotation matrices about one coordinate axis ("X", "Y" or "Z") by `angle` radians.

    angle: (...) -> (..., 3, 3)
    """
    angle = np.asarray(angle)
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    if axis == "X":
        m = [o, z, z, z, c, -s, z, s, c]
    elif axis == "Y":
        m = [c, z, s, z, o, z, -s, z, c]
    elif axis == "Z":
        m = [c, -s, z, s, c, z, z, z, o]
    else:
        raise ValueError(f"axis_rotation: axis must be X, Y or Z, got {axis!r}")
    return np.stack(m, axis=-1).reshape(angle.shape + (3, 3))


def rotation_x(angle) -> np.ndarray:
    """(...) radians -> (..., 3, 3) rotation about x."""
    return axis_rotation("X", angle)


def rotation_y(angle) -> np.ndarray:
    """(...) radians -> (..., 3, 3) rotation about y."""
    return axis_rotation("Y", angle)


def rotation_z(angle) -> np.ndarray:
    """(...) radians -> (..., 3, 3) rotation about z."""
    return axis_rotation("Z", angle)


def matrix_from_euler(angles_deg, order: str = "ZXY") -> np.ndarray:
    """(..., 3) degrees in channel order -> (..., 3, 3) = R_first @ R_second @ R_third."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    out = axis_rotation(order[0], a[..., 0])
    for k in (1, 2):
        out = out @ axis_rotation(order[k], a[..., k])
    return out


def euler_zxy_from_matrix(m) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) degrees (z, x, y) with R = Rz Rx Ry; at gimbal lock
    (|x| = 90 degrees) y is set to 0 and z carries the whole remaining rotation."""
    m = np.asarray(m, dtype=np.float64)
    sx = np.clip(m[..., 2, 1], -1.0, 1.0)
    x = np.arcsin(sx)
    regular = np.abs(sx) < 1.0 - 1e-9
    y = np.where(regular, np.arctan2(-m[..., 2, 0], m[..., 2, 2]), 0.0)
    z = np.where(regular, np.arctan2(-m[..., 0, 1], m[..., 1, 1]), np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    return np.degrees(np.stack([z, x, y], axis=-1))


# ----------------------------------------------------------------------------------------------
# Quaternions (w, x, y, z)


def qrot(q, v) -> np.ndarray:
    """Rotate vectors by unit quaternions.

    q: (..., 4) or (4,) unit quaternions (w, x, y, z), broadcast against v
    v: (..., 3) vectors -> (..., 3)
    """
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    check_last_axis("qrot q", q, 4)
    check_last_axis("qrot v", v, 3)
    w = q[..., :1]
    qvec = q[..., 1:]
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2.0 * (w * uv + uuv)


def qinverse(q) -> np.ndarray:
    """Inverse (conjugate) of unit quaternions. q: (..., 4) (w, x, y, z) -> (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    check_last_axis("qinverse q", q, 4)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quaternion_to_matrix(q) -> np.ndarray:
    """Rotation matrix of unit quaternions. q: (..., 4) (w, x, y, z) -> (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    check_last_axis("quaternion_to_matrix q", q, 4)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def quaternion_from_matrix(m) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix. m: (3, 3) -> (4,)."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"quaternion_from_matrix: expected (3, 3), got {m.shape}")
    # Shepperd's method: pick the largest of the four squared components for stability.
    tr = np.trace(m)
    cand = np.array([tr, m[0, 0], m[1, 1], m[2, 2]])
    i = int(np.argmax(cand))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return -q if q[0] < 0 else q


# ----------------------------------------------------------------------------------------------
# Rotations fitted to vectors


def shortest_arc(a, b) -> np.ndarray:
    """Rotations (..., 3, 3) taking unit vectors a to unit vectors b (shortest arc); for
    opposite vectors, 180 degrees about an axis perpendicular to a. a, b: (..., 3)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    out = np.empty(a.shape[:-1] + (3, 3))
    opposite = c < -1.0 + 1e-9
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    factor = (1.0 / np.where(opposite, 1.0, 1.0 + c))[..., None, None]
    out[:] = np.eye(3) + k + k @ k * factor
    if opposite.any():  # 180 degrees about any axis perpendicular to a
        aa = a[opposite]
        perp = np.cross(aa, np.where(np.abs(aa[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
        perp /= np.linalg.norm(perp, axis=-1, keepdims=True)
        out[opposite] = 2 * perp[:, :, None] * perp[:, None, :] - np.eye(3)
    return out


def svd_rotation(cross_covariance) -> tuple[np.ndarray, np.ndarray]:
    """The proper rotation of an SVD rotation fit (Kabsch; Umeyama 1991 for the reflection fix).

    cross_covariance: (..., 3, 3) H = sum_k a_k b_k^T of paired vectors a_k, b_k ->
    (R (..., 3, 3), s (..., 3)): R = V diag(1, 1, d) U^T (H = U S V^T) is the rotation
    minimising sum_k |R a_k - b_k|^2, i.e. `b ~ R a`, equivalently `b_row ~ a_row @ R^T`;
    d = -1 where the unconstrained optimum V U^T is a reflection (the weakest singular
    direction is flipped), else 1. s are the singular values with the last one multiplied by
    d, so that `s.sum(-1)` is the trace term of the similarity (scale) fit.
    """
    u, s, vt = np.linalg.svd(cross_covariance)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    sign = np.where(np.linalg.det(np.matmul(v, ut)) < 0, -1.0, 1.0)
    v[..., :, -1] *= sign[..., None]
    s[..., -1] *= sign
    return np.matmul(v, ut), s


def kabsch(rest, actual) -> np.ndarray:
    """Rotations (F, 3, 3) best mapping rest vectors (K, 3) onto actual vectors (F, K, 3)
    (`actual[f, k] ~ R[f] @ rest[k]`, least squares, proper rotations only)."""
    h = np.einsum("ki,fkj->fij", np.asarray(rest, dtype=np.float64), np.asarray(actual, dtype=np.float64))
    return svd_rotation(h)[0]


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each pose of `pred` onto `gt` (scale, proper rotation, translation):
    the least-squares `s * pred @ R + t` per sample, both poses centred and normalised to unit
    Frobenius norm before the SVD fit (`svd_rotation`) for conditioning.

    pred, gt: (B, J, 3) float arrays -> pred aligned to gt: (B, J, 3)
    """
    mu_gt = gt.mean(axis=1, keepdims=True)
    mu_pred = pred.mean(axis=1, keepdims=True)
    x0 = gt - mu_gt
    y0 = pred - mu_pred
    norm_x = np.sqrt((x0 ** 2).sum(axis=(1, 2), keepdims=True))
    norm_y = np.sqrt((y0 ** 2).sum(axis=(1, 2), keepdims=True))
    norm_x = np.where(norm_x > 0, norm_x, 1.0)
    norm_y = np.where(norm_y > 0, norm_y, 1.0)
    x0 = x0 / norm_x
    y0 = y0 / norm_y
    r, s = svd_rotation(np.matmul(x0.transpose(0, 2, 1), y0))  # pred_row @ r ~ gt_row
    trace = s.sum(axis=1)[:, None, None]
    scale = trace * norm_x / norm_y
    translation = mu_gt - scale * np.matmul(mu_pred, r)
    return scale * np.matmul(pred, r) + translation
