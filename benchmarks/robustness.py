"""Robustness matrix: MPJPE under missing 2D joints x 2D Gaussian pixel noise, per model.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/robustness.py \
        --data /work/data/h36m_gt.npz --model plain=/work/models/h36m_plain \
        --model masked=/work/models/h36m_masked --num-samples 300 --checkpoint ema --json robustness.json
    # or one process per model (2 cores), then one set of tables:
    python benchmarks/robustness.py --tables-from robustness_plain.json robustness_masked.json

On a seeded subset of the val split (H36M: S8, held out of training), for every noise level
σ (pixels, added before normalisation: `diffupose.masking.add_pixel_noise`) and every mask
(k = 0/1/2/4 joints missing, `random` joints or distal `limb` segments:
`diffupose.masking.evaluation_mask`; never the root), each model lifts the same inputs through
`diffupose.inference.Lifter` with the same sampling seed:

- a model trained with `model.missing_joints=true` gets the mask (its missing-joint input);
- a model without it gets the missing joints filled, and no mask: `--fill neighbour` (default)
  with the mean of their present skeleton neighbours (`diffupose.masking.fill_missing_joints`),
  `--fill template` with the mean pose fitted to the present joints (`diffupose.data.keypoints.fill_missing`,
  what `diffupose lift` does for a single frame).

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
import time

import numpy as np
import torch

from diffupose.camera import load_cameras
from diffupose.data.prepared import load_prepared
from diffupose.errors import ConfigError
from diffupose.inference import Lifter, SamplingSettings
from diffupose.masking import MASK_MODES, add_pixel_noise, evaluation_mask, fill_missing_joints
from diffupose.metrics import hypothesis_errors, hypothesis_spread, per_joint_errors
from diffupose.utils import atomic_write_text, environment_info

log = logging.getLogger("robustness")


def image_sizes(data, image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(N,) image width and height of every sample: --image-size, else the dataset's cameras."""
    n = len(data)
    if image_size is not None:
        return np.full(n, image_size[0]), np.full(n, image_size[1])
    try:
        cams = {c.id: (c.res_w, c.res_h) for c in load_cameras(data.dataset).intrinsics}
        sizes = np.array([cams[str(c)] for c in data.camera])
    except (ValueError, KeyError) as e:
        raise ConfigError(f"no image size for the cameras of dataset {data.dataset!r} ({e}); "
                          "pass --image-size W H") from None
    return sizes[:, 0], sizes[:, 1]


def cell_metrics(hyps: np.ndarray, aggregate: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """hyps (N, H, J, 3), aggregate (N, J, 3), gt (N, J, 3) metres; mask (N, J) True = present.
    Returns millimetres."""
    errors = hypothesis_errors(hyps, gt)                              # (N, H)
    joint_err = per_joint_errors(aggregate, gt)                       # (N, J)
    spread = hypothesis_spread(hyps)                                  # (N, J)
    present = mask.copy()
    present[:, 0] = False                                             # the root is always present
    missing = ~mask

    def masked_mean(values, where):
        return 1000.0 * float(values[where].mean()) if where.any() else None

    return {
        "mpjpe_n1": 1000.0 * float(errors[:, 0].mean()),
        "mpjpe_aggregate": 1000.0 * float(joint_err.mean()),
        "oracle_best_of_h": 1000.0 * float(errors.min(axis=1).mean()),
        "mpjpe_missing_joints": masked_mean(joint_err, missing),
        "mpjpe_present_joints": masked_mean(joint_err, present),
        "spread_missing_joints": masked_mean(spread, missing),
        "spread_present_joints": masked_mean(spread, present),
        "spread_all_joints": 1000.0 * float(spread.mean()),
    }


def robustness_matrix(lifters: dict[str, Lifter], keypoints_2d: np.ndarray, poses_3d: np.ndarray,
                      res_w: np.ndarray, res_h: np.ndarray, settings: SamplingSettings, *,
                      missing=(0, 1, 2, 4), modes=MASK_MODES, noise_px=(0, 2, 5, 10, 20), seed: int = 0,
                      fill: str = "neighbour", progress: bool = True) -> list[dict]:
    """Every (noise, mask, model) cell; the same noisy inputs and masks for every model.
    `fill` (neighbour | template): how missing joints are filled for a model without mask input."""
    if fill == "neighbour":
        def filler(xy, mask, skeleton):
            return fill_missing_joints(xy, mask, skeleton)
    elif fill == "template":
        from diffupose.data.keypoints import fill_missing

        def filler(xy, mask, skeleton):
            return fill_missing(xy, mask, skeleton).astype(np.float32)
    else:
        raise ConfigError(f"unknown fill {fill!r}; use neighbour or template")
    skeleton = next(iter(lifters.values())).skeleton
    masks = [("none", 0)] if 0 in missing else []
    masks += [(mode, k) for mode in modes for k in missing if k > 0]
    rows = []
    for si, sigma in enumerate(noise_px):
        noisy = add_pixel_noise(keypoints_2d, sigma, res_w, res_h, seed=seed + 1000 * (si + 1))
        for mode, k in masks:
            mask = (np.ones(keypoints_2d.shape[:2], dtype=bool) if k == 0
                    else evaluation_mask(len(noisy), skeleton, k, mode, seed=seed + 100 * k + MASK_MODES.index(mode)))
            for name, lifter in lifters.items():
                supports = bool(getattr(lifter.config.model, "missing_joints", False))
                tic = time.perf_counter()
                if supports:
                    out = lifter.lift(noisy, settings, keypoint_mask=mask, progress=False)
                else:
                    filled = noisy if k == 0 else filler(noisy, mask, skeleton)
                    out = lifter.lift(filled, settings, progress=False)
                if not np.isfinite(out.hypotheses).all():
                    raise FloatingPointError(f"{name}: non-finite hypotheses at σ={sigma} px, {k} {mode} missing")
                row = {"model": name, "input": "mask" if supports else f"{fill}-fill", "mask": mode,
                       "missing": k, "noise_px": sigma, "num_samples": len(noisy),
                       **cell_metrics(out.hypotheses, out.aggregate, poses_3d, mask),
                       "seconds": time.perf_counter() - tic}
                rows.append(row)
                if progress:
                    log.info("σ=%g px %s k=%d %s: N=1 %.1f  N=%d %.1f  ORACLE %.1f  spread missing %s / present %s mm "
                             "(%.0f s)", sigma, mode, k, name, row["mpjpe_n1"], settings.num_hypotheses,
                             row["mpjpe_aggregate"], row["oracle_best_of_h"], _fmt(row["spread_missing_joints"]),
                             _fmt(row["spread_present_joints"]), row["seconds"])
    return rows


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def markdown_tables(rows: list[dict], settings: SamplingSettings) -> str:
    """One table per metric: rows (model, mask, k), columns σ."""
    sigmas = sorted({r["noise_px"] for r in rows})
    keys = []
    for r in rows:
        key = (r["model"], r["mask"], r["missing"])
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda k: (k[0], k[1] != "none", k[1], k[2]))
    cell = {(r["model"], r["mask"], r["missing"], r["noise_px"]): r for r in rows}
    H = settings.num_hypotheses
    metrics = [("mpjpe_n1", "MPJPE (mm), N=1"),
               ("mpjpe_aggregate", f"MPJPE (mm), N={H}, {settings.aggregate} aggregate"),
               ("oracle_best_of_h", f"ORACLE best-of-{H} MPJPE (mm) — picks with the 3D ground truth"),
               ("mpjpe_missing_joints", f"error at the missing joints only (mm), N={H} {settings.aggregate}"),
               ("spread_missing_joints", "hypothesis spread at the missing joints (mm)"),
               ("spread_present_joints", "hypothesis spread at the present non-root joints (mm)")]
    out = []
    for metric, title in metrics:
        out.append(f"\n**{title}**\n")
        out.append("| model | missing | " + " | ".join(f"σ={s:g} px" for s in sigmas) + " |")
        out.append("|---|---|" + "---:|" * len(sigmas))
        for model, mode, k in keys:
            if metric.endswith("missing_joints") and k == 0:
                continue
            label = "none" if k == 0 else f"{k} {mode}"
            vals = [_fmt(cell.get((model, mode, k, s), {}).get(metric)) for s in sigmas]
            out.append(f"| {model} | {label} | " + " | ".join(vals) + " |")
    return "\n".join(out)


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
    p.add_argument("--fill", default="neighbour", choices=("neighbour", "template"),
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
    lifters = {name: Lifter.load(path, checkpoint=args.checkpoint, device=args.device) for name, path in args.model}
    skeletons = {lifter.skeleton.name for lifter in lifters.values()}
    data = load_prepared(args.data).select(split=args.split, max_samples=args.num_samples, seed=args.seed)
    if len(data) == 0:
        raise ConfigError(f"{args.data}: split {args.split!r} is empty")
    if skeletons != {data.skeleton.name}:
        raise ConfigError(f"models use skeleton(s) {sorted(skeletons)} but {args.data} is {data.skeleton.name}")
    res_w, res_h = image_sizes(data, args.image_size)
    log.info("%d %s samples of %s; models: %s", len(data), args.split, args.data,
             ", ".join(f"{n} (missing_joints={lifters[n].config.model.missing_joints})" for n in lifters))
    rows = robustness_matrix(lifters, data.keypoints_2d, data.poses_3d, res_w, res_h, settings,
                             missing=tuple(args.missing), modes=tuple(args.modes), noise_px=tuple(args.noise_px),
                             seed=args.seed, fill=args.fill)
    print(markdown_tables(rows, settings))
    if args.json:
        report = {"command": "benchmarks/robustness.py", "args": vars(args) | {"model": dict(args.model)},
                  "settings": settings.__dict__, "data": args.data, "split": args.split,
                  "num_samples": len(data), "checkpoints": {n: lf.checkpoint_card for n, lf in lifters.items()},
                  "rows": rows, "environment": environment_info()}
        atomic_write_text(args.json, json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
