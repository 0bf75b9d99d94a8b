"""Accuracy, spread and calibration against network evaluations (NFE): one model, many samplers.

For every (sampler, NFE, η) point the same seeded samples are lifted once with H hypotheses
(flip: each hypothesis averages the plain and the mirrored chain, the paper's protocol) and scored
ground-truth free — MPJPE of the mean of the H hypotheses (N = H), of the first hypothesis alone
(N = 1: the hypotheses are independent draws, so the first is an N = 1 run), both averaged over
samples, and the N = H one also as evaluate's headline (the mean of the per-action means,
`mpjpe_nH_action_average`) — beside the ORACLE best-of-H (uses the ground truth; an upper bound, not a result), the hypotheses' spread
and their quantile calibration error (metrics.quantile_calibration: mean |observed - nominal|
over the levels 0.05..0.95; 0 = honest spread, larger = over- or under-confident). poses/s
counts poses (samples) per second of sampling on this machine. A DDPM model runs DDIM; a flow
model runs Euler, Heun and midpoint (second-order solvers from NFE 2).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..config import EvalConfig
from ..diffusion import DDPM_SAMPLERS, FLOW_SAMPLERS, objective_of
from . import metrics
from ..inference.lifter import SamplingSettings
from .scoring import open_run

__all__ = ["curve_point", "sampler_curve", "default_samplers"]

log = logging.getLogger(__name__)


def default_samplers(objective: str) -> tuple[str, ...]:
    """The few-step samplers a curve compares for a model of `objective`."""
    return FLOW_SAMPLERS if objective == "flow" else tuple(s for s in DDPM_SAMPLERS if s != "ddpm")


def curve_point(run, settings: SamplingSettings) -> dict[str, Any]:
    """One point of the curve for an opened EvalRun (scoring.open_run) -> a flat dict of mm
    numbers, the calibration error and the throughput; the sampler card says what ran."""
    data, lifter = run.data, run.lifter
    n = len(data)
    mean_err, first_err, oracle, spread = (np.empty(n) for _ in range(4))
    indicators = []
    for start, stop, hyps in lifter.iter_hypotheses(run.condition_2d, settings):
        hyps = hyps.astype(np.float64)
        gt = data.poses_3d[start:stop].astype(np.float64)
        mean_err[start:stop] = metrics.mpjpe(hyps.mean(axis=1), gt)
        first_err[start:stop] = metrics.mpjpe(hyps[:, 0], gt)
        summary = metrics.hypothesis_metrics(hyps, gt)
        oracle[start:stop] = summary["oracle_best_of_h"]
        spread[start:stop] = summary["spread"]
        indicators.append(metrics.calibration_indicators(hyps, gt))
    calibration = metrics.quantile_calibration(hyps=None, gt=None, indicators=np.concatenate(indicators)
                                               [..., _informative_joints(data)])
    seconds = lifter.sampling_seconds
    return {**lifter.sampler_card(settings), "eta": settings.eta, "num_hypotheses": settings.num_hypotheses,
            "flip": settings.flip, "num_samples": n,
            "mpjpe_n1": 1000.0 * float(np.mean(first_err)), f"mpjpe_n{settings.num_hypotheses}": 1000.0 * float(np.mean(mean_err)),
            # the tables' headline: the unweighted mean of the per-action means (evaluate's "Average")
            f"mpjpe_n{settings.num_hypotheses}_action_average":
                1000.0 * metrics.action_table(mean_err, data.action)[metrics.AVERAGE],
            "oracle": 1000.0 * float(np.mean(oracle)), "spread": 1000.0 * float(np.mean(spread)),
            "calibration_error": calibration["error"], "poses_per_second": n / seconds if seconds > 0 else float("nan"),
            "sampling_seconds": round(seconds, 2)}


def _informative_joints(data) -> np.ndarray:
    """Joints whose 3D ground truth varies (the root of root-relative poses is always zero and
    carries no calibration information; metrics.quantile_calibration skips it alike)."""
    return np.ptp(data.poses_3d, axis=0).max(axis=-1) > 0


def sampler_curve(model, data_path, split: str = "val", *, nfes: Sequence[int] = (1, 2, 3, 5, 10, 20),
                  samplers: Iterable[str] | None = None, etas: Sequence[float] = (0.0,), num_hypotheses: int = 10,
                  max_samples: int = 10000, seed: int = 0, flip: bool = True, input_2d: str = "file",
                  batch_size: int = 1024, checkpoint: str = "ema", device: str = "auto",
                  skip: Callable[[str, int, float], bool] | None = None,
                  on_point: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """The curve of one model (a run directory, zoo folder or Lifter) on `split` of a prepared
    file: one `curve_point` per (sampler, NFE, η), second-order solvers from NFE 2, η > 0 only
    where the sampler has it (DDIM, Euler). `skip(sampler, nfe, eta)` leaves points out (a
    resumed sweep); `on_point(row)` sees each row as it is measured. Never a test split for
    choosing anything."""
    ev = EvalConfig(num_hypotheses=num_hypotheses, num_steps=1, flip=flip, aggregate="mean", checkpoint=checkpoint,
                    max_samples=max_samples, seed=seed, input_2d=input_2d, batch_size=batch_size)
    run = open_run(model, data_path, split, ev, device=device)
    objective = objective_of(run.lifter.schedule)
    rows = []
    wanted = tuple(samplers) if samplers is not None else default_samplers(objective)
    own = FLOW_SAMPLERS if objective == "flow" else DDPM_SAMPLERS
    usable = [s for s in wanted if s in own]     # by name: "ddim" would run as euler on a flow model
    if len(usable) < len(wanted):
        log.info("%s model: skipping samplers %s (they need the other objective)", objective,
                 sorted(set(wanted) - set(usable)))
    for sampler in usable:
        for nfe in nfes:
            if sampler in ("heun", "midpoint") and nfe < 2:
                continue
            for eta in etas:
                if (eta > 0 and sampler not in ("ddim", "euler")) or (skip is not None and skip(sampler, nfe, eta)):
                    continue
                settings = SamplingSettings(num_hypotheses=num_hypotheses, sampler=sampler, num_steps=int(nfe),
                                            eta=float(eta), flip=flip, seed=seed, batch_size=batch_size,
                                            input_source=run.settings.input_source,
                                            calibrated=False)   # the sampler's own spread, not the calibration's
                tic = time.perf_counter()
                row = curve_point(run, settings)
                rows.append(row)
                if on_point is not None:
                    on_point(row)
                log.info("%s %s NFE %d eta %g: MPJPE N=1 %.1f, N=%d %.1f, oracle %.1f, spread %.1f mm, "
                         "calibration %.3f, %.0f poses/s (%.0f s)", objective, row["sampler"], nfe, eta,
                         row["mpjpe_n1"], num_hypotheses, row[f"mpjpe_n{num_hypotheses}"], row["oracle"],
                         row["spread"], row["calibration_error"], row["poses_per_second"], time.perf_counter() - tic)
    return rows
