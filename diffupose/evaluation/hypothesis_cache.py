"""Sample hypotheses once, evaluate every aggregator, N and uncertainty metric from the cache.

`build_cache` draws H hypotheses (default 50, DDIM-5, flip as configured) per sample of one
split through the shared inference path (`Lifter.iter_hypotheses`) and `save_cache` stores them
as float16 in an `.npz` (atomic write) with the samples' ids (index in the prepared file,
subject, action, camera, frame), the sampling settings and the identity of the checkpoint
(sha256 of its weights) and of the inputs (sha256 of the 2D keypoints and indices).
`cached_hypotheses` reuses a cache file when all of these match and recomputes it otherwise.
(Those live in `diffupose.evaluation.hypothesis_store` and are re-exported here; `run_uncertainty` opens
the run through `scoring.open_run`.)

`evaluate_cache` then computes, in seconds, every aggregator of `diffupose.inference.aggregate` for the
prefixes N = 1, 5, 10, 20, 50 of the H hypotheses (a prefix of a seeded sample is itself a valid
N-hypothesis sample), the quantile calibration, PCK@150 mm, the Correct Poses Score and the
spread-error rank correlation, each with a protocol card that says `oracle: true` wherever the
ground truth chooses (oracle aggregators, and JPMA placed at the ground-truth root as D3DP's
released code does).

Storage: (S, H, J, 3) float16 metres: rounding of at most 0.5 mm per coordinate for
root-relative values under 1 m, which moved the MPJPE of single hypotheses by 0.01 mm and of
their mean by < 0.001 mm on synthetic poses. The cache never holds the ground truth: it is read
from the prepared file at evaluation time and matched to the cached ids (a mismatch is a DataError).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import EvalConfig
from ..errors import DataError
from ..inference import aggregate as agg
from . import metrics
from ..utils import git_commit, to_jsonable
from .hypothesis_store import (CACHE_VERSION, DEFAULT_NUM_HYPOTHESES, ID_KEYS, HypothesisCache, build_cache,
                               cache_settings, cached_hypotheses, default_cache_path, inputs_identity, load_cache,
                               model_identity, save_cache, select_indices, settings_dict)
from .scoring import BatchScores, action_order, batch_ranges, open_run, score_batches

__all__ = [
    "CACHE_VERSION", "DEFAULT_NUM_HYPOTHESES", "PREFIXES", "ID_KEYS", "HypothesisCache", "UncertaintyReport",
    "select_indices", "settings_dict", "model_identity", "inputs_identity", "build_cache", "save_cache",
    "load_cache", "cached_hypotheses", "evaluate_cache", "default_cache_path", "cache_settings",
    "run_uncertainty",
]

PREFIXES: tuple[int, ...] = (1, 5, 10, 20, 50)
GT_ROOT = "reproject_gt_root"   # JPMA with the ground-truth root (D3DP's released protocol)


@dataclass
class UncertaintyReport:
    """Everything `evaluate_cache` measured (millimetres unless said otherwise).

    table: rows {aggregator, N, MPJPE, P-MPJPE, oracle, uses_ground_truth}
    per_action: {aggregator: {action: MPJPE mm}} at the largest N
    per_joint: {aggregator: {joint: MPJPE mm}} at the largest N
    calibration, pck_cps, spread_error, ambiguity: sections, each with its "card"
    card: the common protocol card; arrays: per-sample arrays for figures (not serialised)
    """

    table: list[dict[str, Any]]
    per_action: dict[str, dict[str, float]]
    per_joint: dict[str, dict[str, float]]
    calibration: dict[str, Any]
    pck_cps: dict[str, Any]
    spread_error: dict[str, Any]
    ambiguity: dict[str, Any]
    card: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"table": self.table, "per_action": self.per_action, "per_joint": self.per_joint,
                            "calibration": self.calibration,
                            "pck_cps": self.pck_cps, "spread_error": self.spread_error,
                            "ambiguity": self.ambiguity, "card": self.card})

    def rows(self, n: int | None = None) -> list[dict[str, Any]]:
        """Table rows at one N (default: all), ground-truth-free rows first, then oracles."""
        rows = [r for r in self.table if n is None or r["N"] == n]
        return sorted(rows, key=lambda r: (r["oracle"], r["N"]))

    def pivot(self, metric: str = "MPJPE") -> list[dict[str, Any]]:
        """One row per aggregator: {aggregator, oracle, "N=1": mm, "N=5": mm, ...}; ground-truth-
        free aggregators first, then the oracles."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.rows():
            row = out.setdefault(r["aggregator"], {"aggregator": r["aggregator"], "oracle": r["oracle"]})
            row[f"N={r['N']}"] = r[metric]
        return sorted(out.values(), key=lambda r: r["oracle"])

    def pck_rows(self) -> list[dict[str, Any]]:
        """One row per aggregator at the largest N: PCK (%), CPS (mm), and both after Procrustes."""
        return sorted(({"aggregator": name, "oracle": v["oracle"], "PCK@150": v["pck"]["Average"],
                        "CPS": v["cps_mm"]["Average"], "PA-PCK@150": v["pa_pck"]["Average"],
                        "PA-CPS": v["pa_cps_mm"]["Average"]}
                       for name, v in self.pck_cps.items() if name != "card"), key=lambda r: r["oracle"])

    def summary(self) -> dict[str, Any]:
        """Headline numbers for metrics.json: MPJPE/P-MPJPE per aggregator and N, calibration
        error, PCK/CPS of the mean, spread-error correlations, the ambiguous joints/actions."""
        n = max(r["N"] for r in self.table)
        return {
            "mpjpe_mm": {r["aggregator"]: {k: v for k, v in r.items() if k.startswith("N=")} for r in self.pivot()},
            "p_mpjpe_mm": {r["aggregator"]: {k: v for k, v in r.items() if k.startswith("N=")}
                           for r in self.pivot("P-MPJPE")},
            "oracle_aggregators": sorted({r["aggregator"] for r in self.table if r["oracle"]}),
            "num_hypotheses": n,
            "calibration_error": self.calibration["error"],
            "pck_150_mean": self.pck_cps["mean"]["pck"]["Average"],
            "cps_mm_mean": self.pck_cps["mean"]["cps_mm"]["Average"],
            "spearman_per_sample": self.spread_error["per_sample"],
            "spearman_per_joint_mean": self.spread_error["per_joint_mean"],
            "most_ambiguous_joints": self.ambiguity["most_ambiguous_joints"],
            "most_ambiguous_actions": self.ambiguity["most_ambiguous_actions"],
        }


def _ids_match(cache: HypothesisCache, data) -> None:
    if len(cache.index) and (cache.index.max() >= len(data) or cache.index.min() < 0):
        raise DataError(f"hypothesis cache indices exceed the prepared file ({len(data)} samples)")
    for key in ID_KEYS:
        have = np.asarray(getattr(data, key))[cache.index].astype(str)
        if not np.array_equal(have, np.asarray(cache.ids[key]).astype(str)):
            raise DataError(f"hypothesis cache ids ({key}) do not match the prepared file: "
                            f"the cache belongs to another data file")


def _aggregate_all(hyps, keypoints_2d, intrinsics, distortion, root, gt, temperature) -> dict[str, np.ndarray]:
    out = {}
    for method in agg.AGGREGATIONS:
        out[method] = agg.aggregate(hyps, method, keypoints_2d=keypoints_2d, intrinsics=intrinsics,
                                    distortion=distortion, temperature=temperature)
    if np.isfinite(intrinsics).all(axis=1).any():
        out[GT_ROOT] = agg.reproject_select(hyps, keypoints_2d, intrinsics, root_position=root,
                                            distortion=distortion)
    for method in agg.ORACLES:
        out[method] = agg.aggregate(hyps, method, gt=gt)
    return out


def _is_oracle(name: str) -> bool:
    return name in agg.ORACLES or name == GT_ROOT


_GT_USE = {"oracle_pose": "chooses the hypothesis with the 3D ground truth",
           "oracle_joint": "chooses each joint with the 3D ground truth",
           GT_ROOT: "places the hypotheses at the ground-truth root (D3DP's released code)"}


def evaluate_cache(cache: HypothesisCache, data, prefixes: Sequence[int] = PREFIXES, *,
                   use_distortion: bool = True, temperature: float = agg.DEFAULT_TEMPERATURE,
                   pck_threshold_mm: float = 150.0, cps_max_mm: float = 300.0,
                   batch_size: int = 4096) -> UncertaintyReport:
    """Every aggregator x N prefix and every uncertainty metric from the cached hypotheses.

    data: the prepared file the cache was built from (ground truth, 2D, intrinsics, ids).
    prefixes: numbers of hypotheses N (those above H are dropped; H is always included).
    use_distortion: project with the packaged lens distortion of each sample's camera (H36M).
    Steps: match ids and gather the ground truth; score every aggregator at every N; the error
    table; then calibration, PCK/CPS, spread-error correlation and ambiguity at N = H.
    """
    _ids_match(cache, data)
    num_h = cache.num_hypotheses
    prefixes = sorted({int(n) for n in prefixes if 1 <= int(n) <= num_h} | {num_h})
    truth = _Truth.gather(cache, data, use_distortion)
    scores = _score_prefixes(cache, truth, prefixes, temperature, batch_size)
    order = action_order(truth.actions, data.dataset)
    table, per_action, nan_total = _error_table(scores.errors, truth.actions, order, num_h)
    mean_err = metrics.per_joint_errors(scores.final_pred["mean"], truth.gt) * 1000.0      # (S, J) mm
    base_card = _card(cache, data, use_distortion, temperature, len(cache))
    calibration = _calibration(cache, truth, scores, order, {**base_card, "num_hypotheses": num_h})
    pck_cps = _pck_cps(scores.final_pred, truth, order, pck_threshold_mm, cps_max_mm,
                       {**base_card, "num_hypotheses": num_h})
    spread_error = metrics.spread_error_spearman(scores.spread, mean_err, actions=truth.actions,
                                                 joint_names=truth.joint_names, order=order)
    spread_error.pop("per_sample_values")
    spread_error["card"] = {**base_card, "metric": "Spearman rank correlation of per-joint spread and error",
                            "spread": "mean distance of the hypotheses to their mean",
                            "error": "per-joint error of the mean of the hypotheses", "num_hypotheses": num_h,
                            "oracle": False}
    ambiguity = _ambiguity(scores.spread, truth, order, base_card)
    card = {**base_card, "prefixes": prefixes, "num_nan_samples": nan_total,
            "oracle_rows": sorted({r["aggregator"] for r in table if r["oracle"]}),
            "note": "rows with oracle=true use the 3D ground truth to choose: bounds, not estimates"}
    arrays = {"spread_mm": scores.spread, "mean_error_mm": mean_err, "action": truth.actions,
              "joint_names": truth.joint_names, "predictions": scores.final_pred,
              "sample_mpjpe_mm": {k: v["MPJPE"] for k, v in scores.errors.items() if k[1] == num_h}}
    per_joint = {name: dict(zip(truth.joint_names,
                                map(float, np.nanmean(metrics.per_joint_errors(pred, truth.gt), axis=0) * 1000.0)))
                 for name, pred in scores.final_pred.items()}
    return UncertaintyReport(table, per_action, per_joint, calibration, pck_cps, spread_error, ambiguity, card, arrays)


@dataclass
class _Truth:
    """What the prepared file says about the cached samples (S of them), float64.

    gt: (S, J, 3) metres; keypoints_2d: (S, J, 2); intrinsics: (S, 4); root: (S, 3) metres;
    distortion: per-sample lens distortion or None; actions: (S,) str; joint_names: J names."""

    gt: np.ndarray
    keypoints_2d: np.ndarray
    intrinsics: np.ndarray
    root: np.ndarray
    distortion: np.ndarray | None
    actions: np.ndarray
    joint_names: list[str]

    @classmethod
    def gather(cls, cache: HypothesisCache, data, use_distortion: bool) -> "_Truth":
        idx = cache.index
        return cls(gt=data.poses_3d[idx].astype(np.float64), keypoints_2d=data.keypoints_2d[idx].astype(np.float64),
                   intrinsics=data.intrinsics[idx].astype(np.float64),
                   root=data.root_position[idx].astype(np.float64),
                   distortion=agg.camera_distortion(data.dataset, data.camera[idx]) if use_distortion else None,
                   actions=np.asarray(data.action)[idx].astype(str), joint_names=list(data.skeleton.joint_names))


@dataclass
class _Scores:
    """Per-sample results of `_score_prefixes`.

    errors: {(aggregator, N): {"MPJPE": (S,) mm, "P-MPJPE": (S,) mm}}; final_pred: {aggregator:
    (S, J, 3) metres} at N = H; spread: (S, J) mm at N = H; indicators: (S, Q, J) bool calibration
    indicators at N = H."""

    errors: dict[tuple[str, int], dict[str, np.ndarray]]
    final_pred: dict[str, np.ndarray]
    spread: np.ndarray
    indicators: np.ndarray


def _score_prefixes(cache: HypothesisCache, truth: _Truth, prefixes: Sequence[int], temperature: float,
                    batch_size: int) -> _Scores:
    """Every aggregator on the first N hypotheses, for each N in `prefixes`, in batches of samples;
    at N = H also keep the predictions, the spread and the calibration indicators."""
    num, num_h = len(cache), cache.num_hypotheses
    errors: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    final = BatchScores(num)
    for n in prefixes:
        batches = ((start, stop, cache.hypotheses[start:stop, :n].astype(np.float64))
                   for start, stop in batch_ranges(num, batch_size))
        scored = score_batches(batches, num, _prefix_scorer(truth, temperature, keep=n == num_h))
        for (name, metric), values in scored.per_sample.items():
            if metric in ("MPJPE", "P-MPJPE"):
                errors.setdefault((name, n), {})[metric] = values
        final = scored if n == num_h else final
    preds = {name: v for (name, what), v in final.per_sample.items() if what == "pred"}
    num_joints = len(truth.joint_names)
    return _Scores(errors=errors, final_pred=preds,
                   spread=final.per_sample.get(("", "spread"), np.empty((num, num_joints))),
                   indicators=final.per_sample.get(("", "indicators"), np.empty(
                       (num, len(metrics.CALIBRATION_QUANTILES), num_joints), dtype=bool)))


def _prefix_scorer(truth: _Truth, temperature: float, keep: bool):
    """The `score_batches` callback of one prefix N: MPJPE and P-MPJPE of every aggregator under
    (aggregator, metric); with `keep` (N = H) also (aggregator, "pred"), ("", "spread") in mm and
    ("", "indicators")."""
    def score(scores: BatchScores, start: int, stop: int, hyps: np.ndarray) -> None:
        gt = truth.gt[start:stop]
        preds = _aggregate_all(hyps, truth.keypoints_2d[start:stop], truth.intrinsics[start:stop],
                               None if truth.distortion is None else truth.distortion[start:stop],
                               truth.root[start:stop], gt, temperature)
        for name, pred in preds.items():
            scores.put((name, "MPJPE"), start, stop, metrics.mpjpe(pred, gt) * 1000.0)
            scores.put((name, "P-MPJPE"), start, stop, metrics.p_mpjpe(pred, gt) * 1000.0)
            if keep:
                scores.put((name, "pred"), start, stop, np.asarray(pred, dtype=truth.gt.dtype))
        if keep:
            scores.put(("", "spread"), start, stop, metrics.hypothesis_spread(hyps) * 1000.0)
            scores.put(("", "indicators"), start, stop, metrics.calibration_indicators(hyps, gt))
    return score


def _error_table(errors: dict, actions: np.ndarray, order, num_h: int
                 ) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]], int]:
    """-> (table rows {aggregator, N, MPJPE, P-MPJPE, ...}, per-action MPJPE of each aggregator at
    N = H, the largest number of NaN samples in any row)."""
    table, per_action, nan_total = [], {}, 0
    for (name, n), e in errors.items():
        mpjpe_table, nans = metrics.action_table(e["MPJPE"], actions, order=order, return_nan=True)
        pmpjpe_table = metrics.action_table(e["P-MPJPE"], actions, order=order)
        nan_total = max(nan_total, nans[metrics.AVERAGE])
        table.append({"aggregator": name, "N": n, "MPJPE": mpjpe_table[metrics.AVERAGE],
                      "P-MPJPE": pmpjpe_table[metrics.AVERAGE], "oracle": _is_oracle(name),
                      "uses_ground_truth": _GT_USE.get(name, "no"), "num_nan_samples": nans[metrics.AVERAGE]})
        if n == num_h:
            per_action[name] = mpjpe_table
    return table, per_action, nan_total


def _calibration(cache: HypothesisCache, truth: _Truth, scores: _Scores, order, base_card: dict) -> dict[str, Any]:
    """Quantile calibration over the finite samples and the joints that move (the root, zero
    spread and zero error, is left out)."""
    finite = np.isfinite(cache.hypotheses).all(axis=(1, 2, 3))
    root_like = ((scores.spread == 0).all(axis=0)
                 & (metrics.per_joint_errors(scores.final_pred["mean"], truth.gt) == 0).all(axis=0))
    calibration = metrics.quantile_calibration(
        indicators=scores.indicators[finite][..., ~root_like], actions=truth.actions[finite],
        joint_names=[j for j, r in zip(truth.joint_names, root_like) if not r], order=order)
    calibration["num_nan_samples"] = int((~finite).sum())
    calibration["card"] = {**base_card, "metric": "quantile calibration",
                           "centre": "per-coordinate median of the hypotheses", "oracle": False,
                           "uses_ground_truth": "to score only (never to choose)"}
    return calibration


def _pck_cps(final_pred: dict[str, np.ndarray], truth: _Truth, order, pck_threshold_mm: float, cps_max_mm: float,
             base_card: dict) -> dict[str, Any]:
    """PCK and the Correct Poses Score of every aggregator at N = H, before and after Procrustes."""
    gt, actions = truth.gt, truth.actions
    pck_cps: dict[str, Any] = {}
    for name, pred in final_pred.items():
        p = metrics.pck(pred, gt, pck_threshold_mm / 1000.0) * 100.0
        c = metrics.correct_poses_score(pred, gt, cps_max_mm / 1000.0) * 1000.0
        aligned = metrics.procrustes_align(pred, gt)
        pa = metrics.pck(aligned, gt, pck_threshold_mm / 1000.0) * 100.0
        pcps = metrics.correct_poses_score(aligned, gt, cps_max_mm / 1000.0) * 1000.0
        pck_cps[name] = {
            "pck": metrics.action_table(p, actions, order=order),
            "cps_mm": metrics.action_table(c, actions, order=order),
            "pa_pck": metrics.action_table(pa, actions, order=order),
            "pa_cps_mm": metrics.action_table(pcps, actions, order=order),
            "per_joint_pck": dict(zip(truth.joint_names,
                                      map(float, metrics.per_joint_pck(pred, gt, pck_threshold_mm / 1000.0) * 100.0))),
            "oracle": _is_oracle(name),
        }
    pck_cps["card"] = {**base_card, "metric": f"PCK@{pck_threshold_mm:g}mm (%), CPS 0-{cps_max_mm:g}mm (mm)",
                       "alignment": "none (pck, cps_mm) and Procrustes (pa_*)",
                       "cps_definition": "area under the fraction-of-correct-poses curve (a pose is correct when "
                                         "all joints are within t), t in 0-300 mm (Wandt et al.); max 300",
                       "oracle_rows": sorted(n for n in final_pred if _is_oracle(n))}
    return pck_cps


def _ambiguity(spread: np.ndarray, truth: _Truth, order, base_card: dict) -> dict[str, Any]:
    """Mean hypothesis spread per joint and per action, and the five most ambiguous of each."""
    joint_spread = dict(zip(truth.joint_names, map(float, spread.mean(axis=0))))
    action_spread = metrics.action_table(spread.mean(axis=1), truth.actions, order=order)
    return {
        "per_joint_spread_mm": joint_spread,
        "per_action_spread_mm": action_spread,
        "most_ambiguous_joints": sorted((j for j in joint_spread if joint_spread[j] > 0),
                                        key=lambda j: -joint_spread[j])[:5],
        "most_ambiguous_actions": sorted((a for a in action_spread if a != metrics.AVERAGE),
                                         key=lambda a: -action_spread[a])[:5],
        "card": {**base_card, "metric": "hypothesis spread (mean distance to the mean, mm)", "oracle": False},
    }


def _card(cache: HypothesisCache, data, use_distortion: bool, temperature: float, num: int) -> dict[str, Any]:
    cameras = np.unique(data.camera[cache.index])
    distortion = use_distortion and bool(np.any(agg.camera_distortion(data.dataset, cameras)))
    return {
        "dataset": data.dataset, "split": cache.identity.get("split"), "num_samples": num,
        "max_samples": cache.identity.get("max_samples"), "seed": cache.identity.get("seed"),
        "data_file": cache.identity.get("data_file"), "checkpoint": cache.identity.get("checkpoint"),
        "sampling": cache.settings, "num_hypotheses": cache.num_hypotheses, "storage": "float16 hypothesis cache",
        "camera_model": ("perspective + lens distortion" if distortion else "perspective")
                        + " (weak perspective where intrinsics are NaN)",
        "root": "estimated from the 2D input and the mean hypothesis (ground-truth free), except reproject_gt_root",
        "reproject_weighted_temperature": temperature, "oracle": False,
        "git_commit": git_commit(),
    }


def run_uncertainty(run_dir, data_path, split: str, *, num_hypotheses: int = DEFAULT_NUM_HYPOTHESES,
                    sampler: str = "ddim", num_steps: int = 5, eta: float = 0.0, flip: bool = True, seed: int = 0,
                    max_samples: int = 0, checkpoint: str = "ema", batch_size: int | None = None,
                    cache_path=None, prefixes: Sequence[int] = PREFIXES, device: str = "auto",
                    progress: bool = True, refresh: bool = False,
                    use_distortion: bool = True) -> tuple[UncertaintyReport, HypothesisCache, bool]:
    """Load the run's model (`inference.Lifter`), sample or reuse the cache
    (`<run_dir>/hypotheses/<split>_H<H>.npz` unless `cache_path`), evaluate it.
    -> (report, cache, reused). A `best` checkpoint is refused on the split that chose it."""
    run = open_run(run_dir, data_path, split, EvalConfig(checkpoint=checkpoint, max_samples=max_samples, seed=seed),
                   device=device)
    lifter, data = run.lifter, run.source
    settings = cache_settings(num_hypotheses, sampler=sampler, num_steps=num_steps, eta=eta, flip=flip, seed=seed,
                              batch_size=batch_size)
    if lifter.config.model.source_condition:
        settings = settings.replace(input_source=run.settings.input_source)
    path = Path(cache_path) if cache_path else default_cache_path(run_dir, split, settings.num_hypotheses)
    cache, reused = cached_hypotheses(path, lifter, data, split, settings, max_samples=max_samples, seed=seed,
                                      checkpoint=dict(lifter.checkpoint_card), data_path=str(data_path),
                                      progress=progress, refresh=refresh)
    report = evaluate_cache(cache, data, prefixes, use_distortion=use_distortion)
    report.card.update({"cache_file": str(path), "cache_reused": reused})
    return report, cache, reused
