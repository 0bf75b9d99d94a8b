"""Reading keypoint files into `Keypoints` (`read_keypoints`, `detect_format`, the plausibility
checks) and writing them (`coco_results_json`, `openpose_json`, detector-like
`synthetic_detections`). The formats and what is refused: `diffupose.data.keypoints`, which
re-exports everything here.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from .windows import trailing_numbers
from .layouts import (FILE_JOINTS, FORMATS, LAYOUT17_LIMIT, LAYOUTS, MAX_COORDINATE, MAX_NORMALISED,
                      guess_layout17, looks_like_pixels, normalize_keypoints)

__all__ = ["Keypoints", "read_keypoints", "read_keypoint_array", "keypoints_from_array", "detect_format", "check_image_range", "coco_results_json",
           "openpose_json", "synthetic_detections"]

log = logging.getLogger("diffupose.data.keypoints")

# ----------------------------------------------------------------------------------------------
# Reading


@dataclass
class Keypoints:
    """Keypoints as read from a file, in the file's layout.

    keypoints: (N, K, 2) pixels (or normalised units for arrays without scores), NaN = missing
    scores: (N, K) in [0, 1] (1 where the file has none)
    present: (N, K) bool after `min_score`, visibility flags and NaN
    frame: (N,) frame index (tracks) or image id as a string; person: (N,) index in its frame
    """

    keypoints: np.ndarray
    scores: np.ndarray
    present: np.ndarray
    format: str
    source: str
    frame: np.ndarray
    person: np.ndarray
    pixels: bool = True
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def subset(self, index) -> "Keypoints":
        """The samples `index` (slice, integer indices or boolean mask) as a new Keypoints."""
        order = np.arange(len(self))[index]
        return _reorder(self, order)

    @property
    def is_track(self) -> bool:
        """One person per frame and more than one frame: a sequence (smoothing, BVH)."""
        return len(self) > 1 and len(set(self.frame.tolist())) == len(self)

def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]

def _load_json(path: Path):
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (not valid UTF-8); expected JSON") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be keypoints") from None

def detect_format(path: str | os.PathLike, data=None) -> str:
    """Format name of a keypoint file or folder by its structure and joint count (see
    `FORMATS`); DataError naming the file and what was expected when nothing fits."""
    path = Path(path)
    if path.is_dir():
        return "body25"
    if data is None:
        data = _read_raw(path)
    if isinstance(data, dict) and "people" in data:
        return _detect_openpose(path, data)
    entries = _coco_entries(path, data) if _is_coco_like(data) else None
    if entries is not None:
        counts = {len(e["keypoints"]) for e in entries if isinstance(e, dict) and isinstance(e.get("keypoints"), list)}
        by_count = {51: "coco17", 78: "halpe26", 399: "coco_wholebody"}
        for n in sorted(counts):
            if n in by_count:
                return by_count[n]
        raise DataError(f"{path}: keypoint lists of length {sorted(counts)}; expected 17 (COCO), 26 (Halpe) "
                        f"or 133 (COCO-WholeBody) [x, y, v] triplets")
    arr = _as_array(path, data)
    joints = arr.shape[-2] if arr.ndim >= 2 else -1
    by_joints = {17: "h36m17", 15: "humaneva15", 16: "mpii16", 25: "body25", 26: "halpe26", 133: "coco_wholebody"}
    if arr.ndim in (2, 3) and arr.shape[-1] in (2, 3) and joints in by_joints:
        return by_joints[joints]
    raise DataError(f"{path}: array of shape {arr.shape}; expected (N, J, 2) or (N, J, 3) with J = 17 (H36M), "
                    f"15 (HumanEva), 16 (MPII), 25 (BODY_25), 26 (Halpe) or 133 (COCO-WholeBody)")

def _read_raw(path: Path):
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".npy":
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise DataError(f"{path}: not a NumPy .npy file (no .npy header)")
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as e:
            if "pickled" in str(e):
                raise DataError(f"{path}: holds Python objects, which are never unpickled; save a numeric "
                                f"array (N, J, 2|3)") from None
            raise DataError(f"{path}: cannot read .npy ({e})") from None
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: cannot read .npy ({e})") from None
    if path.suffix == ".json":
        return _load_json(path)
    raise DataError(f"{path}: expected a .json or .npy keypoint file or a folder of OpenPose .json files")

def _is_coco_like(data) -> bool:
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return True
    return isinstance(data, list) and len(data) > 0 and isinstance(data[0], dict)

def _coco_entries(path: Path, data) -> list:
    entries = data["annotations"] if isinstance(data, dict) else data
    if not entries:
        raise DataError(f"{path}: no detections (empty list)")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise DataError(f"{path}: entry {i} is not an object with 'image_id' and 'keypoints'")
        for key in ("image_id", "keypoints"):
            if key not in e:
                raise DataError(f"{path}: entry {i} has no {key!r} key (expected COCO results: "
                                f"{{'image_id', 'keypoints', 'score'}})")
        if not isinstance(e["keypoints"], list) or len(e["keypoints"]) % 3:
            n = len(e["keypoints"]) if isinstance(e["keypoints"], list) else type(e["keypoints"]).__name__
            raise DataError(f"{path}: entry {i} 'keypoints' has {n} values; expected a flat list of [x, y, v] triplets")
    return entries

def _detect_openpose(path: Path, data) -> str:
    people = data.get("people")
    if not isinstance(people, list):
        raise DataError(f"{path}: 'people' is not a list (expected OpenPose JSON)")
    for i, p in enumerate(people):
        if not isinstance(p, dict) or "pose_keypoints_2d" not in p:
            raise DataError(f"{path}: people[{i}] has no 'pose_keypoints_2d' key (expected OpenPose BODY_25 JSON)")
        if not isinstance(p["pose_keypoints_2d"], list):
            raise DataError(f"{path}: people[{i}].pose_keypoints_2d is a {type(p['pose_keypoints_2d']).__name__}; "
                            f"expected a list of 75 numbers (BODY_25: 25 [x, y, c] triplets)")
        n = len(p["pose_keypoints_2d"])
        if n != 75:
            raise DataError(f"{path}: people[{i}].pose_keypoints_2d has {n} values ({n / 3:g} joints); "
                            f"expected 75 (BODY_25: 25 [x, y, c] triplets)")
    return "body25"

def _as_array(path: Path, data) -> np.ndarray:
    if isinstance(data, dict):
        for key in ("keypoints_2d", "keypoints"):
            if key in data:
                data = data[key]
                break
        else:
            raise DataError(f"{path}: JSON object without 'people', 'annotations' or 'keypoints'; expected "
                            f"COCO results, OpenPose or an (N, J, 2) array")
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{path}: not a rectangular numeric array of shape (N, J, 2)") from None
    if arr.size == 0:
        raise DataError(f"{path}: no keypoints (empty array)")
    return arr

def read_keypoint_array(path: str | os.PathLike) -> np.ndarray:
    """A .npy or .json keypoint array file -> its numbers, float64, shaped as stored: the array
    reader of `read_keypoints` (its one-line DataErrors naming the file); `diffupose sample`
    reads its complete (N, J, 2) input with it."""
    path = Path(path)
    return _as_array(path, _read_raw(path))

def _split_scores(path: Path, values: np.ndarray, min_score: float, where: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values: (N, K, 3) -> xy (N, K, 2) with NaN where missing, scores (N, K), present (N, K)."""
    xy = values[..., :2].copy()
    third = values[..., 2]
    finite = np.isfinite(third)
    flags = finite.all() and np.isin(third, (0.0, 1.0, 2.0)).all() and (third == 2.0).any()
    if flags:  # COCO visibility flags: 0 = not labelled, 1/2 = labelled
        scores = (third > 0).astype(np.float64)
    else:
        bad = ~np.isnan(third) & ~((third >= 0) & (third <= 1))
        if bad.any():
            n, k = np.argwhere(bad)[0]
            raise DataError(f"{path}: score {third[n, k]:g} at {where} {n} joint {k} is out of range; "
                            f"expected scores in [0, 1] or COCO visibility flags 0/1/2")
        scores = np.where(finite, third, 0.0)
    present = (scores >= min_score) & (scores > 0) & np.isfinite(xy).all(axis=-1)
    xy[~present] = np.nan
    return xy, scores, present

def _read_coco(path: Path, data, fmt: str, min_score: float, people: str) -> Keypoints:
    entries = _coco_entries(path, data)
    want = FILE_JOINTS[fmt]
    rows, image_ids, det_scores = [], [], []
    for i, e in enumerate(entries):
        n = len(e["keypoints"]) // 3
        if n != want:
            raise DataError(f"{path}: entry {i} has {n} keypoints; expected {want} for {fmt}")
        rows.append(e["keypoints"])
        image_ids.append(str(e["image_id"]))
        det_scores.append(_number(e.get("score", 1.0), 1.0))
    try:
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), want, 3)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{path}: keypoints are not all numbers") from None
    values = values[:, :17] if fmt == "coco_wholebody" else values
    _check_coordinates(path, values, fmt, lambda n: f"entry {n} (image_id {image_ids[n]})")
    xy, scores, present = _split_scores(path, values, min_score, "entry")
    order = _image_order(image_ids)
    frame = np.asarray(image_ids, dtype=object)
    person = np.zeros(len(rows), dtype=np.int64)
    seen: dict[str, int] = {}
    for i in order:
        person[i] = seen.get(image_ids[i], 0)
        seen[image_ids[i]] = person[i] + 1
    kp = Keypoints(xy, scores, present, fmt, str(path), frame.astype(str), person, pixels=True)
    kp = _reorder(kp, order)
    return _select_people(kp, people, np.asarray(det_scores)[order])

def _number(value, default: float) -> float:
    """A finite JSON number as float, else `default` (detection scores only rank people)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            return default
        return value if np.isfinite(value) else default
    return default

def _check_coordinates(path, values: np.ndarray, fmt: str, where) -> None:
    """One-line DataError naming the file, sample and joint for a coordinate that cannot be an
    image coordinate: infinite, or |value| > MAX_COORDINATE for a joint the file claims as
    detected (score > 0, or every joint of an array without scores). NaN is a missing joint.
    values: (N, K, 2) or (N, K, 3) in the file's layout; where(n) names sample n."""
    xy = values[..., :2]
    claimed = ~np.isnan(xy).any(axis=-1)
    if values.shape[-1] == 3:
        claimed &= ~(values[..., 2] <= 0) & ~np.isnan(values[..., 2])
    bad = claimed & ~(np.abs(np.nan_to_num(xy, nan=0.0)) <= MAX_COORDINATE).all(axis=-1)
    if bad.any():
        n, k = (int(v) for v in np.argwhere(bad)[0])
        names = LAYOUTS.get(fmt, ())
        joint = f"joint {k} ({names[k]})" if k < len(names) else f"joint {k}"
        x, y = xy[n, k]
        raise DataError(f"{path}: {where(n)} {joint} is at ({x:g}, {y:g}), not an image coordinate (non-finite or "
                        f"|value| > {MAX_COORDINATE:g}); check the detector export and its units")

def _image_order(image_ids: Sequence[str]) -> np.ndarray:
    """Stable order of entries by image id (numerically when every id is a number)."""
    if all(re.fullmatch(r"-?\d+", s) for s in image_ids):
        keys = [int(s) for s in image_ids]
    else:
        keys = [tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)) for s in image_ids]
    return np.asarray(sorted(range(len(image_ids)), key=lambda i: keys[i]), dtype=np.int64)

def _reorder(kp: Keypoints, order: np.ndarray) -> Keypoints:
    return replace(kp, keypoints=kp.keypoints[order], scores=kp.scores[order], present=kp.present[order],
                   frame=kp.frame[order], person=kp.person[order])

def _select_people(kp: Keypoints, people: str, ranking: np.ndarray) -> Keypoints:
    if people == "all":
        return kp
    if people != "best":
        raise DataError(f"{kp.source}: people must be 'all' or 'best', got {people!r}")
    keep = {}
    for i, f in enumerate(kp.frame.tolist()):
        if f not in keep or ranking[i] > ranking[keep[f]]:
            keep[f] = i
    index = np.asarray(sorted(keep.values()), dtype=np.int64)
    out = _reorder(kp, index)
    out.person[:] = 0
    return out

def _read_openpose(path: Path, min_score: float, people: str) -> Keypoints:
    files = sorted(path.glob("*.json"), key=_natural_key) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: folder holds no OpenPose .json files")
    # A folder's frame ids: the frame number in each file name (OpenPose writes <video>_000000000012_keypoints.json)
    # when every name has one and they increase in file order, so skipped frames stay gaps; else the file's position.
    numbers = trailing_numbers([f.stem for f in files]) if path.is_dir() else None
    if numbers is not None and not np.all(np.diff(numbers) > 0):
        numbers = None
    rows, frames, persons, origin = [], [], [], []
    for fi, file in enumerate(files):
        data = _load_json(file)
        if not isinstance(data, dict) or "people" not in data:
            raise DataError(f"{file}: no 'people' key (expected OpenPose BODY_25 JSON)")
        _detect_openpose(file, data)
        for pi, p in enumerate(data["people"]):
            rows.append(p["pose_keypoints_2d"])
            frames.append(file.stem if not path.is_dir() else str(fi if numbers is None else int(numbers[fi])))
            persons.append(pi)
            origin.append(f"frame file {file.name} people[{pi}]" if path.is_dir() else f"people[{pi}]")
    if not rows:
        raise DataError(f"{path}: no people detected in any frame")
    try:
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), 25, 3)
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{path}: pose_keypoints_2d values are not all numbers") from None
    _check_coordinates(path, values, "body25", lambda n: origin[n])
    # OpenPose writes (0, 0, 0) for joints it did not find.
    values[(values[..., 2] == 0)] = np.array([np.nan, np.nan, 0.0])
    xy, scores, present = _split_scores(path, values, min_score, "person")
    kp = Keypoints(xy, scores, present, "body25", str(path), np.asarray(frames), np.asarray(persons),
                   pixels=True, meta={"files": len(files)})
    empty = len(files) - len(set(frames))
    if empty:
        log.warning("%s: %d of %d frames have no person; they are left out", path, empty, len(files))
    ranking = np.where(present, scores, 0.0).mean(axis=1)
    return _select_people(kp, people, ranking)

def _read_array(path: Path, data, fmt: str, min_score: float) -> Keypoints:
    arr = _as_array(path, data)
    if arr.ndim == 2:
        arr = arr[None]
    want = FILE_JOINTS[fmt]
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise DataError(f"{path}: array of shape {arr.shape}; expected (N, {want}, 2) or (N, {want}, 3)")
    if arr.shape[1] != want:
        raise DataError(f"{path}: {arr.shape[1]} joints; expected {want} for {fmt}")
    if fmt == "coco_wholebody":
        arr = arr[:, :17]
    _check_coordinates(path, arr, fmt, lambda n: f"sample {n}")
    if arr.shape[-1] == 3:
        xy, scores, present = _split_scores(path, arr, min_score, "sample")
    else:
        xy = arr.copy()
        present = np.isfinite(xy).all(axis=-1)
        scores = present.astype(np.float64)
        xy[~present] = np.nan
    n = len(xy)
    return Keypoints(xy, scores, present, fmt, str(path), np.arange(n).astype(str), np.zeros(n, dtype=np.int64),
                     pixels=looks_like_pixels(xy))

def read_keypoints(path: str | os.PathLike, format: str | None = None, *, min_score: float = 0.3,
                   people: str = "all") -> Keypoints:
    """Read a keypoint file or OpenPose folder (see the module docstring) in its own layout.

    format: one of `FORMATS`, or None to detect it. min_score: keypoints scored below it are
    missing. people: `all` (every detection is a sample) or `best` (the highest-scoring person
    of each frame: a track). Raises DataError (one line, naming the file) on any problem,
    including a file in which every keypoint is missing.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise DataError(f"{path}: unknown keypoint format {format!r}; known: {', '.join(FORMATS)}")
    if not 0.0 <= float(min_score) <= 1.0:
        raise DataError(f"{path}: min_score must be in [0, 1], got {min_score}")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    data = None if path.is_dir() else _read_raw(path)
    fmt = format or detect_format(path, data)
    if path.is_dir() or (isinstance(data, dict) and "people" in data):
        if fmt != "body25":
            raise DataError(f"{path}: OpenPose JSON holds BODY_25 keypoints, not {fmt}")
        kp = _read_openpose(path, min_score, people)
        how = "OpenPose JSON"
    elif _is_coco_like(data):
        if fmt not in ("coco17", "coco_wholebody", "halpe26"):
            raise DataError(f"{path}: COCO-style results hold coco17, coco_wholebody or halpe26 keypoints, not {fmt}")
        kp = _read_coco(path, data, fmt, min_score, people)
        how = f"COCO-style results with {FILE_JOINTS[fmt]} keypoints per entry"
    else:
        kp = _read_array(path, data, fmt, min_score)
        how = f"{FILE_JOINTS[fmt]}-joint array"
    return _with_layout(kp, path, fmt, format is not None, how, min_score)


def keypoints_from_array(values, format: str | None = None, *, scores=None, min_score: float = 0.3,
                         source: str = "<array>", frames=None) -> Keypoints:
    """Keypoints held in memory -> Keypoints, read exactly as an array file would be: `values`
    (F, J, 2) or (F, J, 3) (third value = score), or (J, 2|3) for one frame; `scores` (F, J)
    optional scores (for 2-column values); `format` the layout (None: by joint count, with the
    17-joint H36M/COCO check). Frames are numbered `frames` (F,) increasing integers, default
    0..F-1 (a track). `source` names the array in error messages. Raises DataError (one line) as
    `read_keypoints`."""
    arr = np.asarray(values, dtype=np.float64)
    if scores is not None:
        score_arr = np.asarray(scores, dtype=np.float64)
        if arr.shape[-1] != 2 or score_arr.shape != arr.shape[:-1]:
            raise DataError(f"{source}: scores of shape {score_arr.shape} need keypoints (F, J, 2) of the same "
                            f"(F, J); got keypoints {arr.shape}")
        arr = np.concatenate([arr, score_arr[..., None]], axis=-1)
    if format is not None and format not in FORMATS:
        raise DataError(f"{source}: unknown keypoint format {format!r}; known: {', '.join(FORMATS)}")
    path = Path(source)
    fmt = format or detect_format(path, arr)
    kp = _read_array(path, arr, fmt, min_score)
    if frames is not None:
        kp.frame = _frame_ids(source, frames, len(kp))
    return _with_layout(kp, path, fmt, format is not None, f"{FILE_JOINTS[fmt]}-joint array", min_score)


def _frame_ids(source: str, frames, n: int) -> np.ndarray:
    """Frame numbers given for the n rows of an array -> their string ids; one-line DataError
    unless they are n strictly increasing whole numbers."""
    try:
        values = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{source}: frames must be whole frame numbers, got {type(frames).__name__}") from None
    if values.shape != (n,):
        raise DataError(f"{source}: frames of shape {values.shape} for {n} rows; give one frame number per row")
    if not (np.all(np.isfinite(values)) and np.all(values == np.round(values)) and np.all(np.diff(values) > 0)):
        raise DataError(f"{source}: frames must be strictly increasing whole frame numbers")
    return values.astype(np.int64).astype(str)


def _with_layout(kp: Keypoints, path: Path, fmt: str, given: bool, how: str, min_score: float) -> Keypoints:
    """The checks and the card's `layout` words every reader ends with: refuse all-missing input,
    say whether the layout was given or detected (a detected h36m17 must look like H36M-17)."""
    if not kp.present.any():
        raise DataError(f"{path}: every keypoint is missing (scores below min_score {min_score:g}, "
                        f"visibility 0 or NaN)")
    if given:
        kp.meta["layout"] = f"{fmt} (given with --format)"
    elif fmt == "h36m17":
        kp.meta["layout"] = f"h36m17 (detected: 17-joint array, {_require_h36m17_geometry(kp)})"
    else:
        kp.meta["layout"] = f"{fmt} (detected: {how})"
    return kp

def _require_h36m17_geometry(kp: Keypoints) -> str:
    """A 17-joint array read without a format must look like H36M-17; else a one-line DataError
    saying which layout it looks like and how to pass the format. Returns the evidence in words."""
    layout, ev = guess_layout17(kp.keypoints, kp.present)
    def num(v: float) -> str:
        return f"{v:.2f}" if np.isfinite(v) else "unknown"

    words = (f"H36M-17 rule residual {num(ev['h36m17'])}, COCO-17 head spread {num(ev['coco17'])}; "
             f"<= {LAYOUT17_LIMIT:g} fits")
    if layout == "h36m17":
        return words
    if layout == "coco17":
        what = "looks like COCO-17 (its first five joints cluster like a nose, eyes and ears; the H36M-17 rules fail)"
    elif ev["h36m17"] <= LAYOUT17_LIMIT:
        what = "fits both H36M-17 and COCO-17"
    else:
        what = "does not look like H36M-17 (its pelvis/thorax/spine/neck rules fail), nor clearly like COCO-17"
    raise DataError(f"{kp.source}: 17-joint array {what}: {words}; 17 joints is both layouts' count, so pass "
                    f"the layout: --format coco17 (format='coco17') or --format h36m17")

def check_image_range(kp: Keypoints, image_size: tuple[int, int] | None) -> None:
    """One-line DataError naming the file, the sample (and its frame) and the joint for a present
    joint that is not a plausible image coordinate once normalised (`normalize_keypoints` of its
    pixels with `image_size`, or the values themselves for normalised input): non-finite, or
    |value| > MAX_NORMALISED (more than 4.5 image widths outside the image)."""
    xy = np.where(kp.present[..., None], kp.keypoints, 0.0)
    if kp.pixels and image_size is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            xy = normalize_keypoints(xy, image_size, kp.source)
    with np.errstate(invalid="ignore"):
        bad = kp.present & ~(np.abs(xy) <= MAX_NORMALISED).all(axis=-1)
    if not bad.any():
        return
    n, k = (int(v) for v in np.argwhere(bad)[0])
    names = LAYOUTS.get(kp.format, ())
    joint = f"joint {k} ({names[k]})" if k < len(names) else f"joint {k}"
    x, y = kp.keypoints[n, k]
    unit = f" px, more than 4.5 image widths outside the {image_size[0]} x {image_size[1]} image" if (
        kp.pixels and image_size is not None) else " (normalised)"
    raise DataError(f"{kp.source}: sample {n} (frame {kp.frame[n]}) {joint} is at ({x:g}, {y:g}){unit}: not a "
                    f"plausible image coordinate (|normalised| > {MAX_NORMALISED:g}); check --image-size and the "
                    f"detector's units")


# ----------------------------------------------------------------------------------------------
# Writing (synthetic examples, the mapping-cost benchmark, tests)


def _triplets(xy: np.ndarray, scores: np.ndarray, decimals: int = 1) -> list[list[float]]:
    """(N, K, 2) with NaN + (N, K) scores -> flat [x, y, s] lists; missing joints as 0, 0, 0."""
    out = []
    for p, s in zip(xy, scores):
        row = []
        for (x, y), c in zip(p, s):
            ok = np.isfinite(x) and np.isfinite(y) and c > 0
            row += [round(float(x), decimals), round(float(y), decimals), round(float(c), 3)] if ok else [0.0, 0.0, 0.0]
        out.append(row)
    return out

def coco_results_json(xy: np.ndarray, scores: np.ndarray, image_ids: Sequence) -> str:
    """COCO keypoint results (a list of {image_id, category_id, keypoints, score}) as JSON text.
    xy: (N, K, 2) pixels (NaN = not detected); scores: (N, K) in [0, 1]."""
    entries = []
    for tri, s, img in zip(_triplets(xy, scores), scores, image_ids):
        entries.append({"image_id": img, "category_id": 1, "keypoints": tri,
                        "score": round(float(np.mean(s)), 3)})
    return json.dumps(entries, separators=(",", ":"))

def openpose_json(xy: np.ndarray, scores: np.ndarray) -> str:
    """One OpenPose BODY_25 frame file (people = the rows of xy (P, 25, 2), scores (P, 25))."""
    people = [{"person_id": [-1], "pose_keypoints_2d": tri} for tri in _triplets(xy, scores)]
    return json.dumps({"version": 1.3, "people": people}, separators=(",", ":"))

def synthetic_detections(keypoints_px: np.ndarray, *, noise_px: float = 2.0, num_dropped: int = 2,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like degradation of exact 2D keypoints, for examples and tests.

    keypoints_px: (N, J, 2) pixels -> noisy pixels (N, J, 2) and scores (N, J): Gaussian noise
    of `noise_px`, scores ~ U(0.6, 1) and lower where the noise is large, and in each sample
    `num_dropped` random joints scored below 0.2 (missing at the default min_score 0.3).
    """
    rng = np.random.default_rng(seed)
    n, j, _ = keypoints_px.shape
    noise = rng.normal(0.0, noise_px, size=keypoints_px.shape)
    xy = keypoints_px + noise
    scores = np.clip(rng.uniform(0.6, 1.0, size=(n, j)) - 0.02 * np.linalg.norm(noise, axis=-1), 0.35, 1.0)
    for i in range(n):
        drop = rng.choice(j, size=min(num_dropped, j), replace=False)
        scores[i, drop] = rng.uniform(0.02, 0.2, size=len(drop))
    return xy, scores
