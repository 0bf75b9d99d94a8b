"""Pose-error metrics and the per-action / per-subject averaging protocol.

Pure functions in the spirit of VideoPose3D's `common/loss.py`: numpy arrays or torch tensors
in, numpy (float64) out, shapes asserted. Units are whatever the inputs use (the evaluation
passes metres and multiplies by 1000 for millimetres).

Protocols (Human3.6M convention):
- Protocol 1, MPJPE: mean Euclidean joint distance, no alignment.
- Protocol 2, P-MPJPE: MPJPE after a per-frame similarity Procrustes alignment (scale,
  rotation, translation) of the prediction onto the ground truth; reflections are not allowed.
- N-MPJPE: MPJPE after the least-squares scale alone.
Tables: mean over frames within an action (frames of all subjects and cameras pooled, so
frame-weighted), then the unweighted mean over actions is the headline "Average".

Non-finite samples (NaN / inf errors, e.g. from a diverged model) are never dropped silently:
the tables exclude them from every mean, log a warning with their number, and return the
per-group counts on request (`return_nan=True` -> `(table, num_nan_samples)`); with
`nan_policy="raise"` a table refuses them with a DataError instead. `num_nan_samples` holds one
count per group plus the total under "Average".

Probabilistic metrics (hypothesis sets, ground truth needed only to score, never to choose;
the hypothesis spread, which the Lifter reports, is `inference.aggregate.hypothesis_spread`,
re-exported here):
- quantile calibration (`quantile_calibration`): per joint, the fraction of samples whose
  ground-truth distance to the hypotheses' per-coordinate median is below the q-quantile of the
  hypotheses' own distances to that median, for q = 0.05 ... 0.95; calibration error =
  mean |fraction - q| (0 = calibrated; below the diagonal = over-confident);
- spread-error agreement (`spread_error_spearman`): Spearman rank correlation (ties averaged,
  scipy's ranks) between per-joint spread and per-joint error, per sample (across joints) and per
  joint type (across samples);
- ranking (`auroc`): the area under the ROC curve of a confidence score for flagging bad poses,
  from the ranks (Mann-Whitney), no sklearn;
- PCK (`pck`): fraction of joints closer than a threshold (150 mm);
- Correct Poses Score (`correct_poses_score`): area under the correct-poses curve, a pose being
  correct at threshold t when all its joints are closer than t, integrated over t in 0-300 mm
  (Wandt et al., CanonPose; used by Holmquist & Wandt): in millimetres, 0-300, higher is better.
  It equals the mean over samples of max(0, 300 mm - largest joint error), computed exactly.
"""
from __future__ import annotations

import logging
from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from ..geometry.rotations import procrustes_align as _procrustes
from ..inference.aggregate import hypothesis_spread   # the Lifter reports it: it sits on the inference floor
from ..inference.calibration import CALIBRATION_QUANTILES, quantile_bands   # the Lifter's bands: inference floor
from ..utils import as_numpy

log = logging.getLogger(__name__)

__all__ = [
    "AVERAGE", "NAN_POLICIES", "CALIBRATION_QUANTILES", "PCK_THRESHOLD", "CPS_MAX_THRESHOLD",
    "mpjpe", "per_joint_errors", "procrustes_align", "p_mpjpe", "n_mpjpe",
    "hypothesis_errors", "mean_of_hypotheses", "oracle_best_of_h", "per_joint_spread",
    "hypothesis_spread", "hypothesis_metrics",
    "action_table", "subject_table", "subject_action_table", "nan_counts",
    "calibration_indicators", "band_indicators", "degenerate_joints", "quantile_calibration", "reliability",
    "rankdata", "spearman", "spread_error_spearman", "auroc",
    "pck", "per_joint_pck", "correct_poses_score", "grouped_mean",
]

AVERAGE = "Average"
NAN_POLICIES: tuple[str, ...] = ("exclude", "raise")
PCK_THRESHOLD = 0.150        # metres (150 mm)
CPS_MAX_THRESHOLD = 0.300    # metres (300 mm)

_to_numpy = as_numpy


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _to_numpy(pred), _to_numpy(gt)
    assert pred.ndim == 3 and pred.shape[-1] == 3, f"pred: expected (B, J, 3), got {pred.shape}"
    assert pred.shape == gt.shape, f"pred {pred.shape} and gt {gt.shape} differ"
    return pred, gt


def per_joint_errors(pred, gt) -> np.ndarray:
    """Euclidean distance per joint.

    pred, gt: (B, J, 3) same unit -> (B, J)
    """
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred, gt) -> np.ndarray:
    """Protocol 1: mean per-joint position error of each sample.

    pred, gt: (B, J, 3) same unit -> (B,)
    """
    return per_joint_errors(pred, gt).mean(axis=-1)


def procrustes_align(pred, gt) -> np.ndarray:
    """Similarity-align each predicted pose onto its ground truth (orthogonal Procrustes with
    scale and translation), restricted to proper rotations.

    The rotation comes from the SVD of the 3x3 cross-covariance; when det(V U^T) < 0 the last
    singular direction is negated (and with it the last singular value), which yields the best
    proper rotation instead of a reflection (Umeyama 1991). The fit itself is
    `geometry.rotations.procrustes_align`; its SVD step (`svd_rotation`) is also the BVH
    writer's Kabsch fit.

    pred, gt: (B, J, 3) -> pred aligned to gt: (B, J, 3)
    """
    pred, gt = _pair(pred, gt)
    return _procrustes(pred, gt)


def p_mpjpe(pred, gt) -> np.ndarray:
    """Protocol 2: MPJPE after per-frame similarity Procrustes alignment (no reflections).

    pred, gt: (B, J, 3) same unit -> (B,); NaN for a sample whose prediction or ground truth is
    not finite (the tables count those, num_nan_samples), never an SVD failure.
    """
    pred, gt = _pair(pred, gt)
    finite = np.isfinite(pred).all(axis=(1, 2)) & np.isfinite(gt).all(axis=(1, 2))
    if finite.all():
        return mpjpe(procrustes_align(pred, gt), gt)
    out = np.full(len(pred), np.nan)
    if finite.any():
        out[finite] = mpjpe(procrustes_align(pred[finite], gt[finite]), gt[finite])
    return out


def n_mpjpe(pred, gt) -> np.ndarray:
    """MPJPE after the least-squares scale of the prediction (no rotation or translation):
    s = <gt, pred> / <pred, pred> per sample.

    pred, gt: (B, J, 3) same unit -> (B,)
    """
    pred, gt = _pair(pred, gt)
    num = (gt * pred).sum(axis=(1, 2))
    den = (pred * pred).sum(axis=(1, 2))
    scale = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return mpjpe(scale[:, None, None] * pred, gt)


# --- Hypothesis sets -------------------------------------------------------------------------

def _hyps(hyps, gt=None) -> tuple[np.ndarray, np.ndarray | None]:
    hyps = _to_numpy(hyps)
    assert hyps.ndim == 4 and hyps.shape[-1] == 3, f"hyps: expected (B, H, J, 3), got {hyps.shape}"
    if gt is not None:
        gt = _to_numpy(gt)
        assert gt.shape == (hyps.shape[0],) + hyps.shape[2:], f"gt {gt.shape} does not match hyps {hyps.shape}"
    return hyps, gt


def hypothesis_errors(hyps, gt) -> np.ndarray:
    """MPJPE of every hypothesis.

    hyps: (B, H, J, 3), gt: (B, J, 3) -> (B, H)
    """
    hyps, gt = _hyps(hyps, gt)
    return np.linalg.norm(hyps - gt[:, None], axis=-1).mean(axis=-1)


def mean_of_hypotheses(hyps, gt) -> np.ndarray:
    """MPJPE of the mean pose of the hypotheses (the paper's estimate; ground-truth free).

    hyps: (B, H, J, 3), gt: (B, J, 3) -> (B,)
    """
    hyps, gt = _hyps(hyps, gt)
    return mpjpe(hyps.mean(axis=1), gt)


def oracle_best_of_h(hyps, gt) -> np.ndarray:
    """ORACLE: per sample, the smallest MPJPE over the H hypotheses. It picks with the 3D
    ground truth, so it is a bound on what a selector could reach, not an estimate.

    hyps: (B, H, J, 3), gt: (B, J, 3) -> (B,)
    """
    return hypothesis_errors(hyps, gt).min(axis=1)


def per_joint_spread(hyps) -> np.ndarray:
    """Mean distance of the hypotheses to their mean, per joint, averaged over samples.

    hyps: (B, H, J, 3) -> (J,)
    """
    return hypothesis_spread(hyps).mean(axis=0)


def hypothesis_metrics(hyps, gt) -> dict[str, np.ndarray]:
    """Summary of a hypothesis set against the ground truth.

    hyps: (B, H, J, 3), gt: (B, J, 3) -> dict with
      `mean_of_hypotheses` (B,)  MPJPE of the mean pose,
      `oracle_best_of_h` (B,)    ORACLE min over H of MPJPE (uses the ground truth),
      `hypothesis_errors` (B, H) MPJPE of each hypothesis,
      `spread` (B,)              mean distance of hypotheses to their mean,
      `per_joint_spread` (J,)    the same per joint, averaged over samples.
    """
    hyps, gt = _hyps(hyps, gt)
    errors = hypothesis_errors(hyps, gt)
    spread = hypothesis_spread(hyps)
    return {
        "mean_of_hypotheses": mpjpe(hyps.mean(axis=1), gt),
        "oracle_best_of_h": errors.min(axis=1),
        "hypothesis_errors": errors,
        "spread": spread.mean(axis=1),
        "per_joint_spread": spread.mean(axis=0),
    }


# --- Tables ----------------------------------------------------------------------------------

def _labels(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values).astype(str)
    assert arr.shape == (n,), f"{name}: expected ({n},), got {arr.shape}"
    return arr


def _ordered(present: Iterable[str], order: Sequence[str] | None) -> list[str]:
    present = {str(p) for p in present}
    first = [a for a in (order or ()) if a in present]
    return first + sorted(present - set(first))


def _check_policy(nan_policy: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")


def nan_counts(errors, keys, order: Sequence[str] | None = None) -> dict[str, int]:
    """Number of non-finite per-sample values per group, plus the total under "Average".

    errors: (B,); keys: (B,) labels -> {key: count, ..., "Average": total}
    """
    errors = _to_numpy(errors)
    keys = _labels(keys, len(errors), "keys")
    bad = ~np.isfinite(errors)
    out = {key: int(np.count_nonzero(bad[keys == key])) for key in _ordered(np.unique(keys), order)}
    out[AVERAGE] = int(np.count_nonzero(bad))
    return out


def _guard_nan(errors: np.ndarray, keys: np.ndarray, nan_policy: str, what: str) -> dict[str, int]:
    """Apply the NaN policy: count non-finite samples; raise or warn (never silent)."""
    _check_policy(nan_policy)
    counts = nan_counts(errors, keys)
    total = counts[AVERAGE]
    if total:
        groups = ", ".join(f"{k}: {v}" for k, v in counts.items() if v and k != AVERAGE)
        message = f"{what}: {total} of {len(errors)} samples have non-finite errors ({groups})"
        if nan_policy == "raise":
            raise DataError(message)
        log.warning("%s; excluded from the means (num_nan_samples)", message)
    return counts


def _grouped_means(errors: np.ndarray, keys: np.ndarray, order: Sequence[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in _ordered(np.unique(keys), order):
        vals = errors[keys == key]
        vals = vals[np.isfinite(vals)]  # counted and reported by _guard_nan
        out[key] = float(vals.mean()) if vals.size else float("nan")
    return out


def grouped_mean(values, keys, order: Sequence[str] | None = None) -> dict[str, float]:
    """Per-group mean of finite per-sample values and the unweighted mean over groups
    ("Average"), without the NaN guard (for values that may legitimately be undefined, such as
    a rank correlation of a constant sample). values: (B,), keys: (B,) -> {key: mean, ...}"""
    values = _to_numpy(values)
    return _with_average(_grouped_means(values, _labels(keys, len(values), "keys"), order))


def _with_average(cells: dict[str, float]) -> dict[str, float]:
    vals = np.array([v for v in cells.values() if np.isfinite(v)])
    return {**cells, AVERAGE: float(vals.mean()) if vals.size else float("nan")}


def action_table(errors, actions, subjects=None, order: Sequence[str] | None = None, *,
                 nan_policy: str = "exclude", return_nan: bool = False):
    """Per-action errors and their headline average (the usual Human3.6M protocol).

    Each action's value is the mean over all its frames, pooled over subjects and cameras
    (frame-weighted); "Average" is the unweighted mean of the action values.
    errors: (B,) per-sample errors; actions: (B,) labels; subjects: optional (B,) labels, only
    checked for length (pooling over subjects is the protocol; see `subject_action_table` for
    cells); order: preferred column order (unknown actions follow, sorted). Non-finite errors:
    see the module docstring (`nan_policy`, `return_nan`).
    -> {action: error, ..., "Average": error} (with return_nan: that and num_nan_samples)
    """
    errors = _to_numpy(errors)
    assert errors.ndim == 1, f"errors: expected (B,), got {errors.shape}"
    actions = _labels(actions, len(errors), "actions")
    if subjects is not None:
        _labels(subjects, len(errors), "subjects")
    counts = _guard_nan(errors, actions, nan_policy, "action table")
    table = _with_average(_grouped_means(errors, actions, order))
    return (table, counts) if return_nan else table


def subject_table(errors, subjects, order: Sequence[str] | None = None, *, nan_policy: str = "exclude",
                  return_nan: bool = False):
    """Per-subject mean over frames; "Average" is the unweighted mean over subjects.

    errors: (B,), subjects: (B,) -> {subject: error, ..., "Average": error} (with return_nan:
    that and num_nan_samples per subject)
    """
    errors = _to_numpy(errors)
    assert errors.ndim == 1, f"errors: expected (B,), got {errors.shape}"
    subjects = _labels(subjects, len(errors), "subjects")
    counts = _guard_nan(errors, subjects, nan_policy, "subject table")
    table = _with_average(_grouped_means(errors, subjects, order))
    return (table, counts) if return_nan else table


def subject_action_table(errors, subjects, actions, action_order: Sequence[str] | None = None,
                         subject_order: Sequence[str] | None = None, *, nan_policy: str = "exclude",
                         return_nan: bool = False):
    """Subject x action cells (HumanEva-I's Table III layout): the mean over the frames of
    each (action, subject) pair present, plus an "Average" per action (unweighted over subjects)
    and an "Average" entry holding the unweighted mean of all cells.

    errors: (B,), subjects: (B,), actions: (B,) -> {action: {subject: error, "Average": e},
    ..., "Average": {"Average": mean of all cells}} (with return_nan: that and num_nan_samples
    per action)
    """
    errors = _to_numpy(errors)
    assert errors.ndim == 1, f"errors: expected (B,), got {errors.shape}"
    subjects = _labels(subjects, len(errors), "subjects")
    actions = _labels(actions, len(errors), "actions")
    counts = _guard_nan(errors, actions, nan_policy, "subject x action table")
    out: dict[str, dict[str, float]] = {}
    cells: list[float] = []
    for action in _ordered(np.unique(actions), action_order):
        mask = actions == action
        row = _grouped_means(errors[mask], subjects[mask], subject_order)
        cells.extend(v for v in row.values() if np.isfinite(v))
        out[action] = _with_average(row)
    out[AVERAGE] = {AVERAGE: float(np.mean(cells)) if cells else float("nan")}
    return (out, counts) if return_nan else out


# --- Probabilistic metrics -------------------------------------------------------------------

def calibration_indicators(hyps, gt, quantiles=CALIBRATION_QUANTILES) -> np.ndarray:
    """Per sample, joint and level q: is the ground truth inside the hypotheses' q-ball?

    centre = per-coordinate median of the H hypotheses; r_q = q-quantile of the hypotheses'
    distances to the centre (`inference.calibration.quantile_bands`, which the Lifter's
    calibrated bands share); indicator = |gt - centre| < r_q. The quantile is the order
    statistic at rank q (H + 1) (linear interpolation between ranks, i.e. `np.quantile` at level
    (q (H + 1) - 1) / (H - 1), clipped to [0, 1]): if the ground truth were one more draw of the
    sampler its rank among the H + 1 distances would be uniform, so the mean indicator is q for
    any H (the plain level q would be biased by (1 - 2q) / (H + 1)). Below q the sampler is
    over-confident, above it under-confident.
    hyps: (B, H, J, 3), gt: (B, J, 3), quantiles: (Q,) in (0, 1) -> (B, Q, J) bool
    """
    hyps, gt = _hyps(hyps, gt)
    centre, radius = quantile_bands(hyps, quantiles)                     # (B, J, 3), (B, Q, J)
    return band_indicators(centre, radius, gt)


def band_indicators(centre, radius, gt) -> np.ndarray:
    """Is the ground truth inside the ball? centre: (B, J, 3), radius: (B, Q, J), gt: (B, J, 3)
    -> (B, Q, J) bool, |gt - centre| < radius (the hypotheses' own balls: `calibration_indicators`;
    a calibration's bands: `inference.calibration.Calibration.bands`)."""
    distance = np.linalg.norm(_to_numpy(gt) - _to_numpy(centre), axis=-1)   # (B, J)
    return distance[:, None, :] < _to_numpy(radius)


def quantile_calibration(hyps=None, gt=None, quantiles=CALIBRATION_QUANTILES, actions=None,
                         joint_names: Sequence[str] | None = None, indicators=None,
                         order: Sequence[str] | None = None) -> dict:
    """Quantile calibration of a hypothesis set (cGNF / PROPOSE style).

    hyps: (B, H, J, 3), gt: (B, J, 3) (or precomputed `indicators` (B, Q, J)); actions: (B,)
    optional labels; joint_names: (J,) optional. Joints whose hypotheses and ground truth are
    all identical (the root of root-relative poses) carry no information and are skipped.
    -> {"quantiles": [Q], "fraction": [Q] observed fraction over samples and joints,
        "fraction_per_joint": {joint: [Q]}, "error": mean |fraction - q| averaged over joints,
        "error_per_joint": {joint: e}, "per_action": {action: e, "Average": e} (if actions),
        "num_samples": B, "num_nan_samples": samples with non-finite hypotheses or ground truth}
    """
    q = np.asarray(quantiles, dtype=np.float64)
    if indicators is None:
        hyps, gt = _hyps(hyps, gt)
        finite = np.isfinite(hyps).all(axis=(1, 2, 3)) & np.isfinite(gt).all(axis=(1, 2))
        ind = calibration_indicators(hyps, gt, q).astype(np.float64)
        informative = ~degenerate_joints(hyps[finite], gt[finite]).all(axis=0)   # (J,)
    else:
        ind = np.asarray(indicators, dtype=np.float64)
        finite = np.ones(ind.shape[0], dtype=bool)
        informative = np.ones(ind.shape[2], dtype=bool)
    if (~finite).any():
        log.warning("calibration: %d of %d samples have non-finite values; excluded (num_nan_samples)",
                    int((~finite).sum()), len(finite))
    ind_ok = ind[finite][..., informative]                                 # (B', Q, J')
    names = list(joint_names) if joint_names is not None else [str(j) for j in range(ind.shape[2])]
    names = [n for n, keep in zip(names, informative) if keep]
    out = {
        **reliability(ind_ok.mean(axis=0), q, names),
        "num_samples": int(ind.shape[0]),
        "num_nan_samples": int((~finite).sum()),
    }
    if actions is not None:
        acts = _labels(actions, ind.shape[0], "actions")[finite]
        per_action = {}
        for action in _ordered(np.unique(acts), order):
            frac = ind_ok[acts == action].mean(axis=0)
            per_action[action] = float(np.abs(frac - q[:, None]).mean())
        out["per_action"] = _with_average(per_action)
    return out


def degenerate_joints(hyps, gt) -> np.ndarray:
    """Per sample, the joints that carry no information for calibration: every hypothesis and the
    ground truth identical (the root of root-relative poses). hyps: (B, H, J, 3), gt: (B, J, 3)
    -> (B, J) bool; a joint degenerate in every sample is left out of the calibration tables."""
    hyps, gt = _hyps(hyps, gt)
    return (np.ptp(hyps, axis=1).max(axis=-1) == 0) & (np.abs(gt - hyps[:, 0]).max(axis=-1) == 0)


def reliability(fraction_per_joint, quantiles=CALIBRATION_QUANTILES, joint_names: Sequence[str] | None = None) -> dict:
    """The reliability curve and calibration error of observed fractions.

    fraction_per_joint: (Q, J) fraction of ground truths inside the q-band of each joint;
    quantiles: (Q,) -> {"quantiles", "fraction" (Q,) mean over joints, "fraction_per_joint"
    {joint: [Q]}, "error": mean over joints of mean_q |fraction - q|, "error_per_joint"}
    """
    q = np.asarray(quantiles, dtype=np.float64)
    frac_joint = np.asarray(fraction_per_joint, dtype=np.float64).reshape(len(q), -1)
    names = list(joint_names) if joint_names is not None else [str(j) for j in range(frac_joint.shape[1])]
    err_joint = np.abs(frac_joint - q[:, None]).mean(axis=0)               # (J,)
    return {
        "quantiles": q.tolist(),
        "fraction": frac_joint.mean(axis=1).tolist(),
        "fraction_per_joint": {n: frac_joint[:, j].tolist() for j, n in enumerate(names)},
        "error": float(err_joint.mean()) if err_joint.size else float("nan"),
        "error_per_joint": dict(zip(names, map(float, err_joint))),
    }


def rankdata(x, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along `axis`, ties get the average of their ranks: `scipy.stats.rankdata`
    (method 'average') of the float64 input. x: any shape -> float64 ranks of the same shape
    (NaN is not allowed; scipy ranks a slice holding NaN as all NaN)."""
    # Deferred: importing scipy.stats takes about a second, and only the calibration tables rank;
    # every `import diffupose` (the CLI included) would pay it at the top of this module.
    from scipy import stats

    return stats.rankdata(_to_numpy(x), method="average", axis=axis)


def spearman(x, y, axis: int = -1) -> np.ndarray:
    """Spearman rank correlation along `axis` (Pearson correlation of the average ranks).

    Hand-written over `rankdata` because no library batches it: `scipy.stats.spearmanr` on 2-D
    input returns the full variables x variables correlation matrix, not one correlation per
    slice along `axis`.

    x, y: same shape -> that shape without `axis`; NaN where either side is constant.
    """
    rx, ry = rankdata(x, axis), rankdata(y, axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    den = np.sqrt((rx ** 2).sum(axis=axis) * (ry ** 2).sum(axis=axis))
    num = (rx * ry).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def spread_error_spearman(spread, errors, actions=None, joint_names: Sequence[str] | None = None,
                          order: Sequence[str] | None = None) -> dict:
    """Does the model know when it is wrong? Rank agreement of spread and error.

    spread: (B, J) per-joint spread of the hypotheses (e.g. `hypothesis_spread`); errors:
    (B, J) per-joint error of the aggregated pose. Joints that are zero on both sides in every
    sample (the root) are left out. Samples with non-finite values are excluded and counted.
    -> {"per_sample": mean over samples of the across-joint correlation (NaN samples with a
        constant side skipped), "per_sample_values": (B,), "per_joint": {joint: correlation
        across samples}, "per_joint_mean": mean of those, "pooled": over all (sample, joint)
        pairs, "per_action": {action: per-sample mean, "Average"} (if actions),
        "num_nan_samples": n}
    """
    spread, errors = _to_numpy(spread), _to_numpy(errors)
    assert spread.ndim == 2 and spread.shape == errors.shape, f"spread {spread.shape} / errors {errors.shape}"
    finite = np.isfinite(spread).all(axis=1) & np.isfinite(errors).all(axis=1)
    informative = ~((spread[finite] == 0).all(axis=0) & (errors[finite] == 0).all(axis=0))
    s, e = spread[finite][:, informative], errors[finite][:, informative]
    names = list(joint_names) if joint_names is not None else [str(j) for j in range(spread.shape[1])]
    names = [n for n, keep in zip(names, informative) if keep]
    per_sample = np.full(len(spread), np.nan)
    per_sample[finite] = spearman(s, e, axis=1)
    per_joint = spearman(s, e, axis=0) if len(s) > 1 else np.full(s.shape[1], np.nan)
    out = {
        "per_sample": float(np.nanmean(per_sample)) if np.isfinite(per_sample).any() else float("nan"),
        "per_sample_values": per_sample,
        "per_joint": dict(zip(names, map(float, per_joint))),
        "per_joint_mean": float(np.nanmean(per_joint)) if np.isfinite(per_joint).any() else float("nan"),
        "pooled": float(spearman(s.reshape(-1), e.reshape(-1))) if s.size > 1 else float("nan"),
        "num_nan_samples": int((~finite).sum()),
    }
    if actions is not None:
        out["per_action"] = grouped_mean(per_sample, actions, order)
    return out


def auroc(scores, positive) -> float:
    """Area under the ROC curve of `scores` for flagging the `positive` samples: the probability
    that a positive scores above a negative (ties count half), from the ranks of the scores
    (Mann-Whitney U / (n_pos n_neg)). scores: (B,), positive: (B,) bool; non-finite scores are
    left out -> float, NaN when a class is empty."""
    scores, positive = _to_numpy(scores).reshape(-1), np.asarray(positive, dtype=bool).reshape(-1)
    assert scores.shape == positive.shape, f"scores {scores.shape} / positive {positive.shape}"
    ok = np.isfinite(scores)
    scores, positive = scores[ok], positive[ok]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pck(pred, gt, threshold: float = PCK_THRESHOLD) -> np.ndarray:
    """Percentage of correct keypoints per sample: fraction of joints closer than `threshold`
    (same unit as the poses; 0.150 m = 150 mm). pred, gt: (B, J, 3) -> (B,) in [0, 1]"""
    return (per_joint_errors(pred, gt) < threshold).mean(axis=-1)


def per_joint_pck(pred, gt, threshold: float = PCK_THRESHOLD) -> np.ndarray:
    """Fraction of samples in which each joint is closer than `threshold`. -> (J,)"""
    return (per_joint_errors(pred, gt) < threshold).mean(axis=0)


def correct_poses_score(pred, gt, max_threshold: float = CPS_MAX_THRESHOLD) -> np.ndarray:
    """Per-sample share of the Correct Poses Score: max(0, max_threshold - largest joint error).

    The CPS (Wandt et al.) is the area under the curve t -> fraction of poses whose every joint
    is closer than t, for t in [0, max_threshold]; since a pose with largest error m counts
    for t in (m, max_threshold], the area is exactly the mean of these values (same unit as the
    input: metres in, multiply by 1000 for the usual millimetres, max 300 mm).
    pred, gt: (B, J, 3) -> (B,)
    """
    worst = per_joint_errors(pred, gt).max(axis=-1)
    return np.where(np.isfinite(worst), np.clip(max_threshold - worst, 0.0, None), np.nan)
