"""The prepared dataset format: one `.npz` of per-sample arrays every other module reads.

Arrays (S samples, J joints), loadable with `np.load(path, allow_pickle=False)`:

- `poses_3d (S, J, 3) float32` metres, camera frame, root-relative (root joint exactly 0)
- `keypoints_2d (S, J, 2) float32` normalised screen coordinates `uv / w * 2 - [1, h / w]`
- `subject, action, camera, sequence (S,) <U`; `frame (S,) int32`; `split (S,) <U` in
  {"train", "val", "test"}
- `intrinsics (S, 4) float32` fx, fy, cx, cy in normalised units (NaN where unknown)
- `root_position (S, 3) float32` metres, absolute root position in the camera frame
- `skeleton ()`, `dataset ()`, `meta_json ()` strings
- optional `keypoints_2d_gt (S, J, 2) float32`: the projected ground-truth 2D, kept beside
  `keypoints_2d` when that holds detections (so one run can be evaluated on both, and the
  measured detector error can drive training augmentation)

This module also holds the step every loader shares: `assemble_samples` turns per-sequence
world poses (+ optional pixel 2D) into these arrays, vectorised per (sequence, camera).
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from ..geometry.camera import Camera
from ..geometry.projection import normalize_screen_coordinates
from ..geometry.skeleton import Skeleton, get_skeleton
from ..utils import atomic_savez

__all__ = ["PreparedData", "load_prepared", "save_prepared", "open_npz", "SequenceRecord",
           "assemble_samples", "require_present", "canonical_actions", "SPLITS", "ARRAY_KEYS"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# name -> (dtype kind, trailing shape given J); None for the joint axis.
_ARRAY_SPEC = {
    "poses_3d": ("f", (None, 3)),
    "keypoints_2d": ("f", (None, 2)),
    "subject": ("U", ()),
    "action": ("U", ()),
    "camera": ("U", ()),
    "sequence": ("U", ()),
    "frame": ("i", ()),
    "split": ("U", ()),
    "intrinsics": ("f", (4,)),
    "root_position": ("f", (3,)),
}
ARRAY_KEYS = tuple(_ARRAY_SPEC)
OPTIONAL_KEYS = ("keypoints_2d_gt",)
_OPTIONAL_SPEC = {"keypoints_2d_gt": ("f", (None, 2))}
_SCALAR_KEYS = ("skeleton", "dataset", "meta_json")
_READ_ERRORS = (zipfile.BadZipFile, EOFError, ValueError, OSError, zlib.error, KeyError)


@dataclass
class PreparedData:
    """Per-sample arrays of a prepared dataset (see the module docstring for shapes/units)."""

    poses_3d: np.ndarray
    keypoints_2d: np.ndarray
    subject: np.ndarray
    action: np.ndarray
    camera: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    split: np.ndarray
    intrinsics: np.ndarray
    root_position: np.ndarray
    skeleton: Skeleton
    dataset: str
    meta: dict = field(default_factory=dict)
    keypoints_2d_gt: np.ndarray | None = None   # (S, J, 2) projected GT when keypoints_2d are detections

    def __len__(self) -> int:
        return int(self.poses_3d.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-sample arrays by name (optional ones only when present)."""
        out = {k: getattr(self, k) for k in ARRAY_KEYS}
        out.update({k: getattr(self, k) for k in OPTIONAL_KEYS if getattr(self, k) is not None})
        return out

    def subset(self, index) -> "PreparedData":
        """A new PreparedData holding the samples `index` (boolean mask or integer indices)."""
        return replace(self, **{k: v[index] for k, v in self.arrays().items()})

    def select(self, split: str | Sequence[str] | None = None, subjects: Iterable[str] | None = None,
               actions: Iterable[str] | None = None, max_samples: int = 0, seed: int = 0) -> "PreparedData":
        """Samples of the given split(s), subjects and actions (None = all); with
        `max_samples > 0`, a seeded random subset of that size (kept in file order)."""
        mask = np.ones(len(self), dtype=bool)
        if split is not None:
            mask &= np.isin(self.split, [split] if isinstance(split, str) else list(split))
        if subjects is not None:
            mask &= np.isin(self.subject, [subjects] if isinstance(subjects, str) else list(subjects))
        if actions is not None:
            mask &= np.isin(self.action, [actions] if isinstance(actions, str) else list(actions))
        index = np.flatnonzero(mask)
        if max_samples and len(index) > max_samples:
            rng = np.random.default_rng(seed)
            index = np.sort(rng.choice(index, size=max_samples, replace=False))
        return self.subset(index)

    def splits(self) -> dict[str, int]:
        """Sample count per split (all three keys, zero when empty)."""
        return {s: int(np.count_nonzero(self.split == s)) for s in SPLITS}

    def __repr__(self) -> str:
        return (f"PreparedData(dataset={self.dataset!r}, skeleton={self.skeleton.name!r}, "
                f"samples={len(self)}, splits={self.splits()})")


def open_npz(path: str | os.PathLike, allow_pickle: bool = False):
    """`np.load` an npz, turning a missing or unreadable file into one DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" + (" (it is a directory)" if path.is_dir() else ""))
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: a single .npy array, not an .npz archive")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise DataError(f"{path}: not an .npz archive (no zip header; empty, truncated or another format)")
    try:
        npz = np.load(path, allow_pickle=allow_pickle)
    except _READ_ERRORS as e:
        raise DataError(f"{path}: cannot read npz ({type(e).__name__}: {e}); the file may be truncated or corrupt") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive")
    return npz


def read_array(npz, path, key: str, allow_pickle: bool = False) -> np.ndarray:
    """One member of an open npz; a missing key or a corrupt member becomes a DataError."""
    if key not in npz.files:
        raise DataError(f"{path}: missing key {key!r} (has {sorted(npz.files)[:12]})")
    try:
        return npz[key]
    except ValueError as e:
        if "allow_pickle" in str(e) and not allow_pickle:
            raise DataError(f"{path}: key {key!r} holds pickled objects; pass --allow-pickle (allow_pickle=True) if you trust this file") from None
        raise DataError(f"{path}: cannot read key {key!r} ({e}); the file may be truncated or corrupt") from None
    except _READ_ERRORS as e:
        raise DataError(f"{path}: cannot read key {key!r} ({type(e).__name__}: {e}); the file may be truncated or corrupt") from None


def require_present(source: str, what: str, names: Sequence[str], present: Sequence[str]) -> None:
    """One-line DataError when some requested `names` (subjects) are not in the file."""
    missing = [n for n in names if n not in present]
    if missing:
        raise DataError(f"{source}: {what} {', '.join(missing)} are not in the file (it has {', '.join(present)})")


def canonical_actions(source: str, actions: Sequence[str] | None, canonical) -> set[str] | None:
    """Requested action names (aliases allowed) -> canonical names via `canonical(name)`; None
    stays None (all actions); an unknown name is a one-line DataError."""
    if actions is None:
        return None
    try:
        return {canonical(a) for a in actions}
    except ValueError as e:
        raise DataError(f"{source}: {e}") from None


def validate_arrays(arrays: dict, skeleton: Skeleton, source: str) -> None:
    """Check keys, shapes, dtypes, split names, finiteness and the zero root; DataError naming
    `source` on the first problem."""
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{source}: missing keys {missing}")
    n = arrays["poses_3d"].shape[0]
    num_joints = skeleton.num_joints
    for k, (kind, tail) in {**_ARRAY_SPEC, **{k: v for k, v in _OPTIONAL_SPEC.items() if k in arrays}}.items():
        a = arrays[k]
        shape = (n,) + tuple(num_joints if t is None else t for t in tail)
        if a.shape != shape:
            if a.ndim == 3 and k in ("poses_3d", "keypoints_2d") and a.shape[0] == n and a.shape[1] != num_joints:
                raise DataError(f"{source}: {k} has {a.shape[1]} joints but skeleton {skeleton.name} has {num_joints}")
            raise DataError(f"{source}: {k} has shape {a.shape}, expected {shape}")
        if a.dtype.kind != kind and not (kind == "i" and a.dtype.kind == "u"):
            raise DataError(f"{source}: {k} has dtype {a.dtype}, expected kind {kind!r}")
    for k in ("poses_3d", "keypoints_2d", "root_position") + tuple(k for k in OPTIONAL_KEYS if k in arrays):
        if not np.isfinite(arrays[k]).all():
            raise DataError(f"{source}: {k} contains NaN or inf values")
    if np.isinf(arrays["intrinsics"]).any():
        raise DataError(f"{source}: intrinsics contain inf values")
    if n and np.any(arrays["poses_3d"][:, 0] != 0):
        raise DataError(f"{source}: poses_3d are not root-relative (root joint not exactly 0)")
    bad = sorted(set(np.unique(arrays["split"]).tolist()) - set(SPLITS))
    if bad:
        raise DataError(f"{source}: unknown split names {bad}; expected {list(SPLITS)}")


def load_prepared(path: str | os.PathLike) -> PreparedData:
    """Read and validate a prepared `.npz` (never unpickles). Bad files raise DataError."""
    path = Path(path)
    with open_npz(path) as npz:
        missing = [k for k in ARRAY_KEYS + _SCALAR_KEYS if k not in npz.files]
        if missing:
            raise DataError(f"{path}: not a prepared dataset, missing keys {missing}")
        arrays = {k: read_array(npz, path, k) for k in ARRAY_KEYS + OPTIONAL_KEYS if k in npz.files or k in ARRAY_KEYS}
        scalars = {k: str(read_array(npz, path, k)) for k in _SCALAR_KEYS}
    try:
        skeleton = get_skeleton(scalars["skeleton"])
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None
    try:
        meta = json.loads(scalars["meta_json"])
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: meta_json is not valid JSON ({e})") from None
    validate_arrays(arrays, skeleton, str(path))
    return PreparedData(**arrays, skeleton=skeleton, dataset=scalars["dataset"], meta=meta)


def save_prepared(path: str | os.PathLike, data: PreparedData | dict, compress: bool = False) -> Path:
    """Validate and write a prepared dataset atomically (temp file in the same folder, then
    rename). `data` is a PreparedData or a dict with the array keys plus `skeleton` (name or
    Skeleton), `dataset` and `meta` (dict) or `meta_json` (str). Uncompressed by default: the
    full H36M file is ~0.75 GB either way dominated by float noise, and zlib would cost a minute."""
    path = Path(path)
    if isinstance(data, PreparedData):
        arrays, skeleton, dataset, meta = data.arrays(), data.skeleton, data.dataset, data.meta
    else:
        arrays = {k: data[k] for k in ARRAY_KEYS + OPTIONAL_KEYS if k in data and data[k] is not None}
        skeleton = data.get("skeleton", "h36m17")
        skeleton = get_skeleton(str(skeleton)) if not isinstance(skeleton, Skeleton) else skeleton
        dataset = str(data.get("dataset", "unknown"))
        meta = data["meta"] if "meta" in data else json.loads(str(data.get("meta_json", "{}")))
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    validate_arrays(arrays, skeleton, str(path))
    out = {
        "poses_3d": arrays["poses_3d"].astype(np.float32, copy=False),
        "keypoints_2d": arrays["keypoints_2d"].astype(np.float32, copy=False),
        "subject": arrays["subject"].astype(str), "action": arrays["action"].astype(str),
        "camera": arrays["camera"].astype(str), "sequence": arrays["sequence"].astype(str),
        "frame": arrays["frame"].astype(np.int32, copy=False), "split": arrays["split"].astype(str),
        "intrinsics": arrays["intrinsics"].astype(np.float32, copy=False),
        "root_position": arrays["root_position"].astype(np.float32, copy=False),
        "skeleton": np.array(skeleton.name), "dataset": np.array(dataset),
        "meta_json": np.array(json.dumps(meta, sort_keys=True, default=str)),
    }
    out.update({k: arrays[k].astype(np.float32, copy=False) for k in OPTIONAL_KEYS if k in arrays})
    return atomic_savez(path, compress=compress, **out)


# ----------------------------------------------------------------------------------------------
# Shared assembly step of the loaders


@dataclass
class SequenceRecord:
    """One recorded sequence before it is split into per-camera samples.

    poses_world: (F, J, 3) metres, world frame
    keypoints_px: per camera (F, J, 2) pixels, or None to project with the cameras
    cameras: the cameras that saw it (same order as keypoints_px)
    """

    subject: str
    action: str
    sequence: str
    poses_world: np.ndarray
    cameras: list[Camera]
    keypoints_px: list[np.ndarray] | None = None
    split: str = "train"
    frame_split: np.ndarray | None = None  # (F,) per-frame split labels; overrides `split`


def assemble_samples(records: Sequence[SequenceRecord], stride: int = 1, noise_px: float = 0.0,
                     seed: int = 0, keep_gt: bool = False) -> dict[str, np.ndarray]:
    """Per-sequence records -> the per-sample arrays of the prepared format.

    Every kept frame (`frame % stride == 0`) of every record becomes one sample per camera:
    3D moved to the camera frame and made root-relative (root exactly 0), 2D taken from
    `keypoints_px` or projected (distortion included), optional Gaussian pixel noise
    (`noise_px` std, seeded), then normalised to screen units. Vectorised per (sequence, camera).
    keep_gt: also return `keypoints_2d_gt`, the projection (no noise), for records with detections.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    rng = np.random.default_rng(seed) if noise_px > 0 else None
    parts: dict[str, list] = {k: [] for k in ARRAY_KEYS + (("keypoints_2d_gt",) if keep_gt else ())}
    for rec in records:
        frames = np.arange(0, rec.poses_world.shape[0], stride, dtype=np.int32)
        world = np.asarray(rec.poses_world[frames], dtype=np.float64)
        n = len(frames)
        if n == 0:
            continue
        for ci, cam in enumerate(rec.cameras):
            cam_pts = cam.world_to_camera(world)
            if rec.keypoints_px is not None:
                kp = np.asarray(rec.keypoints_px[ci][frames], dtype=np.float64)
            else:
                kp = cam.project(cam_pts)
            if rng is not None:
                kp = kp + rng.normal(0.0, noise_px, size=kp.shape)
            kp = normalize_screen_coordinates(kp, cam.intrinsics.res_w, cam.intrinsics.res_h)
            if keep_gt:
                gt = normalize_screen_coordinates(cam.project(cam_pts), cam.intrinsics.res_w, cam.intrinsics.res_h)
                parts["keypoints_2d_gt"].append(gt.astype(np.float32))
            root = cam_pts[:, :1]
            parts["poses_3d"].append((cam_pts - root).astype(np.float32))
            parts["keypoints_2d"].append(kp.astype(np.float32))
            parts["root_position"].append(root[:, 0].astype(np.float32))
            parts["intrinsics"].append(np.broadcast_to(cam.intrinsics.normalized.astype(np.float32), (n, 4)))
            parts["frame"].append(frames)
            for key, value in (("subject", rec.subject), ("action", rec.action), ("camera", cam.id),
                               ("sequence", rec.sequence), ("split", rec.split)):
                parts[key].append(np.full(n, value))
            if rec.frame_split is not None:
                parts["split"][-1] = np.asarray(rec.frame_split)[frames]
    if not parts["poses_3d"]:
        raise DataError("no samples: every selected sequence is empty")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["poses_3d"][:, 0] = 0.0  # exact zero even where float32 rounding of (x - x) is already 0
    return out
