"""Train, evaluate and export a zoo model from its recipe (the card of a shipped model, or the
table below for a new one), then print its validation table.

    OMP_NUM_THREADS=2 python benchmarks/zoo.py --model h36m-det --work runs/zoo            # train + evaluate
    OMP_NUM_THREADS=2 python benchmarks/zoo.py --model h36m-det --work runs/zoo --export   # ... and write
                                                                  # diffupose/zoo_models/h36m-det (needs --overwrite
                                                                  # when it exists)

Steps (each resumes: a prepared file or a finished run is reused):
1. `diffupose prepare` with the recipe's arguments into WORK/<name>/data.npz;
2. `diffupose train` with the recipe's preset, overrides and seed into WORK/<name>/run;
3. evaluation of the final EMA weights (no checkpoint selection) on the `val` split — held-out
   training subjects, never a test split — on a seeded subset (`--max-samples`, 10,000), N = 1
   and N = 10 with the model's own sampler (`eval.sampler` / `eval.num_steps`: DDIM-5 for the
   DDPM models, midpoint with 3 evaluations for the flow model), flip, mean, ground-truth free;
   for a detections file also on the
   projected ground-truth 2D kept beside the detections;
4. with --export: the weights, config and card (sha256, parameter count, training time, machine,
   commit, every number with the command that reproduces it) into the package's zoo folder.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

from diffupose.inference import zoo
from diffupose.config import EvalConfig, apply_overrides, parse_override, preset
from diffupose.data import prepare_dataset
from diffupose.evaluation.protocols import evaluate
from diffupose.inference.metrics import AVERAGE
from diffupose.training import read_history, train
from diffupose.utils import environment_info

log = logging.getLogger("zoo")

H36M_LICENSE = ("Trained on Human3.6M (http://vision.imar.ro/human3.6m), whose license allows academic, "
                "non-commercial research use only; these weights are derived from it and carry the same terms.")

RECIPES: dict[str, dict] = {
    "h36m-det": {
        "summary": "Detection-ready Human3.6M lifter (H36M-17): for real 2D detector output — COCO, Halpe, OpenPose "
                   "or MPII keypoints through `diffupose lift`.",
        "data": "Human3.6M S1, S5, S6, S7 (train); S8 held out (val); every frame, 4 cameras",
        "keypoints_2d": "Stacked Hourglass detections (MPII-16, not fine-tuned on Human3.6M) mapped to H36M-17 by the "
                        "lift keypoint mapping, mixed per sample with the projected ground truth plus resampled measured "
                        "detector error (train.input_2d=mix); 40 % of the rows get the clean projected ground truth "
                        "instead (train.mix_clean=0.4) and the network is told each row's source, clean or detected "
                        "(model.source_condition; `lift` and evaluation on detections use detected)",
        "prepare": {"dataset": "h36m", "keypoints": "sh", "val_subjects": ["S8"], "stride": 1},
        "data_dir": "../shared/data/h36m",
        "preset": "h36m_sh_cpu",
        # every detector layout's lift mapping in training (COCO-17, Halpe-26, BODY_25, MPII-16 and
        # the true H36M-17 joints); 6,000 steps with no time cap, so the cosine schedule completes
        # on a slow CPU too
        "overrides": {"train.input_2d": "mix", "train.mix_detected": 0.5, "train.mix_clean": 0.4,
                      "model.source_condition": True,
                      "train.input_layouts": "h36m17,coco17,halpe26,body25,mpii16",
                      "train.max_steps": 6000, "train.max_minutes": 0.0},
        "seed": 0,
        "intended_use": "Lifting 2D keypoints of one person from a real detector to 3D hypotheses (research, "
                        "prototyping). Not for the Human3.6M test subjects' official numbers (trained without them, "
                        "validated on S8). Root-relative poses; a focal length places the root.",
        "license": H36M_LICENSE,
    },
    "h36m-gt": {
        "summary": "Human3.6M lifter for ground-truth (or very clean) 2D in the H36M-17 layout: the h36m_cpu preset.",
        "data": "Human3.6M S1, S5, S6, S7 (train); S8 held out (val); every frame, 4 cameras",
        "keypoints_2d": "ground truth: the 3D poses projected with the Human3.6M cameras",
        "prepare": {"dataset": "h36m", "keypoints": "gt", "val_subjects": ["S8"], "stride": 1},
        "data_dir": "../shared/data/h36m",
        "preset": "h36m_cpu",
        # the h36m-det budget (6,000 steps, no time cap) so the two models compare at equal training
        "overrides": {"train.max_steps": 6000, "train.max_minutes": 0.0},
        "seed": 0,
        "intended_use": "Research on clean 2D: lifting ground-truth or motion-capture 2D keypoints (H36M-17) to 3D "
                        "hypotheses. Detector output loses accuracy with this model; use h36m-det for it.",
        "license": H36M_LICENSE,
    },
    "humaneva": {
        "summary": "HumanEva-I lifter (15 joints, ground-truth 2D): the humaneva_cpu preset.",
        "data": "HumanEva-I Train/S1, S2, S3, Walking, Jog, Box; the last chunk of each subject x action held "
                "out (val); 3 cameras",
        "keypoints_2d": "ground truth (the dataset's 2D file, data_2d_humaneva15_gt.npz)",
        # the VideoPose3D files are pickled: the script refuses them without --allow-pickle
        "prepare": {"dataset": "humaneva", "keypoints": "gt", "val_subjects": None, "stride": 1, "allow_pickle": True},
        "data_dir": "../shared/data/humaneva",
        "preset": "humaneva_cpu",
        "overrides": {"train.max_steps": 6000, "train.max_minutes": 0.0},
        "seed": 0,
        "intended_use": "Research on HumanEva-I-style data (15-joint skeleton, ground-truth 2D). Not trained on the "
                        "Validate split, the protocol's test set.",
        "license": "Trained on HumanEva-I (http://humaneva.is.tue.mpg.de), whose license allows non-commercial "
                   "research use only; these weights are derived from it and carry the same terms.",
    },
}


def _variant(base: str, summary: str, overrides: dict) -> dict:
    """A recipe that is RECIPES[base] with another summary and some overrides added or changed."""
    return {**RECIPES[base], "summary": summary, "overrides": {**RECIPES[base]["overrides"], **overrides}}


# The flow-matching twin of h36m-det: the same data, preset, overrides, seed and budget, trained
# with diffusion.objective=flow and sampled with 3 midpoint evaluations (docs/samplers.md: on
# ground-truth 2D the midpoint-3 flow model matched DDIM-5 of the DDPM one) — 60 % of h36m-det's
# network passes per pose.
RECIPES["h36m-det-flow"] = _variant(
    "h36m-det",
    "Detection-ready Human3.6M lifter (H36M-17) trained with flow matching: the h36m-det recipe "
    "under diffusion.objective=flow, sampled with 3 midpoint evaluations by default (5 for "
    "h36m-det's DDIM) — for faster `diffupose lift` on detector output.",
    {"diffusion.objective": "flow", "eval.sampler": "midpoint", "eval.num_steps": 3})

# h36m-det-flow with the logit-normal time draw (diffusion.flow_time=logit_normal), sampled with 2
# Euler evaluations: on ground-truth 2D that draw put Euler-2 within 1 mm of DDIM-5 over three
# seeds (docs/samplers.md, "The logit-normal time draw"); same data, preset, seed and budget.
RECIPES["h36m-det-flow-ln"] = _variant(
    "h36m-det-flow",
    "Detection-ready Human3.6M lifter (H36M-17), flow matching with the logit-normal time draw, "
    "sampled with 2 Euler evaluations per chain: the h36m-det recipe at 40 % of h36m-det's network "
    "work and no less accurate on detections.",
    {"diffusion.flow_time": "logit_normal", "eval.sampler": "euler", "eval.num_steps": 2})


# One network evaluation per chain: h36m-det-flow distilled onto its own 3-evaluation midpoint map
# (train.reflow_from, training/reflow.py) at the one path time Euler-1 evaluates (reflow_times=1),
# 3,000 steps from the teacher's weights (docs/samplers.md, "Reflow"): for `lift` where speed
# matters more than about 3 mm on detections.
RECIPES["h36m-det-fast"] = _variant(
    "h36m-det-flow",
    "Detection-ready Human3.6M lifter (H36M-17) that samples in ONE network evaluation per chain: "
    "h36m-det-flow distilled onto its own 3-evaluation midpoint sampler (reflow, Euler-1) — "
    "the fastest `diffupose lift` on detector output, about 3 mm behind h36m-det-flow.",
    {"eval.sampler": "euler", "eval.num_steps": 1,
     "train.reflow_from": "h36m-det-flow", "train.init_from": "h36m-det-flow",
     "train.reflow_times": "1", "train.max_steps": 3000, "train.lr": 3e-4,
     "train.warmup_steps": 100, "train.val_steps": 1})


# h36m-det trained for a CPU hour: the same data, preset, overrides and seed at 40,000 steps
# (44 min on 2 cores with native bf16, train.amp=auto; about 1.5-3 hours in fp32) — the most
# accurate detection-ready model, at h36m-det's sampling cost (DDIM-5).
RECIPES["h36m-det-long"] = _variant(
    "h36m-det",
    "Detection-ready Human3.6M lifter (H36M-17): the h36m-det recipe trained about 7x longer "
    "(40,000 steps, a CPU hour on 2 cores with bf16) — the most accurate choice for detector "
    "output, at h36m-det's sampling cost (DDIM-5).",
    {"train.max_steps": 40000, "train.val_every": 5000, "train.checkpoint_every": 5000})


def recipe_for(name: str, from_table: bool = False) -> dict:
    """The recipe of a shipped model's card (its overrides as written there), else the table above;
    `from_table`: the table even for a shipped model (to retrain it under a changed recipe)."""
    recipe = dict(RECIPES.get(name, {}))
    if from_table and not recipe:
        raise SystemExit(f"no recipe {name!r} in the table; known: {sorted(RECIPES)}")
    if name in zoo.available() and not from_table:
        card = zoo.card(name)
        recipe.update({k: card[k] for k in ("summary", "data", "keypoints_2d", "prepare", "data_dir", "preset", "seed",
                                            "intended_use", "license") if k in card})
        if "overrides" in card:
            recipe["overrides"] = dict(parse_override(o) for o in card["overrides"])
    if not recipe:
        raise SystemExit(f"unknown zoo recipe {name!r}; known: {sorted(set(RECIPES) | set(zoo.available()))}")
    return recipe


def val_results(run_dir: Path, data: Path, name: str, max_samples: int, detections: bool,
                sampler: str = "ddim", num_steps: int = 5) -> list[dict]:
    rows = []
    sampler_flags = f"--sampler {sampler} --steps {num_steps}" if sampler != "ddim" else f"--steps {num_steps}"
    inputs = ("file", "gt") if detections else ("file",)
    for input_2d in inputs:
        for n in (1, 10):
            if input_2d == "gt" and n == 1:
                continue
            ev = EvalConfig(num_hypotheses=n, sampler=sampler, num_steps=num_steps, flip=True, aggregate="mean", checkpoint="ema",
                            max_samples=max_samples, seed=0, input_2d=input_2d)
            t0 = time.perf_counter()
            result = evaluate(run_dir, data, split="val", eval_cfg=ev, progress=False, keep_per_sample=False)
            label = "detections" if (input_2d == "file" and detections) else "GT"
            rows.append({
                "input_2d": label if input_2d == "file" else "GT (projected, beside the detections)",
                "num_hypotheses": n, "split": "val", "max_samples": max_samples, "seed": 0,
                "mpjpe": result.per_action["MPJPE"][AVERAGE], "p_mpjpe": result.per_action["P-MPJPE"][AVERAGE],
                "poses_per_second": result.poses_per_second, "seconds": round(time.perf_counter() - t0, 1),
                "command": (f"diffupose evaluate --model {name} --data {data.name} --split val --hypotheses {n} "
                            f"{sampler_flags} --flip --aggregate mean --max-samples {max_samples} --seed 0 "
                            f"--input-2d {input_2d}")})
            log.info("%s N=%d on %s: MPJPE %.1f mm, P-MPJPE %.1f mm", name, n, rows[-1]["input_2d"],
                     rows[-1]["mpjpe"], rows[-1]["p_mpjpe"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=f"zoo model name; recipes: {', '.join(RECIPES)}")
    p.add_argument("--work", default="runs/zoo", help="folder for the prepared data and the run")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: the recipe's)")
    p.add_argument("--max-samples", type=int, default=10000, help="seeded val subset for the card's numbers")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    p.add_argument("--export", action="store_true", help="write the model into diffupose/zoo_models/")
    p.add_argument("--overwrite", action="store_true", help="replace a shipped model of the same name")
    p.add_argument("--from-table", action="store_true",
                   help="train from the recipe table in this file, not the shipped model's card (a changed recipe)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="let the recipe read pickled dataset files (HumanEva-I); unpickling can run code")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    recipe = recipe_for(args.model, from_table=args.from_table)
    if recipe["prepare"].get("allow_pickle") and not args.allow_pickle:
        raise SystemExit(f"{args.model}: its dataset files are pickled; pass --allow-pickle to read them")
    work = Path(args.work) / args.model
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.npz"
    prep = recipe["prepare"]
    data_dir = args.data_dir or recipe.get("data_dir")
    if not data.is_file():
        prepare_dataset(prep["dataset"], data_dir=data_dir, out=data, keypoints=prep["keypoints"],
                        val_subjects=prep.get("val_subjects"), stride=prep.get("stride", 1),
                        allow_pickle=bool(prep.get("allow_pickle")))
    overrides = {**recipe.get("overrides", {}), "train.seed": recipe["seed"], "data.path": str(data.resolve())}
    cfg = apply_overrides(preset(recipe["preset"], overrides), args.set)
    run_dir = work / "run"
    t0 = time.perf_counter()
    result = train(cfg, run_dir)
    history = read_history(run_dir)
    minutes = (history[-1].get("time_s", 0.0) if history else 0.0) / 60
    rows = val_results(run_dir, data, args.model, args.max_samples, detections=prep["keypoints"] != "gt",
                       sampler=cfg.eval.sampler, num_steps=cfg.eval.num_steps)
    env = environment_info()
    # the machine and code the run was trained on (recorded when training started), not this call's
    trained = {**env, **json.loads((run_dir / "environment.json").read_text())}
    fields = {k: recipe[k] for k in ("summary", "data", "keypoints_2d", "prepare", "preset", "intended_use", "license")}
    fields.update({
        "overrides": [f"{k}={v}" for k, v in recipe.get("overrides", {}).items()] + list(args.set),
        "seed": recipe["seed"], "data_dir": data_dir,
        "training": {"steps": result.steps, "max_steps": cfg.train.max_steps, "minutes": round(minutes, 1),
                     "stopped_by_time_cap": result.steps < cfg.train.max_steps,
                     "hardware": f"{platform.processor() or platform.machine()}, {trained.get('num_threads')} threads, "
                                 f"{'CUDA ' + str(trained.get('cuda')) if trained.get('cuda') else 'CPU'}",
                     "torch": trained.get("versions", {}).get("torch"),
                     "wall_minutes_this_call": round((time.perf_counter() - t0) / 60, 1)},
        "commit": trained.get("git_commit"),
        "val_results": rows,
        "reproduce": (f"python benchmarks/zoo.py --model {args.model} --work runs/zoo --data-dir {data_dir}"
                      + (" --allow-pickle" if prep.get("allow_pickle") else "")),
        "prepare_command": " ".join(
            [f"diffupose prepare --dataset {prep['dataset']} --data-dir {data_dir} --keypoints {prep['keypoints']}"]
            + ([f"--val-subjects {' '.join(prep['val_subjects'])}"] if prep.get("val_subjects") else [])
            + (["--allow-pickle"] if prep.get("allow_pickle") else []) + [f"--out {data.name}"]),
    })
    if cfg.train.reflow_from and zoo.is_zoo_name(cfg.train.reflow_from):
        # a reflow student depends on its teacher's weights: name the exact ones
        fields["teacher"] = {"name": cfg.train.reflow_from,
                             "weights_sha256": zoo.card(cfg.train.reflow_from).get("weights_sha256")}
    print(json.dumps({k: v for k, v in fields.items() if k != "license"}, indent=2))
    if args.export:
        folder = zoo.export_model(run_dir, args.model, fields, overwrite=args.overwrite)
        log.info("exported %s", folder)


if __name__ == "__main__":
    main()
