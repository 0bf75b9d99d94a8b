"""A windowed model on a track at another frame rate: measured, not assumed.

The window of a windowed model (model.window = W) is defined at its training frame rate
(Human3.6M: 50 fps). `diffupose lift` resamples a track at another rate (`--fps`) so that the
window still spans (W - 1) / 50 s (data.windows.track_windows). This script takes whole
validation tracks (one camera of one sequence), keeps every `--step`-th frame (step 2: a 25 fps
track) and lifts the kept frames three ways with the same model and seed:

- `50 fps track`: the full-rate track, windows at the training rate (the reference);
- `resampled`: the subsampled track, window frames interpolated at 1/50 s spacing (what lift does);
- `naive`: the subsampled track read as if it were 50 fps (the window spans step x longer).

    OMP_NUM_THREADS=2 python benchmarks/window_fps.py --run runs/w27-40k --data h36m_sh.npz
    python benchmarks/window_fps.py --run h36m-det-video --data h36m_sh.npz --tracks 8 --frames 250 --step 2

Prints a Markdown table of MPJPE (mm, GT-free, mean of N hypotheses, flip) on the kept frames.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from diffupose import Lifter
from diffupose.data.prepared import load_prepared
from diffupose.data.windows import track_bounds, track_windows
from diffupose.inference import zoo
from diffupose.inference.lifter import SamplingSettings
from diffupose.evaluation.metrics import mpjpe
from diffupose.utils import environment_info


def pick_tracks(data, count: int, frames: int, seed: int) -> list[np.ndarray]:
    """`count` whole tracks (first `frames` samples each) with at least `frames` samples, seeded."""
    lo, hi = track_bounds(data.subject, data.sequence, data.camera, data.frame)
    starts = np.unique(lo)
    long_enough = [s for s in starts if hi[s] - s + 1 >= frames]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(long_enough, size=min(count, len(long_enough)), replace=False)
    return [np.arange(s, s + frames) for s in sorted(chosen)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a windowed model: run folder or zoo name")
    ap.add_argument("--data", required=True, help="prepared .npz (e.g. --keypoints sh, S8 as val)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--input-2d", choices=("file", "gt"), default="file", help="file: the detections; gt: projected GT")
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--frames", type=int, default=250, help="frames per track at the full rate")
    ap.add_argument("--step", type=int, default=2, help="keep every step-th frame (2: 50 -> 25 fps)")
    ap.add_argument("--hypotheses", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    lifter = Lifter.from_pretrained(args.run, checkpoint=None if zoo.is_zoo_name(args.run) else "ema")  # final EMA
    window = lifter.window
    if window == 1:
        raise SystemExit(f"{args.run}: a single-frame model (model.window = 1); nothing to resample")
    data = load_prepared(args.data).select(split=args.split)
    keypoints = data.keypoints_2d_gt if args.input_2d == "gt" else data.keypoints_2d
    settings = SamplingSettings.from_eval_config(lifter.config.eval, num_hypotheses=args.hypotheses, seed=args.seed)
    if lifter.config.model.source_condition:
        settings = settings.replace(input_source="clean" if args.input_2d == "gt" else "detected")
    tracks = pick_tracks(data, args.tracks, args.frames, args.seed)
    ways = {"50 fps track (reference)": [], f"{50 / args.step:g} fps, resampled (lift)": [],
            f"{50 / args.step:g} fps, read as 50 fps (naive)": []}
    tic = time.perf_counter()
    for rows in tracks:
        kept = np.arange(0, len(rows), args.step)
        full = track_windows(keypoints[rows], None, window)[0][kept]
        sub = keypoints[rows][kept]
        resampled = track_windows(sub, None, window, rate=1.0 / args.step)[0]
        naive = track_windows(sub, None, window, rate=1.0)[0]
        gt = data.poses_3d[rows][kept]
        for name, cond in zip(ways, (full, resampled, naive)):
            out = lifter.predict(cond, settings)
            ways[name].append(mpjpe(out.aggregate, gt) * 1000.0)
    seconds = time.perf_counter() - tic
    n = sum(len(np.arange(0, args.frames, args.step)) for _ in tracks)
    print(f"\n{args.run}: T = {window} frames at {lifter.config.model.window_fps:g} fps; {len(tracks)} {args.split} "
          f"tracks x {args.frames} frames, every {args.step}-th kept ({n} frames), 2D: {args.input_2d}, "
          f"N = {args.hypotheses}, {settings.sampler}-{settings.num_steps}, flip {settings.flip}, seed {args.seed}; "
          f"{seconds:.0f} s\n")
    print("| input track | MPJPE (mm) |\n|---|---:|")
    summary = {name: float(np.mean(np.concatenate(errs))) for name, errs in ways.items()}
    for name, value in summary.items():
        print(f"| {name} | {value:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "mpjpe_mm": summary, "environment": environment_info()}, fh, indent=2)


if __name__ == "__main__":
    main()
