"""What the keypoint-layout mapping costs: lift H36M val poses whose 2D went through each
layout, against lifting the true H36M-17 2D.

    OMP_NUM_THREADS=1 python benchmarks/keypoint_mapping_cost.py --run /work/models/h36m_plain \\
        --data /work/data/h36m_gt.npz --split val --max-samples 2000
    OMP_NUM_THREADS=2 python benchmarks/keypoint_mapping_cost.py --run h36m-det-run --data h36m_sh.npz \\
        --max-samples 10000 --input detector-noise --per-joint --threads 2

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
from diffupose.data.detector_noise import DetectorNoise
from diffupose.data.prepared import load_prepared
from diffupose.inference import Lifter, SamplingSettings
from diffupose.evaluation.metrics import mpjpe, per_joint_errors
from diffupose.geometry.skeleton import H36M17

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


def input_2d(data, train, mode: str, seed: int) -> np.ndarray:
    """The true-H36M-17 2D every layout starts from: `gt` (the file's 2D, or the projected
    ground truth kept beside detections), or `detector-noise` (that GT plus the measured detector
    error of the training split's detections, `DetectorNoise`, seeded)."""
    gt = data.keypoints_2d_gt if data.keypoints_2d_gt is not None else data.keypoints_2d
    if mode == "gt":
        return np.asarray(gt, dtype=np.float32)
    if train.keypoints_2d_gt is None:
        raise SystemExit("--input detector-noise needs a file prepared from detections (e.g. --keypoints sh)")
    noise = DetectorNoise.measure(train.keypoints_2d, train.keypoints_2d_gt, H36M17, mirrored=True, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return noise.apply(torch.from_numpy(np.asarray(gt, dtype=np.float32)), g).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True, help="prepared H36M .npz (ground-truth 2D, or detections with the GT beside)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-samples", type=int, default=2000)
    ap.add_argument("--hypotheses", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint", default="ema", choices=("ema", "model", "best"),
                    help="weights (default ema: `best` was chosen on val)")
    ap.add_argument("--input", default="gt", choices=("gt", "detector-noise"),
                    help="the H36M-17 2D written into each layout: ground truth, or GT + measured detector error")
    ap.add_argument("--input-source", default="auto", choices=("auto", "clean", "detected"),
                    help="the 2D source a source-conditioned model is told (auto: clean for --input gt, "
                         "detected for --input detector-noise, as `evaluate` does); ignored by other models")
    ap.add_argument("--per-joint", action="store_true", help="also print MPJPE per joint and layout")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    full = load_prepared(args.data)
    data = full.select(split=args.split, max_samples=args.max_samples, seed=args.seed)
    true_2d = input_2d(data, full.select(split="train"), args.input, args.seed)
    del full
    lifter = Lifter.load(args.run, checkpoint=args.checkpoint, device="cpu")
    source = "-"
    if lifter.config.model.source_condition:
        source = (args.input_source if args.input_source != "auto"
                  else "clean" if args.input == "gt" else "detected")
    settings = SamplingSettings(num_hypotheses=args.hypotheses, sampler="ddim", num_steps=args.steps, eta=0.0,
                                flip=True, aggregate="mean", batch_size=2048, seed=args.seed,
                                input_source="auto" if source == "-" else source)
    gt = data.poses_3d.astype(np.float64)
    start = time.perf_counter()
    reference = lifter.predict(true_2d, settings).aggregate
    per_joint = {"h36m17": per_joint_errors(reference, gt).mean(axis=0) * 1000}
    rows = [{"layout": "h36m17 (true 2D)", "derived": "-", "derived_2d_px": 0.0,
             "mpjpe_mm": float(mpjpe(reference, gt).mean() * 1000), "delta_mm": 0.0, "vs_reference_mm": 0.0}]
    for fmt in LAYOUTS:
        xy, derived = mapped_2d(true_2d, fmt)
        index = [H36M17.joint_names.index(n) for n in derived]
        err_px = (float(np.linalg.norm(xy[:, index] - true_2d[:, index], axis=-1).mean() * 500)
                  if index else 0.0)   # normalised units -> pixels of a 1000-px-wide image
        pred = lifter.predict(xy, settings).aggregate
        per_joint[fmt] = per_joint_errors(pred, gt).mean(axis=0) * 1000
        value = float(mpjpe(pred, gt).mean() * 1000)
        rows.append({"layout": fmt, "derived": ", ".join(derived) or "-", "derived_2d_px": err_px,
                     "mpjpe_mm": value, "delta_mm": value - rows[0]["mpjpe_mm"],
                     "vs_reference_mm": float(mpjpe(pred, reference).mean() * 1000)})
        log.info("%s done", fmt)
    elapsed = time.perf_counter() - start
    print(f"\nmapping cost: {len(data)} {args.split} samples of {args.data}, run {args.run} ({args.checkpoint}), "
          f"input {args.input}, source told {source}, N={args.hypotheses}, DDIM-{args.steps}, flip, mean aggregate, seed {args.seed} "
          f"({elapsed:.0f} s)\n")
    print("| layout | derived joints | 2D error of derived joints (px @ 1000 px) | MPJPE (mm) | Δ vs true 2D (mm) "
          "| distance to true-2D lift (mm) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {r['derived']} | {r['derived_2d_px']:.1f} | {r['mpjpe_mm']:.1f} | "
              f"{r['delta_mm']:+.1f} | {r['vs_reference_mm']:.1f} |")
    if args.per_joint:
        print("\n| joint | " + " | ".join(per_joint) + " |")
        print("|---|" + "---:|" * len(per_joint))
        for j, name in enumerate(H36M17.joint_names):
            print(f"| {name} | " + " | ".join(f"{v[j]:.1f}" for v in per_joint.values()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "args": vars(args), "input_source": source, "num_samples": len(data),
                                               "per_joint_mm": {k: v.tolist() for k, v in per_joint.items()}},
                                              indent=2))


if __name__ == "__main__":
    main()
