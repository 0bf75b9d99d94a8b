"""2D keypoints from detectors: readers, layouts and the mapping to the model's skeleton.

Supported inputs (`format=` names; auto-detected by structure and joint count):

- `coco17`: COCO keypoint results JSON, a list of `{"image_id", "keypoints": [x, y, v] x 17,
  "score"}` (top-down detectors write this); a COCO annotation file (`{"annotations": [...]}`)
  is read the same way;
- `coco_wholebody`: the same structure with 133 triplets; the first 17 (the COCO body) are used;
- `halpe26`: AlphaPose's Halpe-26 results (the same structure with 26 triplets);
- `body25`: OpenPose BODY_25 per-frame JSON (`{"people": [{"pose_keypoints_2d": [x, y, c] x 25}]}`);
  a folder of per-frame files (natural filename order) is one track;
- `mpii16`: MPII-16 arrays; `h36m17` / `humaneva15`: plain arrays in the model's own layout.
  Arrays are `.npy` or `.json` of shape (N, J, 2) or (N, J, 3) (third value = score) or (J, 2|3).
  17 joints is both H36M-17's and COCO-17's count: without `format`, a 17-joint array is read as
  `h36m17` only when its geometry says so (`guess_layout17`), else refused with a one-line error
  naming the layout it looks like and `--format` (pass `format="coco17"` for COCO-ordered arrays).

Values that cannot be image coordinates are refused with a one-line DataError naming the file,
the sample and the joint: any infinite coordinate or score, and any coordinate beyond
`MAX_COORDINATE` (1e6: no image is a million pixels across) of a joint the file claims as
detected (score > 0). Once the image size is known, `check_image_range` also refuses joints
more than `MAX_NORMALISED` (10) normalised units from the image centre, i.e. beyond 4.5 image
widths outside the image (normalised units: the image width spans [-1, 1]).

A keypoint is missing when its score is below `min_score`, its visibility flag is 0, or a
coordinate is NaN (never inf: that is an error, as above). Third values are scores in [0, 1],
or COCO visibility flags {0, 1, 2} (0 = missing); anything else is an error.

Mapping to H36M-17 happens in two stages. First the joints a layout has are copied
(`LAYOUT_TO_H36M`); then every H36M joint still missing is derived from the others by the
rules below, in order (`DERIVED_JOINTS`; a derived joint is missing when any of its sources is).
Weights were fitted by least squares on Human3.6M S1 (a training subject) ground-truth 2D
projections, all four cameras, every 10th frame; the residual is the mean distance of the rule
to the true joint there, in normalised screen units (the mean pelvis-to-thorax length is 0.215).
HumanEva-15 is reached through H36M-17 (`H36M17_TO_HUMANEVA15`).

Derived joints (H36M-17 name = rule; fitted residual):

| joint | rule | residual |
|---|---|---|
| hip (pelvis) | 0.50·left_hip + 0.50·right_hip | 0.0006 |
| thorax | mid_hip + 1.14·(mid_shoulder − mid_hip) | 0.0073 |
| spine | hip + 0.47·(thorax − hip) | 0.0106 |
| neck_nose | thorax + 0.50·(head − thorax) | 0.0190 |
| head (top) | thorax + 1.56·(neck_nose − thorax) | 0.0348 |

(mid_hip = mean of the hips, mid_shoulder = mean of the shoulders.)

Joints each layout provides directly (anything else is derived):

| H36M-17 joint | coco17 | halpe26 | body25 | mpii16 |
|---|---|---|---|---|
| hip | derived | hip | MidHip | pelvis |
| right_hip | right_hip | right_hip | RHip | right_hip |
| right_knee | right_knee | right_knee | RKnee | right_knee |
| right_ankle | right_ankle | right_ankle | RAnkle | right_ankle |
| left_hip | left_hip | left_hip | LHip | left_hip |
| left_knee | left_knee | left_knee | LKnee | left_knee |
| left_ankle | left_ankle | left_ankle | LAnkle | left_ankle |
| spine | derived | derived | derived | derived |
| thorax | derived | derived | derived | thorax |
| neck_nose | nose | nose | Nose | derived |
| head | derived | head | derived | head_top |
| left_shoulder | left_shoulder | left_shoulder | LShoulder | left_shoulder |
| left_elbow | left_elbow | left_elbow | LElbow | left_elbow |
| left_wrist | left_wrist | left_wrist | LWrist | left_wrist |
| right_shoulder | right_shoulder | right_shoulder | RShoulder | right_shoulder |
| right_elbow | right_elbow | right_elbow | RElbow | right_elbow |
| right_wrist | right_wrist | right_wrist | RWrist | right_wrist |

(coco_wholebody maps as coco17.)

When the model was trained without missing-joint masking (`model.missing_joints` false), a
missing joint is filled (`diffupose.masking.fill_missing`): linearly interpolated in time from
the frames of the track where it is present, else taken from the mean H36M-17 pose
(`MEAN_POSE_2D_H36M17`, kept here with the layouts) fitted by scale and translation to the
present joints.
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

from ..camera import normalize_screen_coordinates
from ..errors import DataError
from ..skeleton import H36M17, HUMANEVA15, Skeleton

__all__ = [
    "LAYOUTS", "FORMATS", "LAYOUT_TO_H36M", "DERIVED_JOINTS", "H36M17_TO_HUMANEVA15", "MEAN_POSE_2D_H36M17",
    "Keypoints", "read_keypoints", "detect_format", "to_h36m17", "to_skeleton",
    "derived_joints_table", "layout_table", "looks_like_pixels", "normalize_keypoints",
    "MAX_COORDINATE", "MAX_NORMALISED", "LAYOUT17_LIMIT", "layout17_evidence", "guess_layout17",
    "check_image_range",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# Layouts (data)

COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                "left_knee", "right_knee", "left_ankle", "right_ankle")
HALPE26_NAMES = COCO17_NAMES + ("head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe",
                                "right_small_toe", "left_heel", "right_heel")
BODY25_NAMES = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
                "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
                "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
MPII16_NAMES = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
                "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
                "left_shoulder", "left_elbow", "left_wrist")

# format name -> joint names of the file (coco_wholebody: only the first 17 of its 133 are used)
LAYOUTS: dict[str, tuple[str, ...]] = {
    "coco17": COCO17_NAMES,
    "coco_wholebody": COCO17_NAMES,
    "halpe26": HALPE26_NAMES,
    "body25": BODY25_NAMES,
    "mpii16": MPII16_NAMES,
    "h36m17": H36M17.joint_names,
    "humaneva15": HUMANEVA15.joint_names,
}
FORMATS: tuple[str, ...] = tuple(LAYOUTS)
_FILE_JOINTS = {"coco17": 17, "coco_wholebody": 133, "halpe26": 26, "body25": 25, "mpii16": 16,
                "h36m17": 17, "humaneva15": 15}
_LIMBS = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "left_shoulder",
          "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist")
_BODY25_LIMBS = ("RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "LShoulder", "LElbow", "LWrist",
                 "RShoulder", "RElbow", "RWrist")

# Plausible coordinates (module docstring): any file, and once the image size is known.
MAX_COORDINATE = 1e6
MAX_NORMALISED = 10.0
# 17-joint arrays (`guess_layout17`): a layout is plausible when its rule residual, in units of
# the body's RMS radius, is at most this (measured: H36M-17 ground truth and Stacked Hourglass
# detections of S1, S5-S8 exceed it in 0.02% of single frames, COCO-ordered poses pass it in < 0.01%).
LAYOUT17_LIMIT = 0.25

# Stage 1: H36M-17 joint -> the layout joint copied into it.
LAYOUT_TO_H36M: dict[str, dict[str, str]] = {
    "coco17": {**{j: j for j in _LIMBS}, "neck_nose": "nose"},
    "coco_wholebody": {**{j: j for j in _LIMBS}, "neck_nose": "nose"},
    "halpe26": {**{j: j for j in _LIMBS}, "hip": "hip", "neck_nose": "nose", "head": "head"},
    "body25": {**dict(zip(_LIMBS, _BODY25_LIMBS)), "hip": "MidHip", "neck_nose": "Nose"},
    "mpii16": {**{j: j for j in _LIMBS}, "hip": "pelvis", "thorax": "thorax", "head": "head_top"},
    "h36m17": {j: j for j in H36M17.joint_names},
    "humaneva15": {"hip": "pelvis", "thorax": "thorax", "head": "head", **{j: j for j in _LIMBS}},
}

# Stage 2, the one table of derived joints: (H36M-17 joint, ((source H36M-17 joint, weight), ...),
# fitted residual). Applied in this order to joints still missing; sources may be derived earlier.
DERIVED_JOINTS: tuple[tuple[str, tuple[tuple[str, float], ...], float], ...] = (
    ("hip", (("left_hip", 0.5), ("right_hip", 0.5)), 0.0006),
    # thorax = mid_hip + 1.14 (mid_shoulder - mid_hip)
    ("thorax", (("left_shoulder", 0.57), ("right_shoulder", 0.57), ("left_hip", -0.07), ("right_hip", -0.07)),
     0.0073),
    ("spine", (("hip", 0.53), ("thorax", 0.47)), 0.0106),
    ("neck_nose", (("thorax", 0.50), ("head", 0.50)), 0.0190),
    ("head", (("thorax", -0.56), ("neck_nose", 1.56)), 0.0348),
)
_DERIVED_TEXT = {
    "hip": ("hip (pelvis)", "0.50·left_hip + 0.50·right_hip"),
    "thorax": ("thorax", "mid_hip + 1.14·(mid_shoulder − mid_hip)"),
    "spine": ("spine", "hip + 0.47·(thorax − hip)"),
    "neck_nose": ("neck_nose", "thorax + 0.50·(head − thorax)"),
    "head": ("head (top)", "thorax + 1.56·(neck_nose − thorax)"),
}

# HumanEva-15 joint -> H36M-17 joint index (pelvis, thorax, arms, legs, head).
H36M17_TO_HUMANEVA15: tuple[int, ...] = (0, 8, 11, 12, 13, 14, 15, 16, 4, 5, 6, 1, 2, 3, 10)

# Mean H36M-17 2D pose (pelvis at 0, y down, in units of the pelvis-to-thorax length) over Human3.6M S1
# ground-truth projections (4 cameras, every 10th frame; back views mirrored to face the camera);
# used only to fill joints for a model trained without masking.
MEAN_POSE_2D_H36M17 = np.array([
    [0.000, 0.000], [-0.245, -0.018], [-0.157, 0.683], [-0.139, 1.496], [0.245, 0.018], [0.171, 0.696],
    [0.089, 1.523], [-0.023, -0.464], [0.003, -0.971], [-0.010, -1.140], [-0.009, -1.334], [0.258, -0.845],
    [0.428, -0.376], [0.344, -0.214], [-0.261, -0.855], [-0.416, -0.416], [-0.307, -0.392],
], dtype=np.float64)


def derived_joints_table() -> str:
    """The derived-joint rules as a Markdown table (the module docstring and README carry it)."""
    lines = ["| joint | rule | residual |", "|---|---|---|"]
    for joint, _, residual in DERIVED_JOINTS:
        name, rule = _DERIVED_TEXT[joint]
        lines.append(f"| {name} | {rule} | {residual:.4f} |")
    return "\n".join(lines)


def layout_table() -> str:
    """Markdown table: per H36M-17 joint, the layout joint copied into it or `derived`."""
    layouts = ("coco17", "halpe26", "body25", "mpii16")
    lines = ["| H36M-17 joint | " + " | ".join(layouts) + " |", "|---|" + "---|" * len(layouts)]
    for joint in H36M17.joint_names:
        lines.append(f"| {joint} | " + " | ".join(LAYOUT_TO_H36M[lay].get(joint, "derived") for lay in layouts) + " |")
    return "\n".join(lines)


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
    want = _FILE_JOINTS[fmt]
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
    rows, frames, persons, origin = [], [], [], []
    for fi, file in enumerate(files):
        data = _load_json(file)
        if not isinstance(data, dict) or "people" not in data:
            raise DataError(f"{file}: no 'people' key (expected OpenPose BODY_25 JSON)")
        _detect_openpose(file, data)
        for pi, p in enumerate(data["people"]):
            rows.append(p["pose_keypoints_2d"])
            frames.append(str(fi) if path.is_dir() else file.stem)
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
    want = _FILE_JOINTS[fmt]
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
        how = f"COCO-style results with {_FILE_JOINTS[fmt]} keypoints per entry"
    else:
        kp = _read_array(path, data, fmt, min_score)
        how = f"{_FILE_JOINTS[fmt]}-joint array"
    if not kp.present.any():
        raise DataError(f"{path}: every keypoint is missing (scores below min_score {min_score:g}, "
                        f"visibility 0 or NaN)")
    if format is not None:
        kp.meta["layout"] = f"{fmt} (given with --format)"
    elif fmt == "h36m17":
        kp.meta["layout"] = f"h36m17 (detected: 17-joint array, {_require_h36m17_geometry(kp)})"
    else:
        kp.meta["layout"] = f"{fmt} (detected: {how})"
    return kp


# ----------------------------------------------------------------------------------------------
# 17 joints: H36M-17 or COCO-17?


def _body_scale(xy: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(N,) RMS distance of the present joints from their centroid (the same under any joint
    order); NaN for samples with fewer than 3 present joints or no extent."""
    w = present.astype(np.float64)
    x = np.where(present[..., None], xy, 0.0)
    n = np.maximum(w.sum(axis=1), 1.0)
    centre = x.sum(axis=1) / n[:, None]
    scale = np.sqrt((((x - centre[:, None]) ** 2).sum(axis=-1) * w).sum(axis=1) / n)
    return np.where((w.sum(axis=1) >= 3) & (scale > 0), scale, np.nan)


def layout17_evidence(xy: np.ndarray, present: np.ndarray) -> dict[str, float]:
    """How well a 17-joint array fits each layout, as residuals in units of the body's RMS radius
    (the median over samples; NaN when no sample can tell). Small = plausible (`LAYOUT17_LIMIT`).

    - `h36m17`: the mean residual of the derived-joint rules (`DERIVED_JOINTS`: the pelvis midway
      between the hips, the thorax above the hips' and shoulders' midpoints, the spine on the
      pelvis-thorax line, the neck/nose between thorax and head) read with the H36M-17 joint names;
      the head rule is left out (it is the neck/nose rule inverted).
    - `coco17`: the mean distance of COCO's first five joints (nose, eyes, ears) from their centroid,
      read with the COCO-17 joint names: they cluster at the head in COCO order (needs 2 present).

    xy: (N, 17, 2) any unit, NaN where missing; present: (N, 17) bool."""
    xy = np.asarray(xy, dtype=np.float64)
    present = np.asarray(present, dtype=bool) & np.isfinite(xy).all(axis=-1)
    scale = _body_scale(xy, present)
    h36m = {n: i for i, n in enumerate(LAYOUTS["h36m17"])}
    residuals = []
    for joint, terms, _ in DERIVED_JOINTS:
        if joint == "head":
            continue
        cols = [h36m[joint], *(h36m[src] for src, _ in terms)]
        predicted = sum(w * xy[:, h36m[src]] for src, w in terms)
        r = np.linalg.norm(xy[:, h36m[joint]] - predicted, axis=-1) / scale
        residuals.append(np.where(present[:, cols].all(axis=1), r, np.nan))
    coco = {n: i for i, n in enumerate(LAYOUTS["coco17"])}
    head = [coco[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    hp = present[:, head]
    count = hp.sum(axis=1)
    hx = np.where(hp[..., None], xy[:, head], 0.0)
    centre = hx.sum(axis=1) / np.maximum(count, 1)[:, None]
    spread = (np.linalg.norm(hx - centre[:, None], axis=-1) * hp).sum(axis=1) / np.maximum(count, 1) / scale
    spread = np.where(count >= 2, spread, np.nan)

    def median(v: np.ndarray) -> float:
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else float("nan")

    r = np.stack(residuals)
    known = np.isfinite(r).any(axis=0)
    per_sample = np.full(len(xy), np.nan)
    per_sample[known] = np.nanmean(r[:, known], axis=0)
    return {"h36m17": median(per_sample), "coco17": median(spread)}


def guess_layout17(xy: np.ndarray, present: np.ndarray) -> tuple[str | None, dict[str, float]]:
    """("h36m17" | "coco17" | None, `layout17_evidence`): the one layout whose residual is at
    most `LAYOUT17_LIMIT` while the other's is not (NaN counts as not); None when both or
    neither fit."""
    evidence = layout17_evidence(xy, present)
    fits = {k: bool(v <= LAYOUT17_LIMIT) for k, v in evidence.items()}
    if fits["h36m17"] != fits["coco17"]:
        return ("h36m17" if fits["h36m17"] else "coco17"), evidence
    return None, evidence


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


# ----------------------------------------------------------------------------------------------
# Mapping


def looks_like_pixels(xy: np.ndarray) -> bool:
    """True when coordinates cannot be normalised screen units (|value| > 2 somewhere)."""
    finite = np.asarray(xy)[np.isfinite(xy)]
    return bool(finite.size and np.abs(finite).max() > 2.0)


def normalize_keypoints(xy: np.ndarray, image_size: tuple[int, int] | None, source: str = "keypoints"
                        ) -> np.ndarray:
    """Pixels of a W x H image -> normalised screen units as the training data (camera's
    `normalize_screen_coordinates`); without `image_size` the input must already be normalised.
    NaN (missing) stays NaN."""
    if image_size is None:
        if looks_like_pixels(xy):
            big = float(np.nanmax(np.abs(xy)))
            raise DataError(f"{source}: coordinates look like pixels (largest |value| {big:.0f}); pass the "
                            f"image size (--image-size W H) so they can be normalised as the training data")
        return np.asarray(xy, dtype=np.float64)
    w, h = (int(v) for v in image_size)
    if w <= 0 or h <= 0:
        raise DataError(f"{source}: image size must be positive, got {w} x {h}")
    return normalize_screen_coordinates(np.asarray(xy, dtype=np.float64), w, h)


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


def to_h36m17(xy: np.ndarray, present: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Layout keypoints -> H36M-17: copy the joints the layout has, derive the rest.

    xy: (N, K, 2) any unit, NaN where missing; present: (N, K) bool -> (N, 17, 2) with NaN where
    missing, (N, 17) bool present (a derived joint is present when all its sources are)
    """
    if fmt not in LAYOUT_TO_H36M:
        raise DataError(f"unknown keypoint format {fmt!r}; known: {', '.join(FORMATS)}")
    names = LAYOUTS[fmt]
    if xy.shape[1] != len(names):
        raise DataError(f"{fmt}: expected {len(names)} joints, got {xy.shape[1]}")
    index = {n: i for i, n in enumerate(names)}
    h36m = {n: i for i, n in enumerate(H36M17.joint_names)}
    n = xy.shape[0]
    out = np.full((n, 17, 2), np.nan)
    ok = np.zeros((n, 17), dtype=bool)
    for target, src in LAYOUT_TO_H36M[fmt].items():
        out[:, h36m[target]] = xy[:, index[src]]
        ok[:, h36m[target]] = present[:, index[src]]
    for target, terms, _ in DERIVED_JOINTS:
        t = h36m[target]
        need = ~ok[:, t]
        if not need.any():
            continue
        value = sum(w * out[:, h36m[s]] for s, w in terms)
        good = need & np.all([ok[:, h36m[s]] for s, _ in terms], axis=0)
        out[good, t] = value[good]
        ok[good, t] = True
    out[~ok] = np.nan
    return out, ok


def to_skeleton(xy: np.ndarray, present: np.ndarray, fmt: str, skeleton: Skeleton
                ) -> tuple[np.ndarray, np.ndarray]:
    """Layout keypoints -> the model's skeleton (h36m17, or humaneva15 via H36M-17)."""
    if skeleton.name == "humaneva15" and fmt == "humaneva15":
        return xy, present
    out, ok = to_h36m17(xy, present, fmt)
    if skeleton.name == "h36m17":
        return out, ok
    if skeleton.name == "humaneva15":
        index = list(H36M17_TO_HUMANEVA15)
        return out[:, index], ok[:, index]
    raise DataError(f"no keypoint mapping to skeleton {skeleton.name!r}")


# ----------------------------------------------------------------------------------------------
# Writing layouts (synthetic examples, the mapping-cost benchmark, tests)


def from_h36m17(xy: np.ndarray, fmt: str) -> np.ndarray:
    """H36M-17 keypoints -> a layout, keeping only the joints that layout really has (copied
    from their H36M counterparts, `LAYOUT_TO_H36M`); every other joint is NaN.
    xy: (N, 17, C) -> (N, K, C), K the file's joint count (133 for coco_wholebody)."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape[1] != 17:
        raise ValueError(f"from_h36m17: expected 17 joints, got shape {xy.shape}")
    out = np.full((xy.shape[0], _FILE_JOINTS[fmt], xy.shape[2]), np.nan)
    index = {n: i for i, n in enumerate(LAYOUTS[fmt])}
    h36m = {n: i for i, n in enumerate(H36M17.joint_names)}
    for target, src in LAYOUT_TO_H36M[fmt].items():
        out[:, index[src]] = xy[:, h36m[target]]
    return out


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


EXAMPLES = (  # (file or folder name, format, H36M S8 sequence, camera index, first frame, frames, stride)
    ("coco17_S8_walking.json", "coco17", "Walking 1", 0, 0, 100, 2),
    ("openpose_S8_directions", "body25", "Directions 1", 1, 0, 40, 2),
)


def make_examples(data_dir: str | os.PathLike, out_dir: str | os.PathLike, *, noise_px: float = 3.0,
                  num_dropped: int = 2, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Regenerate the shipped example inputs (SYNTHETIC, from ground truth, not detector output).

    Human3.6M S8 (a held-out training subject) world poses from `data_dir`
    (h36m_3d17_train.npz) are projected through a real calibrated H36M camera (distortion
    included), degraded by `synthetic_detections` (Gaussian `noise_px`, scores, `num_dropped`
    low-scored joints per frame; seeded) and written as a COCO-17 results file and an OpenPose
    BODY_25 folder (`EXAMPLES`). Returns the written paths.
    """
    from ..camera import load_cameras
    from ..utils import atomic_write_text
    from .h36m import read_plain_h36m

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    source = data_dir / "h36m_3d17_train.npz"
    cameras = load_cameras("h36m")
    poses = read_plain_h36m([source], [("S8", seq) for _, _, seq, *_ in EXAMPLES])
    written = []
    for k, (name, fmt, seq, cam_index, first, count, stride) in enumerate(EXAMPLES):
        target = out_dir / name
        if target.exists() and not overwrite:
            raise DataError(f"{target} exists; pass overwrite=True to regenerate it")
        cam = cameras.camera("S8", cam_index)
        frames = np.arange(first, first + count * stride, stride)
        world = poses[("S8", seq)][frames]
        px = cam.project(cam.world_to_camera(world))
        layout_px = from_h36m17(px, fmt)
        have = np.isfinite(layout_px).all(axis=-1)
        xy, scores = synthetic_detections(np.nan_to_num(layout_px), noise_px=noise_px, num_dropped=0,
                                          seed=seed + k)
        rng = np.random.default_rng(seed + 100 + k)
        for i in range(len(xy)):  # drop joints among those the layout has
            drop = rng.choice(np.flatnonzero(have[i]), size=num_dropped, replace=False)
            scores[i, drop] = rng.uniform(0.02, 0.2, size=num_dropped)
        xy[~have] = np.nan
        scores[~have] = 0.0
        if fmt == "body25":
            target.mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(frames):
                path = target / f"{seq.split()[0].lower()}_{int(f):06d}_keypoints.json"
                atomic_write_text(path, openpose_json(xy[i:i + 1], scores[i:i + 1]) + "\n")
            written.append(target)
        else:
            atomic_write_text(target, coco_results_json(xy, scores, [int(f) for f in frames]) + "\n")
            written.append(target)
    return written
