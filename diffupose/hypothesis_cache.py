"""Sample hypotheses once, evaluate every aggregator, N and uncertainty metric from the cache.

`build_cache` draws H hypotheses (default 50, DDIM-5, flip as configured) per sample of one
split through the shared inference path (`Lifter.iter_hypotheses`) and `save_cache` stores them
as float16 in an `.npz` (atomic write) with the samples' ids (index in the prepared file,
subject, action, camera, frame), the sampling settings and the identity of the checkpoint
(sha256 of its weights) and of the inputs (sha256 of the 2D keypoints and indices).
`cached_hypotheses` reuses a cache file when all of these match and recomputes it otherwise.

`evaluate_cache` then computes, in seconds, every aggregator of `diffupose.aggregate` for the
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

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import aggregate as agg
from . import metrics
from .errors import DataError
from .utils import as_numpy, atomic_path, git_commit

__all__ = [
    "CACHE_VERSION", "DEFAULT_NUM_HYPOTHESES", "PREFIXES", "ID_KEYS", "HypothesisCache", "UncertaintyReport",
    "select_indices", "settings_dict", "model_identity", "inputs_identity", "build_cache", "save_cache",
    "load_cache", "cached_hypotheses", "evaluate_cache", "default_cache_path", "cache_settings",
    "run_uncertainty",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
DEFAULT_NUM_HYPOTHESES = 50
PREFIXES: tuple[int, ...] = (1, 5, 10, 20, 50)
ID_KEYS: tuple[str, ...] = ("subject", "action", "camera", "frame")
GT_ROOT = "reproject_gt_root"   # JPMA with the ground-truth root (D3DP's released protocol)


@dataclass
class HypothesisCache:
    """Hypotheses of one run on one split.

    hypotheses: (S, H, J, 3) float16 metres, root-relative, camera frame
    index: (S,) int64 sample indices into the prepared file; ids: subject, action, camera, frame
    settings: the sampling settings; identity: checkpoint, inputs, split, seed, max_samples
    """

    hypotheses: np.ndarray
    index: np.ndarray
    ids: dict[str, np.ndarray]
    settings: dict[str, Any]
    identity: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_hypotheses(self) -> int:
        return int(self.hypotheses.shape[1])

    def __len__(self) -> int:
        return int(self.hypotheses.shape[0])

    def key(self) -> dict[str, Any]:
        """What must match for the cache to be reused."""
        return {"version": CACHE_VERSION, "settings": self.settings, "identity": self.identity}


def select_indices(data, split: str, max_samples: int = 0, seed: int = 0) -> np.ndarray:
    """Indices into the prepared file of `data.select(split=split, max_samples=..., seed=...)`
    (the same seeded subset, kept in file order). -> (S,) int64"""
    index = np.flatnonzero(np.isin(data.split, [split]))
    if max_samples and len(index) > max_samples:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(index, size=max_samples, replace=False))
    return index.astype(np.int64)


def settings_dict(settings) -> dict[str, Any]:
    """Sampling settings (a dataclass such as `inference.SamplingSettings`, or a dict) -> a
    JSON-safe dict. `aggregate` is left out: the cache holds raw hypotheses."""
    if dataclasses.is_dataclass(settings):
        d = dataclasses.asdict(settings)
    else:
        d = dict(settings)
    d.pop("aggregate", None)
    return json.loads(json.dumps(d, default=str, sort_keys=True))


def model_identity(denoiser) -> str:
    """sha256 of the denoiser's weights (names, dtypes, shapes and bytes, in name order)."""
    import torch

    h = hashlib.sha256()
    state = denoiser.state_dict()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def inputs_identity(keypoints_2d, index) -> str:
    """sha256 of the selected 2D inputs (float32) and their indices."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(as_numpy(keypoints_2d, np.float32)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(index, np.int64)).tobytes())
    return h.hexdigest()


def default_cache_path(run_dir, split: str, num_hypotheses: int) -> Path:
    """`<run_dir>/hypotheses/<split>_H<num_hypotheses>.npz`."""
    return Path(run_dir) / "hypotheses" / f"{split}_H{num_hypotheses}.npz"


def cache_settings(num_hypotheses: int = DEFAULT_NUM_HYPOTHESES, *, sampler: str = "ddim", num_steps: int = 5,
                   eta: float = 0.0, flip: bool = True, seed: int = 0, batch_size: int | None = None):
    """`inference.SamplingSettings` for a cache; batch_size defaults to about 8192 chains per
    sampler call (inputs x H x 2 with flip), which fits CPU memory."""
    from .inference import SamplingSettings

    if batch_size is None:
        batch_size = max(1, 8192 // (int(num_hypotheses) * (2 if flip else 1)))
    return SamplingSettings(num_hypotheses=int(num_hypotheses), sampler=sampler, num_steps=int(num_steps),
                            eta=float(eta), flip=bool(flip), aggregate="mean", batch_size=int(batch_size),
                            seed=int(seed))


def build_cache(lifter, data, split: str, settings, *, max_samples: int = 0, seed: int = 0,
                checkpoint: dict[str, Any] | None = None, data_path: str | None = None,
                progress: bool = True) -> HypothesisCache:
    """Sample `settings.num_hypotheses` hypotheses for every selected sample, once.

    lifter: an `inference.Lifter` (anything with `iter_hypotheses(keypoints_2d, settings,
    progress=...)` yielding (start, stop, hyps (b, H, J, 3)) and a `denoiser`); data: a
    `PreparedData`; split, max_samples, seed: which samples (as `PreparedData.select`).
    """
    index = select_indices(data, split, max_samples, seed)
    if len(index) == 0:
        raise DataError(f"{data_path or 'prepared data'}: split {split!r} is empty "
                        f"(samples per split: {data.splits()})")
    keypoints_2d = np.ascontiguousarray(data.keypoints_2d[index])
    num_h = int(settings.num_hypotheses if hasattr(settings, "num_hypotheses") else settings["num_hypotheses"])
    hyps = np.empty((len(index), num_h, keypoints_2d.shape[1], 3), dtype=np.float16)
    for start, stop, batch in lifter.iter_hypotheses(keypoints_2d, settings, progress=progress):
        batch = as_numpy(batch, np.float32)
        if not np.isfinite(batch).all():
            log.warning("hypotheses of samples %d-%d contain non-finite values", start, stop)
        hyps[start:stop] = batch.astype(np.float16)
    identity = {
        "checkpoint": {**(checkpoint or {}), "sha256": model_identity(lifter.denoiser)},
        "inputs_sha256": inputs_identity(keypoints_2d, index),
        "data_file": str(data_path) if data_path else None,
        "split": split, "max_samples": int(max_samples), "seed": int(seed), "num_samples": int(len(index)),
    }
    meta = {"created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "dataset": data.dataset, "skeleton": data.skeleton.name}
    return HypothesisCache(hyps, index, {k: np.asarray(getattr(data, k))[index] for k in ID_KEYS},
                           settings_dict(settings), identity, meta)


def save_cache(cache: HypothesisCache, path) -> Path:
    """Write the cache as an `.npz` (no pickle; atomic)."""
    path = Path(path)
    meta = {**cache.key(), "meta": cache.meta}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, hypotheses=cache.hypotheses.astype(np.float16), index=cache.index,
                     **{k: np.asarray(v) for k, v in cache.ids.items()},
                     meta_json=np.array(json.dumps(meta, sort_keys=True)))
    return path


def load_cache(path) -> HypothesisCache:
    """Read a cache written by `save_cache` (DataError naming the file on any problem)."""
    from .data.prepared import open_npz, read_array

    path = Path(path)
    npz = open_npz(path)
    with npz:
        meta = json.loads(str(read_array(npz, path, "meta_json")))
        if meta.get("version") != CACHE_VERSION:
            raise DataError(f"{path}: hypothesis cache version {meta.get('version')} (expected {CACHE_VERSION})")
        hyps = read_array(npz, path, "hypotheses")
        index = read_array(npz, path, "index")
        ids = {k: read_array(npz, path, k) for k in ID_KEYS}
    if hyps.ndim != 4 or hyps.shape[-1] != 3 or len(index) != len(hyps):
        raise DataError(f"{path}: hypotheses {hyps.shape} / index {index.shape} are not (S, H, J, 3) / (S,)")
    return HypothesisCache(hyps, index, ids, meta["settings"], meta["identity"], meta.get("meta", {}))


def cached_hypotheses(path, lifter, data, split: str, settings, *, max_samples: int = 0, seed: int = 0,
                      checkpoint: dict[str, Any] | None = None, data_path: str | None = None,
                      progress: bool = True, refresh: bool = False) -> tuple[HypothesisCache, bool]:
    """The cache at `path` when its settings, checkpoint weights and inputs match; otherwise
    sample anew and overwrite it. -> (cache, reused)"""
    path = Path(path)
    want_settings = settings_dict(settings)
    if path.exists() and not refresh:
        try:
            old = load_cache(path)
        except DataError as e:
            log.warning("ignoring unreadable hypothesis cache: %s", e)
            old = None
        if old is not None:
            index = select_indices(data, split, max_samples, seed)
            want = {"settings": want_settings,
                    "checkpoint": model_identity(lifter.denoiser),
                    "inputs": inputs_identity(data.keypoints_2d[index], index)}
            have = {"settings": old.settings, "checkpoint": old.identity.get("checkpoint", {}).get("sha256"),
                    "inputs": old.identity.get("inputs_sha256")}
            differ = [k for k in want if want[k] != have[k]]
            if not differ:
                log.info("reusing hypothesis cache %s (%d samples, H=%d)", path, len(old), old.num_hypotheses)
                return old, True
            log.info("hypothesis cache %s is stale (%s differ); resampling", path, ", ".join(differ))
    cache = build_cache(lifter, data, split, settings, max_samples=max_samples, seed=seed,
                        checkpoint=checkpoint, data_path=data_path, progress=progress)
    save_cache(cache, path)
    return cache, False


# --- Evaluation from the cache ----------------------------------------------------------------

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
        from .viz import to_jsonable

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
    """
    _ids_match(cache, data)
    num_h = cache.num_hypotheses
    prefixes = sorted({int(n) for n in prefixes if 1 <= int(n) <= num_h} | {num_h})
    idx = cache.index
    gt_all = data.poses_3d[idx].astype(np.float64)
    kp_all = data.keypoints_2d[idx].astype(np.float64)
    k_all = data.intrinsics[idx].astype(np.float64)
    root_all = data.root_position[idx].astype(np.float64)
    dist_all = agg.camera_distortion(data.dataset, data.camera[idx]) if use_distortion else None
    actions = np.asarray(data.action)[idx].astype(str)
    joint_names = list(data.skeleton.joint_names)
    num = len(cache)

    errors: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    final_pred: dict[str, np.ndarray] = {}
    spread = np.empty((num, len(joint_names)))                                   # (S, J) mm
    indicators = np.empty((num, len(metrics.CALIBRATION_QUANTILES), len(joint_names)), dtype=bool)
    for n in prefixes:
        for start in range(0, num, batch_size):
            stop = min(start + batch_size, num)
            hyps = cache.hypotheses[start:stop, :n].astype(np.float64)
            gt = gt_all[start:stop]
            preds = _aggregate_all(hyps, kp_all[start:stop], k_all[start:stop],
                                   None if dist_all is None else dist_all[start:stop],
                                   root_all[start:stop], gt, temperature)
            for name, pred in preds.items():
                e = errors.setdefault((name, n), {"MPJPE": np.empty(num), "P-MPJPE": np.empty(num)})
                e["MPJPE"][start:stop] = metrics.mpjpe(pred, gt) * 1000.0
                e["P-MPJPE"][start:stop] = metrics.p_mpjpe(pred, gt) * 1000.0
                if n == num_h:
                    final_pred.setdefault(name, np.empty_like(gt_all))[start:stop] = pred
            if n == num_h:
                spread[start:stop] = metrics.hypothesis_spread(hyps) * 1000.0
                indicators[start:stop] = metrics.calibration_indicators(hyps, gt)

    order = _order(actions, data.dataset)
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

    mean_err = metrics.per_joint_errors(final_pred["mean"], gt_all) * 1000.0       # (S, J) mm
    base_card = _card(cache, data, use_distortion, temperature, num)

    finite = np.isfinite(cache.hypotheses).all(axis=(1, 2, 3))
    root_like = (spread == 0).all(axis=0) & (metrics.per_joint_errors(final_pred["mean"], gt_all) == 0).all(axis=0)
    calibration = metrics.quantile_calibration(indicators=indicators[finite][..., ~root_like],
                                               actions=actions[finite],
                                               joint_names=[j for j, r in zip(joint_names, root_like) if not r],
                                               order=order)
    calibration["num_nan_samples"] = int((~finite).sum())
    calibration["card"] = {**base_card, "metric": "quantile calibration", "num_hypotheses": num_h,
                           "centre": "per-coordinate median of the hypotheses", "oracle": False,
                           "uses_ground_truth": "to score only (never to choose)"}

    pck_cps: dict[str, Any] = {}
    for name, pred in final_pred.items():
        p = metrics.pck(pred, gt_all, pck_threshold_mm / 1000.0) * 100.0
        c = metrics.correct_poses_score(pred, gt_all, cps_max_mm / 1000.0) * 1000.0
        aligned = metrics.procrustes_align(pred, gt_all)
        pa = metrics.pck(aligned, gt_all, pck_threshold_mm / 1000.0) * 100.0
        pcps = metrics.correct_poses_score(aligned, gt_all, cps_max_mm / 1000.0) * 1000.0
        pck_cps[name] = {
            "pck": metrics.action_table(p, actions, order=order),
            "cps_mm": metrics.action_table(c, actions, order=order),
            "pa_pck": metrics.action_table(pa, actions, order=order),
            "pa_cps_mm": metrics.action_table(pcps, actions, order=order),
            "per_joint_pck": dict(zip(joint_names, map(float, metrics.per_joint_pck(pred, gt_all,
                                                                                  pck_threshold_mm / 1000.0) * 100.0))),
            "oracle": _is_oracle(name),
        }
    pck_cps["card"] = {**base_card, "metric": f"PCK@{pck_threshold_mm:g}mm (%), CPS 0-{cps_max_mm:g}mm (mm)",
                       "num_hypotheses": num_h, "alignment": "none (pck, cps_mm) and Procrustes (pa_*)",
                       "cps_definition": "area under the fraction-of-correct-poses curve (a pose is correct when "
                                         "all joints are within t), t in 0-300 mm (Wandt et al.); max 300",
                       "oracle_rows": sorted(n for n in final_pred if _is_oracle(n))}

    spread_error = metrics.spread_error_spearman(spread, mean_err, actions=actions, joint_names=joint_names,
                                                 order=order)
    spread_error.pop("per_sample_values")
    spread_error["card"] = {**base_card, "metric": "Spearman rank correlation of per-joint spread and error",
                            "spread": "mean distance of the hypotheses to their mean",
                            "error": "per-joint error of the mean of the hypotheses", "num_hypotheses": num_h,
                            "oracle": False}

    joint_spread = dict(zip(joint_names, map(float, spread.mean(axis=0))))
    action_spread = metrics.action_table(spread.mean(axis=1), actions, order=order)
    ambiguity = {
        "per_joint_spread_mm": joint_spread,
        "per_action_spread_mm": action_spread,
        "most_ambiguous_joints": sorted((j for j in joint_spread if joint_spread[j] > 0),
                                        key=lambda j: -joint_spread[j])[:5],
        "most_ambiguous_actions": sorted((a for a in action_spread if a != metrics.AVERAGE),
                                         key=lambda a: -action_spread[a])[:5],
        "card": {**base_card, "metric": "hypothesis spread (mean distance to the mean, mm)", "oracle": False},
    }
    card = {**base_card, "prefixes": prefixes, "num_nan_samples": nan_total,
            "oracle_rows": sorted({r["aggregator"] for r in table if r["oracle"]}),
            "note": "rows with oracle=true use the 3D ground truth to choose: bounds, not estimates"}
    arrays = {"spread_mm": spread, "mean_error_mm": mean_err, "action": actions, "joint_names": joint_names,
              "predictions": final_pred,
              "sample_mpjpe_mm": {k: v["MPJPE"] for k, v in errors.items() if k[1] == num_h}}
    per_joint = {name: dict(zip(joint_names, map(float, np.nanmean(metrics.per_joint_errors(pred, gt_all), axis=0)
                                                 * 1000.0)))
                 for name, pred in final_pred.items()}
    return UncertaintyReport(table, per_action, per_joint, calibration, pck_cps, spread_error, ambiguity, card, arrays)


def _order(actions, dataset: str):
    from .evaluate import _action_order

    return _action_order(actions, dataset)


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
    from .data.prepared import load_prepared
    from .errors import ConfigError
    from .inference import Lifter

    lifter = Lifter.load(run_dir, checkpoint=checkpoint, device=device)
    selected_on = lifter.checkpoint_card.get("selected_on")
    if selected_on is not None and split == selected_on:
        raise ConfigError(f"checkpoint 'best' was chosen on split {split!r}; use checkpoint 'ema' or another split")
    data = load_prepared(data_path)
    if lifter.skeleton.name != data.skeleton.name:
        raise DataError(f"{data_path}: skeleton {data.skeleton.name!r} does not match the model's "
                        f"{lifter.skeleton.name!r}")
    settings = cache_settings(num_hypotheses, sampler=sampler, num_steps=num_steps, eta=eta, flip=flip, seed=seed,
                              batch_size=batch_size)
    path = Path(cache_path) if cache_path else default_cache_path(run_dir, split, settings.num_hypotheses)
    cache, reused = cached_hypotheses(path, lifter, data, split, settings, max_samples=max_samples, seed=seed,
                                      checkpoint=dict(lifter.checkpoint_card), data_path=str(data_path),
                                      progress=progress, refresh=refresh)
    report = evaluate_cache(cache, data, prefixes, use_distortion=use_distortion)
    report.card.update({"cache_file": str(path), "cache_reused": reused})
    return report, cache, reused
