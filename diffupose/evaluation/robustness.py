"""Robustness matrix: MPJPE under missing 2D joints x 2D Gaussian pixel noise, per model.

On a seeded subset of a split, for every noise level σ (pixels, added before normalisation:
`masking.add_pixel_noise`) and every mask (k joints missing, `random` joints or distal `limb`
segments: `masking.evaluation_mask`; never the root), each model lifts the same inputs through
`inference.Lifter` with the same sampling seed:

- a model trained with `model.missing_joints=true` gets the mask (its missing-joint input);
- a model without it gets the missing joints filled (`masking.fill_missing`) and no mask.

Per cell (mm): N=1 (the first hypothesis), N=H (the aggregate of all H), ORACLE best-of-H
(picks with the 3D ground truth: a bound, not an estimate), the error of the aggregate at the
missing joints only, and the hypothesis spread (mean distance of the hypotheses to their mean)
at the missing joints and at the present non-root joints. Used by `benchmarks/robustness.py`
and notebook 09_robustness.

Data prepared from detections (`--keypoints sh`) keeps the projected ground truth beside them:
the matrix then starts from that ground truth (noise and masks are added to clean 2D, as for
any other data), and one more row, "real detections", lifts the file's detections as they are
(no added noise, nothing masked), so synthetic noise and a real detector sit in one table.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from ..config import EvalConfig
from ..data.prepared import load_prepared
from ..data.synthetic import synthetic_cameras
from ..data.windows import sample_windows
from ..errors import ConfigError
from ..geometry.camera import load_cameras
from ..inference.lifter import Lifter, SamplingSettings
from .metrics import hypothesis_errors, hypothesis_spread, per_joint_errors
from ..model.masking import (DETECTIONS, FILL_METHODS, MASK_MODES, add_pixel_noise, evaluation_mask, fill_missing,
                             matrix_pivot, row_label)
from .scoring import open_run

__all__ = ["image_sizes", "cell_metrics", "robustness_matrix", "detection_rows", "row_label", "markdown_tables",
           "matrix_pivot", "run_robustness"]

log = logging.getLogger(__name__)


def image_sizes(data, image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(N,) image width and height of every sample: --image-size, else the dataset's cameras."""
    n = len(data)
    if image_size is not None:
        return np.full(n, image_size[0]), np.full(n, image_size[1])
    try:
        if data.dataset == "synthetic":
            cams = {str(c.intrinsics.id): (c.intrinsics.res_w, c.intrinsics.res_h) for c in synthetic_cameras()}
        else:
            cams = {c.id: (c.res_w, c.res_h) for c in load_cameras(data.dataset).intrinsics}
        sizes = np.array([cams[str(c)] for c in data.camera])
    except (ValueError, KeyError) as e:
        raise ConfigError(f"no image size for the cameras of dataset {data.dataset!r} ({e}); "
                          "pass --image-size W H") from None
    return sizes[:, 0], sizes[:, 1]


def cell_metrics(hyps: np.ndarray, aggregate: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """hyps (N, H, J, 3), aggregate (N, J, 3), gt (N, J, 3) metres; mask (N, J) True = present.
    Returns millimetres."""
    errors = hypothesis_errors(hyps, gt)                              # (N, H)
    joint_err = per_joint_errors(aggregate, gt)                       # (N, J)
    spread = hypothesis_spread(hyps)                                  # (N, J)
    present = mask.copy()
    present[:, 0] = False                                             # the root is always present
    missing = ~mask

    def masked_mean(values, where):
        return 1000.0 * float(values[where].mean()) if where.any() else None

    return {
        "mpjpe_n1": 1000.0 * float(errors[:, 0].mean()),
        "mpjpe_aggregate": 1000.0 * float(joint_err.mean()),
        "oracle_best_of_h": 1000.0 * float(errors.min(axis=1).mean()),
        "mpjpe_missing_joints": masked_mean(joint_err, missing),
        "mpjpe_present_joints": masked_mean(joint_err, present),
        "spread_missing_joints": masked_mean(spread, missing),
        "spread_present_joints": masked_mean(spread, present),
        "spread_all_joints": 1000.0 * float(spread.mean()),
    }


def _window_input(lifter: Lifter, noisy: np.ndarray, windows: np.ndarray | None, sigma: float, res_w, res_h,
                  seed: int) -> np.ndarray:
    """What `lifter` reads in one cell: the noisy frames (N, J, 2), or for a windowed model its
    windows (N, W, J, 2) with the same noise σ on every frame and, on the centre frame, exactly
    the single-frame models' noisy input."""
    if lifter.window == 1:
        return noisy
    if windows is None or windows.shape[1] != lifter.window:
        raise ConfigError(f"robustness: a {lifter.window}-frame model needs the samples' {lifter.window}-frame 2D windows")
    out = add_pixel_noise(windows, sigma, res_w, res_h, seed=seed + 77)
    out[:, lifter.window // 2] = noisy
    return out


def _filled(x: np.ndarray, mask: np.ndarray, skeleton, fill: str) -> np.ndarray:
    """Missing joints (mask (N, J), False = missing) filled in frames (N, J, 2) or in every frame
    of windows (N, W, J, 2)."""
    if x.ndim == 3:
        return fill_missing(x, mask, skeleton, method=fill)
    n, w = x.shape[:2]
    flat = fill_missing(x.reshape(n * w, *x.shape[2:]), np.repeat(mask, w, axis=0), skeleton, method=fill)
    return flat.reshape(x.shape)


def robustness_matrix(lifters: dict[str, Lifter], keypoints_2d: np.ndarray, poses_3d: np.ndarray,
                      res_w: np.ndarray, res_h: np.ndarray, settings: SamplingSettings, *,
                      missing=(0, 1, 2, 4), modes=MASK_MODES, noise_px=(0, 2, 5, 10, 20), seed: int = 0,
                      fill: str = "neighbour", progress: bool = True,
                      windows: dict[int, np.ndarray] | None = None) -> list[dict]:
    """Every (noise, mask, model) cell; the same noisy inputs and masks for every model.
    `fill` (neighbour | template): how missing joints are filled for a model without mask input.
    With settings.input_source `auto`, a source-conditioned model (model.source_condition) is told
    its 2D is clean at σ = 0 and detected otherwise; other models ignore it. `windows` {W: (N, W,
    J, 2)}: the clean 2D windows of the same samples for windowed models (model.window = W);
    their noise is drawn per frame and the masked joints are missing in every frame."""
    if fill not in FILL_METHODS:
        raise ConfigError(f"unknown fill {fill!r}; known: {', '.join(FILL_METHODS)}")
    skeleton = next(iter(lifters.values())).skeleton
    masks = [("none", 0)] if 0 in missing else []
    masks += [(mode, k) for mode in modes for k in missing if k > 0]
    rows = []
    for si, sigma in enumerate(noise_px):
        noisy = add_pixel_noise(keypoints_2d, sigma, res_w, res_h, seed=seed + 1000 * (si + 1))
        # a source-conditioned model is told "clean" for the noise-free rows, "detected" for noisy ones
        cell_settings = (settings.replace(input_source="clean" if sigma == 0 else "detected")
                         if settings.input_source == "auto" else settings)
        for mode, k in masks:
            mask = (np.ones(keypoints_2d.shape[:2], dtype=bool) if k == 0
                    else evaluation_mask(len(noisy), skeleton, k, mode, seed=seed + 100 * k + MASK_MODES.index(mode)))
            for name, lifter in lifters.items():
                supports = bool(getattr(lifter.config.model, "missing_joints", False))
                tic = time.perf_counter()
                x = _window_input(lifter, noisy, (windows or {}).get(lifter.window), sigma, res_w, res_h,
                                  seed + 1000 * (si + 1))
                if supports:
                    out = lifter.predict(x, cell_settings, keypoint_mask=mask, progress=False)
                else:
                    filled = x if k == 0 else _filled(x, mask, skeleton, fill)
                    out = lifter.predict(filled, cell_settings, progress=False)
                if not np.isfinite(out.hypotheses).all():
                    raise FloatingPointError(f"{name}: non-finite hypotheses at σ={sigma} px, {k} {mode} missing")
                row = {"model": name, "input": "mask" if supports else f"{fill}-fill", "mask": mode,
                       "missing": k, "noise_px": sigma, "num_samples": len(noisy),
                       **cell_metrics(out.hypotheses, out.aggregate, poses_3d, mask),
                       "seconds": time.perf_counter() - tic}
                rows.append(row)
                if progress:
                    log.info("σ=%g px %s k=%d %s: N=1 %.1f  N=%d %.1f  ORACLE %.1f  spread missing %s / present %s mm "
                             "(%.0f s)", sigma, mode, k, name, row["mpjpe_n1"], settings.num_hypotheses,
                             row["mpjpe_aggregate"], row["oracle_best_of_h"], _fmt(row["spread_missing_joints"]),
                             _fmt(row["spread_present_joints"]), row["seconds"])
    return rows


def detection_rows(lifters: dict[str, Lifter], detections: np.ndarray, poses_3d: np.ndarray,
                   settings: SamplingSettings, progress: bool = True,
                   windows: dict[int, np.ndarray] | None = None) -> list[dict]:
    """The "real detections" row: every model on the file's detections as they are (a windowed
    model on their windows, `windows` {W: (N, W, J, 2)})."""
    rows = []
    mask = np.ones(detections.shape[:2], dtype=bool)
    for name, lifter in lifters.items():
        tic = time.perf_counter()
        out = lifter.predict(detections if lifter.window == 1 else (windows or {})[lifter.window], settings,
                          progress=False)
        if not np.isfinite(out.hypotheses).all():
            raise FloatingPointError(f"{name}: non-finite hypotheses on the real detections")
        row = {"model": name, "input": "detections", "mask": DETECTIONS, "missing": 0, "noise_px": 0,
               "num_samples": len(detections), **cell_metrics(out.hypotheses, out.aggregate, poses_3d, mask),
               "seconds": time.perf_counter() - tic}
        rows.append(row)
        if progress:
            log.info("real detections %s: N=1 %.1f  N=%d %.1f  ORACLE %.1f mm (%.0f s)", name, row["mpjpe_n1"],
                     settings.num_hypotheses, row["mpjpe_aggregate"], row["oracle_best_of_h"], row["seconds"])
    return rows


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def markdown_tables(rows: list[dict], settings: SamplingSettings) -> str:
    """One table per metric: rows (model, mask, k), columns σ."""
    sigmas = sorted({r["noise_px"] for r in rows})
    keys = []
    for r in rows:
        key = (r["model"], r["mask"], r["missing"])
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda k: (k[0], k[1] == DETECTIONS, k[1] != "none", k[1], k[2]))
    cell = {(r["model"], r["mask"], r["missing"], r["noise_px"]): r for r in rows}
    H = settings.num_hypotheses
    metrics = [("mpjpe_n1", "MPJPE (mm), N=1"),
               ("mpjpe_aggregate", f"MPJPE (mm), N={H}, {settings.aggregate} aggregate"),
               ("oracle_best_of_h", f"ORACLE best-of-{H} MPJPE (mm) — picks with the 3D ground truth"),
               ("mpjpe_missing_joints", f"error at the missing joints only (mm), N={H} {settings.aggregate}"),
               ("spread_missing_joints", "hypothesis spread at the missing joints (mm)"),
               ("spread_present_joints", "hypothesis spread at the present non-root joints (mm)")]
    out = []
    for metric, title in metrics:
        out.append(f"\n**{title}**\n")
        out.append("| model | missing | " + " | ".join(f"σ={s:g} px" for s in sigmas) + " |")
        out.append("|---|---|" + "---:|" * len(sigmas))
        for model, mode, k in keys:
            if metric.endswith("missing_joints") and k == 0:
                continue
            label = row_label({"mask": mode, "missing": k})
            vals = [_fmt(cell.get((model, mode, k, s), {}).get(metric)) for s in sigmas]
            out.append(f"| {model} | {label} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def run_robustness(runs: dict[str, str], data_path, split: str, settings: SamplingSettings, *,
                   checkpoint: str = "ema", max_samples: int = 1000, missing=(0, 1, 2, 4), modes=MASK_MODES,
                   noise_px=(0, 2, 5, 10, 20), fill: str = "neighbour", image_size: tuple[int, int] | None = None,
                   seed: int = 0, device: str = "cpu", progress: bool = True) -> tuple[list[dict], dict]:
    """The matrix for named runs {name: run dir} on a seeded `max_samples` subset (0 = all) of
    `split` -> (cells, card). Every run must use the data's skeleton; `checkpoint` is the choice
    for every run; `best` is refused on the split that chose it (`scoring.open_run`)."""
    if not runs:
        raise ConfigError("run_robustness: no run to test")
    selection = EvalConfig(checkpoint=checkpoint, max_samples=max_samples, seed=seed)
    source = load_prepared(data_path)
    opened = {name: open_run(path, data_path, split, selection, device=device, source=source)
              for name, path in runs.items()}
    lifters = {name: run.lifter for name, run in opened.items()}
    data = next(iter(opened.values())).data
    res_w, res_h = image_sizes(data, image_size)
    log.info("%d %s samples of %s; models: %s", len(data), split, data_path,
             ", ".join(f"{n} (missing_joints={lf.config.model.missing_joints})" for n, lf in lifters.items()))
    detected = data.keypoints_2d_gt is not None
    clean = data.keypoints_2d_gt if detected else data.keypoints_2d
    first = next(iter(opened.values()))
    sizes = {lf.window for lf in lifters.values()} - {1}
    clean_windows = {w: sample_windows(source, first.index, w, source.keypoints_2d_gt if detected else None)
                     for w in sizes}
    rows = robustness_matrix(lifters, clean, data.poses_3d, res_w, res_h, settings, missing=tuple(missing),
                             modes=tuple(modes), noise_px=tuple(noise_px), seed=seed, fill=fill, progress=progress,
                             windows=clean_windows)
    if detected:
        rows += detection_rows(lifters, data.keypoints_2d, data.poses_3d, settings, progress=progress,
                               windows={w: sample_windows(source, first.index, w) for w in sizes})
    card = {"dataset": data.dataset, "split": split, "num_samples": len(data), "seed": seed,
            "matrix_2d": "projected ground truth (keypoints_2d_gt) + noise/masks" if detected else "the file's 2D + noise/masks",
            "real_detections_row": data.meta.get("keypoints_2d_name") if detected else None,
            "checkpoint": checkpoint, "fill_for_models_without_mask_input": fill,
            "num_hypotheses": settings.num_hypotheses, "sampler": f"{settings.sampler}-{settings.num_steps}",
            "flip": settings.flip, "aggregate": settings.aggregate,
            "input_source": ("clean at 0 px, detected otherwise (source-conditioned models)"
                             if settings.input_source == "auto" else settings.input_source),
            "checkpoints": {n: lf.checkpoint_card for n, lf in lifters.items()}}
    return rows, card
