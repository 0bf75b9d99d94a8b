"""Camera calibration: the small dataclasses of one camera and a dataset's cameras, and the
packaged calibration files.

Camera parameters ship as JSON in `diffupose/resources` (`h36m_cameras.json`,
`humaneva_cameras.json`) and load into the dataclasses below with `load_cameras`; translations
are converted from millimetres to metres. The maths (rigid transforms, projection, distortion)
lives in `geometry.projection` and `geometry.rotations`; conventions are listed there.
"""
from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass, field

import numpy as np

from .projection import camera_to_world, normalize_intrinsics, project_to_2d, world_to_camera

__all__ = ["CameraIntrinsics", "CameraExtrinsics", "Camera", "CameraSet", "load_cameras", "camera_distortion"]


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


def camera_distortion(dataset: str, camera_ids) -> np.ndarray:
    """(B, 5) k1, k2, k3, p1, p2 of each sample's camera from the packaged calibration
    (`load_cameras`); zeros for datasets or cameras without distortion parameters
    (synthetic, HumanEva). camera_ids: (B,) camera id strings."""
    ids = np.asarray(camera_ids).astype(str)
    out = np.zeros((len(ids), 5))
    try:
        cams = {c.id: c for c in load_cameras(dataset).intrinsics}
    except ValueError:
        return out
    for cid in np.unique(ids):
        if cid in cams:
            c = cams[cid]
            out[ids == cid] = tuple(c.radial_distortion) + tuple(c.tangential_distortion)
    return out
