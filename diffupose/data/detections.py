"""Real 2D detections of Human3.6M in the plain layout: `h36m_2d_<name>_*.npz`.

Each file holds plain arrays (no pickle) keyed `"S1/Directions 1/54138969"` (subject / sequence
name as in `h36m_3d17_*.npz` / camera id as in the calibration), each `(F, K, 2)` pixels of that
camera's image, F equal to the 3D sequence's frame count. The joint layout is a keypoint format
of `diffupose.data.keypoints` (`sh` = Stacked Hourglass = `mpii16`); detections reach the
model's skeleton through `to_skeleton`, the same mapping `diffupose lift` uses, and are
normalised per camera resolution afterwards (as `lift` does with `--image-size`).

Every check runs while reading, before any sample is assembled: unknown camera ids, joint
counts other than the layout's, NaN/inf pixels, integer values at the limits of their dtype
(an overflowed export), pixels far outside any plausible image, and frame counts that differ
from the 3D sequence are each a one-line DataError naming the file and key.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from ..geometry.skeleton import Skeleton
from .keypoints import LAYOUTS, to_skeleton
from .prepared import open_npz, read_array

__all__ = ["DETECTOR_LAYOUTS", "DETECTOR_NAMES", "detection_files", "detection_layout", "read_detections",
           "map_detections"]

# detector name (the `--keypoints` value) -> the keypoint layout of its files, and its full name
DETECTOR_LAYOUTS = {"sh": "mpii16"}
DETECTOR_NAMES = {"sh": "Stacked Hourglass (MPII-16, not fine-tuned on Human3.6M)"}
# A pixel this far outside the image (in image sizes) cannot be a detection of a visible person.
_MAX_OUTSIDE = 1.0


def detection_files(data_dir: Path, name: str) -> list[Path]:
    """The plain detection files `h36m_2d_<name>_*.npz` of one detector (sorted; may be empty)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return []
    return sorted(p for p in Path(data_dir).glob(f"h36m_2d_{name}_*.npz")
                  if re.fullmatch(rf"h36m_2d_{re.escape(name)}_[A-Za-z0-9]+\.npz", p.name))


def detection_layout(name: str, num_joints: int, source: str) -> str:
    """The keypoint format of a detector's arrays: its table entry, else the unique layout with
    that joint count among the plain ones (mpii16 = 16, h36m17 = 17)."""
    if name in DETECTOR_LAYOUTS:
        return DETECTOR_LAYOUTS[name]
    by_count = {16: "mpii16", 17: "h36m17"}
    if num_joints not in by_count:
        raise DataError(f"{source}: detections with {num_joints} joints match no known layout (16 = mpii16, 17 = h36m17)")
    return by_count[num_joints]


def _check_pixels(a: np.ndarray, path: Path, key: str, res: tuple[int, int]) -> np.ndarray:
    """Finite, not overflowed, inside a generous margin around the image -> float64 pixels."""
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        if a.size and (a.min() <= info.min or a.max() >= info.max):
            raise DataError(f"{path}: {key} has values at the limit of {a.dtype} ({int(a.min())}..{int(a.max())}): "
                            f"an overflowed export")
    elif a.dtype.kind != "f":
        raise DataError(f"{path}: {key} has dtype {a.dtype}; expected pixel numbers")
    xy = a.astype(np.float64)
    if not np.isfinite(xy).all():
        bad = np.argwhere(~np.isfinite(xy))[0]
        raise DataError(f"{path}: {key} has NaN or inf pixels (frame {bad[0]}, joint {bad[1]})")
    w, h = res
    lo = -_MAX_OUTSIDE * np.array([w, h])
    hi = (1 + _MAX_OUTSIDE) * np.array([w, h])
    outside = (xy < lo) | (xy > hi)
    if outside.any():
        f, j, _ = np.argwhere(outside)[0]
        raise DataError(f"{path}: {key} frame {f} joint {j} is at {xy[f, j].round(1).tolist()} px, far outside "
                        f"the {w} x {h} image")
    return xy


def read_detections(files: Sequence[Path], name: str, cameras: dict[str, tuple[int, int]],
                    frames: dict[tuple[str, str], int]) -> tuple[dict[tuple[str, str, str], np.ndarray], str]:
    """Read and check every detection array of the wanted sequences.

    cameras: camera id -> (width, height); frames: (subject, sequence name) -> 3D frame count
    (only these sequences are read). Returns ({(subject, name, camera): (F, K, 2) float64 px},
    layout name). Keys of sequences not in `frames` are ignored (other subjects, unselected).
    """
    out: dict[tuple[str, str, str], np.ndarray] = {}
    layout = None
    for path in files:
        with open_npz(path) as npz:
            for key in npz.files:
                parts = key.split("/")
                if len(parts) != 3:
                    raise DataError(f"{path}: key {key!r} is not of the form 'S1/Walking 1/54138969'")
                subject, seq, cam = parts
                if cam not in cameras:
                    raise DataError(f"{path}: {key}: camera {cam!r} is not one of the cameras {sorted(cameras)}")
                if (subject, seq) not in frames:
                    continue
                a = read_array(npz, path, key)
                if a.ndim != 3 or a.shape[-1] != 2:
                    raise DataError(f"{path}: {key} has shape {a.shape}, expected (frames, joints, 2)")
                this = detection_layout(name, a.shape[1], f"{path}: {key}")
                if a.shape[1] != len(LAYOUTS[this]):
                    raise DataError(f"{path}: {key} has {a.shape[1]} joints, expected {len(LAYOUTS[this])} ({this})")
                layout = layout or this
                if a.shape[0] != frames[(subject, seq)]:
                    raise DataError(f"{path}: {key} has {a.shape[0]} frames but the 3D sequence {subject}/{seq} "
                                    f"has {frames[(subject, seq)]}")
                if (subject, seq, cam) in out:
                    raise DataError(f"{path}: {key} also appears in another h36m_2d_{name} file")
                out[(subject, seq, cam)] = _check_pixels(a, path, key, cameras[cam])
    if layout is None:
        raise DataError(f"{', '.join(map(str, files))}: no detections for any selected sequence")
    return out, layout


def map_detections(xy_px: np.ndarray, layout: str, skeleton: Skeleton) -> np.ndarray:
    """(F, K, 2) pixels in `layout` -> (F, J, 2) pixels of `skeleton`, by the mapping `lift` uses
    (no joint is missing in a detector's full output; a derived joint always exists)."""
    present = np.ones(xy_px.shape[:2], dtype=bool)
    out, ok = to_skeleton(xy_px, present, layout, skeleton)
    if not ok.all():
        raise DataError(f"{layout}: detections do not determine every {skeleton.name} joint")
    return out


def missing_pairs(selected: Iterable[tuple[str, str]], camera_ids: Sequence[str],
                  found: dict[tuple[str, str, str], np.ndarray]) -> list[str]:
    """'S5/Discussion 2/54138969' for every selected sequence x camera without detections."""
    return [f"{s}/{n}/{c}" for s, n in selected for c in camera_ids if (s, n, c) not in found]
