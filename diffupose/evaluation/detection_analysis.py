"""What detected 2D does to a lifter: the paper's Table I from real detections, and what only a
workbench can show beside it.

`analyse_detections` evaluates one run on one split twice through the shared evaluation path
(`diffupose.evaluation.protocols.evaluate`): on the file's 2D (the detections) at every requested N, and on
the projected ground-truth 2D kept beside them (`keypoints_2d_gt`) at the largest N. From the
per-sample results it builds

- `table1_rows`: our per-action rows on detected 2D beside the paper's Table I rows, labelled
  with the detector each used (the paper: CPN fine-tuned on Human3.6M; ours: what the file
  holds) — never presented as the paper's protocol when it is not;
- `per_joint`: the detector's per-joint 2D error (pixels) next to the per-joint 3D error on
  detections and on ground-truth 2D;
- `bins`: 3D error and hypothesis spread binned by the sample's 2D error (does the model know
  when its input is bad?), with the Spearman correlations (scipy) of spread with 2D and 3D error.

`simulate_detections` gives data without real detections (the synthetic profiles) a
detector-like 2D input so the page runs everywhere: Student-t joint noise, rare gross errors and
left/right swaps, labelled "simulated" in every card.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats

from ..config import EvalConfig
from ..data.prepared import PreparedData, load_prepared, save_prepared
from ..errors import DataError
from ..inference.lifter import SamplingSettings
from .metrics import AVERAGE
from . import reference
from .protocols import evaluate
from .scoring import has_detections, keypoint_errors_px, pixel_scale   # re-exported (they lived here)

__all__ = ["has_detections", "simulate_detections", "pixel_scale", "keypoint_errors_px", "analyse_detections",
           "table1_rows", "ERROR_BINS_PX"]

# 2D error bins (mean over joints, pixels): the SH detections have a median of ~10 px, 1.5 % of
# joints beyond 50 px.
ERROR_BINS_PX = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, np.inf)
SIMULATED_NAME = "simulated detections (Student-t noise, gross errors, left/right swaps)"


def simulate_detections(data: PreparedData, *, scale_px: float = 6.0, dof: float = 3.0, gross_rate: float = 0.015,
                        gross_px: float = 80.0, swap_rate: float = 0.002, seed: int = 0) -> PreparedData:
    """Ground-truth 2D -> detector-like 2D (kept as keypoints_2d; the GT goes to keypoints_2d_gt).
    Pixels are taken at the scale of `pixel_scale` (half the image width)."""
    rng = np.random.default_rng(seed)
    gt = np.asarray(data.keypoints_2d, dtype=np.float64)
    per_px = 1.0 / pixel_scale(data)[:, None, None]
    noise = rng.standard_t(dof, size=gt.shape) * scale_px * per_px
    gross = rng.random(gt.shape[:2]) < gross_rate
    noise[gross] += rng.normal(0.0, gross_px, size=(int(gross.sum()), 2)) * np.broadcast_to(per_px, gt.shape)[gross]
    det = gt + noise
    swap = rng.random(len(gt)) < swap_rate
    det[swap] = det[swap][:, data.skeleton.flip_permutation]
    meta = {**data.meta, "keypoints": "simulated", "keypoints_2d_name": SIMULATED_NAME,
            "keypoints_source": ("simulated from the ground truth "
                                 "(diffupose.evaluation.detection_analysis.simulate_detections)"),
            "simulation": {"scale_px": scale_px, "dof": dof, "gross_rate": gross_rate, "gross_px": gross_px,
                           "swap_rate": swap_rate, "seed": seed}}
    return replace(data, keypoints_2d=det.astype(np.float32), keypoints_2d_gt=gt.astype(np.float32), meta=meta)


def analyse_detections(run, data_path: str | Path, split: str, settings: SamplingSettings, *,
                       hypothesis_counts: Sequence[int] = (1, 10), checkpoint: str = "ema", max_samples: int = 0,
                       device: str = "auto") -> dict[str, Any]:
    """Evaluate `run` on the split's detections (every N) and on its GT 2D (the largest N);
    return {"results": {N: EvalResult}, "gt_input": EvalResult, "per_joint": rows, "bins": rows,
    "correlation": {...}, "summary": {...}}. Same seeded subset and sampling seed everywhere."""
    data = load_prepared(data_path)
    if not has_detections(data):
        raise DataError(f"{data_path}: no keypoints_2d_gt beside the 2D (prepare from detections, e.g. --keypoints sh)")
    common = dict(sampler=settings.sampler, num_steps=settings.num_steps, eta=settings.eta, flip=settings.flip,
                  aggregate=settings.aggregate, seed=settings.seed, batch_size=settings.batch_size,
                  checkpoint=checkpoint, max_samples=max_samples)
    results = {}
    for n in hypothesis_counts:
        results[n] = evaluate(run, data_path, split=split, device=device, progress=False,
                              eval_cfg=EvalConfig(num_hypotheses=n, **common))
    top = max(hypothesis_counts)
    gt_input = evaluate(run, data_path, split=split, device=device, progress=False,
                        eval_cfg=EvalConfig(num_hypotheses=top, input_2d="gt", **common))
    subset = data.select(split=split, max_samples=max_samples, seed=settings.seed)
    err2d = keypoint_errors_px(subset)
    per_joint = [{"joint": j, "2D error (px)": float(err2d[:, i].mean()),
                  f"3D error, detections, N={top} (mm)": results[top].per_joint["MPJPE"][j],
                  f"3D error, GT 2D, N={top} (mm)": gt_input.per_joint["MPJPE"][j]}
                 for i, j in enumerate(data.skeleton.joint_names)]
    sample = results[top].per_sample
    bins, corr = _binned(err2d.mean(axis=1), sample["MPJPE"], sample["hypotheses/spread"])
    per_sample_2d = err2d.mean(axis=1)
    worst = per_sample_2d >= np.quantile(per_sample_2d, 0.9)
    summary = {"num_samples": len(subset), "keypoints_2d_name": data.meta.get("keypoints_2d_name"),
               "median_2d_error_px": float(np.median(err2d)), "mean_2d_error_px": float(err2d.mean()),
               "worst_decile_2d_error_px": float(np.quantile(per_sample_2d, 0.9)),
               f"mpjpe_detections_n{top}_worst_decile": float(np.nanmean(np.asarray(sample["MPJPE"])[worst])),
               **{f"mpjpe_detections_n{n}": r.per_action["MPJPE"][AVERAGE] for n, r in results.items()},
               f"mpjpe_gt_input_n{top}": gt_input.per_action["MPJPE"][AVERAGE]}
    return {"results": results, "gt_input": gt_input, "per_joint": per_joint, "bins": bins, "correlation": corr,
            "summary": summary}


def _binned(err2d: np.ndarray, err3d: np.ndarray, spread: np.ndarray) -> tuple[list[dict], dict]:
    """Rows per 2D-error bin (count, mean 3D error, mean spread) and Spearman correlations."""
    rows = []
    for lo, hi in zip(ERROR_BINS_PX[:-1], ERROR_BINS_PX[1:]):
        m = (err2d >= lo) & (err2d < hi)
        label = f"{lo:.0f}–{hi:.0f} px" if np.isfinite(hi) else f"≥ {lo:.0f} px"
        rows.append({"2D error": label, "samples": int(m.sum()),
                     "share": float(m.mean()) if len(m) else 0.0,
                     "3D MPJPE (mm)": float(err3d[m].mean()) if m.any() else None,
                     "spread (mm)": float(spread[m].mean()) if m.any() else None})
    corr = {"spearman_spread_vs_2d_error": _spearman(spread, err2d),
            "spearman_spread_vs_3d_error": _spearman(spread, err3d),
            "spearman_3d_vs_2d_error": _spearman(err3d, err2d)}
    return rows, corr


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return None
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def _frames(card: dict) -> str:
    """"" for a single-frame model's number, ", T = 27 †" for a windowed one's (the paper's mark)."""
    frames = card.get("frames", "T = 1")
    return "" if frames == "T = 1" else f", {frames}"


def table1_rows(results: dict[int, Any], source_name: str, metric: str = "MPJPE",
                references: dict[str, Any] | None = None) -> tuple[list[dict], list, str]:
    """Our per-action rows on detected 2D beside the paper's Table I rows -> (rows, columns,
    caption). The method labels name each 2D source and, for a windowed model, its frames
    (T = W †), so a windowed number is never read as a single-frame one; `references` {name:
    EvalResult}: other models (e.g. the shipped single-frame and windowed ones) on the same
    samples, one row each. The caption says the protocols differ when the detector is not the
    paper's (CPN fine-tuned on Human3.6M)."""
    first = next(iter(results.values()))
    actions = [a for a in first.per_action.get(metric, {}) if a != AVERAGE]
    rows = []
    for n, result in results.items():
        table = result.per_action.get(metric, {})
        rows.append({"method": f"ours (N={n}{_frames(result.card)}) · {source_name}", "source": "ours",
                     **{a: table.get(a) for a in actions}, AVERAGE: table.get(AVERAGE)})
    for name, result in (references or {}).items():
        table = result.per_action.get(metric, {})
        rows.append({"method": f"{name} (N={result.card.get('num_hypotheses')}{_frames(result.card)}) · {source_name}",
                     "source": "ours", **{a: table.get(a) for a in actions}, AVERAGE: table.get(AVERAGE)})
    protocol = 1 if metric == "MPJPE" else 2
    for n in (1, 10):
        paper = reference.table1_ours(n, protocol)
        rows.append({"method": f"paper (N={n}) · CPN detections, S9/S11", "source": "paper",
                     **{a: paper.get(a) for a in actions}, AVERAGE: paper.get(AVERAGE)})
    split = first.card.get("split")
    same_protocol = split == "test" and "cpn" in str(first.card.get("keypoints_2d_source", "")).lower()
    caption = (f"{metric} (mm) per action on detected 2D — layout of the paper's Table I. "
               + ("Same protocol as the paper." if same_protocol else
                  f"Not the paper's protocol: ours is on the {split!r} split with {source_name}; the paper's rows are "
                  f"CPN detections (fine-tuned on Human3.6M) on the test subjects S9 and S11."))
    return rows, ["method", *actions, AVERAGE], caption


def save_simulated(data_path: str | Path, out_path: str | Path, seed: int = 0) -> Path:
    """Write a copy of a GT-2D prepared file with simulated detections (see simulate_detections)."""
    data = load_prepared(data_path)
    if has_detections(data):
        raise DataError(f"{data_path}: already holds detections; nothing to simulate")
    return save_prepared(out_path, simulate_detections(data, seed=seed))
