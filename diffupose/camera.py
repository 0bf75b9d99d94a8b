"""Camera geometry: quaternion rotation, world <-> camera, projection, screen normalisation.

Small pure functions over numpy arrays in the style of VideoPose3D's `common/camera.py`; each
checks its shapes. Conventions (Human3.6M / VideoPose3D):

- orientation `q` is a unit quaternion (w, x, y, z) rotating camera axes into world axes
  (camera-to-world); translation `t` is the camera centre in world coordinates, metres;
- world -> camera: `X_cam = R(q)^T (X - t)`; camera -> world: `X = R(q) X_cam + t`;
- camera frame: x right, y down, z forward (depth);
- projection: `x = X/Z` (clamped to [-1, 1] as VideoPose3D does), radial (k1, k2, k3) and
  tangential (p1, p2) distortion in VideoPose3D's form, then `u = f * x + c` in pixels;
- screen normalisation: `uv / w * 2 - [1, h / w]` (x in [-1, 1], aspect ratio kept).

Camera parameters ship as JSON in `diffupose/resources` (`h36m_cameras.json`,
`humaneva_cameras.json`) and load into the small dataclasses below with `load_cameras`.
"""
from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "qrot", "qinverse", "quaternion_to_matrix", "quaternion_from_matrix",
    "world_to_camera", "camera_to_world", "project_to_2d", "project_pinhole",
    "normalize_screen_coordinates", "image_coordinates", "normalize_intrinsics",
    "CameraIntrinsics", "CameraExtrinsics", "Camera", "CameraSet", "load_cameras",
]


def _check_last(name: str, x: np.ndarray, size: int) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name}: expected last axis of size {size}, got shape {tuple(x.shape)}")


def qrot(q, v) -> np.ndarray:
    """Rotate vectors by unit quaternions.

    q: (..., 4) or (4,) unit quaternions (w, x, y, z), broadcast against v
    v: (..., 3) vectors -> (..., 3)
    """
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    _check_last("qrot q", q, 4)
    _check_last("qrot v", v, 3)
    w = q[..., :1]
    qvec = q[..., 1:]
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2.0 * (w * uv + uuv)


def qinverse(q) -> np.ndarray:
    """Inverse (conjugate) of unit quaternions. q: (..., 4) (w, x, y, z) -> (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    _check_last("qinverse q", q, 4)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quaternion_to_matrix(q) -> np.ndarray:
    """Rotation matrix of unit quaternions. q: (..., 4) (w, x, y, z) -> (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    _check_last("quaternion_to_matrix q", q, 4)
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


def _rigid_args(name: str, points, orientation, translation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 (..., 3) points, rotation matrix R(q) (3, 3) and translation (3,), shape-checked."""
    points = np.asarray(points, dtype=np.float64)
    _check_last(f"{name} points", points, 3)
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
    _check_last("project_to_2d points", points, 3)
    f = np.asarray(focal_length, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    k = np.asarray(radial_distortion, dtype=np.float64)
    p = np.asarray(tangential_distortion, dtype=np.float64)
    if f.shape != (2,) or c.shape != (2,) or k.shape != (3,) or p.shape != (2,):
        raise ValueError("project_to_2d: focal_length/center must be (2,), radial (3,), tangential (2,)")
    xy = np.clip(points[..., :2] / points[..., 2:], -1.0, 1.0)
    r2 = np.sum(xy ** 2, axis=-1, keepdims=True)
    radial = 1.0 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = np.sum(p * xy, axis=-1, keepdims=True)
    xy_d = xy * (radial + tan) + p * r2
    return f * xy_d + c


def project_pinhole(points, intrinsics) -> np.ndarray:
    """Distortion-free pinhole projection `u = f * X/Z + c`.

    points: (..., 3) camera frame; intrinsics: (..., 4) fx, fy, cx, cy (broadcast) -> (..., 2)
    """
    points = np.asarray(points, dtype=np.float64)
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    _check_last("project_pinhole points", points, 3)
    _check_last("project_pinhole intrinsics", intrinsics, 4)
    return intrinsics[..., :2] * points[..., :2] / points[..., 2:] + intrinsics[..., 2:]


def normalize_screen_coordinates(uv, w: int, h: int) -> np.ndarray:
    """Pixels -> normalised screen coordinates `uv / w * 2 - [1, h / w]`.

    uv: (..., 2) pixels of a w x h image -> (..., 2), x in [-1, 1]
    """
    uv = np.asarray(uv)
    _check_last("normalize_screen_coordinates uv", uv, 2)
    return uv / w * 2.0 - np.array([1.0, h / w], dtype=uv.dtype if uv.dtype.kind == "f" else np.float64)


def image_coordinates(xy, w: int, h: int) -> np.ndarray:
    """Normalised screen coordinates -> pixels, the inverse of `normalize_screen_coordinates`.

    xy: (..., 2) normalised -> (..., 2) pixels of a w x h image
    """
    xy = np.asarray(xy)
    _check_last("image_coordinates xy", xy, 2)
    return (xy + np.array([1.0, h / w])) * w / 2.0


def normalize_intrinsics(focal_length, center, w: int, h: int) -> np.ndarray:
    """Pixel intrinsics -> (4,) fx, fy, cx, cy in normalised screen units, so that
    `normalize_screen_coordinates(f * X/Z + c) == f_n * X/Z + c_n`."""
    f = np.asarray(focal_length, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    return np.array([f[0] / w * 2.0, f[1] / w * 2.0, c[0] / w * 2.0 - 1.0, c[1] / w * 2.0 - h / w])


@dataclass(frozen=True)
class CameraIntrinsics:
    """One camera's intrinsics in pixels. `focal_length`/`center` are None when unknown
    (HumanEva ships no intrinsics)."""

    id: str
    res_w: int
    res_h: int
    focal_length: tuple[float, float] | None = None
    center: tuple[float, float] | None = None
    radial_distortion: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential_distortion: tuple[float, float] = (0.0, 0.0)
    azimuth: float = 0.0

    @property
    def known(self) -> bool:
        return self.focal_length is not None and self.center is not None

    @property
    def normalized(self) -> np.ndarray:
        """(4,) fx, fy, cx, cy in normalised screen units; NaN when unknown."""
        if not self.known:
            return np.full(4, np.nan)
        return normalize_intrinsics(self.focal_length, self.center, self.res_w, self.res_h)


@dataclass(frozen=True)
class CameraExtrinsics:
    """orientation: (4,) (w, x, y, z) camera-to-world; translation: (3,) metres."""

    orientation: tuple[float, float, float, float]
    translation: tuple[float, float, float]


@dataclass(frozen=True)
class Camera:
    """Intrinsics + extrinsics of one camera for one subject."""

    intrinsics: CameraIntrinsics
    extrinsics: CameraExtrinsics

    @property
    def id(self) -> str:
        return self.intrinsics.id

    def world_to_camera(self, points) -> np.ndarray:
        """points: (..., 3) metres world -> (..., 3) metres camera frame."""
        return world_to_camera(points, self.extrinsics.orientation, self.extrinsics.translation)

    def camera_to_world(self, points) -> np.ndarray:
        """points: (..., 3) metres camera frame -> (..., 3) metres world."""
        return camera_to_world(points, self.extrinsics.orientation, self.extrinsics.translation)

    def project(self, points_camera) -> np.ndarray:
        """points_camera: (..., 3) camera frame -> (..., 2) pixels, distortion included."""
        i = self.intrinsics
        if not i.known:
            raise ValueError(f"camera {i.id} has no intrinsics; cannot project")
        return project_to_2d(points_camera, i.focal_length, i.center, i.radial_distortion,
                             i.tangential_distortion)


@dataclass(frozen=True)
class CameraSet:
    """A dataset's cameras: per-camera intrinsics (in file order) and per-subject extrinsics."""

    name: str
    intrinsics: tuple[CameraIntrinsics, ...]
    extrinsics: dict[str, tuple[CameraExtrinsics, ...]] = field(default_factory=dict)

    @property
    def camera_ids(self) -> list[str]:
        return [c.id for c in self.intrinsics]

    @property
    def subjects(self) -> list[str]:
        return list(self.extrinsics)

    def camera(self, subject: str, index: int) -> Camera:
        """The camera `index` (file order) for `subject` (KeyError if the subject is unknown)."""
        return Camera(self.intrinsics[index], self.extrinsics[subject][index])

    def cameras(self, subject: str) -> list[Camera]:
        return [self.camera(subject, i) for i in range(len(self.intrinsics))]


def _parse_cameras(name: str, raw: dict) -> CameraSet:
    intr = []
    for c in raw["intrinsic"]:
        intr.append(CameraIntrinsics(
            id=str(c["id"]), res_w=int(c["res_w"]), res_h=int(c["res_h"]),
            focal_length=tuple(c["focal_length"]) if "focal_length" in c else None,
            center=tuple(c["center"]) if "center" in c else None,
            radial_distortion=tuple(c.get("radial_distortion", (0.0, 0.0, 0.0))),
            tangential_distortion=tuple(c.get("tangential_distortion", (0.0, 0.0))),
            azimuth=float(c.get("azimuth", 0.0)),
        ))
    extr = {}
    for subject, cams in raw["extrinsic"].items():
        if not all("orientation" in c and "translation" in c for c in cams):
            continue  # H36M's S2-S4 ship without calibration
        extr[subject] = tuple(
            CameraExtrinsics(orientation=tuple(float(v) for v in c["orientation"]),
                             translation=tuple(float(v) / 1000.0 for v in c["translation"]))
            for c in cams)
    return CameraSet(name=name, intrinsics=tuple(intr), extrinsics=extr)


@functools.lru_cache(maxsize=None)
def load_cameras(dataset: str) -> CameraSet:
    """Packaged camera parameters of `dataset` ("h36m" or "humaneva"); translations converted
    from millimetres to metres."""
    files = {"h36m": "h36m_cameras.json", "humaneva": "humaneva_cameras.json"}
    if dataset not in files:
        raise ValueError(f"unknown camera set {dataset!r}; known: {sorted(files)}")
    text = importlib.resources.files("diffupose").joinpath("resources", files[dataset]).read_text()
    return _parse_cameras(dataset, json.loads(text))
