"""Train, evaluate and export a zoo model from its recipe (the card of a shipped model, or the
package's recipe table, diffupose/resources/zoo_recipes.json, for a new one), then print its
validation table.

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
import statistics
import subprocess
import sys
import time
from pathlib import Path

from diffupose.config import EvalConfig, apply_overrides, preset
from diffupose.data import prepare_dataset
from diffupose.data.prepared import load_prepared
from diffupose.errors import ConfigError
from diffupose.evaluation.metrics import AVERAGE
from diffupose.evaluation.protocols import evaluate
from diffupose.inference import zoo
from diffupose.inference.recipes import RECIPES, recipe_for
from diffupose.training import read_history, train
from diffupose.utils import environment_info

log = logging.getLogger("zoo")


def val_results(run_dir: Path, data: Path, name: str, max_samples: int, detections: bool,
                sampler: str = "ddim", num_steps: int = 5, hypotheses: tuple[int, ...] = (1, 10)) -> list[dict]:
    rows = []
    sampler_flags = f"--sampler {sampler} --steps {num_steps}" if sampler != "ddim" else f"--steps {num_steps}"
    inputs = ("file", "gt") if detections else ("file",)
    for input_2d in inputs:
        for n in hypotheses:
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


PROTOCOL = ("{dataset} validation split (held-out training data, never a test split), {rows}, final EMA weights (no checkpoint selection), the model's own sampler ({sampler}), N hypotheses "
            "each averaged with its mirrored twin (flip), their mean; ground-truth free: no ground-truth root, "
            "scale or alignment enters the pose (P-MPJPE aligns by Procrustes after the fact), no re-centring")
TEST_NOTE_H36M = ("These are Human3.6M S8 validation numbers, not Human3.6M test numbers (S9, S11), which are "
                  "not shipped: with your own copy, `diffupose prepare --dataset h36m --data-dir YOUR_H36M "
                  "--keypoints {keypoints} --val-subjects S8 --out test.npz` puts S9 and S11 in the test split "
                  "({other}; your own detections: docs/data.md), then run the evaluate commands below with "
                  "--data test.npz --split test, without --max-samples to score every test row.")
TEST_NOTE_HUMANEVA = ("These are numbers on held-out Train chunks, not the HumanEva-I Validate split (the protocol's "
                      "test set), which is not shipped: with your own copy, `diffupose prepare --dataset humaneva "
                      "--data-dir YOUR_HUMANEVA --keypoints gt --allow-pickle --out test.npz` puts Validate in the "
                      "test split, then run the evaluate commands below with --data test.npz --split test, without "
                      "--max-samples to score every test row.")


def card_test_note(prepare: dict) -> str | None:
    """The card's sentence on test numbers: how to score the protocol's test split with the user's own copy,
    prepared with the model's own 2D source (`prepare`: the recipe's prepare arguments)."""
    if prepare["dataset"] == "h36m":
        gt = prepare["keypoints"] == "gt"
        return TEST_NOTE_H36M.format(keypoints=prepare["keypoints"],
                                     other="--keypoints sh for the Stacked Hourglass detections" if gt
                                     else "--keypoints gt for ground-truth 2D")
    if prepare["dataset"] == "humaneva":
        return TEST_NOTE_HUMANEVA
    return None


def protocol_rows(data: Path, max_samples: int) -> str:
    """The card's words for the rows scored: a seeded subset, or every row when the validation
    split is no larger than --max-samples (HumanEva-I's 2,088)."""
    rows = len(load_prepared(data).select("val"))
    if max_samples and rows > max_samples:
        return f"a seeded {max_samples:,}-sample subset"
    return f"all {rows:,} rows"


def spread(metric: str, values: list[float]) -> dict:
    """{metric: values, mean, sd (ddof = 1)} at full precision: the card prints one decimal, and a value
    rounded twice (50.846 -> 50.85 -> 50.9) would disagree with the same number in its validation table."""
    return {metric: [round(v, 6) for v in values], "mean": round(statistics.mean(values), 6),
            "sd": round(statistics.stdev(values), 6) if len(values) > 1 else None}


def seed_entry(name: str, shipped: dict, extra: dict[int, list[dict]], command: str) -> dict:
    """The card's `seeds` entry: per 2D input, MPJPE at N = 10 of the shipped seed's model (its
    card's val_results) and of each extra seed's run, their mean and sample sd (ddof = 1); the same
    for P-MPJPE (`p_mpjpe`, `p_mean`, `p_sd`) when every row has it."""
    seeds = [int(shipped["seed"])] + sorted(extra)
    per_input: dict[str, dict] = {}
    for row in shipped.get("val_results", []):
        if row["num_hypotheses"] != 10:
            continue
        aligned = [row]                                     # the shipped seed's row, then each extra seed's
        for s in sorted(extra):
            match = [r for r in extra[s] if r["input_2d"] == row["input_2d"]]
            if not match:
                raise SystemExit(f"{name}: seed {s} has no N = 10 row on {row['input_2d']}")
            aligned.append(match[0])
        per_input[row["input_2d"]] = spread("mpjpe", [float(r["mpjpe"]) for r in aligned])
        # P-MPJPE beside it (HumanEva-I's headline), when the shipped row and every seed's have it
        if all(r.get("p_mpjpe") is not None for r in aligned):
            p = spread("p_mpjpe", [float(r["p_mpjpe"]) for r in aligned])
            per_input[row["input_2d"]].update({"p_mpjpe": p["p_mpjpe"], "p_mean": p["mean"], "p_sd": p["sd"]})
    return {"seeds": seeds, "shipped_seed": int(shipped["seed"]), "num_hypotheses": 10,
            "note": "the same recipe and protocol with train.seed changed; sd is the sample sd (ddof = 1) over the seeds",
            "per_input": per_input, "command": command}


def write_lift_speed(name: str) -> None:
    """`diffupose lift` of a 1,000-frame COCO-17 track, N = 10, end to end on this CPU, best of 3,
    into the card (benchmarks/lift_speed.py --write-card: one way to time a card)."""
    cmd = [sys.executable, str(Path(__file__).with_name("lift_speed.py")), "--run", name, "--repeats", "3",
           "--write-card"]
    subprocess.run(cmd, check=True)


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
                   help="train from the recipe table (diffupose/resources/zoo_recipes.json), not the shipped model's card "
                        "(a changed recipe)")
    p.add_argument("--allow-dirty", action="store_true",
                   help="export from a working tree with uncommitted changes (the card then names a -dirty commit)")
    p.add_argument("--lift-speed", action="store_true",
                   help="after export, time `diffupose lift` of a 1,000-frame track (benchmarks/lift_speed.py) "
                        "into the card (lift_speed.py --write-card)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="let the recipe read pickled dataset files (HumanEva-I); unpickling can run code")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="seed spread of a shipped model instead of a run: train its recipe with each of these extra "
                        "seeds into WORK/<name>/run-seed<S> (resumes), evaluate each at N = 10 and print mean ± sd "
                        "with the shipped seed's card numbers")
    p.add_argument("--write-card", action="store_true",
                   help="with --seeds: store the spread as the shipped card's `seeds` entry")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        recipe = recipe_for(args.model, from_table=args.from_table)
    except ConfigError as e:
        raise SystemExit(str(e)) from None
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
    if args.seeds is not None:
        seed_spread(args, recipe, cfg, work, data, overrides)
        return
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
    fields.update({k: recipe[k] for k in ("input", "recommended_for") if k in recipe})
    window = cfg.model.window
    fields["frames"] = ("T = 1 (one frame of 2D per pose)" if window == 1 else
                        f"T = {window} frames: each pose is lifted from the {window}-frame 2D window around it, at "
                        f"{cfg.model.window_fps:g} fps ({(window - 1) / cfg.model.window_fps:.2f} s)")
    fields["protocol"] = PROTOCOL.format(dataset=prep["dataset"], rows=protocol_rows(data, args.max_samples),
                                         sampler=f"{cfg.eval.sampler}-{cfg.eval.num_steps}")
    if card_test_note(prep):
        fields["test_numbers"] = card_test_note(prep)
    fields.update({
        "overrides": [f"{k}={v}" for k, v in recipe.get("overrides", {}).items()] + list(args.set),
        "seed": recipe["seed"], "data_dir": data_dir,
        "training": {"steps": result.steps, "max_steps": cfg.train.max_steps, "minutes": round(minutes, 1),
                     "stopped_by_time_cap": result.steps < cfg.train.max_steps,
                     "hardware": (f"{trained.get('cpu') or platform.processor() or platform.machine()} "
                                  f"({trained.get('cpu_count')} cores{', native bf16' if trained.get('native_bf16') else ''}),"
                                  f" {trained.get('num_threads')} training thread(s), "
                                  f"{'CUDA ' + str(trained.get('cuda')) if trained.get('cuda') else 'CPU'}, "
                                  f"train.amp={cfg.train.amp}"),
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
        folder = zoo.export_model(run_dir, args.model, fields, overwrite=args.overwrite, allow_dirty=args.allow_dirty)
        log.info("exported %s", folder)
        if args.lift_speed:
            write_lift_speed(args.model)


def seed_spread(args: argparse.Namespace, recipe: dict, cfg, work: Path, data: Path, overrides: dict) -> None:
    """--seeds: the shipped model's recipe with other seeds, each evaluated as its card is (N = 10)."""
    if not zoo.is_zoo_name(args.model) or args.from_table:
        raise SystemExit(f"{args.model}: --seeds measures the spread of a shipped model's recipe (its card); "
                         "export the model first (and leave out --from-table)")
    shipped = zoo.card(args.model)
    if recipe["seed"] in args.seeds:
        raise SystemExit(f"{args.model}: seed {recipe['seed']} is the shipped model's own; name the other seeds")
    detections = recipe["prepare"]["keypoints"] != "gt"
    extra = {}
    for seed in args.seeds:
        seed_cfg = apply_overrides(preset(recipe["preset"], {**overrides, "train.seed": seed}), args.set)
        run_dir = work / f"run-seed{seed}"
        train(seed_cfg, run_dir)
        extra[seed] = val_results(run_dir, data, args.model, args.max_samples, detections=detections,
                                  sampler=cfg.eval.sampler, num_steps=cfg.eval.num_steps, hypotheses=(10,))
    command = (f"python benchmarks/zoo.py --model {args.model} --work runs/zoo --data-dir {args.data_dir or recipe.get('data_dir')} "
               f"--seeds {' '.join(map(str, args.seeds))}" + (" --allow-pickle" if recipe["prepare"].get("allow_pickle") else ""))
    entry = seed_entry(args.model, shipped, extra, command)
    for input_2d, v in entry["per_input"].items():
        print(f"{args.model} N = 10 on {input_2d}: seeds {entry['seeds']}: " + " / ".join(f"{x:.1f}" for x in v["mpjpe"])
              + f" mm; mean {v['mean']:.1f} ± {v['sd']:.1f} mm (sd, ddof = 1)")
    if args.write_card:
        path, _ = zoo.set_card_entry(args.model, "seeds", entry)
        log.info("wrote the seed spread into %s", path)


if __name__ == "__main__":
    main()
