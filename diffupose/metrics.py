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
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "AVERAGE",
    "mpjpe", "per_joint_errors", "procrustes_align", "p_mpjpe", "n_mpjpe",
    "hypothesis_errors", "mean_of_hypotheses", "oracle_best_of_h", "per_joint_spread",
    "hypothesis_spread", "hypothesis_metrics",
    "action_table", "subject_table", "subject_action_table",
]

AVERAGE = "Average"


def _to_numpy(x) -> np.ndarray:
    """numpy array or torch tensor -> float64 numpy array (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


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
    proper rotation instead of a reflection (Umeyama 1991).

    pred, gt: (B, J, 3) -> pred aligned to gt: (B, J, 3)
    """
    pred, gt = _pair(pred, gt)
    mu_gt = gt.mean(axis=1, keepdims=True)
    mu_pred = pred.mean(axis=1, keepdims=True)
    x0 = gt - mu_gt
    y0 = pred - mu_pred
    norm_x = np.sqrt((x0 ** 2).sum(axis=(1, 2), keepdims=True))
    norm_y = np.sqrt((y0 ** 2).sum(axis=(1, 2), keepdims=True))
    norm_x = np.where(norm_x > 0, norm_x, 1.0)
    norm_y = np.where(norm_y > 0, norm_y, 1.0)
    x0 = x0 / norm_x
    y0 = y0 / norm_y
    h = np.matmul(x0.transpose(0, 2, 1), y0)  # (B, 3, 3)
    u, s, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    # Proper rotation: flip the weakest singular direction where the optimum is a reflection.
    sign = np.where(np.linalg.det(r) < 0, -1.0, 1.0)  # (B,)
    v[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    r = np.matmul(v, u.transpose(0, 2, 1))
    trace = s.sum(axis=1)[:, None, None]
    scale = trace * norm_x / norm_y
    translation = mu_gt - scale * np.matmul(mu_pred, r)
    return scale * np.matmul(pred, r) + translation


def p_mpjpe(pred, gt) -> np.ndarray:
    """Protocol 2: MPJPE after per-frame similarity Procrustes alignment (no reflections).

    pred, gt: (B, J, 3) same unit -> (B,)
    """
    pred, gt = _pair(pred, gt)
    return mpjpe(procrustes_align(pred, gt), gt)


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


def hypothesis_spread(hyps) -> np.ndarray:
    """Mean distance of the hypotheses to their mean, per sample and joint (ground-truth free).

    hyps: (B, H, J, 3) -> (B, J)
    """
    hyps, _ = _hyps(hyps)
    centre = hyps.mean(axis=1, keepdims=True)
    return np.linalg.norm(hyps - centre, axis=-1).mean(axis=1)


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


def _grouped_means(errors: np.ndarray, keys: np.ndarray, order: Sequence[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in _ordered(np.unique(keys), order):
        vals = errors[keys == key]
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.size else float("nan")
    return out


def _with_average(cells: dict[str, float]) -> dict[str, float]:
    vals = np.array([v for v in cells.values() if np.isfinite(v)])
    return {**cells, AVERAGE: float(vals.mean()) if vals.size else float("nan")}


def action_table(errors, actions, subjects=None, order: Sequence[str] | None = None) -> dict[str, float]:
    """Per-action errors and their headline average (the usual Human3.6M protocol).

    Each action's value is the mean over all its frames, pooled over subjects and cameras
    (frame-weighted); "Average" is the unweighted mean of the action values.
    errors: (B,) per-sample errors; actions: (B,) labels; subjects: optional (B,) labels, only
    checked for length (pooling over subjects is the protocol; see `subject_action_table` for
    cells); order: preferred column order (unknown actions follow, sorted).
    -> {action: error, ..., "Average": error}
    """
    errors = _to_numpy(errors)
    assert errors.ndim == 1, f"errors: expected (B,), got {errors.shape}"
    actions = _labels(actions, len(errors), "actions")
    if subjects is not None:
        _labels(subjects, len(errors), "subjects")
    return _with_average(_grouped_means(errors, actions, order))


def subject_table(errors, subjects, order: Sequence[str] | None = None) -> dict[str, float]:
    """Per-subject mean over frames; "Average" is the unweighted mean over subjects.

    errors: (B,), subjects: (B,) -> {subject: error, ..., "Average": error}
    """
    errors = _to_numpy(errors)
    assert errors.ndim == 1, f"errors: expected (B,), got {errors.shape}"
    subjects = _labels(subjects, len(errors), "subjects")
    return _with_average(_grouped_means(errors, subjects, order))


def subject_action_table(errors, subjects, actions, action_order: Sequence[str] | None = None,
                         subject_order: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Subject x action cells (HumanEva-I's Table III layout): the mean over the frames of
    each (action, subject) pair present, plus an "Average" per action (unweighted over subjects)
    and an "Average" entry holding the unweighted mean of all cells.

    errors: (B,), subjects: (B,), actions: (B,) -> {action: {subject: error, "Average": e},
    ..., "Average": {"Average": mean of all cells}}
    """
    errors = _to_numpy(errors)
    assert errors.ndim == 1, f"errors: expected (B,), got {errors.shape}"
    subjects = _labels(subjects, len(errors), "subjects")
    actions = _labels(actions, len(errors), "actions")
    out: dict[str, dict[str, float]] = {}
    cells: list[float] = []
    for action in _ordered(np.unique(actions), action_order):
        mask = actions == action
        row = _grouped_means(errors[mask], subjects[mask], subject_order)
        cells.extend(v for v in row.values() if np.isfinite(v))
        out[action] = _with_average(row)
    out[AVERAGE] = {AVERAGE: float(np.mean(cells)) if cells else float("nan")}
    return out
