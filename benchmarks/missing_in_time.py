"""Joints that a detector drops in single frames of a track: masked per frame, or filled in time.

Two tables, each comparing the code before RECIPES 6f ("as given": every frame's mask handed to
the model as it is) with the current code (a joint missing for at most MAX_GAP_S between frames
that have it is interpolated in time by `lift`, `masking.short_gaps`; a windowed model fills a
joint missing in only some frames of its window from the others, `masking.fill_window_in_time`).
The "as given" rows are produced by swapping those two functions for ones that change nothing.

1. `--data` (a prepared Human3.6M detections file): a seeded subset of its val split (S8), each
   sample with the 2D around it (the window of h36m-det-video; ±`--radius` frames for h36m-det)
   and synthetic missing joints: each non-root joint missing in each frame with probability
   `--p` (flicker), or one limb end (2 joints) missing over one random run of frames (occlusion).
   MPJPE of the aggregate (model's sampler, flip, `--hypotheses`, uncalibrated).
2. The shipped examples (`examples/`: S8 ground truth through a real camera, 2 joints per frame
   below min_score; `--h36m-dir` holds h36m_3d17_train.npz for their 3D): `diffupose.lift` with
   the README's arguments, MPJPE of the root-relative aggregate against the camera-frame truth.

    OMP_NUM_THREADS=1 python benchmarks/missing_in_time.py --data h36m_sh.npz --h36m-dir ../shared/data/h36m
"""
from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

import diffupose
import diffupose.lifting.pipeline as pipeline
import diffupose.model.denoiser as denoiser_module
from diffupose.data.h36m import read_plain_h36m
from diffupose.data.keypoint_examples import EXAMPLES
from diffupose.data.prepared import load_prepared
from diffupose.data.windows import MAX_GAP_S, sample_windows
from diffupose.evaluation.scoring import select_indices
from diffupose.geometry.camera import load_cameras
from diffupose.inference.lifter import Lifter
from diffupose.model.masking import evaluation_mask, fill_window_in_time
from diffupose.utils import cpu_has_native_bf16, cpu_info

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def masks_as_given():
    """The code before RECIPES 6f: no short-gap interpolation in `lift`, no fill in the window."""
    gaps, fill = pipeline.short_gaps, denoiser_module.fill_window_in_time
    pipeline.short_gaps = lambda present, times, max_gap: np.zeros_like(present, dtype=bool)
    denoiser_module.fill_window_in_time = lambda window, present: (window, present)
    try:
        yield
    finally:
        pipeline.short_gaps, denoiser_module.fill_window_in_time = gaps, fill


def mpjpe_mm(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(1000 * np.linalg.norm(pred - truth, axis=-1).mean())


def synthetic_masks(n: int, window: int, skeleton, p: float, seed: int) -> dict[str, np.ndarray]:
    """(n, window, J) masks, True = present: per-frame flicker and one occlusion of a limb end."""
    rng = np.random.default_rng(seed)
    J = skeleton.num_joints
    flicker = np.ones((n, window, J), dtype=bool)
    flicker[..., 1:] = rng.random((n, window, J - 1)) >= p
    limb_end = np.repeat(evaluation_mask(n, skeleton, 2, "limb", seed=seed)[:, None], window, axis=1)
    length = rng.integers(1, window + 1, n)
    start = rng.integers(1 - length, window)                     # the run covers at least one frame of the window
    frame = np.arange(window)[None]
    inside = (frame >= start[:, None]) & (frame < (start + length)[:, None])
    return {f"each joint missing in {p:.0%} of frames": flicker,
            "a limb end missing over one random run of frames (1 to W)": np.where(inside[..., None], limb_end, True)}


def window_table(args) -> list[str]:
    data = load_prepared(args.data)
    index = select_indices(data, "val", args.samples, 0)
    truth = data.poses_3d[index]
    rows = ["| model | missing joints | nothing missing | as given (before) | filled in time (now) |",
            "|---|---|---:|---:|---:|"]
    print("\n".join(rows), flush=True)
    for name in ("h36m-det", "h36m-det-video"):
        lifter = Lifter.from_pretrained(name)
        settings = lifter.default_settings().replace(num_hypotheses=args.hypotheses, calibrated=False)
        window = lifter.window if lifter.window > 1 else 2 * args.radius + 1
        x = np.ascontiguousarray(sample_windows(data, index, window))
        centre = window // 2
        # the single-frame model reads its own frame; "now" = lift's short-gap rule (50 fps) within ±radius frames
        times = np.arange(window, dtype=np.float64)

        def run(mask, fill):
            if lifter.window > 1:
                return mpjpe_mm(lifter.predict(x, settings, keypoint_mask=mask).aggregate, truth)
            m = mask[:, centre]
            if fill:
                filled, seen = fill_window_in_time(torch.from_numpy(x), torch.from_numpy(mask))
                gaps = np.stack([pipeline.short_gaps(mk, times, MAX_GAP_S * 50)[centre] for mk in mask])
                m = m | gaps
                xc = np.where(gaps[..., None], filled.numpy()[:, centre], x[:, centre])
            else:
                xc = x[:, centre]
            return mpjpe_mm(lifter.predict(xc, settings, keypoint_mask=m).aggregate, truth)

        clean = run(np.ones(x.shape[:3], dtype=bool), False)
        for label, mask in synthetic_masks(len(x), window, data.skeleton, args.p, args.seed).items():
            with masks_as_given():
                before = run(mask, False)
            rows.append(f"| `{name}` (T = {lifter.window}) | {label} | {clean:.1f} | {before:.1f} | {run(mask, True):.1f} |")
            print(rows[-1], flush=True)
    return rows


def examples_table(args) -> list[str]:
    cameras = load_cameras("h36m")
    poses = read_plain_h36m([Path(args.h36m_dir) / "h36m_3d17_train.npz"], [("S8", e[2]) for e in EXAMPLES])
    rows = ["| model | example | missing joints | interpolated now | as given (before) | now | `--missing fill` |",
            "|---|---|---:|---:|---:|---:|---:|"]
    print("\n".join(rows), flush=True)
    for name in args.models:
        lifter = Lifter.from_pretrained(name)
        for file, _, sequence, camera, first, count, stride in EXAMPLES:
            cam = cameras.camera("S8", camera)
            truth = cam.world_to_camera(poses[("S8", sequence)][np.arange(first, first + count * stride, stride)])
            truth = truth - truth[:, :1]

            def lift(**kw):
                return diffupose.lift(ROOT / "examples" / file, lifter=lifter, image_size=(1000, 1002),
                                      progress=False, **kw)
            with masks_as_given():
                before = lift()
            now = lift()
            filled = lift(missing="fill")
            rows.append(f"| `{name}` | `{file}` | {now.card['missing_joints']} | "
                        f"{now.card.get('joints_interpolated_in_time', 0)} | {mpjpe_mm(before.aggregate, truth):.1f} | "
                        f"{mpjpe_mm(now.aggregate, truth):.1f} | {mpjpe_mm(filled.aggregate, truth):.1f} |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared Human3.6M detections (val = S8); table 1 is skipped without it")
    p.add_argument("--h36m-dir", help="folder with h36m_3d17_train.npz; table 2 is skipped without it")
    p.add_argument("--models", nargs="+", default=["h36m-det", "h36m-det-video", "h36m-det-fast"])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--hypotheses", type=int, default=5)
    p.add_argument("--p", type=float, default=0.1, help="flicker: probability a joint is missing in a frame")
    p.add_argument("--radius", type=int, default=5, help="h36m-det: frames each side the short-gap rule may use")
    p.add_argument("--seed", type=int, default=5)
    args = p.parse_args()
    if not args.data and not args.h36m_dir:
        p.error("give --data and/or --h36m-dir")
    logging.disable(logging.WARNING)
    print(f"{cpu_info()['model']}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}")
    if args.data:
        print(f"\nS8 detections, {args.samples} seeded samples, N = {args.hypotheses}, MPJPE mm\n")
        window_table(args)
    if args.h36m_dir:
        print("\nThe shipped examples through `diffupose.lift` (defaults), MPJPE mm\n")
        examples_table(args)


if __name__ == "__main__":
    main()
