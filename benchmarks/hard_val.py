"""A harder validation view than S8's average: detection models side by side per action and
binned by the 2D error of their input (S8 is the cleanest subject: median 2D error 8.4 px against
9.8 px over S1-S7), with the worst 10 % of detections on their own row.

    OMP_NUM_THREADS=2 python benchmarks/hard_val.py --models h36m-det h36m-det-video --data h36m_sh.npz
    OMP_NUM_THREADS=2 python benchmarks/hard_val.py --models h36m-det runs/w81 --json hard_val.json

Each model: N = 10 with its own sampler, flip, mean, ground-truth free, final EMA weights, on a
seeded 10,000-sample subset of the validation split (`--max-samples`, `--seed`) of a file prepared
with detections (`diffupose prepare ... --keypoints sh --val-subjects S8`), once on the
detections and once on the projected ground truth kept beside them
(`diffupose.evaluation.detection_analysis.analyse_detections`, the Table I page's path). Never a
test split.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from diffupose.evaluation.detection_analysis import analyse_detections
from diffupose.evaluation.metrics import AVERAGE
from diffupose.inference import Lifter, SamplingSettings
from diffupose.inference.zoo import model_path
from diffupose.utils import atomic_write_text, environment_info


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = (lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="zoo names or run folders")
    p.add_argument("--data", required=True, help="prepared file with detections (keypoints_2d_gt beside them)")
    p.add_argument("--split", default="val", choices=["train", "val"], help="never test: this view chooses models")
    p.add_argument("--hypotheses", type=int, default=10)
    p.add_argument("--max-samples", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not data.is_file():
        raise SystemExit(f"{data}: no such prepared file")
    results = {}
    for name in args.models:
        t0 = time.perf_counter()
        lifter = Lifter.load(model_path(name), checkpoint="ema")
        ev = lifter.config.eval
        settings = SamplingSettings(num_hypotheses=args.hypotheses, sampler=ev.sampler, num_steps=ev.num_steps,
                                    flip=True, aggregate="mean", seed=args.seed)
        out = analyse_detections(model_path(name), data, args.split, settings, hypothesis_counts=(args.hypotheses,),
                                 max_samples=args.max_samples)
        res = out["results"][args.hypotheses]
        results[name] = {"frames": lifter.config.model.window, "summary": out["summary"], "bins": out["bins"],
                         "correlation": out["correlation"], "per_action": res.per_action["MPJPE"],
                         "per_action_gt_2d": out["gt_input"].per_action["MPJPE"]}
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    n = args.hypotheses
    names = list(results)
    head = ["", *[f"{m} (T={results[m]['frames']})" for m in names]]
    first = results[names[0]]["summary"]
    print(f"{data.name}, split {args.split}, {first['num_samples']:,} samples (seed {args.seed}), N = {n}, flip, mean, "
          f"GT-free; MPJPE in mm; 2D error: mean over joints, px (median joint {first['median_2d_error_px']:.1f} px)\n")
    rows = [["detections", *[f"{results[m]['summary'][f'mpjpe_detections_n{n}']:.1f}" for m in names]],
            ["ground-truth 2D", *[f"{results[m]['summary'][f'mpjpe_gt_input_n{n}']:.1f}" for m in names]],
            [f"worst 10 % of detections (2D ≥ {first['worst_decile_2d_error_px']:.1f} px)",
             *[f"{results[m]['summary'][f'mpjpe_detections_n{n}_worst_decile']:.1f}" for m in names]]]
    print(_table(head, rows) + "\n")
    actions = [a for a in results[names[0]]["per_action"] if a != AVERAGE] + [AVERAGE]
    print("Per action, on detections")
    print(_table(head, [[a, *[f"{results[m]['per_action'][a]:.1f}" for m in names]] for a in actions]) + "\n")
    print("By the sample's 2D error, on detections (share of samples; MPJPE; spread)")
    bins = results[names[0]]["bins"]
    print(_table(["2D error", "share", *head[1:]],
                 [[b["2D error"], f"{100 * b['share']:.1f} %",
                   *["-" if results[m]["bins"][i]["3D MPJPE (mm)"] is None else
                     f"{results[m]['bins'][i]['3D MPJPE (mm)']:.1f} ({results[m]['bins'][i]['spread (mm)']:.1f})"
                     for m in names]] for i, b in enumerate(bins)]))
    if args.json:
        record = {"command": " ".join(["python", "benchmarks/hard_val.py", *(argv or sys.argv[1:])]),
                  "environment": environment_info(), "hypotheses": n, "max_samples": args.max_samples,
                  "seed": args.seed, "split": args.split, "models": results}
        atomic_write_text(Path(args.json), json.dumps(record, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
