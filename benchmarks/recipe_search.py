"""Recipe search on the validation split: train named recipes, score each on val, print one table.

    OMP_NUM_THREADS=2 python benchmarks/recipe_search.py --data h36m_gt.npz --out runs/recipes \
        --recipes eps,x0,v --steps 5000 --seeds 0
    python benchmarks/recipe_search.py --out runs/recipes --table        # the table of every run so far

Every recipe is a training preset plus overrides (RECIPES below; `--set key=value` adds more to
all of them). Each (recipe, steps, seed) trains into OUT/<recipe>-<steps>-s<seed> with
`train.max_steps = steps` (so the cosine schedule spans the run), then its final EMA weights are
scored on the `val` split — held-out training subjects, never a test split — at N = 1 and
N = 10 (DDIM-5, flip, ground-truth-free protocol) on a seeded subset of `--eval-samples`
poses. Finished runs are skipped, so an interrupted search continues where it stopped. One
JSON line per run goes to OUT/recipes.jsonl (the file is rewritten atomically); the table gives
mean ± sd over seeds. `benchmarks/RECIPES.md` is the log of what was tried and why the presets
are what they are.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np

from diffupose.config import EvalConfig, apply_overrides, preset
from diffupose.evaluation.protocols import evaluate
from diffupose.evaluation.metrics import AVERAGE
from diffupose.training import train
from diffupose.utils import atomic_write_text

log = logging.getLogger("recipe_search")

# name -> (preset, overrides). Every recipe names its parameterisation (eps, x0 or v) and pins it
# here: the presets' own choice changes between rounds (h36m_cpu was eps, now v), and a recipe
# that inherited it would silently train another target under the same name.
RECIPES: dict[str, tuple[str, dict]] = {
    "eps": ("h36m_cpu", {"diffusion.prediction": "eps"}),
    "x0": ("h36m_cpu", {"diffusion.prediction": "x0"}),
    "v": ("h36m_cpu", {"diffusion.prediction": "v"}),
    "x0-lr2e-3": ("h36m_cpu", {"diffusion.prediction": "x0", "train.lr": 2e-3}),
    "x0-dim192": ("h36m_cpu", {"diffusion.prediction": "x0", "model.dim": 192}),
    "eps-dim256": ("h36m_cpu", {"diffusion.prediction": "eps", "model.dim": 256}),
    "x0-dim256": ("h36m_cpu", {"diffusion.prediction": "x0", "model.dim": 256}),
    "x0-batch512": ("h36m_cpu", {"diffusion.prediction": "x0", "train.batch_size": 512}),
    "x0-lambda0.2": ("h36m_cpu", {"diffusion.prediction": "x0", "diffusion.lambda_2d": 0.2}),
    "eps-lr2e-3": ("h36m_cpu", {"diffusion.prediction": "eps", "train.lr": 2e-3}),
    "humaneva-eps": ("humaneva_cpu", {"diffusion.prediction": "eps"}),
    "humaneva-x0": ("humaneva_cpu", {"diffusion.prediction": "x0"}),
    "humaneva-v": ("humaneva_cpu", {"diffusion.prediction": "v"}),
    # Detected 2D (a file prepared with --keypoints sh, which keeps the projected GT beside the
    # detections): (a) train on the detections, (b) GT + resampled measured detector error,
    # (c) a per-sample mix of both, and the GT-only model for reference.
    "v-det-file": ("h36m_cpu", {"diffusion.prediction": "v", "train.input_2d": "file"}),
    "v-det-gtnoise": ("h36m_cpu", {"diffusion.prediction": "v", "train.input_2d": "gt+noise"}),
    "v-det-mix": ("h36m_cpu", {"diffusion.prediction": "v", "train.input_2d": "mix", "train.mix_detected": 0.5}),
    "v-det-gtonly": ("h36m_cpu", {"diffusion.prediction": "v", "train.input_2d": "gt"}),
    "v-det-mix-layouts": ("h36m_cpu", {"diffusion.prediction": "v", "train.input_2d": "mix", "train.mix_detected": 0.5,
                                       "train.input_layouts": "h36m17,coco17,halpe26,body25,mpii16"}),
}


def run_name(recipe: str, steps: int, seed: int) -> str:
    return f"{recipe}-{steps}-s{seed}"


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(run_dir: Path, data: str, num_hypotheses: int, max_samples: int, input_2d: str = "file"
          ) -> dict[str, float]:
    """Final EMA weights on val: MPJPE and P-MPJPE (mm), averaged over actions; with N > 1 also
    the ORACLE best-of-N (picks with the ground truth) and the hypothesis spread, which show
    whether a recipe keeps the hypotheses diverse. input_2d="gt": the ground-truth 2D of a
    detections file instead (keys get a `_gtinput` suffix)."""
    ev = EvalConfig(num_hypotheses=num_hypotheses, num_steps=5, flip=True, checkpoint="ema",
                    max_samples=max_samples, seed=0, input_2d=input_2d)
    result = evaluate(run_dir, data, split="val", eval_cfg=ev, progress=False, keep_per_sample=False)
    if input_2d == "gt":
        return {f"mpjpe_n{num_hypotheses}_gtinput": result.per_action["MPJPE"][AVERAGE]}
    out = {f"mpjpe_n{num_hypotheses}": result.per_action["MPJPE"][AVERAGE],
           f"p_mpjpe_n{num_hypotheses}": result.per_action["P-MPJPE"][AVERAGE]}
    if num_hypotheses > 1:
        out[f"oracle_n{num_hypotheses}"] = result.hypotheses["oracle_best_of_h"][AVERAGE]
        out[f"spread_n{num_hypotheses}"] = result.hypotheses["spread"][AVERAGE]
    return out


def run_one(recipe: str, steps: int, seed: int, args) -> dict:
    preset_name, overrides = RECIPES[recipe]
    settings = {**overrides, "train.max_steps": steps, "train.seed": seed, "train.max_minutes": 0.0,
                "data.path": str(Path(args.data).resolve())}
    cfg = apply_overrides(preset(preset_name, settings), args.set)
    run_dir = Path(args.out) / run_name(recipe, steps, seed)
    t0 = time.perf_counter()
    result = train(cfg, run_dir, progress=False)
    minutes = (time.perf_counter() - t0) / 60
    vals = [r["val_mpjpe"] for r in result.history if r.get("val_mpjpe") is not None]
    row = {"recipe": recipe, "preset": preset_name, "prediction": cfg.diffusion.prediction,
           "overrides": [f"{k}={v}" for k, v in settings.items() if k != "data.path"] + list(args.set),
           "steps": steps, "seed": seed, "minutes": round(minutes, 2), "run_dir": str(run_dir),
           "val_curve_mm": [round(v, 1) for v in vals]}
    for n in (1, 10):
        row.update(score(run_dir, args.data, n, args.eval_samples))
    if has_gt_beside(args.data):
        row.update(score(run_dir, args.data, 10, args.eval_samples, input_2d="gt"))
    return row


def has_gt_beside(path: str) -> bool:
    """Whether a prepared file holds detections with the projected ground truth beside them."""
    with np.load(path) as npz:
        return "keypoints_2d_gt" in npz.files


def table(rows: list[dict]) -> str:
    """Markdown: one line per (recipe, steps), mean ± sd over seeds."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["steps"]), []).append(r)

    def cell(values: list[float]) -> str:
        if len(values) == 1:
            return f"{values[0]:.1f}"
        return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"

    keys = ("mpjpe_n1", "mpjpe_n10", "p_mpjpe_n1", "p_mpjpe_n10", "oracle_n10", "spread_n10", "mpjpe_n10_gtinput")
    lines = ["| recipe | steps | seeds | minutes | MPJPE N=1 | MPJPE N=10 | P-MPJPE N=1 | P-MPJPE N=10 "
             "| ORACLE best-of-10 | spread N=10 | MPJPE N=10, GT 2D input |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (recipe, steps), group in groups.items():
        metrics = [cell([g[k] for g in group]) if all(k in g for g in group) else "–" for k in keys]
        lines.append(f"| {recipe} | {steps} | {len(group)} | {cell([g['minutes'] for g in group])} | "
                     + " | ".join(metrics) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="prepared .npz with a val split (H36M: --val-subjects S8)")
    p.add_argument("--out", required=True, help="folder for the runs and recipes.jsonl")
    p.add_argument("--recipes", default="eps,x0,v", help=f"comma-separated; known: {','.join(RECIPES)}")
    p.add_argument("--steps", type=int, default=5000, help="optimiser steps per run (the cosine horizon)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--eval-samples", type=int, default=2000, help="seeded val subset for scoring (0 = all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override for every recipe")
    p.add_argument("--table", action="store_true", help="only print the table of the runs logged so far")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log_path = Path(args.out) / "recipes.jsonl"
    rows = read_log(log_path)
    if not args.table:
        if not args.data:
            p.error("--data is required unless --table")
        unknown = [r for r in args.recipes.split(",") if r not in RECIPES]
        if unknown:
            p.error(f"unknown recipe(s) {unknown}; known: {list(RECIPES)}")
        Path(args.out).mkdir(parents=True, exist_ok=True)
        done = {(r["recipe"], r["steps"], r["seed"]) for r in rows}
        for seed in (int(s) for s in args.seeds.split(",")):
            for recipe in args.recipes.split(","):
                if (recipe, args.steps, seed) in done:
                    log.info("%s: logged already, skipped", run_name(recipe, args.steps, seed))
                    continue
                log.info("%s: training", run_name(recipe, args.steps, seed))
                row = run_one(recipe, args.steps, seed, args)
                rows.append(row)
                atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in rows))
                log.info("%s: %.1f min, val MPJPE %.1f / %.1f mm at N = 1 / 10", run_name(recipe, args.steps, seed),
                         row["minutes"], row["mpjpe_n1"], row["mpjpe_n10"])
    print(table(rows))


if __name__ == "__main__":
    main()
