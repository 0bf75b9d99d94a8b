"""Keypoint layouts as data and the mapping between them (`diffupose.data.keypoints` documents
the formats and the derived-joint rules; it re-exports everything here).

- the joint names of each detector layout (`LAYOUTS`, `FORMATS`) and how many joints its files
  hold (`FILE_JOINTS`);
- the mapping to H36M-17: joints copied (`LAYOUT_TO_H36M`), then derived (`DERIVED_JOINTS`) —
  `to_h36m17`, `to_skeleton`, and back to a layout (`from_h36m17`);
- which of H36M-17 and COCO-17 a 17-joint array looks like (`layout17_evidence`, `guess_layout17`);
- plausible coordinates (`MAX_COORDINATE`, `MAX_NORMALISED`), the bound beyond which input is
  pixels (`NORMALISED_BOUND`, `looks_like_pixels`) and pixels -> normalised units
  (`normalize_keypoints`).

`H36M17_TO_HUMANEVA15` and `MEAN_POSE_2D_H36M17` live with the skeletons (`diffupose.geometry.skeleton`:
the model floor fills missing joints with the mean pose) and are re-exported here.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..geometry.projection import normalize_screen_coordinates
from ..geometry.skeleton import H36M17, H36M17_TO_HUMANEVA15, HUMANEVA15, MEAN_POSE_2D_H36M17, Skeleton

__all__ = [
    "COCO17_NAMES", "HALPE26_NAMES", "BODY25_NAMES", "MPII16_NAMES", "LAYOUTS", "FORMATS", "FILE_JOINTS",
    "LAYOUT_TO_H36M", "DERIVED_JOINTS", "H36M17_TO_HUMANEVA15", "MEAN_POSE_2D_H36M17", "MAX_COORDINATE",
    "MAX_NORMALISED", "NORMALISED_BOUND", "LAYOUT17_LIMIT", "derived_joints_table", "layout_table", "to_h36m17", "to_skeleton",
    "from_h36m17", "layout17_evidence", "guess_layout17", "looks_like_pixels", "normalize_keypoints",
]

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

FILE_JOINTS = {"coco17": 17, "coco_wholebody": 133, "halpe26": 26, "body25": 25, "mpii16": 16,
                "h36m17": 17, "humaneva15": 15}

_LIMBS = ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "left_shoulder",
          "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist")

_BODY25_LIMBS = ("RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "LShoulder", "LElbow", "LWrist",
                 "RShoulder", "RElbow", "RWrist")

# Plausible coordinates (module docstring): any file, and once the image size is known.
MAX_COORDINATE = 1e6

MAX_NORMALISED = 10.0

# Normalised screen coordinates lie in [-1, 1] along x (and |y| <= h/w); pixel coordinates of any
# real image are far larger. Beyond this bound input is taken for pixels (`looks_like_pixels`).
NORMALISED_BOUND = 2.0

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
# Mapping


def looks_like_pixels(xy: np.ndarray) -> bool:
    """True when coordinates cannot be normalised screen units (|value| > NORMALISED_BOUND somewhere)."""
    finite = np.asarray(xy)[np.isfinite(xy)]
    return bool(finite.size and np.abs(finite).max() > NORMALISED_BOUND)

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

def from_h36m17(xy: np.ndarray, fmt: str) -> np.ndarray:
    """H36M-17 keypoints -> a layout, keeping only the joints that layout really has (copied
    from their H36M counterparts, `LAYOUT_TO_H36M`); every other joint is NaN.
    xy: (N, 17, C) -> (N, K, C), K the file's joint count (133 for coco_wholebody)."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape[1] != 17:
        raise ValueError(f"from_h36m17: expected 17 joints, got shape {xy.shape}")
    out = np.full((xy.shape[0], FILE_JOINTS[fmt], xy.shape[2]), np.nan)
    index = {n: i for i, n in enumerate(LAYOUTS[fmt])}
    h36m = {n: i for i, n in enumerate(H36M17.joint_names)}
    for target, src in LAYOUT_TO_H36M[fmt].items():
        out[:, index[src]] = xy[:, h36m[target]]
    return out


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
