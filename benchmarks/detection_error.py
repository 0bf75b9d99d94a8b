"""The measured error of a detections file against the projected ground truth kept beside it:
per joint (median, mean, 90th percentile in pixels), the share of joints off by more than 50 and
100 px, and the share of frames with left and right swapped. This is the error model that
`train.input_2d=gt+noise|mix` resamples (`diffupose.data.detector_noise`).

    python benchmarks/detection_error.py --data h36m_sh.npz --split train

Pixels are those of each sample's camera (half the image width per normalised unit, from the
file's camera resolutions).
"""
from __future__ import annotations

import argparse

import numpy as np

from diffupose.data.detector_noise import error_summary
from diffupose.data.prepared import load_prepared
from diffupose.evaluation.detection_analysis import pixel_scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared .npz made from detections (e.g. --keypoints sh)")
    ap.add_argument("--split", default="train")
    args = ap.parse_args()
    data = load_prepared(args.data).select(split=args.split)
    if data.keypoints_2d_gt is None:
        raise SystemExit(f"{args.data}: no keypoints_2d_gt (not prepared from detections)")
    scale = pixel_scale(data)
    if np.ptp(scale) > 0:
        raise SystemExit("cameras of different widths: run per camera")
    s = error_summary(data.keypoints_2d, data.keypoints_2d_gt, data.skeleton, float(scale[0]))
    print(f"\n{args.data}, split {args.split}: {s['num_frames']:,} detections ({data.meta.get('keypoints_2d_name')})\n")
    print(f"median {s['median_px']:.1f} px, mean {s['mean_px']:.1f} px, 90th percentile {s['p90_px']:.1f} px; "
          f"{100 * s['beyond_50px']:.2f} % of joints beyond 50 px, {100 * s['beyond_100px']:.2f} % beyond 100 px; "
          f"{100 * s['swapped_frames']:.2f} % of frames left/right swapped\n")
    print("| joint (H36M-17, after the MPII-16 mapping) | median (px) | mean (px) | p90 (px) |")
    print("|---|---:|---:|---:|")
    for name, j in s["per_joint"].items():
        print(f"| {name} | {j['median_px']:.1f} | {j['mean_px']:.1f} | {j['p90_px']:.1f} |")


if __name__ == "__main__":
    main()
