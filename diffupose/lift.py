"""In-the-wild lifting: a 2D detector's keypoints -> 3D hypotheses, aggregate, spread and files.

`lift(keypoints, run)` reads a keypoint file in any supported layout
(`diffupose.data.keypoints`), maps it to the model's skeleton (copying the joints the layout
has, deriving the rest), normalises pixels the way the training data was (the camera module's
`normalize_screen_coordinates`, so it needs the image size), marks missing joints (score below
`min_score`, visibility 0, NaN) and lifts every sample through the shared inference path
(`diffupose.inference.Lifter`): H hypotheses, their aggregate and per-joint spread.

- Missing joints: a model trained with missing-joint masking (`model.missing_joints`) gets the
  mask (`keypoint_mask`, True = present); any other model gets the joints filled
  (`keypoints.fill_missing`) and a warning says so. `missing="fill"` fills for masked models too
  (in tracks, temporal interpolation can beat the model's own imputation).
- Root: with a focal length (pixels; principal point at the image centre) the root is placed
  in metric camera space by the ground-truth-free perspective fit
  (`aggregate.estimate_root_translation` over the present joints); otherwise the output is
  root-relative and the card says so.
- Smoothing (tracks only, off by default): `smooth = sigma > 0` applies a Gaussian filter of
  standard deviation sigma frames (truncated at 3 sigma, edges reflected) to the aggregate and
  the root along time; hypotheses and spread are never smoothed.

Outputs (`write_outputs`): `.npz` and `.json` with every hypothesis, the aggregate, the spread
and the card; `.bvh` of the aggregate sequence (`diffupose.bvh`); `.html` viewer with
`plotly.min.js` written once beside it (`diffupose.viz.lift_viewer`). Paths are checked before
any work; an existing file is never replaced without `overwrite=True`; writes are atomic.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .aggregate import AGGREGATIONS, estimate_root_translation
from .camera import normalize_intrinsics
from .data.keypoints import Keypoints, fill_missing, normalize_keypoints, read_keypoints, to_skeleton
from .errors import ConfigError, DataError
from .utils import atomic_path, atomic_write_text

__all__ = ["OUTPUT_FORMATS", "MISSING_MODES", "LiftResult", "lift", "lift_keypoints", "plan_outputs", "write_outputs",
           "smooth_sequence", "place_root", "prepare_keypoints"]

log = logging.getLogger(__name__)

OUTPUT_FORMATS: tuple[str, ...] = ("npz", "json", "bvh", "html")
# auto: mask for models trained with missing joints, fill otherwise; mask: require such a model;
# fill: always fill (temporal interpolation in tracks, else the fitted mean pose) and pass no mask.
MISSING_MODES: tuple[str, ...] = ("auto", "mask", "fill")
ROOT_RELATIVE = "root-relative: metres, camera frame (x right, y down, z forward), root joint at 0"
CAMERA_FRAME = ("camera frame: metres (x right, y down, z forward); root placed by the ground-truth-free "
                "perspective fit with the given focal length, principal point at the image centre")


@dataclass
class LiftResult:
    """Everything `lift` produced. N samples, H hypotheses, J joints of the model's skeleton.

    hypotheses: (N, H, J, 3) metres, root-relative, camera frame; aggregate: (N, J, 3) (smoothed
    when asked); spread: (N, J) metres, mean distance of the hypotheses to their mean;
    keypoints_2d: (N, J, 2) normalised input as the model saw it (missing joints filled);
    keypoint_mask: (N, J) True = present in the input; root_translation: (N, 3) metres or None;
    frame, person: (N,) where each sample came from; card: provenance and settings.
    """

    hypotheses: np.ndarray
    aggregate: np.ndarray
    spread: np.ndarray
    keypoints_2d: np.ndarray
    keypoint_mask: np.ndarray
    root_translation: np.ndarray | None
    frame: np.ndarray
    person: np.ndarray
    skeleton: object
    card: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.hypotheses.shape[0])

    @property
    def poses_camera(self) -> np.ndarray | None:
        """(N, J, 3) aggregate placed at the estimated root, or None without a focal length."""
        if self.root_translation is None:
            return None
        return self.aggregate + self.root_translation[:, None, :]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"hypotheses": self.hypotheses.astype(np.float32), "aggregate": self.aggregate.astype(np.float32),
               "spread": self.spread.astype(np.float32), "keypoints_2d": self.keypoints_2d.astype(np.float32),
               "keypoint_mask": self.keypoint_mask.astype(bool), "frame": self.frame.astype(str),
               "person": self.person.astype(np.int64)}
        if self.root_translation is not None:
            out["root_translation"] = self.root_translation.astype(np.float32)
        return out


# ----------------------------------------------------------------------------------------------
# Paths


def plan_outputs(out: str | os.PathLike, formats: Sequence[str] = OUTPUT_FORMATS, overwrite: bool = False
                 ) -> dict[str, Path]:
    """Output paths by format from `out` (a stem, or a path ending in one of the formats'
    suffixes). Raises ConfigError before any work when a format is unknown, the folder cannot
    be created, or a file exists and `overwrite` is False."""
    out = Path(out)
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown output format(s) {unknown}; known: {', '.join(OUTPUT_FORMATS)}")
    if not formats:
        raise ConfigError("no output format selected")
    stem = out.with_suffix("") if out.suffix.lstrip(".") in OUTPUT_FORMATS else out
    if out.suffix and out.suffix.lstrip(".") not in OUTPUT_FORMATS:
        raise ConfigError(f"{out}: output must end in one of .npz, .json, .bvh, .html (or have no suffix)")
    if stem.exists() and stem.is_dir():
        raise ConfigError(f"{out}: is a directory; give a file name such as {stem / 'lift.npz'}")
    parent = stem.parent
    for p in [parent, *parent.parents]:
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"{out}: {p} is a file, not a folder")
            if not os.access(p, os.W_OK):
                raise ConfigError(f"{out}: folder {p} is not writable")
            break
    paths = {f: stem.with_name(stem.name + "." + f) for f in formats}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists; pass --overwrite (overwrite=True) to replace it")
    return paths


# ----------------------------------------------------------------------------------------------
# Steps


def prepare_keypoints(kp: Keypoints, skeleton, image_size=None, fill: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keypoints in a file's layout -> (N, J, 2) normalised model-skeleton input with missing
    joints filled, (N, J) present mask, and counts for the card."""
    xy, present = to_skeleton(kp.keypoints, kp.present, kp.format, skeleton)
    if image_size is not None and not kp.pixels:
        raise DataError(f"{kp.source}: coordinates look already normalised (every |value| <= 2) but an image size "
                        f"was given; drop --image-size, or pass pixel coordinates")
    if kp.pixels:
        if image_size is None:
            raise DataError(f"{kp.source}: {kp.format} keypoints are pixels; pass the image size (--image-size W H) "
                            f"so they can be normalised as the training data")
        xy = normalize_keypoints(xy, image_size, kp.source)
    else:
        xy = normalize_keypoints(xy, None, kp.source)
    empty = ~present.any(axis=1)
    if empty.any():
        raise DataError(f"{kp.source}: sample {int(np.flatnonzero(empty)[0])} (frame {kp.frame[empty][0]}) has no "
                        f"usable joint after mapping to {skeleton.name}")
    filled = fill_missing(xy, present, skeleton, track=kp.is_track) if fill else xy
    counts = {"num_samples": int(len(xy)), "missing_joints": int((~present).sum()),
              "samples_with_missing_joints": int((~present).any(axis=1).sum())}
    return filled, present, counts


def smooth_sequence(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0: standard deviation `sigma` frames, kernel truncated at
    3 sigma, edges reflected. x: (F, ...) -> same shape; sigma <= 0 returns x unchanged."""
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or len(x) < 2:
        return x
    radius = max(1, int(round(3 * sigma)))
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    idx = np.arange(len(x))[:, None] + taps[None, :]
    period = 2 * len(x) - 2  # reflect without repeating the edge sample
    idx = np.mod(idx, period)
    idx = np.where(idx >= len(x), period - idx, idx)
    return np.einsum("k,fk...->f...", kernel, x[idx])


def place_root(poses: np.ndarray, keypoints_2d: np.ndarray, present: np.ndarray, intrinsics: np.ndarray
               ) -> np.ndarray:
    """Root translation (N, 3) metres from the perspective fit over the present joints only
    (one solve per distinct missing-joint pattern). poses: (N, J, 3) root-relative;
    keypoints_2d: (N, J, 2) normalised; intrinsics: (4,) normalised."""
    out = np.zeros((len(poses), 3))
    patterns, inverse = np.unique(present, axis=0, return_inverse=True)
    for k, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse.reshape(-1) == k)
        cols = np.flatnonzero(pattern)
        out[rows] = estimate_root_translation(poses[rows][:, cols], keypoints_2d[rows][:, cols], intrinsics)
    return out


def _settings(lifter, num_hypotheses, aggregate, sampler, num_steps, flip, seed, batch_size):
    from .inference import SamplingSettings

    changes = {k: v for k, v in dict(num_hypotheses=num_hypotheses, aggregate=aggregate, sampler=sampler,
                                     num_steps=num_steps, flip=flip, seed=seed, batch_size=batch_size).items()
               if v is not None}
    if "aggregate" in changes and changes["aggregate"] not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {changes['aggregate']!r}; known: {', '.join(AGGREGATIONS)}")
    return SamplingSettings.from_eval_config(lifter.config.eval, **changes)


def lift_keypoints(lifter, kp: Keypoints, *, image_size=None, focal_length: float | None = None,
                   smooth: float = 0.0, missing: str = "auto", progress: bool = True, **sampling) -> LiftResult:
    """Lift already-read keypoints with a loaded `Lifter` (see `lift` for the options)."""
    skeleton = lifter.skeleton
    if missing not in MISSING_MODES:
        raise ConfigError(f"unknown missing-joint handling {missing!r}; known: {', '.join(MISSING_MODES)}")
    if focal_length is not None and image_size is None:
        raise ConfigError("a focal length needs the image size (--image-size W H) for the principal point")
    if focal_length is not None and not focal_length > 0:
        raise ConfigError(f"focal length must be positive, got {focal_length}")
    if smooth and smooth < 0:
        raise ConfigError(f"smooth must be >= 0 frames, got {smooth}")
    if smooth > 0 and not kp.is_track:
        raise ConfigError(f"{kp.source}: smoothing needs a track (one person per frame, several frames); "
                          f"pass people='best' (--people best) or smooth=0")
    settings = _settings(lifter, **{k: sampling.get(k) for k in
                                    ("num_hypotheses", "aggregate", "sampler", "num_steps", "flip", "seed",
                                     "batch_size")})
    keypoints_2d, present, counts = prepare_keypoints(kp, skeleton, image_size)
    masked_model = bool(getattr(lifter.config.model, "missing_joints", False))
    if missing == "mask" and not masked_model:
        raise ConfigError("missing='mask' needs a model trained with missing joints (model.missing_joints); "
                          "this one was not: use 'auto' or 'fill'")
    use_mask = masked_model and missing != "fill"
    any_missing = not present.all()
    mask = present if (use_mask and any_missing) else None
    missing_mode = "none missing"
    if any_missing:
        missing_mode = ("masked (model trained with missing joints)" if use_mask
                        else "filled (temporal interpolation / mean pose)")
        if not masked_model:
            log.warning("%s: %d joints in %d samples are missing and this model was trained without missing-joint "
                        "masking; they were filled by temporal interpolation / the mean pose, so their 3D is a guess",
                        kp.source, counts["missing_joints"], counts["samples_with_missing_joints"])
    intrinsics = None
    if focal_length is not None:
        w, h = image_size
        intrinsics = normalize_intrinsics((focal_length, focal_length), (w / 2.0, h / 2.0), w, h)
    start = time.perf_counter()
    out = lifter.lift(keypoints_2d.astype(np.float32), settings,
                      intrinsics=None if intrinsics is None else np.broadcast_to(intrinsics, (len(keypoints_2d), 4)),
                      keypoint_mask=mask, progress=progress)
    sample_s = time.perf_counter() - start
    aggregate = smooth_sequence(out.aggregate, smooth) if smooth > 0 else np.asarray(out.aggregate, dtype=np.float64)
    root = None
    if intrinsics is not None:
        root = place_root(aggregate, keypoints_2d, present, intrinsics)
        root = smooth_sequence(root, smooth) if smooth > 0 else root
    card = {
        "source": kp.source, "format": kp.format, "skeleton": skeleton.name,
        "image_size": list(image_size) if image_size is not None else None,
        "focal_length_px": focal_length, "coordinates": CAMERA_FRAME if root is not None else ROOT_RELATIVE,
        "root_relative": root is None, "missing_joint_handling": missing_mode, **counts,
        "min_score": kp.meta.get("min_score"), "track": kp.is_track,
        "smoothing": (f"gaussian, sigma {smooth:g} frames, truncated at 3 sigma, aggregate and root only"
                      if smooth > 0 else "off"),
        "sampling": {k: getattr(settings, k) for k in ("num_hypotheses", "sampler", "num_steps", "eta", "flip",
                                                       "aggregate", "seed")},
        "spread": "per joint: mean distance (metres) of the hypotheses to their mean; the model's uncertainty",
        "lifting_time_s": round(sample_s, 3),
        "sampling_time_s": round(float(getattr(out, "sampling_seconds", sample_s)), 3),
    }
    return LiftResult(hypotheses=np.asarray(out.hypotheses, dtype=np.float32), aggregate=aggregate,
                      spread=np.asarray(out.spread, dtype=np.float64), keypoints_2d=keypoints_2d,
                      keypoint_mask=present, root_translation=root, frame=np.asarray(kp.frame),
                      person=np.asarray(kp.person), skeleton=skeleton, card=card)


def _to_json(result: LiftResult) -> str:
    def r(a, d=5):
        return np.round(np.asarray(a, dtype=np.float64), d).tolist()

    doc = {"card": result.card, "joint_names": list(result.skeleton.joint_names),
           "frame": result.frame.tolist(), "person": result.person.tolist(),
           "hypotheses": r(result.hypotheses), "aggregate": r(result.aggregate), "spread": r(result.spread),
           "keypoints_2d": r(result.keypoints_2d), "keypoint_mask": result.keypoint_mask.tolist(),
           "root_translation": None if result.root_translation is None else r(result.root_translation)}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def write_outputs(result: LiftResult, paths: dict[str, Path], *, fps: float = 50.0, viewer_frames: int = 200
                  ) -> dict[str, Path]:
    """Write the planned files (see `plan_outputs`); returns {format: path} of what was written."""
    from .bvh import write_bvh
    from .viz.lift_viewer import write_lift_viewer

    written = {}
    if "bvh" in paths:
        if len(set(result.frame.tolist())) != len(result):
            log.warning("%s: several people per frame; the BVH holds the samples in file order as frames",
                        paths["bvh"])
        error = write_bvh(paths["bvh"], result.aggregate, result.skeleton, frame_time=1.0 / fps,
                          root_positions=result.poses_camera[:, 0] if result.root_translation is not None else None)
        result.card["bvh"] = {"units": "centimetres, Y up (x, -y, -z of the camera frame)", "fps": fps,
                              "max_deviation_mm": round(error * 1000, 3),
                              "note": "fixed skeleton at the mean bone lengths; bone directions exact"}
        written["bvh"] = paths["bvh"]
    if "html" in paths:
        write_lift_viewer(result, paths["html"], max_frames=viewer_frames)
        written["html"] = paths["html"]
    if "npz" in paths:
        with atomic_path(paths["npz"]) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **result.arrays(), skeleton=np.array(result.skeleton.name),
                         card_json=np.array(json.dumps(result.card, default=str)))
        written["npz"] = paths["npz"]
    if "json" in paths:
        atomic_write_text(paths["json"], _to_json(result))
        written["json"] = paths["json"]
    result.files = written
    return written


def lift(keypoints, run=None, *, lifter=None, format: str | None = None, image_size=None,
         focal_length: float | None = None, num_hypotheses: int | None = 10, aggregate: str | None = None,
         min_score: float = 0.3, smooth: float = 0.0, people: str = "all", missing: str = "auto",
         sampler: str | None = None,
         num_steps: int | None = None, flip: bool | None = None, seed: int | None = None,
         batch_size: int | None = None, checkpoint: str = "best", device: str = "auto", out=None,
         outputs: Sequence[str] = OUTPUT_FORMATS, overwrite: bool = False, fps: float = 50.0,
         progress: bool = True) -> LiftResult:
    """Lift a detector's 2D keypoints to 3D hypotheses.

    keypoints: a file/folder path (any format of `diffupose.data.keypoints`) or a `Keypoints`.
    run / lifter: a run or checkpoint directory (loaded with `Lifter.load(run, checkpoint,
    device)`) or an already loaded `Lifter`. image_size: (W, H) pixels, needed for pixel input.
    focal_length: pixels; places the root in metric camera space (else root-relative).
    num_hypotheses / aggregate / sampler / num_steps / flip / seed / batch_size: override the
    run's eval settings (None keeps them). min_score: keypoints scored lower are missing.
    smooth: Gaussian sigma in frames for the aggregate of a track (0 = off). people: `all` or
    `best` (one person per frame). missing: `auto` (mask for models trained with missing joints,
    fill otherwise), `mask` or `fill` (`MISSING_MODES`). out: output stem or file; `outputs` picks the files written
    (`npz`, `json`, `bvh`, `html`); existing files need `overwrite=True`.
    Returns a LiftResult (with `.files` when `out` is given).
    """
    from .inference import Lifter

    paths = plan_outputs(out, outputs, overwrite) if out is not None else None
    if lifter is None:
        if run is None:
            raise ConfigError("lift needs a run directory (run=...) or a loaded Lifter (lifter=...)")
        lifter = Lifter.load(run, checkpoint=checkpoint, device=device)
    if isinstance(keypoints, Keypoints):
        kp = keypoints
    else:
        kp = read_keypoints(keypoints, format, min_score=min_score, people=people)
    kp.meta["min_score"] = min_score
    result = lift_keypoints(lifter, kp, image_size=image_size, focal_length=focal_length, smooth=smooth,
                            missing=missing, progress=progress, num_hypotheses=num_hypotheses, aggregate=aggregate, sampler=sampler,
                            num_steps=num_steps, flip=flip, seed=seed, batch_size=batch_size)
    result.card["run"] = str(run) if run is not None else None
    result.card["checkpoint"] = getattr(lifter, "checkpoint_card", {"checkpoint": checkpoint})
    if paths is not None:
        write_outputs(result, paths, fps=fps)
    return result
