"""Fitting the post-hoc calibration (`diffupose.inference.calibration`) and measuring it.

- `fit_calibration(hyps, agg, gt, source, split=...)`: `joint_scale` per joint by a 1-D search
  (a log grid, then two finer grids around each joint's best) minimising that joint's quantile
  calibration error, then the split-conformal radius factors of the calibrated hypotheses. It
  never fits on a test split (a one-line ConfigError names it).
- `calibration_report(hyps, agg, gt, calibration, err2d=None)` -> {"raw", "calibrated"}: for the
  raw sampler and for the calibrated bands, the quantile calibration error and reliability curve,
  the coverage of the 50 / 90 / 95 % bands, the Spearman rank correlation of per-joint
  uncertainty and error per sample, a per-pose confidence score (the mean per-joint uncertainty)
  with its AUROC for flagging poses whose MPJPE exceeds 100 mm, and with the 2D error of
  detections the coverage of the 90 % band per decile of 2D error (does it hold on the worst
  10 %?). `evaluate` files the same per-sample values batch by batch (`file_batch`,
  `summarise`), so both report one definition.
- `held_out_calibration`: the validation rows split in two halves by sequence
  (`split_halves`, alternate (subject, sequence) groups in a seeded order; a split of fewer than 20
  sequences, such as HumanEva-I's, cuts each sequence in time instead), ten seeded splits, each
  used both ways (fit on one half, both methods measured on the other); the method with the
  lower mean calibration error is kept and refit on every row; its `held_out` numbers are the
  means over the 20 held-out halves, with their range.
- `calibrate_model`: what `diffupose calibrate` runs (sample N hypotheses through the shared
  path, fit, write calibration.json beside the weights and, for a zoo model, its card).

Per-joint uncertainty: the spread of the hypotheses (mean distance to their mean,
`hypothesis_spread`) of the raw or calibrated hypotheses, times the 90 % conformal factor for the
conformal method (its 90 % radius). Joints that never move (the root) are left out.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import Config
from ..errors import ConfigError, DataError
from ..inference import zoo
from ..inference.aggregate import hypothesis_spread
from ..inference.calibration import (CALIBRATION_QUANTILES, Calibration, quantile_bands, save_calibration,
                                     scale_hypotheses)
from ..data.prepared import load_prepared
from ..inference.lifter import Lifter, SamplingSettings, checkpoint_for_split
from ..utils import as_numpy, git_changed_paths, git_commit, to_jsonable
from . import metrics
from .scoring import BatchScores, EvalRun, has_detections, input_source_of, keypoint_errors_px, open_run

__all__ = ["REPORTED_LEVELS", "FLAG_MPJPE_MM", "COVERAGE_90_RANGE", "check_fit_split", "scaled_band_errors",
           "fit_joint_scale",
           "conformal_factors", "fit_calibration", "split_halves", "file_batch", "summarise", "calibration_report",
           "held_out_calibration", "evaluation_source", "calibrate_model", "CalibrationRun", "format_report",
           "cache_calibration", "report_from", "detection_errors_px", "report_rows", "ROW_COLUMNS"]

REPORTED_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)
FLAG_MPJPE_MM = 100.0                  # a pose worse than this is what the confidence score should flag
COVERAGE_90_RANGE = (0.87, 0.93)       # the 90 % band's coverage counts as holding inside this range
SCALE_GRID = np.geomspace(0.25, 16.0, 49)   # joint_scale candidates: a factor 2^(1/8) apart
MIN_ROWS = 20                          # rows a fit needs: every stored conformal level up to 0.95 finite


def check_fit_split(split: str, test_split: str = "test") -> str:
    """`split` unless it is a test split: the calibration is fitted on validation data only."""
    if split in (test_split, "test"):
        raise ConfigError(f"calibration: refusing to fit on split {split!r}, a test split; fit on the model's "
                          f"validation split (config.data.val_split)")
    return split


def scaled_band_errors(hyps, agg, gt, quantiles=CALIBRATION_QUANTILES):
    """-> errors(joint_scale (J,)) -> (J,): the quantile calibration error per joint of the
    hypotheses scaled about the aggregate (`scale_hypotheses`), as `metrics.calibration_indicators`
    scores them. The bands are equivariant: scaling the deviations from the aggregate by s moves the
    median's deviation and scales every radius by s, so the raw bands are computed once."""
    hyps, agg, gt = as_numpy(hyps), as_numpy(agg), as_numpy(gt)
    q = np.asarray(quantiles, dtype=np.float64)
    centre, radius = quantile_bands(hyps, q)                                            # (B, J, 3), (B, Q, J)
    offset, shift = gt - agg, centre - agg

    def errors(joint_scale) -> np.ndarray:
        s = np.asarray(joint_scale, dtype=np.float64)
        distance = np.linalg.norm(offset - s[None, :, None] * shift, axis=-1)            # (B, J)
        inside = distance[:, None, :] < s[None, None, :] * radius
        return np.abs(inside.mean(axis=0) - q[:, None]).mean(axis=0)

    return errors


def fit_joint_scale(hyps, agg, gt, quantiles=CALIBRATION_QUANTILES, grid=SCALE_GRID, refine: int = 2) -> np.ndarray:
    """Per joint, the scale of the deviations from the aggregate that minimises the joint's
    quantile calibration error (`scaled_band_errors`): a log grid, then `refine` grids four times
    finer around each joint's best. A joint's bands depend on its own scale only, so one grid
    point scores every joint at once. Joints that never move get 1.
    hyps: (B, H, J, 3), agg, gt: (B, J, 3) -> (J,)"""
    hyps, agg, gt = as_numpy(hyps), as_numpy(agg), as_numpy(gt)
    joints = hyps.shape[2]
    errors_of = scaled_band_errors(hyps, agg, gt, quantiles)
    grid = np.asarray(grid, dtype=np.float64)
    errors = np.stack([errors_of(np.full(joints, s)) for s in grid])                     # (G, J)
    best = grid[errors.argmin(axis=0)]
    ratio = float(grid[1] / grid[0]) if len(grid) > 1 else 2.0
    for _ in range(refine):
        ratio = ratio ** 0.25
        candidates = best[None, :] * ratio ** np.arange(-4, 5)[:, None]                  # (9, J)
        errors = np.stack([errors_of(c) for c in candidates])
        best = candidates[errors.argmin(axis=0), np.arange(joints)]
    still = metrics.degenerate_joints(hyps, gt).all(axis=0)
    return np.where(still, 1.0, best)


def conformal_factors(hyps, agg, gt, levels=CALIBRATION_QUANTILES) -> np.ndarray:
    """Split-conformal radius factors (Q, J): per joint and level q, the ceil((n + 1) q)-th smallest
    of the n scores |gt - agg| / spread (spread: `hypothesis_spread` of `hyps`, the calibrated
    hypotheses), inf when that rank exceeds n. radius = factor x spread then covers a new
    exchangeable row with probability >= q."""
    hyps, agg, gt = as_numpy(hyps), as_numpy(agg), as_numpy(gt)
    spread = np.maximum(hypothesis_spread(hyps), 1e-9)
    scores = np.sort(np.linalg.norm(gt - agg, axis=-1) / spread, axis=0)                    # (n, J)
    n = len(scores)
    out = np.full((len(levels), scores.shape[1]), np.inf)
    for i, q in enumerate(levels):
        k = math.ceil((n + 1) * float(q) - 1e-9)
        if 1 <= k <= n:
            out[i] = scores[k - 1]
    return out


def _finite(*arrays) -> np.ndarray:
    """Rows where every array is finite."""
    ok = None
    for a in arrays:
        a = as_numpy(a)
        row = np.isfinite(a).reshape(len(a), -1).all(axis=1)
        ok = row if ok is None else ok & row
    return ok


def fit_calibration(hyps, agg, gt, source: str, *, split: str, test_split: str = "test", method: str = "scale",
                    levels=CALIBRATION_QUANTILES, joint_names: Sequence[str] = (), fitted_on: dict | None = None,
                    held_out: dict | None = None) -> Calibration:
    """Fit a Calibration of one 2D source on validation rows (see the module docstring).

    hyps: (B, H, J, 3) RAW hypotheses; agg: (B, J, 3) their aggregate; gt: (B, J, 3); split: the
    split the rows come from (a test split is refused, one-line ConfigError). Rows with
    non-finite values are left out."""
    check_fit_split(split, test_split)
    ok = _finite(hyps, agg, gt)
    if ok.sum() < MIN_ROWS:
        raise DataError(f"calibration: {int(ok.sum())} finite rows to fit on; it needs {MIN_ROWS} at least "
                        f"(the 95 % conformal radius needs 19)")
    hyps, agg, gt = as_numpy(hyps)[ok], as_numpy(agg)[ok], as_numpy(gt)[ok]
    joint_scale = fit_joint_scale(hyps, agg, gt)
    factors = conformal_factors(scale_hypotheses(hyps, agg, joint_scale), agg, gt, levels)
    return Calibration(source=source, joint_scale=joint_scale, levels=tuple(float(q) for q in levels),
                       conformal_factors=factors, method=method, joint_names=tuple(joint_names),
                       fitted_on={**(fitted_on or {}), "split": split, "num_rows": int(ok.sum())},
                       held_out=held_out or {})


# Below this many (subject, sequence) groups, whole sequences cannot make two halves alike (HumanEva-I's
# validation chunks are 9 groups, one per subject x action): each group is cut in time instead.
MIN_GROUPS_BY_SEQUENCE = 20


def split_halves(subjects, sequences, seed: int = 0, frames=None) -> np.ndarray:
    """(B,) bool, True for half A: the (subject, sequence) groups in a seeded random order,
    alternately to half A and half B (every camera and frame of a sequence in one half). With
    fewer than MIN_GROUPS_BY_SEQUENCE groups and `frames` given, every group is cut in time
    instead: its frames before the group's median frame go to one half, the rest to the other
    (which half gets the earlier block alternates over the groups in the seeded order), so both
    halves hold every subject and action, in contiguous blocks. Needs two groups at least, or one
    group with two frames when cut in time (one-line DataError)."""
    keys = np.char.add(np.char.add(np.asarray(subjects).astype(str), "\x1f"), np.asarray(sequences).astype(str))
    groups, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.random.default_rng(seed).permutation(len(groups))
    if frames is not None and len(groups) < MIN_GROUPS_BY_SEQUENCE:
        frames = np.asarray(frames).reshape(-1)
        earlier_to_a = np.zeros(len(groups), dtype=bool)
        earlier_to_a[order[0::2]] = True
        half_a = np.zeros(len(keys), dtype=bool)
        for g in range(len(groups)):
            rows = inverse == g
            earlier = frames[rows] < np.median(frames[rows])
            half_a[rows] = earlier if earlier_to_a[g] else ~earlier
        if half_a.all() or not half_a.any():
            raise DataError("calibration: the held-out protocol needs two frames at least in a sequence to cut it "
                            "in time")
        return half_a
    if len(groups) < 2:
        raise DataError(f"calibration: the held-out protocol splits by sequence and needs two (subject, sequence) "
                        f"groups at least, got {len(groups)}")
    half_a = np.zeros(len(groups), dtype=bool)
    half_a[order[0::2]] = True
    return half_a[inverse]


# --- Measuring: per-sample values filed batch by batch, then summarised ------------------------

def file_batch(scores: BatchScores, key: str, start: int, stop: int, hyps, agg, gt,
               calibration: Calibration | None = None) -> None:
    """File one batch's calibration values under (key, name): the raw hypotheses' own bands when
    `calibration` is None, else the calibrated bands (`Calibration.apply`, `Calibration.bands`).
    hyps: (b, H, J, 3) RAW; agg: (b, J, 3) their ground-truth-free aggregate; gt: (b, J, 3)."""
    hyps, agg, gt = as_numpy(hyps), as_numpy(agg), as_numpy(gt)
    q = CALIBRATION_QUANTILES
    if calibration is None:
        shown = hyps
        centre, radius = quantile_bands(hyps, q)
        uncertainty = hypothesis_spread(hyps)
    else:
        shown = calibration.apply(hyps, agg)
        centre, radius = calibration.bands(shown, agg, q)
        spread = hypothesis_spread(shown)
        uncertainty = calibration.radii(spread, 0.9) if calibration.method == "conformal" else spread
    inside = metrics.band_indicators(centre, radius, gt)                                 # (b, Q, J)
    finite = _finite(hyps, agg, gt)
    degenerate = metrics.degenerate_joints(hyps, gt)                                     # (b, J)
    error = metrics.per_joint_errors(agg, gt)
    moving = np.maximum((~degenerate).sum(axis=1), 1)
    levels = [int(np.argmin(np.abs(q - level))) for level in REPORTED_LEVELS]
    scores.put((key, "finite"), start, stop, finite)
    scores.put((key, "band"), start, stop, inside[:, levels])
    scores.put((key, "spearman"), start, stop,
               metrics.spread_error_spearman(uncertainty, error)["per_sample_values"])
    scores.put((key, "score_mm"), start, stop, (uncertainty * ~degenerate).sum(axis=1) / moving * 1000.0)
    scores.put((key, "radius_90_mm"), start, stop, (radius[:, levels[1]] * ~degenerate).sum(axis=1) / moving * 1000.0)
    scores.put((key, "mpjpe_mm"), start, stop, error.mean(axis=1) * 1000.0)
    scores.add((key, "hits"), inside[finite].sum(axis=0).astype(np.int64))
    scores.add((key, "degenerate"), degenerate[finite].sum(axis=0).astype(np.int64))
    scores.add((key, "count"), int(finite.sum()))


def summarise(scores: BatchScores, key: str, err2d=None, joint_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The figures of what `file_batch` filed under `key` (see the module docstring). err2d: (B,)
    mean 2D error of each sample in pixels (detections), for the coverage per 2D-error decile."""
    per, sums = scores.per_sample, scores.sums
    count = int(sums[(key, "count")])
    if count == 0:
        return {"num_samples": 0, "calibration_error": None}
    informative = sums[(key, "degenerate")] < count
    names = list(joint_names) if joint_names is not None else [str(j) for j in range(len(informative))]
    curve = metrics.reliability(sums[(key, "hits")][:, informative] / count, CALIBRATION_QUANTILES,
                                [n for n, keep in zip(names, informative) if keep])
    finite = per[(key, "finite")]
    covered = per[(key, "band")][..., informative].mean(axis=-1)                          # (B, 3)
    mpjpe, score = per[(key, "mpjpe_mm")], per[(key, "score_mm")]
    spearman = per[(key, "spearman")][finite]
    over = mpjpe > FLAG_MPJPE_MM
    out = {
        "calibration_error": curve["error"],
        "reliability": {k: curve[k] for k in ("quantiles", "fraction", "error_per_joint")},
        "coverage": {f"{level:g}": float(covered[finite, i].mean()) for i, level in enumerate(REPORTED_LEVELS)},
        "spearman_per_sample": float(np.nanmean(spearman)) if np.isfinite(spearman).any() else None,
        "confidence": {"auroc": metrics.auroc(score[finite], over[finite]), "threshold_mm": FLAG_MPJPE_MM,
                       "share_over_threshold": float(over[finite].mean())},
        "mean_uncertainty_mm": float(score[finite].mean()),
        "mean_radius_90_mm": float(per[(key, "radius_90_mm")][finite].mean()),
        "mpjpe_mm": float(mpjpe[finite].mean()),
        "num_samples": count,
        "coverage_90_by_2d_error": None if err2d is None else _by_2d_error(np.asarray(err2d)[finite], covered[finite, 1]),
    }
    return to_jsonable(out)


def _by_2d_error(err2d: np.ndarray, covered_90: np.ndarray) -> dict[str, Any]:
    """Coverage of the 90 % band per decile of 2D error, and whether it holds on the worst 10 %."""
    edges = np.quantile(err2d, np.linspace(0.0, 1.0, 11))
    which = np.clip(np.searchsorted(edges, err2d, side="right") - 1, 0, 9)
    bins = [{"decile": d + 1, "lo_px": float(edges[d]), "hi_px": float(edges[d + 1]), "num": int((which == d).sum()),
             "coverage_90": float(covered_90[which == d].mean()) if (which == d).any() else None} for d in range(10)]
    worst = bins[-1]["coverage_90"]
    return {"bins": bins, "worst_10pct_coverage_90": worst, "worst_10pct_from_px": bins[-1]["lo_px"],
            "holds_on_worst_10pct": None if worst is None else bool(worst >= COVERAGE_90_RANGE[0]),
            "note": f"coverage of the 90 % band per decile of the mean 2D error (px); it holds when >= "
                    f"{COVERAGE_90_RANGE[0]:g}"}


def calibration_report(hyps, agg, gt, calibration: Calibration | None, err2d=None,
                       joint_names: Sequence[str] | None = None) -> dict[str, Any]:
    """{"raw": figures of the raw hypotheses, "calibrated": figures of `calibration`'s bands (None
    without one), "card"}: see the module docstring. hyps (B, H, J, 3) RAW, agg, gt (B, J, 3)
    metres; err2d (B,) px or None."""
    scores = BatchScores(len(as_numpy(hyps)))
    file_batch(scores, "raw", 0, scores.num_samples, hyps, agg, gt)
    if calibration is not None:
        file_batch(scores, "calibrated", 0, scores.num_samples, hyps, agg, gt, calibration)
    return report_from(scores, calibration, err2d, joint_names)


def report_from(scores: BatchScores, calibration: Calibration | None, err2d=None,
                joint_names: Sequence[str] | None = None, card: dict | None = None) -> dict[str, Any]:
    """The {"raw", "calibrated", "card"} report of what `file_batch` filed under "raw" and
    "calibrated"."""
    return {"raw": summarise(scores, "raw", err2d, joint_names),
            "calibrated": None if calibration is None else summarise(scores, "calibrated", err2d, joint_names),
            "card": {**(card or {}), **_report_card(calibration)}}


def _report_card(calibration: Calibration | None) -> dict[str, Any]:
    return {"calibration": None if calibration is None else calibration.summary(),
            "bands": "raw: the hypotheses' own quantile balls around their median; calibrated: "
                     + ("none" if calibration is None else
                        {"scale": "the scaled hypotheses' own quantile balls around their median",
                         "conformal": "balls around the aggregate of radius factor x spread (split conformal)"}
                        [calibration.method]),
            "uncertainty": "per joint: the spread of the hypotheses (x the 90 % conformal factor for the conformal "
                           "method); confidence score: its mean over the joints that move",
            "flag": f"AUROC of the score for poses whose MPJPE exceeds {FLAG_MPJPE_MM:g} mm",
            "aggregate": "ground-truth free; calibration does not change it"}


HELD_OUT_REPEATS = 10      # seeded splits into halves; each is measured in both directions


def held_out_calibration(hyps, agg, gt, source: str, *, split: str, subjects, sequences, seed: int = 0, err2d=None,
                         test_split: str = "test", joint_names: Sequence[str] = (), fitted_on: dict | None = None,
                         frames=None, repeats: int = HELD_OUT_REPEATS) -> tuple[Calibration, dict[str, Any]]:
    """Held-out figures of both methods, then the better one refit on every row.

    `repeats` seeded splits of the rows into halves (seeds seed, seed + 1, ...; by sequence, or in
    time when the split has few sequences and `frames` are given: `split_halves`); each split is
    used both ways (fit on A, measure on B; fit on B, measure on A), so every figure is the mean
    over 2 x repeats held-out halves (never in-sample), with the range of the calibration error and
    the 90 % coverage over them (`across_halves`). One split alone is a noisy estimate when the
    split has few sequences (HumanEva-I: 9); the mean is the expected figure on unseen rows.
    -> (calibration, held-out report with "raw", "scale", "conformal", "chosen", "calibrated" = the
    chosen one's figures, "rows")."""
    check_fit_split(split, test_split)
    if int(repeats) < 1:
        raise ConfigError(f"calibration: repeats must be >= 1, got {repeats}")
    hyps, agg, gt = as_numpy(hyps), as_numpy(agg), as_numpy(gt)
    names = list(joint_names) or None
    groups = lambda mask: int(len(set(zip(np.asarray(subjects)[mask].tolist(), np.asarray(sequences)[mask].tolist()))))
    in_time = frames is not None and groups(np.ones(len(hyps), dtype=bool)) < MIN_GROUPS_BY_SEQUENCE
    per_half: dict[str, list[dict[str, Any]]] = {"raw": [], "scale": [], "conformal": []}
    halves, first_scale = [], None
    for r in range(int(repeats)):
        half_a = split_halves(subjects, sequences, seed + r, frames)
        for fit_rows, eval_rows in ((half_a, ~half_a), (~half_a, half_a)):
            fitted = fit_calibration(hyps[fit_rows], agg[fit_rows], gt[fit_rows], source, split=split,
                                     test_split=test_split, joint_names=joint_names)
            first_scale = fitted.joint_scale.tolist() if first_scale is None else first_scale
            e2d = None if err2d is None else np.asarray(err2d)[eval_rows]
            scores = BatchScores(int(eval_rows.sum()))
            file_batch(scores, "raw", 0, scores.num_samples, hyps[eval_rows], agg[eval_rows], gt[eval_rows])
            for method in ("scale", "conformal"):
                file_batch(scores, method, 0, scores.num_samples, hyps[eval_rows], agg[eval_rows], gt[eval_rows],
                           fitted.replace(method=method))
            for key in per_half:
                per_half[key].append(summarise(scores, key, e2d, names))
            halves.append({"fit": {"sequences": groups(fit_rows), "rows": int(fit_rows.sum())},
                           "report": {"sequences": groups(eval_rows), "rows": int(eval_rows.sum())}})
    figures = {key: _mean_figures(values) for key, values in per_half.items()}
    errors = {m: figures[m]["calibration_error"] for m in ("scale", "conformal")}
    chosen = min(errors, key=lambda m: (math.inf if errors[m] is None else errors[m], m != "scale"))
    how = (f"every (subject, sequence) cut in time at its median frame, the earlier block to one half or the other "
           f"alternately in a seeded order" if in_time else
           "split by (subject, sequence), alternate groups in a seeded order")
    rows = {"protocol": f"{repeats} seeded splits of the {split!r} rows into two halves ({how}; seeds {seed} to "
                        f"{seed + int(repeats) - 1}), each used both ways: fitted on one half, reported on the other; "
                        f"every figure is the mean over the {2 * int(repeats)} held-out halves; the stored "
                        f"calibration is refit on all rows with the chosen method",
            "halves": "in time" if in_time else "by sequence", "repeats": int(repeats),
            "held_out_halves": 2 * int(repeats),
            "fit_half": {"sequences": _mean([h["fit"]["sequences"] for h in halves]),
                         "rows": _mean([h["fit"]["rows"] for h in halves])},
            "report_half": {"sequences": _mean([h["report"]["sequences"] for h in halves]),
                            "rows": _mean([h["report"]["rows"] for h in halves])}}
    report = {**figures, "chosen": chosen, "calibrated": figures[chosen], "rows": rows,
              "joint_scale_half_a": first_scale}
    final = fit_calibration(hyps, agg, gt, source, split=split, test_split=test_split, method=chosen,
                            joint_names=joint_names, fitted_on={**(fitted_on or {}), "rows": "all rows of the split"},
                            held_out={"rows": rows, "chosen": chosen,
                                      **{k: _compact(figures[k]) for k in ("raw", "scale", "conformal")}})
    return final, to_jsonable(report)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _mean_figures(items: list[Any]) -> Any:
    """The mean of several `summarise` figures of the same shape: numbers (and lists of numbers)
    averaged over the items that have them (None where none has), strings and flags kept when all
    agree (None otherwise); `holds_on_worst_10pct` follows the mean worst-decile coverage; the top
    level gets `across_halves`, the range of the calibration error and the 90 % coverage."""
    out = _mean_of(items)
    if isinstance(out, dict) and len(items) > 1:
        error = [i.get("calibration_error") for i in items if i.get("calibration_error") is not None]
        cov = [(i.get("coverage") or {}).get("0.9") for i in items]
        cov = [c for c in cov if c is not None]
        out["across_halves"] = {"num": len(items),
                                "calibration_error": [min(error), max(error)] if error else None,
                                "coverage_90": [min(cov), max(cov)] if cov else None}
        by2d = out.get("coverage_90_by_2d_error")
        if isinstance(by2d, dict) and by2d.get("worst_10pct_coverage_90") is not None:
            by2d["holds_on_worst_10pct"] = bool(by2d["worst_10pct_coverage_90"] >= COVERAGE_90_RANGE[0])
    return out


def _mean_of(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(v, dict) and k in v for v in present)]
        return {k: _mean_of([v[k] for v in present]) for k in keys}
    if isinstance(first, bool) or isinstance(first, str):
        return first if all(v == first for v in present) else None
    if isinstance(first, (int, float)):
        if all(type(v) is type(first) and v == first for v in present):
            return first                                   # a count or a bin edge shared by every half
        return float(np.mean([float(v) for v in present]))
    if isinstance(first, list):
        if any(not isinstance(v, list) or len(v) != len(first) for v in present):
            return None
        return [_mean_of(list(column)) for column in zip(*present)]
    return first


def _compact(figures: dict[str, Any]) -> dict[str, Any]:
    """The held-out figures a calibration file keeps (the per-joint errors and 2D bins left out)."""
    by2d = figures.get("coverage_90_by_2d_error") or {}
    return {"calibration_error": figures.get("calibration_error"), "coverage": figures.get("coverage"),
            "spearman_per_sample": figures.get("spearman_per_sample"),
            "auroc_over_100mm": (figures.get("confidence") or {}).get("auroc"),
            "reliability": {k: (figures.get("reliability") or {}).get(k) for k in ("quantiles", "fraction")},
            "mean_radius_90_mm": figures.get("mean_radius_90_mm"), "mpjpe_mm": figures.get("mpjpe_mm"),
            "worst_10pct_coverage_90": by2d.get("worst_10pct_coverage_90"),
            "holds_on_worst_10pct": by2d.get("holds_on_worst_10pct"),
            "across_halves": figures.get("across_halves")}


def evaluation_source(run: EvalRun) -> str:
    """The 2D source of an opened evaluation's input: settings.input_source when it names one, else
    detected for a detections file's own 2D and clean for ground truth (`input_source_of`)."""
    source = run.settings.input_source
    return input_source_of(run.source, run.ev.input_2d) if source == "auto" else source


def detection_errors_px(run: EvalRun, source: str) -> np.ndarray | None:
    """(n,) mean 2D error (px) of each sample of a run on detections (None on clean 2D)."""
    if source != "detected" or run.ev.input_2d != "file" or not has_detections(run.data):
        return None
    return keypoint_errors_px(run.data).mean(axis=1)


# --- `diffupose calibrate` -------------------------------------------------------------------

@dataclass
class CalibrationRun:
    """What `calibrate_model` did: the stored calibration, the held-out report, the files written."""

    calibration: Calibration
    report: dict[str, Any]
    path: Path | None = None
    card_path: Path | None = None
    card: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"calibration": self.calibration.to_dict(), "held_out": self.report,
                            "path": self.path, "card_path": self.card_path, "card": self.card})

    def format_table(self) -> str:
        return format_report(self.report, self.calibration, self.path)


def calibrate_model(model, data_path, *, split: str | None = None, max_samples: int = 10000,
                    num_hypotheses: int = 10, input_2d: str = "file", checkpoint: str | None = None, seed: int = 0,
                    batch_size: int | None = None, device: str = "auto", out=None, write: bool = True,
                    progress: bool = True, allow_dirty: bool = False) -> CalibrationRun:
    """Fit a model's calibration for the 2D source of `input_2d` on its validation split.

    model: a zoo name or a run (or checkpoint) folder; split: default the model's
    config.data.val_split (a test split is refused); checkpoint: a run's weights (default `auto`:
    the latest EMA weights on the split that chose `best`). Samples `num_hypotheses` hypotheses per
    row (the model's own sampler and steps, flip) on a seeded subset of `max_samples` rows
    (0 = all) through the shared path, runs `held_out_calibration`, and with `write` stores
    calibration.json in `out` (default: beside the weights: the run folder, or the zoo model's
    folder, whose card.json then gets a `calibration` entry and its README.md is rewritten;
    `weights_sha256` is left as it is). Writing into a zoo model's folder from a working tree with
    uncommitted changes outside the zoo's folders (earlier fits of this or another model do not count)
    is refused before any sampling (one-line ConfigError)
    unless `allow_dirty`: the file names the commit that fitted it, which must exist."""
    name = zoo.resolve_name(str(model)) if zoo.is_zoo_name(model) else None
    folder = zoo.model_dir(name) if name else Path(model)
    if not (folder / "config.json").is_file():
        raise DataError(f"{model}: not a run, checkpoint or zoo folder (no config.json)")
    into_zoo = write and name is not None and out is None
    zoo_root = folder.parent       # the shipped models' files are data (weights named by their sha256), not code
    changed = git_changed_paths(folder, ignore=[zoo_root]) if into_zoo else []
    if changed and not allow_dirty:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise ConfigError(f"{name}: the working tree has uncommitted changes ({changed[0]}{more}); the calibration "
                          f"written into the zoo folder names the commit that fitted it: commit first, or pass "
                          f"--allow-dirty")
    config = Config.from_json(folder / "config.json")
    split = check_fit_split(split or config.data.val_split, config.data.test_split)
    if name and checkpoint not in (None, "ema"):
        raise ConfigError(f"zoo model {name}: ships only its final EMA weights (checkpoint 'ema')")
    weights = "ema" if name else checkpoint_for_split(checkpoint or "auto", split, config.data.val_split)
    lifter = Lifter.from_pretrained(name or folder, checkpoint=weights, device=device)
    changes = dict(num_hypotheses=int(num_hypotheses), flip=True, calibrated=False, max_samples=int(max_samples),
                   seed=int(seed), input_2d=input_2d, checkpoint=weights)
    if batch_size:
        changes["batch_size"] = int(batch_size)
    run = open_run(lifter, data_path, split, dataclasses.replace(config.eval, **changes), device=device)
    settings, data = run.settings, run.data
    hyps = np.empty((len(data), settings.num_hypotheses, lifter.skeleton.num_joints, 3), dtype=np.float32)
    for start, stop, batch in lifter.iter_hypotheses(run.condition_2d, settings, progress=progress, desc="calibrate"):
        hyps[start:stop] = batch
    agg = lifter.aggregate(hyps.astype(np.float64), settings.aggregate, keypoints_2d=data.keypoints_2d,
                           intrinsics=data.intrinsics)
    source = evaluation_source(run)
    fitted_on = {"model": name or str(folder), "checkpoint": weights,
                 "weights_sha256": lifter.checkpoint_card.get("weights_sha256"), "data_file": str(data_path),
                 "dataset": data.dataset, "split": split, "subjects": sorted(set(data.subject.tolist())),
                 "input_2d": input_2d, "keypoints_2d_name": run.data_card()["keypoints_2d_name"],
                 "source": source, "max_samples": int(max_samples), "num_samples": len(data), "sample_seed": int(seed),
                 **{k: v for k, v in lifter.sampler_card(settings).items() if k != "input_source"},
                 "num_hypotheses": settings.num_hypotheses, "flip": settings.flip, "eta": settings.eta,
                 "aggregate": settings.aggregate, "seed": settings.seed,
                 "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "git_commit": git_commit(folder, ignore=[zoo_root] if into_zoo else ()),
                 "package_version": lifter.checkpoint_card.get("package_version")}
    calibration, report = held_out_calibration(
        hyps, agg, data.poses_3d, source, split=split, subjects=data.subject, sequences=data.sequence, seed=seed,
        frames=data.frame,
        err2d=detection_errors_px(run, source), test_split=config.data.test_split,
        joint_names=list(lifter.skeleton.joint_names), fitted_on=fitted_on)
    result = CalibrationRun(calibration, report)
    if write:
        result.path = save_calibration(Path(out) if out is not None else folder, calibration)
        if name and out is None:
            result.card_path, result.card = zoo.set_card_entry(name, "calibration", _card_entry(name, calibration))
    return result


def cache_calibration(run_dir, data_path, cache, *, checkpoint: str = "ema", num_hypotheses: int = 10,
                      max_samples: int = 2000, device: str = "auto") -> tuple[Calibration, dict[str, Any], str]:
    """Raw vs calibrated on a hypothesis cache (notebook 08): the run's stored calibration for the
    data's 2D source, or, when it has none, one fitted now on its validation split
    (`calibrate_model`, not written). On the cache's first `num_hypotheses` hypotheses (the N the
    calibration was fitted with) about their mean. When the cache's split is the one the
    calibration was fitted on, the figures are the calibration's own held-out half instead (never
    in-sample). -> (calibration, {"raw", "calibrated", "card"}, what was used (one line))."""
    data = load_prepared(data_path)
    source = input_source_of(data, "file")
    lifter = Lifter.load(run_dir, checkpoint=checkpoint, device=device)
    calibration = lifter.stored_calibration(lifter.default_settings(), source)
    how = "the run's calibration.json"
    if calibration is None:
        calibration = calibrate_model(run_dir, data_path, max_samples=max_samples, num_hypotheses=num_hypotheses,
                                      device=device, write=False, progress=False).calibration
        how = (f"fitted now on {calibration.fitted_on.get('split')!r} (not stored; `diffupose calibrate` stores "
               f"one beside the weights)")
    split = cache.identity.get("split")
    card = {"source": source, "split": split, "num_hypotheses": min(num_hypotheses, cache.num_hypotheses),
            "calibration_used": how}
    if split == calibration.fitted_on.get("split"):
        held = calibration.held_out
        card["rows"] = (f"the calibration's held-out halves of {split!r} (it was fitted on this split; "
                       f"each figure from rows its fit did not see)")
        return calibration, {"raw": held.get("raw"), "calibrated": held.get(held.get("chosen")),
                             "card": {**card, **_report_card(calibration)}}, how
    hyps = cache.hypotheses[:, :num_hypotheses].astype(np.float64)
    subset = data.subset(cache.index)
    err2d = keypoint_errors_px(subset).mean(axis=1) if source == "detected" else None
    report = calibration_report(hyps, hyps.mean(axis=1), subset.poses_3d, calibration, err2d,
                                list(data.skeleton.joint_names))
    report["card"] = {**card, "rows": f"every cached row of {split!r}", **report["card"]}
    return calibration, report, how


def _card_entry(name: str, calibration: Calibration) -> dict[str, Any]:
    """The zoo card's `calibration` entry: the summary of every source fitted so far."""
    entry = dict(zoo.card(name).get("calibration") or {})
    entry[calibration.source] = calibration.summary()
    return {k: entry[k] for k in sorted(entry)}


ROW_COLUMNS: tuple[str, ...] = ("bands", "calibration error", "coverage 50 %", "coverage 90 %", "coverage 95 %",
                              "Spearman per sample", "AUROC MPJPE > 100 mm", "worst 10 % 2D: coverage 90 %",
                              "radius 90 (mm)")


def report_rows(report: dict[str, Any], keys: Sequence[str] = ("raw", "calibrated")) -> list[dict[str, Any]]:
    """One table row per band set of a report (`calibration_report`, `held_out_calibration`, or a
    calibration file's `held_out`), the columns of ROW_COLUMNS; missing sets are skipped."""
    rows = []
    for key in keys:
        fig = report.get(key)
        if not fig:
            continue
        cov = fig.get("coverage") or {}
        auroc = fig.get("auroc_over_100mm", (fig.get("confidence") or {}).get("auroc"))
        by2d = fig.get("coverage_90_by_2d_error") or {}
        worst = fig.get("worst_10pct_coverage_90", by2d.get("worst_10pct_coverage_90"))
        values = [fig.get("calibration_error"), cov.get("0.5"), cov.get("0.9"), cov.get("0.95"),
                  fig.get("spearman_per_sample"), auroc, worst, fig.get("mean_radius_90_mm")]
        label = key + (" (kept)" if key == report.get("chosen") else "")
        rows.append(dict(zip(ROW_COLUMNS, [label, *values])))
    return rows


def format_report(report: dict[str, Any], calibration: Calibration, path: Path | None = None) -> str:
    """The held-out raw vs calibrated table `diffupose calibrate` prints."""
    rows = report.get("rows", {})
    fit, held = rows.get("fit_half", {}), rows.get("report_half", {})
    on = calibration.fitted_on

    def f(v, pattern="{:.3f}"):
        return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else pattern.format(v)

    repeats = rows.get("repeats")
    if repeats:
        held_line = (f"held out: the mean over {rows.get('held_out_halves')} held-out halves ({repeats} seeded splits, "
                     f"each used both ways; about {f(held.get('rows'), '{:.0f}')} rows and "
                     f"{f(held.get('sequences'), '{:.0f}')} sequences a half)"
                     + ("; every sequence cut in time, one block in each half" if rows.get("halves") == "in time" else ""))
    else:                               # a file written before the repeated splits: one split, half B
        held_line = (f"held out: reported on half B ({held.get('sequences')} sequences, {held.get('rows')} rows), "
                     f"fitted on half A ({fit.get('sequences')} sequences, {fit.get('rows')} rows)")
    lines = [f"{calibration.source} 2D · {on.get('model')} · {on.get('data_file')} split {on.get('split')!r} "
             f"({', '.join(on.get('subjects', []))}) · N = {on.get('num_hypotheses')}, {on.get('sampler')} "
             f"{on.get('nfe')} NFE, flip {on.get('flip')}", held_line, "",
             "| " + " | ".join(ROW_COLUMNS) + " |", "|---|" + "---:|" * (len(ROW_COLUMNS) - 1)]
    for row in report_rows(report, ("raw", "scale", "conformal")):
        lines.append("| " + " | ".join([row["bands"]] + [f(row[c], "{:.1f}" if c == "radius 90 (mm)" else "{:.3f}")
                                                         for c in ROW_COLUMNS[1:]]) + " |")
    for key in ("scale", "conformal"):
        spread = (report.get(key) or {}).get("across_halves") or {}
        if spread.get("calibration_error") and spread.get("coverage_90"):
            (e0, e1), (c0, c1) = spread["calibration_error"], spread["coverage_90"]
            lines.append(f"{key} over the {spread.get('num')} halves: calibration error {e0:.3f}-{e1:.3f}, "
                         f"90 % coverage {c0:.3f}-{c1:.3f}")
    raw = report.get("raw") or {}
    lines += ["", f"aggregate MPJPE on the held-out halves: {f(raw.get('mpjpe_mm'), '{:.1f}')} mm, the mean over rows "
                  f"(evaluate's headline is the average over actions); calibration does not change it",
              f"stored: {path or '(not written)'} — method {calibration.method}, refit on all "
              f"{on.get('num_rows')} rows of {on.get('split')!r}; mean joint_scale {calibration.joint_scale.mean():.2f}"]
    return "\n".join(lines)
