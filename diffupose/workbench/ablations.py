"""The paper's ablations at the size a run can afford (notebook 06). They train, so they sit on
the workbench floor, above training and evaluation.

- `ddim_speed_rows`: Table VI — DDIM steps (and DDPM) vs poses/s and MPJPE at N=1/N=10, on
  one trained run.
- `ablation_variants` / `train_variants` / `evaluate_variants`: short trainings of variants of
  one base config — noise schedule linear vs cosine (the paper's schedule ablation), width
  d x hypotheses H (Table V), GCN vs U-Net denoiser (Table IV) — each for `steps` optimiser
  steps, then evaluated at each H. Variants with the same effective config are trained once.
- `schedule_rows`, `dim_rows`, `denoiser_rows`: the tables with the paper's numbers beside.

Our numbers come from short CPU trainings on whatever data the report uses; the paper's from
~300k GPU steps on Human3.6M: compare trends, not values.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from ..config import Config, EvalConfig, apply_overrides, preset
from ..data.prepared import load_prepared
from ..errors import ConfigError
from ..inference.lifter import Lifter
from ..model import build_denoiser, count_parameters
from ..training import train
from ..utils import resolve_device
from ..evaluation.protocols import evaluate
from ..evaluation.reference import paper_table, table4, table5, table6

__all__ = ["ABLATIONS", "ddim_speed_rows", "ablation_variants", "ablation_base_config", "train_variants",
           "evaluate_variants", "schedule_rows", "dim_rows", "denoiser_rows", "average_mpjpe"]

log = logging.getLogger(__name__)

ABLATIONS = ("schedule", "dim", "denoiser")


def average_mpjpe(result, metric: str = "MPJPE") -> float:
    """The headline number of an EvalResult: unweighted mean over actions, mm."""
    return float(result.per_action[metric]["Average"])


def _eval_cfg(base: EvalConfig | None, **changes) -> EvalConfig:
    return dataclasses.replace(base or EvalConfig(), **changes)


def ddim_speed_rows(run_dir, data_path, split: str, *, steps: Sequence[int] = (2, 5, 10, 20),
                    hypotheses: Sequence[int] = (1, 10), ddpm: bool = True, eval_cfg: EvalConfig | None = None,
                    device: str = "auto") -> list[dict[str, Any]]:
    """Table VI on a trained run: one row per (sampler, steps) with poses/s (at the smallest H)
    and MPJPE (mm) at each H, then the paper's fps / MPJPE (RTX A5000) for the same sampler and
    steps. eval_cfg supplies flip, aggregation, seed, max_samples, batch size."""
    dev = resolve_device(device)
    model = Lifter.load(run_dir, checkpoint=(eval_cfg or EvalConfig()).checkpoint, device=dev)
    settings = [("ddim", int(s)) for s in steps] + ([("ddpm", model.config.diffusion.num_timesteps)] if ddpm else [])
    paper = {(r["sampler"], r["num_steps"]): r for r in table6()}
    rows = []
    for sampler, num_steps in settings:
        row: dict[str, Any] = {"sampler": sampler.upper(), "num_steps": num_steps}
        for n in hypotheses:
            result = evaluate(model, data_path, split=split, device=str(dev), progress=False, keep_per_sample=False,
                              eval_cfg=_eval_cfg(eval_cfg, sampler=sampler, num_steps=num_steps, num_hypotheses=int(n)))
            row[f"mpjpe_n{n}"] = average_mpjpe(result)
            if n == min(hypotheses):
                row["poses_per_s"] = float(result.poses_per_second)
        ref = paper.get((sampler, num_steps)) or (paper.get(("ddpm", 100)) if sampler == "ddpm" else None)
        row["paper_fps"] = ref["fps"] if ref else None
        row["paper_mpjpe_n1"] = ref["mpjpe_n1"] if ref else None
        row["paper_mpjpe_n10"] = ref["mpjpe_n10"] if ref else None
        rows.append(row)
    return rows


def ablation_variants(kinds: Sequence[str], dims: Sequence[int]) -> dict[str, dict[str, dict[str, Any]]]:
    """{ablation: {label: config overrides}}. The base width is the middle of `dims` (the
    paper's 256 among 128/256/384); schedule and denoiser variants use it."""
    unknown = set(kinds) - set(ABLATIONS)
    if unknown:
        raise ConfigError(f"unknown ablation(s) {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
    if not dims:
        raise ConfigError("ablation_dims must name at least one width")
    dims = sorted(int(d) for d in dims)
    base_dim = dims[len(dims) // 2]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if "schedule" in kinds:
        out["schedule"] = {s: {"diffusion.schedule": s, "model.dim": base_dim} for s in ("linear", "cosine")}
    if "dim" in kinds:
        out["dim"] = {str(d): {"model.dim": d} for d in dims}
    if "denoiser" in kinds:
        out["denoiser"] = {"GCN": {"model.denoiser": "gcn", "model.dim": base_dim},
                           "U-Net": {"model.denoiser": "unet", "model.dim": base_dim}}
    return out


def ablation_base_config(preset_name: str, data_path, *, steps: int, batch_size: int, seed: int = 0,
                         device: str = "auto", overrides: dict[str, Any] | None = None) -> Config:
    """The preset shortened to `steps` optimiser steps (warm-up <= 10%, one validation and one
    checkpoint at the end, no time limit)."""
    if steps < 1:
        raise ConfigError(f"ablation_steps must be >= 1, got {steps}")
    cfg = preset(preset_name)
    return apply_overrides(cfg, {
        "data.path": str(data_path), "train.max_steps": int(steps), "train.epochs": 10 ** 6,
        "train.batch_size": int(batch_size), "train.warmup_steps": min(cfg.train.warmup_steps, int(steps) // 10),
        "train.val_every": int(steps), "train.checkpoint_every": int(steps),
        "train.log_every": max(1, int(steps) // 5), "train.max_minutes": 0.0, "train.seed": int(seed),
        "train.device": device, **(overrides or {}),
    })


def _config_key(cfg: Config) -> str:
    return hashlib.sha1(cfg.to_json(indent=None).encode()).hexdigest()[:10]


def train_variants(base: Config, variants: dict[str, dict[str, dict[str, Any]]], work_dir) -> dict[str, dict[str, Any]]:
    """Train every distinct variant config once under work_dir/<hash>/ (resumed / reused when
    present). -> {config key: {"run_dir", "config", "parameters", "wall_time_s", "steps",
    "best_val_mpjpe"}}; `variant_key(base, overrides)` finds a variant's entry."""
    work_dir = Path(work_dir)
    trained: dict[str, dict[str, Any]] = {}
    for table in variants.values():
        for overrides in table.values():
            cfg = apply_overrides(base, overrides)
            key = _config_key(cfg)
            if key in trained:
                continue
            run_dir = work_dir / key
            tic = time.perf_counter()
            result = train(cfg, run_dir, resume=True, progress=False)
            skeleton = load_prepared(cfg.data.path).skeleton
            trained[key] = {"run_dir": str(run_dir), "config": cfg, "steps": result.steps,
                            "wall_time_s": time.perf_counter() - tic, "best_val_mpjpe": result.best_val_mpjpe,
                            "parameters": count_parameters(build_denoiser(cfg.model, skeleton))}
    return trained


def variant_key(base: Config, overrides: dict[str, Any]) -> str:
    return _config_key(apply_overrides(base, overrides))


def evaluate_variants(base: Config, variants: dict[str, dict[str, dict[str, Any]]], trained: dict[str, dict[str, Any]],
                      data_path, split: str, hypotheses: Sequence[int], eval_cfg: EvalConfig | None = None,
                      device: str = "auto") -> dict[str, dict[str, dict[str, Any]]]:
    """-> {ablation: {label: {"parameters", "wall_time_s", "mpjpe": {H: mm}, "p_mpjpe": {H: mm}}}}
    (each distinct model evaluated once per H)."""
    cache: dict[tuple[str, int], Any] = {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for ablation, table in variants.items():
        out[ablation] = {}
        for label, overrides in table.items():
            key = variant_key(base, overrides)
            entry = trained[key]
            mpjpe, p_mpjpe = {}, {}
            for n in hypotheses:
                if (key, int(n)) not in cache:
                    cache[(key, int(n))] = evaluate(entry["run_dir"], data_path, split=split, device=device,
                                                    progress=False, keep_per_sample=False,
                                                    eval_cfg=_eval_cfg(eval_cfg, num_hypotheses=int(n)))
                result = cache[(key, int(n))]
                mpjpe[int(n)] = average_mpjpe(result)
                p_mpjpe[int(n)] = average_mpjpe(result, "P-MPJPE")
            out[ablation][label] = {"parameters": entry["parameters"], "wall_time_s": entry["wall_time_s"],
                                    "steps": entry["steps"], "mpjpe": mpjpe, "p_mpjpe": p_mpjpe,
                                    "run_dir": entry["run_dir"]}
    return out


def schedule_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Noise schedule ablation: ours MPJPE at each H beside the paper's (N=1, dim 256)."""
    paper = paper_table("noise_schedule")
    rows = []
    for label, r in results.items():
        row = {"schedule": label, **{f"MPJPE N={n}": v for n, v in r["mpjpe"].items()},
               "paper MPJPE (N=1, d=256)": paper.get(label)}
        rows.append(row)
    return rows


def dim_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Table V: width d x hypotheses H. Paper columns come from the paper's width of the same
    rank (128/256/384) when three widths are run, else from an equal width, else blank."""
    paper = {(r["dim"], r["num_hypotheses"]): r["mpjpe"] for r in table5()}
    paper_dims = sorted({d for d, _ in paper})
    labels = sorted(results, key=int)
    rows = []
    for rank, label in enumerate(labels):
        dim = int(label)
        pd = paper_dims[rank] if len(labels) == len(paper_dims) else (dim if dim in paper_dims else None)
        r = results[label]
        row: dict[str, Any] = {"dim": dim, "params (M)": r["parameters"] / 1e6}
        row.update({f"MPJPE N={n}": v for n, v in r["mpjpe"].items()})
        row["paper dim"] = pd
        row.update({f"paper N={n}": (paper.get((pd, n)) if pd else None) for n in (1, 5, 10)})
        rows.append(row)
    return rows


def denoiser_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Table IV: GCN vs U-Net, parameters and MPJPE at each H beside the paper's."""
    paper = {"GCN": None, "U-Net": None}
    for r in table4():
        paper["U-Net" if "U-Net" in r["denoiser"] else "GCN"] = r
    rows = []
    for label, r in results.items():
        ref = paper.get(label)
        rows.append({"denoiser": label, "params (M)": r["parameters"] / 1e6,
                     **{f"MPJPE N={n}": v for n, v in r["mpjpe"].items()},
                     "paper MPJPE": ref["mpjpe"] if ref else None,
                     "paper params (M)": ref["params_million"] if ref else None})
    return rows
