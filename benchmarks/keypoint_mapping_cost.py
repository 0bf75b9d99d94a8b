"""What the keypoint-layout mapping costs: lift H36M val poses whose 2D went through each
layout, against lifting the true H36M-17 2D.

    OMP_NUM_THREADS=1 python benchmarks/keypoint_mapping_cost.py --run /work/models/h36m_plain \\
        --data /work/data/h36m_gt.npz --split val --max-samples 2000

For every sample of the split (a seeded subset of --max-samples), the ground-truth H36M-17 2D
(normalised screen units) is converted to each layout keeping only the joints that layout
really has (`keypoints.from_h36m17`), then mapped back (`keypoints.to_h36m17`: copy, then
derive the rest with the one derived-joint table), and lifted with the same Lifter, seed and
settings (N hypotheses, DDIM, flip, mean aggregate). The table gives, per layout: the joints it
derives, the mean 2D error of the derived joints (pixels of a 1000-pixel-wide image), the MPJPE
of the aggregate to the 3D ground truth, its increase over the true-2D row, and the mean
distance between the two aggregates. No noise, no missing joints: this isolates the mapping.
Note that copying a layout's joint into the H36M joint of the same name assumes they mean the
same point; real detectors' hips, for example, sit elsewhere than mocap hip centres, which
this benchmark does not measure.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from diffupose.data import keypoints as K
from diffupose.data.prepared import load_prepared
from diffupose.inference import Lifter, SamplingSettings
from diffupose.metrics import mpjpe
from diffupose.skeleton import H36M17

log = logging.getLogger("keypoint_mapping_cost")
LAYOUTS = ("coco17", "halpe26", "body25", "mpii16")   # coco_wholebody maps exactly as coco17


def mapped_2d(keypoints_2d: np.ndarray, fmt: str) -> tuple[np.ndarray, list[str]]:
    """(N, 17, 2) true H36M-17 2D -> the same after a round trip through layout `fmt`, and the
    names of the joints that were derived."""
    layout = K.from_h36m17(keypoints_2d, fmt)
    present = np.isfinite(layout).all(axis=-1)
    xy, ok = K.to_h36m17(layout, present, fmt)
    assert ok.all(), f"{fmt}: joints left missing"
    derived = [n for n in H36M17.joint_names if n not in K.LAYOUT_TO_H36M[fmt]]
    return xy.astype(np.float32), derived


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True, help="prepared H36M .npz (ground-truth 2D)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-samples", type=int, default=2000)
    ap.add_argument("--hypotheses", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    data = load_prepared(args.data).select(split=args.split, max_samples=args.max_samples, seed=args.seed)
    lifter = Lifter.load(args.run, device="cpu")
    settings = SamplingSettings(num_hypotheses=args.hypotheses, sampler="ddim", num_steps=args.steps, eta=0.0,
                                flip=True, aggregate="mean", batch_size=2048, seed=args.seed)
    gt = data.poses_3d.astype(np.float64)
    start = time.perf_counter()
    reference = lifter.lift(data.keypoints_2d, settings).aggregate
    rows = [{"layout": "h36m17 (true 2D)", "derived": "-", "derived_2d_px": 0.0,
             "mpjpe_mm": float(mpjpe(reference, gt).mean() * 1000), "delta_mm": 0.0, "vs_reference_mm": 0.0}]
    for fmt in LAYOUTS:
        xy, derived = mapped_2d(data.keypoints_2d, fmt)
        index = [H36M17.joint_names.index(n) for n in derived]
        err_px = (float(np.linalg.norm(xy[:, index] - data.keypoints_2d[:, index], axis=-1).mean() * 500)
                  if index else 0.0)   # normalised units -> pixels of a 1000-px-wide image
        pred = lifter.lift(xy, settings).aggregate
        value = float(mpjpe(pred, gt).mean() * 1000)
        rows.append({"layout": fmt, "derived": ", ".join(derived) or "-", "derived_2d_px": err_px,
                     "mpjpe_mm": value, "delta_mm": value - rows[0]["mpjpe_mm"],
                     "vs_reference_mm": float(mpjpe(pred, reference).mean() * 1000)})
        log.info("%s done", fmt)
    elapsed = time.perf_counter() - start
    print(f"\nmapping cost: {len(data)} {args.split} samples of {args.data}, run {args.run}, "
          f"N={args.hypotheses}, DDIM-{args.steps}, flip, mean aggregate, seed {args.seed} ({elapsed:.0f} s)\n")
    print("| layout | derived joints | 2D error of derived joints (px @ 1000 px) | MPJPE (mm) | Δ vs true 2D (mm) "
          "| distance to true-2D lift (mm) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {r['derived']} | {r['derived_2d_px']:.1f} | {r['mpjpe_mm']:.1f} | "
              f"{r['delta_mm']:+.1f} | {r['vs_reference_mm']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "args": vars(args), "num_samples": len(data)}, indent=2))


if __name__ == "__main__":
    main()
