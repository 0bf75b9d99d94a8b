"""Evaluation protocols -> tidy tables with a protocol card.

`evaluate(run_dir, data_path)` samples N hypotheses per 2D input (plus the flipped input when
`flip`), aggregates them into one pose, and reports MPJPE / P-MPJPE / N-MPJPE in millimetres per
action (Table I layout for Human3.6M), per subject, per subject x action (Table III layout for
HumanEva-I), the hypothesis-set metrics (error of the mean pose, the ORACLE best-of-H and the
spread), the sampling throughput and a protocol card saying exactly what was measured.

Protocols:
- `gt_free`: ground-truth free. The prediction is compared as it comes out of the sampler
  (root-relative, no root re-centring, no alignment for MPJPE), as the released code does.
- `official_oracle`: reproduces the released evaluation, which is NOT ground-truth free: it
  replaces the predicted x, y of every joint by the back-projection of the input 2D through the
  intrinsics at the ground-truth absolute depth (ground-truth root depth + predicted relative
  depth), in place, so P-MPJPE and N-MPJPE see the modified pose too. Only with intrinsics.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import EvalConfig
from ..errors import ConfigError, DataError
from . import metrics
from .calibration import detection_errors_px, evaluation_source, file_batch, report_from
from ..inference.lifter import SamplingSettings
from ..utils import atomic_path, atomic_write_text, environment_info, to_jsonable
from .reference import (
    H36M_ACTION_ABBREVIATIONS, H36M_ACTIONS, HUMANEVA_ACTIONS, HUMANEVA_PAPER_ACTION, HUMANEVA_SUBJECTS,
    table1_ours, table2_ours, table3_cells, table3_rows,
)
from .scoring import (PROTOCOLS, BatchScores, EvalRun, action_order, check_eval_config, check_protocol, open_run,
                      score_batches, with_input_2d)

__all__ = ["PROTOCOLS", "METRICS", "EvalResult", "evaluate", "official_oracle_pose", "compare_with_paper",
           "evaluate_poses", "check_protocol", "check_eval_config", "with_input_2d", "action_order"]

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("MPJPE", "P-MPJPE", "N-MPJPE")
HYPOTHESIS_KEYS: tuple[str, ...] = ("mean_of_hypotheses", "oracle_best_of_h", "spread")
ORACLE_NOTE = ("oracle_best_of_h picks, per sample, the hypothesis closest to the 3D ground truth: "
               "an upper bound for any selector, not an estimate")
_CARD_CSV_FIELDS = ("dataset", "data_file", "split", "keypoints_2d_source", "num_hypotheses", "aggregation",
                    "flip", "sampler", "num_steps", "eta", "protocol", "oracle", "checkpoint_path",
                    "checkpoint", "seed", "num_samples", "num_nan_samples", "precision", "git_commit", "device")


def official_oracle_pose(pred, keypoints_2d, intrinsics, root_depth) -> np.ndarray:
    """The released code's post-processing (`get_uvd2xyz`), which USES THE GROUND TRUTH.

    Absolute depth z_j = gt root depth + predicted z_j (z_0 = gt root depth); x, y of every
    joint := back-projection (u - c) z / f of the input keypoints, made root-relative; the
    predicted z is kept. (The released loop that then blends 100 mixtures of the predicted and
    back-projected x, y keeps the first one, i.e. the full replacement, because it overwrites
    its own input in place.)

    pred: (B, J, 3) metres root-relative; keypoints_2d: (B, J, 2) normalised; intrinsics:
    (B, 4) finite fx, fy, cx, cy; root_depth: (B,) metres, ground truth -> (B, J, 3)
    """
    pred = np.asarray(pred, dtype=np.float64)
    kp = np.asarray(keypoints_2d, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    root_depth = np.asarray(root_depth, dtype=np.float64)
    assert pred.ndim == 3 and kp.shape == pred.shape[:2] + (2,), f"pred {pred.shape} / keypoints {kp.shape}"
    assert k.shape == (pred.shape[0], 4) and root_depth.shape == (pred.shape[0],)
    z = pred[..., 2] + root_depth[:, None]
    z[:, 0] = root_depth
    xy = (kp - k[:, None, 2:]) * z[..., None] / k[:, None, :2]
    out = pred.copy()
    out[..., :2] = xy - xy[:, :1]
    return out


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.1f}"


@dataclass
class EvalResult:
    """Tables in millimetres plus the protocol card.

    per_action: {metric: {action: mm, "Average": mm}} (Average = unweighted mean over actions)
    per_subject: {metric: {subject: mm, "Average": mm}}
    subject_action: {metric: {action: {subject: mm, "Average": mm}}} (HumanEva's Table III)
    per_joint: {metric: {joint name: mm}}
    hypotheses: error of the mean pose, ORACLE best-of-H, spread (tables in mm), of the raw sampler
    calibration: {"raw", "calibrated", "card"} (`evaluation.calibration.report_from`): calibration
        error, band coverage, spread-error Spearman, confidence AUROC, coverage by 2D error; the
        calibrated figures are None when the model has no calibration for the input (or
        eval.calibrated is False)
    per_sample: optional arrays for notebooks (mm errors, action, subject, camera)
    """

    per_action: dict[str, dict[str, float]]
    per_subject: dict[str, dict[str, float]]
    subject_action: dict[str, dict[str, dict[str, float]]]
    per_joint: dict[str, dict[str, float]]
    hypotheses: dict[str, Any]
    card: dict[str, Any]
    poses_per_second: float
    per_sample: dict[str, np.ndarray] | None = field(default=None, repr=False)
    calibration: dict[str, Any] | None = None

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-sample arrays, JSON-safe (NaN -> None)."""
        return to_jsonable({
            "per_action": self.per_action, "per_subject": self.per_subject,
            "subject_action": self.subject_action, "per_joint": self.per_joint,
            "hypotheses": self.hypotheses, "card": self.card, "poses_per_second": self.poses_per_second,
            "calibration": self.calibration,
        })

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return Path(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "EvalResult":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            return cls(**{k: d[k] for k in ("per_action", "per_subject", "subject_action", "per_joint",
                                             "hypotheses", "card", "poses_per_second")},
                       calibration=d.get("calibration"))
        except FileNotFoundError:
            raise DataError(f"{path}: evaluation result not found") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not an evaluation result ({type(e).__name__}: {e})") from None

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: metric, subject, action, value_mm ("all" where pooled)."""
        out = []
        for metric, table in self.per_action.items():
            out += [{"metric": metric, "subject": "all", "action": a, "value_mm": v} for a, v in table.items()]
        for metric, table in self.per_subject.items():
            out += [{"metric": metric, "subject": s, "action": "all", "value_mm": v} for s, v in table.items()]
        for metric, table in self.subject_action.items():
            for action, cells in table.items():
                out += [{"metric": metric, "subject": s, "action": action, "value_mm": v}
                        for s, v in cells.items() if action != metrics.AVERAGE]
        for key in ("mean_of_hypotheses", "oracle_best_of_h", "spread"):
            metric = f"hypotheses/{key}"
            out += [{"metric": metric, "subject": "all", "action": a, "value_mm": v}
                    for a, v in self.hypotheses.get(key, {}).items()]
        return out

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Tidy CSV (metric, subject, action, value_mm, then the card fields), atomic."""
        card = {k: self.card.get(k) for k in _CARD_CSV_FIELDS}
        card["checkpoint_path"] = (self.card.get("checkpoint") or {}).get("path")
        card["checkpoint"] = (self.card.get("checkpoint") or {}).get("checkpoint")
        header = ["metric", "subject", "action", "value_mm", *card]
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=header)
                writer.writeheader()
                for row in self.rows():
                    value = row["value_mm"]
                    row["value_mm"] = "" if value is None or not math.isfinite(value) else f"{value:.4f}"
                    writer.writerow({**row, **card})
        return Path(path)

    # -- display -----------------------------------------------------------------------------
    def format_table(self) -> str:
        """Markdown table of per-action MPJPE / P-MPJPE (Table I layout for H36M; Table III
        layout added for HumanEva), the hypothesis metrics, then the protocol card."""
        lines = []
        actions = [a for a in next(iter(self.per_action.values()), {}) if a != metrics.AVERAGE]
        names = [H36M_ACTION_ABBREVIATIONS.get(a, a) for a in actions] + ["Avg."]
        lines.append("| mm | " + " | ".join(names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for metric in ("MPJPE", "P-MPJPE"):
            table = self.per_action.get(metric, {})
            lines.append(f"| {metric} | " + " | ".join(_fmt(table.get(a)) for a in actions + [metrics.AVERAGE]) + " |")
        if self.card.get("dataset") == "humaneva" or set(actions) <= set(HUMANEVA_ACTIONS):
            columns = _table3_columns(self.subject_action.get("P-MPJPE", {}))
            if columns:
                lines += ["", "| P-MPJPE (mm) | " + " | ".join(c for c, _ in columns) + " |",
                          "|---|" + "---:|" * len(columns),
                          f"| N={self.card.get('num_hypotheses')} | " + " | ".join(_fmt(v) for _, v in columns) + " |"]
        hyp = self.hypotheses
        if hyp:
            lines += ["", f"Hypotheses (H={hyp.get('num_hypotheses')}, {hyp.get('samples_per_hypothesis')} "
                          f"sample(s) each): MPJPE of the mean pose "
                          f"{_fmt(hyp.get('mean_of_hypotheses', {}).get(metrics.AVERAGE))} mm; "
                          f"ORACLE best-of-H (uses 3D ground truth) "
                          f"{_fmt(hyp.get('oracle_best_of_h', {}).get(metrics.AVERAGE))} mm; "
                          f"spread {_fmt(hyp.get('spread', {}).get(metrics.AVERAGE))} mm"]
        lines += _calibration_lines(self.calibration)
        lines += ["", f"{self.poses_per_second:.1f} poses/s on {self.card.get('device')}", "", "Protocol card:"]
        for key, value in self.card.items():
            if key in ("environment", "model"):
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            lines.append(f"- {key}: {value}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _calibration_lines(calibration: dict[str, Any] | None) -> list[str]:
    """One line per variant: calibration error, 90 % band coverage and the confidence AUROC."""
    if not calibration:
        return []
    lines = [""]
    for key in ("raw", "calibrated"):
        fig = calibration.get(key)
        if not fig or fig.get("calibration_error") is None:
            lines.append(f"Calibration ({key}): none" + (" (the model has no calibration for this input; "
                                                          "`diffupose calibrate`)" if key == "calibrated" else ""))
            continue
        auroc = (fig.get("confidence") or {}).get("auroc")
        lines.append(f"Calibration ({key}): error {fig['calibration_error']:.3f}; 90 % band coverage "
                     f"{fig['coverage']['0.9']:.3f}; confidence AUROC (MPJPE > 100 mm) "
                     + ("–" if auroc is None else f"{auroc:.3f}"))
    return lines


def _table3_columns(cells: dict[str, dict[str, float]]) -> list[tuple[str, float]]:
    """Subject x action cells -> [("Walk S1", mm), ...] in the paper's order, then the rest."""
    out = []
    actions = [a for a in HUMANEVA_ACTIONS if a in cells] + sorted(set(cells) - set(HUMANEVA_ACTIONS) - {metrics.AVERAGE})
    for action in actions:
        subjects = [s for s in HUMANEVA_SUBJECTS if s in cells[action]]
        subjects += sorted(set(cells[action]) - set(HUMANEVA_SUBJECTS) - {metrics.AVERAGE})
        out += [(f"{HUMANEVA_PAPER_ACTION.get(action, action)} {s}", cells[action][s]) for s in subjects]
    return out


# ---------------------------------------------------------------------------------------------

def evaluate_poses(pred, gt, actions, subjects, order=None, joint_names=None) -> dict[str, Any]:
    """Tables for already aggregated predictions (metres in, millimetres out).

    pred, gt: (B, J, 3) metres; actions, subjects: (B,) -> dict with per_action, per_subject,
    subject_action, per_joint and per_sample (the per-sample errors in mm).
    """
    order = order or action_order(actions)
    errors = {"MPJPE": metrics.mpjpe(pred, gt) * 1000.0,
              "P-MPJPE": metrics.p_mpjpe(pred, gt) * 1000.0,
              "N-MPJPE": metrics.n_mpjpe(pred, gt) * 1000.0}
    joint_err = metrics.per_joint_errors(pred, gt).mean(axis=0) * 1000.0
    return _tables(errors, joint_err, actions, subjects, order, joint_names)


def _tables(errors, joint_err, actions, subjects, order, joint_names):
    joint_names = joint_names or [str(j) for j in range(len(joint_err))]
    return {
        "per_action": {m: metrics.action_table(e, actions, subjects, order=order) for m, e in errors.items()},
        "per_subject": {m: metrics.subject_table(e, subjects) for m, e in errors.items()},
        "subject_action": {m: metrics.subject_action_table(e, subjects, actions, action_order=order,
                                                           subject_order=HUMANEVA_SUBJECTS)
                           for m, e in errors.items()},
        "per_joint": {"MPJPE": dict(zip(joint_names, map(float, joint_err)))},
    }


def evaluate(run_dir_or_model, data_path, split: str = "test", eval_cfg: EvalConfig | None = None,
             device: str = "auto", progress: bool = True, keep_per_sample: bool = True) -> EvalResult:
    """Evaluate a trained denoiser on a prepared dataset split.

    run_dir_or_model: a run/checkpoint directory, a `Lifter`, or an in-memory
    `(denoiser, Config[, Skeleton])`. eval_cfg: defaults to the run's `config.eval`. Returns an
    EvalResult whose numbers are millimetres. Steps: open the model on the split
    (`scoring.open_run`: the seeded subset, the skeleton check, a `best` checkpoint refused on
    the split that chose it), sample and score batch by batch through the shared inference path,
    then build the tables and the protocol card.
    """
    run = open_run(run_dir_or_model, data_path, split, eval_cfg, device=device)
    if run.ev.protocol == "official_oracle" and not np.isfinite(run.data.intrinsics).all():
        raise ConfigError(f"{data_path}: protocol 'official_oracle' needs camera intrinsics, "
                          f"which this file lacks (NaN, e.g. HumanEva)")
    data, lifter, settings = run.data, run.lifter, run.settings
    source = evaluation_source(run)
    calibration = lifter.calibration_for(settings, source)
    scores = _score(run, progress, calibration)
    order = action_order(data.action, f"{data.dataset} {lifter.skeleton.name}")
    joint_names = list(lifter.skeleton.joint_names)
    errors = {m: scores.per_sample[m] for m in METRICS}
    tables = _tables(errors, scores.sums["joint"] / len(data), data.action, data.subject, order, joint_names)
    hypotheses = _hypothesis_tables(scores, data, settings, order, joint_names)
    poses_per_second = len(data) / lifter.sampling_seconds if lifter.sampling_seconds > 0 else float("inf")
    card = _protocol_card(run, poses_per_second, _count_nan_samples(errors["MPJPE"]))
    per_sample = None
    if keep_per_sample:
        per_sample = {**errors, **{f"hypotheses/{k}": scores.per_sample[k] for k in HYPOTHESIS_KEYS},
                      "action": data.action, "subject": data.subject, "camera": data.camera, "frame": data.frame}
    calibration_card = {"source": source, "split": run.split}
    if calibration is None:
        calibration_card["reason"] = lifter.calibration_card(settings, source)["reason"]
    calibration_figures = report_from(scores, calibration, detection_errors_px(run, source), joint_names,
                                      card=calibration_card)
    log.info("evaluated %d samples: MPJPE %.1f mm, P-MPJPE %.1f mm", len(data),
             tables["per_action"]["MPJPE"][metrics.AVERAGE], tables["per_action"]["P-MPJPE"][metrics.AVERAGE])
    return EvalResult(per_action=tables["per_action"], per_subject=tables["per_subject"],
                      subject_action=tables["subject_action"], per_joint=tables["per_joint"],
                      hypotheses=hypotheses, card=card, poses_per_second=poses_per_second, per_sample=per_sample,
                      calibration=calibration_figures)


def _score(run: EvalRun, progress: bool, calibration=None) -> BatchScores:
    """Sample the RAW hypotheses once, aggregate (ground-truth free) and score every sample, batch by
    batch: per-sample errors (mm) under METRICS and HYPOTHESIS_KEYS, per-joint sums (mm) under
    "joint" and "spread" (all of the raw sampler), and the calibration values of the raw and, with
    a `calibration`, the calibrated bands (`evaluation.calibration.file_batch`, about the
    ground-truth-free aggregate)."""
    data, lifter, settings = run.data, run.lifter, run.settings
    oracle = run.ev.protocol == "official_oracle"

    def score(scores: BatchScores, start: int, stop: int, hyps: np.ndarray) -> None:
        hyps = hyps.astype(np.float64)
        gt = data.poses_3d[start:stop].astype(np.float64)
        pred = lifter.aggregate(hyps, settings.aggregate, keypoints_2d=data.keypoints_2d[start:stop],
                                intrinsics=data.intrinsics[start:stop])
        file_batch(scores, "raw", start, stop, hyps, pred, gt)
        if calibration is not None:
            file_batch(scores, "calibrated", start, stop, hyps, pred, gt, calibration)
        if oracle:
            pred = official_oracle_pose(pred, data.keypoints_2d[start:stop], data.intrinsics[start:stop],
                                        data.root_position[start:stop, 2])
        scores.put("MPJPE", start, stop, metrics.mpjpe(pred, gt) * 1000.0)
        scores.put("P-MPJPE", start, stop, metrics.p_mpjpe(pred, gt) * 1000.0)
        scores.put("N-MPJPE", start, stop, metrics.n_mpjpe(pred, gt) * 1000.0)
        scores.add("joint", metrics.per_joint_errors(pred, gt).sum(axis=0) * 1000.0)
        summary = metrics.hypothesis_metrics(hyps, gt)
        for key in HYPOTHESIS_KEYS:
            scores.put(key, start, stop, summary[key] * 1000.0)
        scores.add("spread", metrics.hypothesis_spread(hyps).sum(axis=0) * 1000.0)

    batches = lifter.iter_hypotheses(run.condition_2d, settings.replace(calibrated=False), progress=progress,
                                     desc="evaluate")
    return score_batches(batches, len(data), score)


def _count_nan_samples(mpjpe: np.ndarray) -> int:
    """Samples whose prediction is not finite (a diverged model); logged, and in the card."""
    bad = int(np.count_nonzero(~np.isfinite(mpjpe)))
    if bad:
        log.warning("%d of %d samples have a non-finite prediction (see num_nan_samples in the card)",
                    bad, len(mpjpe))
    return bad


def _hypothesis_tables(scores: BatchScores, data, settings: SamplingSettings, order, joint_names) -> dict[str, Any]:
    return {
        "num_hypotheses": settings.num_hypotheses,
        "samples_per_hypothesis": 2 if settings.flip else 1,
        **{key: metrics.action_table(scores.per_sample[key], data.action, order=order) for key in HYPOTHESIS_KEYS},
        "per_joint_spread": dict(zip(joint_names, map(float, scores.sums["spread"] / len(data)))),
        "oracle_keys": ["oracle_best_of_h"],
        "oracle_note": ORACLE_NOTE,
    }


def _protocol_card(run: EvalRun, poses_per_second: float, num_nan_samples: int) -> dict[str, Any]:
    """What exactly was measured: data and split, 2D source, sampling, protocol, checkpoint,
    seed, device, throughput, provenance."""
    ev, settings, lifter = run.ev, run.settings, run.lifter
    oracle = ev.protocol == "official_oracle"
    cfg, device = lifter.config, lifter.device
    env = environment_info()
    return {
        **run.data_card(),
        "num_hypotheses": settings.num_hypotheses,
        "aggregation": settings.aggregate,
        "flip": settings.flip,
        **lifter.sampler_card(settings),
        "eta": settings.eta,
        "precision": f"{settings.precision} -> {lifter.arithmetic(settings)}",
        "protocol": ev.protocol,
        "oracle": oracle,
        "uses_ground_truth": oracle,
        "protocol_note": ("x, y replaced by back-projection of the 2D input at the ground-truth root depth "
                          "(released code)" if oracle else "ground-truth free"),
        **run.checkpoint_card(),
        "seed": settings.seed,
        "max_samples": ev.max_samples,
        "num_samples": len(run.data),
        "num_nan_samples": num_nan_samples,
        "batch_size": settings.batch_size,
        "device": str(device) + (f" ({env['cuda']})" if device.type == "cuda" and env.get("cuda") else ""),
        "poses_per_second": poses_per_second,
        "timing": "sampler calls only (2D already on the device), wall clock, device synchronised",
        "git_commit": env["git_commit"],
        "model": {"denoiser": cfg.model.denoiser, "dim": cfg.model.dim, "num_blocks": cfg.model.num_blocks,
                  "window": cfg.model.window},
        "frames": frames_label(cfg.model.window),
        "environment": env,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def frames_label(window: int) -> str:
    """How many 2D frames a number used, in the paper's convention: "T = 1" for a single-frame
    model, "T = W †" for a windowed one (Table I marks temporal methods with †)."""
    return "T = 1" if int(window) == 1 else f"T = {int(window)} †"


def compare_with_paper(result: EvalResult, table: str = "table1", num_hypotheses: int | None = None) -> list[dict[str, Any]]:
    """Rows of ours vs the paper for notebooks: [{"table", "paper_row", "metric", "column",
    "ours_mm", "paper_mm", "difference_mm"}].

    table1: Table I (detected 2D) MPJPE and P-MPJPE vs "Ours (N=1)" or "Ours (N=10)" (the one
    nearer to the result's H); table2: Table II (ground-truth 2D, N=10) MPJPE; table3: Table III
    (HumanEva-I P-MPJPE) cells vs the row with the nearest N (1, 5, 10, 30).
    """
    n = num_hypotheses or int(result.card.get("num_hypotheses", 1))
    rows = []

    def add(paper_row, metric, column, ours, paper):
        ours = None if ours is None or not math.isfinite(ours) else float(ours)
        diff = None if ours is None or paper is None else ours - paper
        rows.append({"table": table, "paper_row": paper_row, "metric": metric, "column": column,
                     "ours_mm": ours, "paper_mm": paper, "difference_mm": diff})

    columns = list(H36M_ACTIONS) + [metrics.AVERAGE]
    if table == "table1":
        paper_n = 1 if n < 5 else 10
        for protocol, metric in ((1, "MPJPE"), (2, "P-MPJPE")):
            paper = table1_ours(paper_n, protocol)
            ours = result.per_action.get(metric, {})
            for column in columns:
                add(f"Ours (N={paper_n})", metric, column, ours.get(column), paper.get(column))
    elif table == "table2":
        paper = table2_ours()
        ours = result.per_action.get("MPJPE", {})
        for column in columns:
            add("Ours (N=10)", "MPJPE", column, ours.get(column), paper.get(column))
    elif table == "table3":
        paper_n = min(table3_rows(), key=lambda k: (abs(k - n), k))
        paper = table3_cells(paper_n)
        ours = result.subject_action.get("P-MPJPE", {})
        for action in HUMANEVA_ACTIONS:
            for subject in HUMANEVA_SUBJECTS:
                add(f"N={paper_n}", "P-MPJPE", f"{HUMANEVA_PAPER_ACTION[action]} {subject}",
                    ours.get(action, {}).get(subject), paper[action][subject])
    else:
        raise ConfigError(f"unknown paper table {table!r}; use table1, table2 or table3")
    return rows
