"""Robustness matrix: MPJPE under missing 2D joints x 2D Gaussian pixel noise, per model.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/robustness.py \
        --data /work/data/h36m_gt.npz --model plain=/work/models/h36m_plain \
        --model masked=/work/models/h36m_masked --num-samples 300 --checkpoint ema --json robustness.json
    # or one process per model (2 cores), then one set of tables:
    python benchmarks/robustness.py --tables-from robustness_plain.json robustness_masked.json

On a seeded subset of the val split (H36M: S8, held out of training), for every noise level
σ (pixels, added before normalisation: `diffupose.model.masking.add_pixel_noise`) and every mask
(k = 0/1/2/4 joints missing, `random` joints or distal `limb` segments:
`diffupose.model.masking.evaluation_mask`; never the root), each model lifts the same inputs through
`diffupose.inference.lifter.Lifter` with the same sampling seed:

- a model trained with `model.missing_joints=true` gets the mask (its missing-joint input);
- a model without it gets the missing joints filled (`diffupose.model.masking.fill_missing`), and no
  mask: `--fill neighbour` (default) with the mean of their present skeleton neighbours,
  `--fill template` with the mean pose fitted to the present joints (what `diffupose lift` does
  for a single frame).

Reported per cell (mm): N=1 (the first hypothesis), N=10 (the `--aggregate` of all H, default
mean), ORACLE best-of-H (picks with the 3D ground truth: a bound, not an estimate), the error
of the aggregate at the missing joints only, and the hypothesis spread (mean distance of the
hypotheses to their mean) at the missing joints and at the present non-root joints. Prints
markdown tables; `--json` writes every cell (atomically).
"""
from __future__ import annotations

import argparse
import json
import logging

import torch

from diffupose.inference import SamplingSettings
from diffupose.model.masking import FILL_METHODS, MASK_MODES
from diffupose.evaluation.robustness import markdown_tables, run_robustness
from diffupose.utils import atomic_write_text, environment_info

log = logging.getLogger("robustness")


def _model_arg(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model expects NAME=RUN_DIR, got {text!r}")
    name, path = text.split("=", 1)
    return name.strip(), path.strip()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="prepared .npz")
    p.add_argument("--model", action="append", type=_model_arg, metavar="NAME=RUN_DIR",
                   help="a model to test (repeatable)")
    p.add_argument("--tables-from", nargs="+", metavar="JSON", default=None,
                   help="only print the tables of earlier --json outputs (e.g. one per model, run in parallel)")
    p.add_argument("--split", default="val")
    p.add_argument("--num-samples", type=int, default=1000, help="seeded subset of the split (0 = all)")
    p.add_argument("--missing", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument("--modes", nargs="+", default=list(MASK_MODES), choices=MASK_MODES)
    p.add_argument("--noise-px", type=float, nargs="+", default=[0, 2, 5, 10, 20])
    p.add_argument("--checkpoint", default="ema", help="best | ema | model (default ema: 'best' was chosen on val)")
    p.add_argument("--num-hypotheses", type=int, default=10)
    p.add_argument("--num-steps", type=int, default=5)
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--aggregate", default="mean")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="image size for the pixel noise (default: from the dataset's cameras)")
    p.add_argument("--fill", default="neighbour", choices=FILL_METHODS,
                   help="how a model without missing-joint input gets its missing joints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    p.add_argument("--json", default=None, help="write every cell here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tables_from:
        reports = [json.loads(open(f).read()) for f in args.tables_from]
        print(markdown_tables([r for rep in reports for r in rep["rows"]], SamplingSettings(**reports[0]["settings"])))
        return
    if not args.data or not args.model:
        p.error("--data and --model are required (or --tables-from)")

    settings = SamplingSettings(num_hypotheses=args.num_hypotheses, sampler=args.sampler, num_steps=args.num_steps,
                                flip=not args.no_flip, aggregate=args.aggregate, batch_size=args.batch_size,
                                seed=args.seed)
    rows, card = run_robustness(dict(args.model), args.data, args.split, settings, checkpoint=args.checkpoint,
                                max_samples=args.num_samples, missing=args.missing, modes=args.modes,
                                noise_px=args.noise_px, fill=args.fill, image_size=args.image_size, seed=args.seed,
                                device=args.device)
    print(markdown_tables(rows, settings))
    if args.json:
        report = {"command": "benchmarks/robustness.py", "args": vars(args) | {"model": dict(args.model)},
                  "settings": settings.__dict__, "data": args.data, "split": args.split,
                  "num_samples": card["num_samples"], "checkpoints": card["checkpoints"],
                  "rows": rows, "environment": environment_info()}
        atomic_write_text(args.json, json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
