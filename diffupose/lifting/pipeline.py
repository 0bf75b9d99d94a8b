"""In-the-wild lifting: a 2D detector's keypoints -> 3D hypotheses, aggregate, spread and files.

`lift(keypoints, run)` reads a keypoint file in any supported layout
(`diffupose.data.keypoints`), maps it to the model's skeleton (copying the joints the layout
has, deriving the rest), normalises pixels the way the training data was (the camera module's
`normalize_screen_coordinates`, so it needs the image size), marks missing joints (score below
`min_score`, visibility 0, NaN) and lifts every sample through the shared inference path
(`diffupose.inference.lifter.Lifter`): H hypotheses, their aggregate and per-joint spread.

- Missing joints: a model trained with missing-joint masking (`model.missing_joints`) gets the
  mask (`keypoint_mask`, True = present), except that with `missing="auto"` a joint missing in a
  track for at most `MAX_GAP_S` between two frames that have it is interpolated in time and given
  as present (`masking.short_gaps`: better than masking on flickering detections; `missing="mask"`
  keeps the detector's mask as it is); any other model gets the joints filled
  (`masking.fill_missing`, method "template") and a warning says so. `missing="fill"` fills for masked models too
  (in tracks, temporal interpolation can beat the model's own imputation).
- Root: with a focal length (pixels; principal point at the image centre) the root is placed
  in metric camera space by the ground-truth-free perspective fit
  (`aggregate.estimate_root_translation` over the present joints); otherwise the output is
  root-relative and the card says so.
- Smoothing (tracks only, off by default): `smooth = sigma > 0` applies a Gaussian filter of
  standard deviation sigma frames (truncated at 3 sigma, edges reflected) to the aggregate and
  the root along time; hypotheses and spread are never smoothed.

Outputs (`write_outputs`): `.npz` and `.json` with every hypothesis, the aggregate, the spread
and the card; `.bvh` of the aggregate sequence (`diffupose.lifting.bvh`); `.html` viewer with
`plotly.min.js` written once beside it (`diffupose.viz.lift_viewer`). Paths are checked before
any work; an existing file is never replaced without `overwrite=True`; the files are written
all or nothing (`write_outputs`).

Input safety, before the model is loaded: values that cannot be image coordinates (infinite,
beyond 1e6, or more than 4.5 image widths outside the image once normalised) and 17-joint arrays
whose geometry does not say H36M-17 are refused with one line (`diffupose.data.keypoints`); the
layout used is in the card (`layout`). Non-finite results are refused before anything is
written. A model trained only on ground-truth 2D (`trained_on_detections`) given pixel
keypoints gets one warning line.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..data.keypoints import (Keypoints, check_image_range, keypoints_from_array, normalize_keypoints, read_keypoints,
                              to_skeleton)
from ..data.windows import MAX_GAP_S, frame_numbers, track_windows
from ..errors import ConfigError, DataError
from ..geometry.projection import normalize_intrinsics
from ..inference.aggregate import AGGREGATIONS, estimate_root_translation, hypothesis_spread
from ..inference.lifter import Lifter, SamplingSettings
from ..model.masking import fill_missing, short_gaps
from .outputs import OUTPUT_FORMATS, LiftResult, check_finite, plan_outputs, write_outputs

__all__ = ["MISSING_MODES", "lift", "as_keypoints", "lift_keypoints", "check_request", "model_input", "track_times", "smooth_sequence", "place_root", "prepare_keypoints",
           "check_input", "trained_on_detections", "model_layouts", "layout_covered", "GT_ONLY_WARNING"]

log = logging.getLogger("diffupose.lift")     # the name its messages always had

# auto: mask for models trained with missing joints (a track's joints missing for <= MAX_GAP_S interpolated
# in time), fill otherwise; mask: require such a model, every missing joint masked;
# fill: always fill (temporal interpolation in tracks, else the fitted mean pose) and pass no mask.
MISSING_MODES: tuple[str, ...] = ("auto", "mask", "fill")
ROOT_RELATIVE = ("root-relative: metres, camera frame (x right, y down, z forward), root joint at 0 in every "
                 "hypothesis and the aggregate")
CAMERA_FRAME = ("hypotheses and aggregate root-relative (metres, camera frame x right, y down, z forward, root joint "
                "at 0); camera_space = aggregate + root_translation, the root placed by the ground-truth-free "
                "perspective fit with the given focal length, principal point at the image centre")


def check_input(kp: Keypoints, image_size=None) -> None:
    """One-line DataError before any work when the keypoints and the image size do not go
    together (pixels need it, normalised input must not have it) or a present joint is not a
    plausible image coordinate (`diffupose.data.keypoints.check_image_range`)."""
    if image_size is not None and not kp.pixels:
        raise DataError(f"{kp.source}: coordinates look already normalised (every |value| <= 2) but an image size "
                        f"was given; drop --image-size, or pass pixel coordinates")
    if kp.pixels and image_size is None:
        raise DataError(f"{kp.source}: {kp.format} keypoints are pixels; pass the image size (--image-size W H) "
                        f"so they can be normalised as the training data")
    check_image_range(kp, image_size)


def check_request(kp: Keypoints, image_size, focal_length, smooth: float, missing: str,
                  fps: float | None = None) -> None:
    """Every check of a lift before any work, once: the options (`_check_options`) and the input
    with its image size (`check_input`). One-line ConfigError / DataError."""
    _check_options(kp, image_size, focal_length, smooth, missing, fps)
    check_input(kp, image_size)


def prepare_keypoints(kp: Keypoints, skeleton, image_size=None, fill: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keypoints in a file's layout -> (N, J, 2) normalised model-skeleton input with missing
    joints filled, (N, J) present mask, and counts for the card (`check_input` first)."""
    check_input(kp, image_size)
    return _normalised(kp, skeleton, image_size, fill)


def _normalised(kp: Keypoints, skeleton, image_size, fill: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """prepare_keypoints without the input check (the caller made it)."""
    xy, present = to_skeleton(kp.keypoints, kp.present, kp.format, skeleton)
    xy = normalize_keypoints(xy, image_size if kp.pixels else None, kp.source)
    empty = ~present.any(axis=1)
    if empty.any():
        raise DataError(f"{kp.source}: sample {int(np.flatnonzero(empty)[0])} (frame {kp.frame[empty][0]}) has no "
                        f"usable joint after mapping to {skeleton.name}")
    filled = (fill_missing(xy, present, skeleton, method="template", track=kp.is_track, times=track_times(kp))
              if fill else xy)
    counts = {"num_samples": int(len(xy)), "missing_joints": int((~present).sum()),
              "samples_with_missing_joints": int((~present).any(axis=1).sum())}
    return filled, present, counts


def recentre(poses: np.ndarray) -> np.ndarray:
    """Poses (..., J, 3) moved so that the root joint (index 0) is exactly 0: the network's root
    output is close to 0, not exactly; outputs promise root-relative poses."""
    return poses - poses[..., :1, :]


def smooth_sequence(x: np.ndarray, sigma: float, segments: np.ndarray | None = None) -> np.ndarray:
    """Gaussian filter along axis 0: standard deviation `sigma` frames, kernel truncated at
    3 sigma (at least one frame each side), edges reflected without repeating the edge sample
    (scipy's "mirror"). x: (F, ...) -> same shape; sigma <= 0 returns x unchanged. `segments`
    (F,) labels runs of samples filtered separately (the pieces of a track between long gaps)."""
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or len(x) < 2:
        return x
    if segments is not None:
        out = x.copy()
        for label in np.unique(segments):
            rows = np.flatnonzero(segments == label)
            out[rows] = smooth_sequence(x[rows], sigma)
        return out
    return gaussian_filter1d(x, sigma, axis=0, mode="mirror", radius=max(1, int(round(3 * sigma))))


def track_segments(times: np.ndarray | None, fps: float | None) -> np.ndarray | None:
    """(F,) labels of the runs of a track between gaps longer than MAX_GAP_S (frame numbers at
    `fps`, default 50), or None for input that is not a track."""
    if times is None:
        return None
    return np.concatenate([[0], np.cumsum(np.diff(times) > MAX_GAP_S * (fps or 50.0))])


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


def _settings(lifter, num_hypotheses, aggregate, sampler, num_steps, flip, seed, batch_size, calibrated=None,
              precision="auto"):
    changes = {k: v for k, v in dict(num_hypotheses=num_hypotheses, aggregate=aggregate, sampler=sampler,
                                     num_steps=num_steps, flip=flip, seed=seed, batch_size=batch_size,
                                     calibrated=calibrated, precision=precision or "auto").items()
               if v is not None}
    if "aggregate" in changes and changes["aggregate"] not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {changes['aggregate']!r}; known: {', '.join(AGGREGATIONS)}")
    return SamplingSettings.from_eval_config(lifter.config.eval, **changes)


def track_times(kp: Keypoints) -> np.ndarray | None:
    """The frame numbers of a track (increasing; gaps = missing frames), or None when the input is
    not a track a window can run along: several people in a frame, a single image, or frame ids
    that are not increasing numbers (unordered images)."""
    return frame_numbers(kp.frame) if kp.is_track else None


def model_input(lifter, kp: Keypoints, keypoints_2d: np.ndarray, mask: np.ndarray | None, fps: float | None
                ) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """What the model reads -> (condition, mask, the card's `window` entry). A single-frame model
    reads each frame's 2D (N, J, 2). A windowed model (model.window = W > 1) reads, along a
    track, the W-frame window around each frame at its training frame rate (model.window_fps),
    resampled from the track's `fps` and across missing frames (data.windows.track_windows);
    input that is not a track (one image, several people per frame, unordered frames) gets one
    warning line and a static window (each frame repeated W times), the single-frame use such a
    model supports."""
    window = int(getattr(lifter, "window", 1))
    if window == 1:
        return keypoints_2d.astype(np.float32), mask, {"frames": 1}
    model_fps = float(lifter.config.model.window_fps)
    times = track_times(kp)
    if times is None:
        log.warning("%s: not a frame-ordered track (%s); this model reads %d frames, so each frame is lifted from a "
                    "static window (the frame repeated %d times), less accurate than on a track", kp.source,
                    _not_a_track(kp), window, window)
        condition = np.repeat(keypoints_2d[:, None].astype(np.float32), window, axis=1)
        return condition, mask, {"frames": window, "mode": "static (not a track: each frame repeated)"}
    input_fps = model_fps if fps is None else float(fps)
    condition, window_mask = track_windows(keypoints_2d, mask, window, rate=input_fps / model_fps, times=times,
                                           max_gap=MAX_GAP_S * input_fps)
    return condition, window_mask, {"frames": window, "mode": "track", "model_fps": model_fps, "input_fps": input_fps,
                                    "span_s": round((window - 1) / model_fps, 3)}


def _not_a_track(kp: Keypoints) -> str:
    """Why keypoints are not a track a window can run along, in words for the warning."""
    if len(kp) == 1:
        return "a single frame"
    crowded = len(kp) - len(set(kp.frame.tolist()))
    if crowded:
        return (f"{crowded} extra detection{'s' if crowded > 1 else ''} in frames that already hold a person; "
                f"people='best' (--people best) keeps the best-scoring person of each frame as a track")
    return "its frame ids are not increasing frame numbers, so they do not say when each frame was"


def drop_empty_samples(kp: Keypoints, skeleton) -> Keypoints:
    """The samples with at least one usable joint after mapping to the model's skeleton; the
    others (a detection with every score below min_score, an all-NaN row) are left out with one
    warning line naming them (their frames become gaps of the track); DataError when none is left."""
    _, present = to_skeleton(kp.keypoints, kp.present, kp.format, skeleton)
    empty = ~present.any(axis=1)
    if not empty.any():
        return kp
    frames = [str(f) for f in kp.frame[empty][:5]]
    if empty.all():
        raise DataError(f"{kp.source}: no sample has a usable joint after mapping to {skeleton.name}")
    log.warning("%s: %d of %d samples have no usable joint after mapping to %s (frame %s%s); they are left out "
                "(result.frame says which frames were lifted)", kp.source, int(empty.sum()), len(kp), skeleton.name,
                ", ".join(frames), ", ..." if empty.sum() > 5 else "")
    return kp.subset(~empty)


def lift_keypoints(lifter, kp: Keypoints, *, image_size=None, focal_length: float | None = None,
                   smooth: float = 0.0, missing: str = "auto", progress: bool = True, fps: float | None = None,
                   **sampling) -> LiftResult:
    """Lift already-read keypoints with a loaded `Lifter` (see `lift` for the options).

    Steps: check the options and the input (`check_request`); prepare the input (map to the
    skeleton, normalise, fill missing joints); choose mask or fill for the missing joints; the
    window of a video model; sample and aggregate; re-centre, smooth and place the root; the card."""
    check_request(kp, image_size, focal_length, smooth, missing, fps)
    return _lift_checked(lifter, kp, image_size=image_size, focal_length=focal_length, smooth=smooth,
                         missing=missing, progress=progress, fps=fps, **sampling)


def _lift_checked(lifter, kp: Keypoints, *, image_size, focal_length, smooth: float, missing: str, progress: bool,
                  fps: float | None, **sampling) -> LiftResult:
    """lift_keypoints after check_request."""
    settings = _settings(lifter, **{k: sampling.get(k) for k in
                                    ("num_hypotheses", "aggregate", "sampler", "num_steps", "flip", "seed",
                                     "batch_size", "calibrated", "precision")})
    kp = drop_empty_samples(kp, lifter.skeleton)
    keypoints_2d, present, counts = _normalised(kp, lifter.skeleton, image_size, fill=True)
    if kp.pixels and trained_on_detections(lifter.config) is False:
        log.warning(GT_ONLY_WARNING.format(source=kp.source))
    layouts = model_layouts(lifter.config, lifter.skeleton.name)
    covered = layout_covered(kp.format, layouts)
    if not covered:
        log.warning("%s: this model was not trained on %s input (its layouts: %s); the derived %s joints "
                    "are used as they are (a model trained with train.input_layouts including %s, e.g. "
                    "--model h36m-det, has seen them)", kp.source, kp.format, ", ".join(layouts),
                    lifter.skeleton.name, _LAYOUT_FAMILY.get(kp.format, kp.format))
    counts = {**counts, "model_layouts": list(layouts), "layout_covered_by_model": covered}
    mask, missing_mode = _missing_joint_input(lifter, kp, present, counts, missing)
    if missing == "auto":
        mask, missing_mode, counts = _bridge_short_gaps(kp, mask, missing_mode, counts, fps)
    condition, mask, window_card = model_input(lifter, kp, keypoints_2d, mask, fps)
    intrinsics = _intrinsics(focal_length, image_size)
    start = time.perf_counter()
    out = lifter.predict(condition, settings,
                      intrinsics=None if intrinsics is None else np.broadcast_to(intrinsics, (len(keypoints_2d), 4)),
                      keypoint_mask=mask, progress=progress)
    sample_s = time.perf_counter() - start
    hypotheses = recentre(np.asarray(out.hypotheses, dtype=np.float32))
    aggregate, root = _smooth_and_place(recentre(np.asarray(out.aggregate, dtype=np.float64)), keypoints_2d,
                                        present, intrinsics, smooth, track_segments(track_times(kp), fps))
    card = _card(kp, lifter, settings, image_size=image_size, focal_length=focal_length,
                 placed=root is not None, smooth=smooth, missing_mode=missing_mode, counts=counts,
                 lifting_s=sample_s, sampling_s=float(getattr(out, "sampling_seconds", sample_s)))
    card["window"] = window_card
    card["fps"] = 50.0 if fps is None else float(fps)
    result = LiftResult(hypotheses=hypotheses, aggregate=aggregate,
                        spread=hypothesis_spread(hypotheses).astype(np.float64), keypoints_2d=keypoints_2d,
                        keypoint_mask=present, root_translation=root, frame=np.asarray(kp.frame),
                        person=np.asarray(kp.person), skeleton=lifter.skeleton, card=card,
                        radius_90=getattr(out, "radius_90", None))
    card["radius_90"] = {"meaning": RADIUS_90, **(getattr(out, "calibration", None) or {"calibrated": False})}
    check_finite(result)
    return result


RADIUS_90 = ("per joint (N, J), metres: the radius of the 90 % band of the hypotheses (Lifter.radii): the model's "
             "calibration when it has one (calibrated: true, with the data it was fitted on), else the raw hypotheses' "
             "own 90 % quantile ball around their median (not calibrated)")
# a file format -> the training layout whose lift mapping it goes through
_LAYOUT_FAMILY = {"coco_wholebody": "coco17"}


def model_layouts(config, skeleton: str = "h36m17") -> tuple[str, ...]:
    """The keypoint layouts a model saw in training (`train.input_layouts`; its own skeleton's
    alone for models trained before the setting existed). The setting's default, h36m17, means
    the data's own 2D, so a model of another `skeleton` (humaneva15) lists that instead."""
    text = getattr(getattr(config, "train", None), "input_layouts", "h36m17") or "h36m17"
    return tuple(skeleton if v.strip() == "h36m17" else v.strip() for v in str(text).split(","))


def layout_covered(fmt: str, layouts) -> bool:
    """Whether a file's layout reaches the model as it did in training: the model's own skeleton
    layouts always do; another layout only when its mapping was in train.input_layouts."""
    if fmt in ("h36m17", "humaneva15"):
        return True
    return _LAYOUT_FAMILY.get(fmt, fmt) in layouts


def _check_image_size(image_size) -> None:
    if image_size is None:
        return
    try:
        ok = len(image_size) == 2 and all(float(v) == int(v) and int(v) > 0 for v in image_size)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(f"image size must be two positive whole numbers of pixels (W H), got {image_size!r}")


def _check_options(kp: Keypoints, image_size, focal_length, smooth: float, missing: str, fps=None) -> None:
    """ConfigError before any work for a bad image size, missing-joint mode, focal length,
    smoothing or frame rate."""
    _check_image_size(image_size)
    if fps is not None:
        try:
            ok = bool(np.isfinite(float(fps)) and float(fps) > 0)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"fps must be a positive frame rate (frames per second), got {fps!r}")
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


def _missing_joint_input(lifter, kp: Keypoints, present: np.ndarray, counts: dict, missing: str
                         ) -> tuple[np.ndarray | None, str]:
    """-> (keypoint_mask for the model or None, the card's words for it). The mask goes only to a
    model trained with missing joints (unless `missing="fill"`) and only when a joint is missing;
    a model without that training gets filled joints and a warning."""
    masked_model = bool(getattr(lifter.config.model, "missing_joints", False))
    if missing == "mask" and not masked_model:
        raise ConfigError("missing='mask' needs a model trained with missing joints (model.missing_joints); "
                          "this one was not: use 'auto' or 'fill'")
    use_mask = masked_model and missing != "fill"
    if present.all():
        return None, "none missing"
    if not masked_model:
        log.warning("%s: %d joints in %d samples are missing and this model was trained without missing-joint "
                    "masking; they were filled by temporal interpolation / the mean pose, so their 3D is a guess",
                    kp.source, counts["missing_joints"], counts["samples_with_missing_joints"])
    if use_mask:
        return present, "masked (model trained with missing joints)"
    return None, "filled (temporal interpolation / mean pose)"


def _bridge_short_gaps(kp: Keypoints, mask: np.ndarray | None, missing_mode: str, counts: dict, fps: float | None
                       ) -> tuple[np.ndarray | None, str, dict]:
    """missing="auto", a masked model on a track: a joint missing between two frames where it is
    present, at most MAX_GAP_S apart, is given as present at its interpolated position (the 2D of
    `_normalised`, filled in time between the same two frames), not masked (`masking.short_gaps`).
    -> (the mask for the model, None when nothing is left missing; the card's words; counts +
    how many were interpolated). Other input passes through unchanged."""
    times = track_times(kp)
    if mask is None or times is None:
        return mask, missing_mode, counts
    bridged = short_gaps(mask, times, MAX_GAP_S * (fps or 50.0))
    counts = {**counts, "joints_interpolated_in_time": int(bridged.sum())}
    missing_mode += (f"; a joint missing for at most {MAX_GAP_S:g} s between two frames that have it is interpolated "
                     f"in time instead")
    mask = mask | bridged
    return (None if mask.all() else mask), missing_mode, counts


# train.input_2d modes that show the model detector-like 2D (diffupose.config.INPUT_2D_MODES).
DETECTION_READY_INPUT_2D = ("gt+noise", "mix")
GT_ONLY_WARNING = ("{source}: this model was trained on ground-truth 2D only and never saw detector error "
                   "(measurements: docs/detections.md); consider a model trained on detector-like input: "
                   "--model h36m-det, or a run with train.input_2d=gt+noise or mix, or trained on detections")


def trained_on_detections(config) -> bool | None:
    """Whether the model behind `config` saw detector-like 2D in training: True for
    `train.input_2d` gt+noise or mix, False for gt; for `file` (the prepared file's own
    keypoints_2d), the prepared file's meta says (`keypoints` != "gt": detections), read cheaply
    when `data.path` still exists; None (unknown) otherwise."""
    mode = getattr(getattr(config, "train", None), "input_2d", None)
    if mode in DETECTION_READY_INPUT_2D:
        return True
    if mode == "gt":
        return False
    path = getattr(getattr(config, "data", None), "path", "")
    if mode != "file" or not path or not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta_json"]))
    except Exception:  # any unreadable file only means "unknown"
        return None
    if not isinstance(meta, dict):
        return None
    prepare = meta.get("prepare") if isinstance(meta.get("prepare"), dict) else {}
    source = meta.get("keypoints", prepare.get("keypoints"))
    return source != "gt" if isinstance(source, str) else None


def _intrinsics(focal_length: float | None, image_size) -> np.ndarray | None:
    """(4,) normalised intrinsics for a focal length in pixels, principal point at the image centre."""
    if focal_length is None:
        return None
    w, h = image_size
    return normalize_intrinsics((focal_length, focal_length), (w / 2.0, h / 2.0), w, h)


def _smooth_and_place(aggregate: np.ndarray, keypoints_2d: np.ndarray, present: np.ndarray,
                      intrinsics: np.ndarray | None, smooth: float, segments: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (aggregate (N, J, 3) smoothed when `smooth` > 0, root translation (N, 3) smoothed alike,
    or None without intrinsics); `segments`: the pieces of the track smoothed separately."""
    aggregate = (smooth_sequence(aggregate, smooth, segments) if smooth > 0
                 else np.asarray(aggregate, dtype=np.float64))
    if intrinsics is None:
        return aggregate, None
    root = place_root(aggregate, keypoints_2d, present, intrinsics)
    return aggregate, smooth_sequence(root, smooth, segments) if smooth > 0 else root


def _card(kp: Keypoints, lifter, settings, *, image_size, focal_length, placed: bool, smooth: float,
          missing_mode: str, counts: dict, lifting_s: float, sampling_s: float) -> dict:
    """The result's card: provenance, coordinates, missing-joint handling, smoothing, sampling."""
    skeleton = lifter.skeleton
    return {
        "source": kp.source, "format": kp.format,
        "layout": kp.meta.get("layout", f"{kp.format} (given as Keypoints)"), "skeleton": skeleton.name,
        "image_size": list(image_size) if image_size is not None else None,
        "focal_length_px": focal_length, "coordinates": CAMERA_FRAME if placed else ROOT_RELATIVE,
        "root_relative": not placed, "missing_joint_handling": missing_mode, **counts,
        "min_score": kp.meta.get("min_score"), "track": kp.is_track,
        "smoothing": (f"gaussian, sigma {smooth:g} frames, truncated at 3 sigma, aggregate and root only, each "
                      f"piece of the track between gaps longer than {MAX_GAP_S:g} s on its own"
                      if smooth > 0 else "off"),
        "sampling": {**{k: getattr(settings, k) for k in ("num_hypotheses", "eta", "flip", "aggregate", "seed",
                                                          "precision")},
                     **lifter.sampler_card(settings)},
        "spread": "per joint: mean distance (metres) of the hypotheses to their mean; the model's uncertainty",
        "lifting_time_s": round(lifting_s, 3),
        "sampling_time_s": round(sampling_s, 3),
    }


def as_keypoints(keypoints, format: str | None = None, *, scores=None, min_score: float = 0.3,
                 people: str = "all", frames=None) -> Keypoints:
    """What `lift` accepts as keypoints -> Keypoints in the input's own layout: a `Keypoints` as it
    is; a numpy array (F, J, 2) or (F, J, 3) (third value = score; `scores` (F, J) for 2-column
    arrays) read as an array file would be, its frames a track numbered `frames` (F,) increasing
    integers, default 0..F-1; anything else a keypoint file or OpenPose folder path
    (`read_keypoints`). One-line DataError on bad input."""
    if isinstance(keypoints, Keypoints):
        if frames is not None:
            raise ConfigError("frames= goes with keypoints given as an array; a Keypoints carries its own frame ids")
        return keypoints
    if isinstance(keypoints, np.ndarray) or (isinstance(keypoints, (list, tuple)) and keypoints
                                            and not isinstance(keypoints[0], (str, os.PathLike))):
        return keypoints_from_array(keypoints, format, scores=scores, min_score=min_score, frames=frames)
    if scores is not None or frames is not None:
        raise ConfigError(f"{'scores' if scores is not None else 'frames'}= goes with keypoints given as an array; "
                          f"a file carries its own")
    return read_keypoints(keypoints, format, min_score=min_score, people=people)


def lift(keypoints, run=None, *, lifter=None, format: str | None = None, image_size=None,
         focal_length: float | None = None, num_hypotheses: int | None = 10, aggregate: str | None = None,
         min_score: float = 0.3, smooth: float = 0.0, people: str = "all", missing: str = "auto", scores=None,
         frames=None, sampler: str | None = None,
         num_steps: int | None = None, flip: bool | None = None, seed: int | None = None,
         batch_size: int | None = None, calibrated: bool | None = None, precision: str = "auto",
         checkpoint: str | None = None,
         device: str = "auto", out=None,
         outputs: Sequence[str] = OUTPUT_FORMATS, overwrite: bool = False, fps: float = 50.0,
         viewer_js: str = "inline", progress: bool = True) -> LiftResult:
    """Lift a detector's 2D keypoints to 3D hypotheses.

    keypoints: a file/folder path (any format of `diffupose.data.keypoints`), a numpy array
    (F, J, 2|3) in the layout `format` names, or a `Keypoints` (`as_keypoints`).
    format: the file's layout, or None to detect it (a 17-joint array is read as h36m17 only when
    its geometry says so; COCO-ordered arrays need format="coco17").
    run / lifter: a shipped model's name (`diffupose models`), a run or checkpoint directory
    (loaded with `Lifter.from_pretrained(run, checkpoint=..., device=...)`; checkpoint None: the
    zoo model's final EMA weights, a run's `best`) or an already loaded `Lifter`.
    image_size: (W, H) pixels, needed for pixel input. scores: (F, J) scores for a 2-column array.
    frames: (F,) increasing frame numbers of an array's rows (default 0..F-1): a track with
    missing frames, or every other frame (0, 2, 4, ...) of a video at `fps`.
    focal_length: pixels; places the root in metric camera space (else root-relative).
    num_hypotheses / aggregate / sampler / num_steps / flip / seed / batch_size: override the
    run's eval settings (None keeps them). precision: the network's arithmetic, `auto` (default:
    bf16 on CPUs with native bf16 for v / flow models, about 2x faster within 0.1 mm), `bf16` or
    `fp32`. calibrated: False for the raw sampler's hypotheses (None: the model's calibration
    when it has one; `radius_90` and card["radius_90"]). min_score: keypoints scored lower are
    missing.
    smooth: Gaussian sigma in frames for the aggregate of a track (0 = off). people: `all` or
    `best` (one person per frame). missing: `auto` (mask for models trained with missing joints,
    except joints missing in a track for at most 0.2 s, which are interpolated in time; fill
    otherwise), `mask` (every missing joint masked, as the detector left it) or `fill`
    (`MISSING_MODES`). fps: the input's frame rate: the BVH's
    frame time, and for a windowed model (model.window > 1) how its window's frames are resampled
    from the track (default 50, Human3.6M's rate). out: output stem or file; `outputs` picks the files written
    (`npz`, `json`, `bvh`, `html`); existing files need `overwrite=True`. viewer_js: `inline` (the
    HTML viewer works alone; default) or `file` (it loads plotly.min.js written beside it).
    Returns a LiftResult (with `.files` when `out` is given).
    """
    paths = plan_outputs(out, outputs, overwrite) if out is not None else None
    if lifter is None and run is None:
        raise ConfigError("lift needs a run directory (run=...) or a loaded Lifter (lifter=...)")
    kp = as_keypoints(keypoints, format, scores=scores, min_score=min_score, people=people, frames=frames)
    check_request(kp, image_size, focal_length, smooth, missing, fps)     # everything, before the model is loaded
    if lifter is None:
        lifter = Lifter.from_pretrained(run, checkpoint=checkpoint, device=device)
    kp.meta["min_score"] = min_score
    result = _lift_checked(lifter, kp, image_size=image_size, focal_length=focal_length, smooth=smooth,
                           missing=missing, progress=progress, fps=fps, num_hypotheses=num_hypotheses,
                           aggregate=aggregate, sampler=sampler, num_steps=num_steps, flip=flip, seed=seed,
                           batch_size=batch_size, calibrated=calibrated, precision=precision)
    result.card["run"] = str(run) if run is not None else None
    result.card["checkpoint"] = getattr(lifter, "checkpoint_card", {"checkpoint": checkpoint})
    result.card["model"] = result.card["checkpoint"].get("model")
    result.card["package_version"] = result.card["checkpoint"].get("package_version")
    if paths is not None:
        write_outputs(result, paths, fps=fps, viewer_js=viewer_js)
    return result
