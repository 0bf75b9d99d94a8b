"""Cached evaluation vs resampling for the N = 1 ... 20 sweep (issue 13: target >= 5x).

    PYTHONPATH=$PWD python benchmarks/cache_speed.py                          # demo-size model, CPU
    PYTHONPATH=$PWD python benchmarks/cache_speed.py --run runs/x --data d.npz --split val

Three ways to get every aggregator (diffupose.inference.aggregate, plus the oracles) and the uncertainty
metrics for N = 1, 5, 10, 20 on the same samples:
- resample: sample N hypotheses afresh for each N (what a per-N evaluation does), evaluate;
- cache, first run: sample max(N) hypotheses once into the cache, evaluate every prefix;
- cache, reused: load the cache file (settings, weights and inputs match), evaluate every prefix.
Without --run the model is an untrained denoiser of the `demo` preset (speed does not depend on
the weights) on the embedded synthetic data. Prints a markdown table; --json writes it too.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from diffupose.evaluation import hypothesis_cache as hc
from diffupose.data.prepared import load_prepared
from diffupose.utils import environment_info

log = logging.getLogger("cache_speed")


def _lifter(args):
    from diffupose.config import preset
    from diffupose.inference import Lifter
    from diffupose.model import build_denoiser
    from diffupose.geometry.skeleton import get_skeleton

    if args.run:
        return Lifter.load(args.run, checkpoint=args.checkpoint, device=args.device)
    torch.manual_seed(0)
    cfg = preset(args.preset)
    skeleton = get_skeleton("h36m17")
    return Lifter.from_model(build_denoiser(cfg.model, skeleton).to(args.device), cfg, skeleton)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="run directory (default: an untrained denoiser of --preset)")
    p.add_argument("--preset", default="demo")
    p.add_argument("--checkpoint", default="ema")
    p.add_argument("--data", help="prepared .npz (default: synthetic data written to a temp folder)")
    p.add_argument("--split", default="test")
    p.add_argument("--max-samples", type=int, default=500)
    p.add_argument("--hypotheses", default="1,5,10,20")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ns = [int(n) for n in args.hypotheses.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="cache_speed_"))
    if args.data is None:
        from diffupose.data import prepare_dataset

        args.data = str(prepare_dataset("synthetic", out=tmp / "synthetic.npz", num_frames=24, seed=0))
    data = load_prepared(args.data)
    lifter = _lifter(args)
    kw = dict(max_samples=args.max_samples, seed=0, progress=False)

    rows = []
    tic = time.perf_counter()
    sampling = 0.0
    for n in ns:
        t0 = time.perf_counter()
        cache = hc.build_cache(lifter, data, args.split, hc.cache_settings(n), **kw)
        sampling += time.perf_counter() - t0
        hc.evaluate_cache(cache, data, prefixes=(n,))
    resample = time.perf_counter() - tic
    rows.append({"mode": "resample for each N", "sampling_s": sampling, "total_s": resample})

    path = tmp / "cache.npz"
    settings = hc.cache_settings(max(ns))
    tic = time.perf_counter()
    cache, reused = hc.cached_hypotheses(path, lifter, data, args.split, settings, **kw)
    sampled = time.perf_counter() - tic
    assert not reused
    hc.evaluate_cache(cache, data, prefixes=ns)
    rows.append({"mode": f"cache, first run (H={max(ns)})", "sampling_s": sampled,
                 "total_s": time.perf_counter() - tic})

    tic = time.perf_counter()
    cache, reused = hc.cached_hypotheses(path, lifter, data, args.split, settings, **kw)
    assert reused
    hc.evaluate_cache(cache, data, prefixes=ns)
    rows.append({"mode": "cache, reused", "sampling_s": 0.0, "total_s": time.perf_counter() - tic})

    for row in rows:
        row["speedup_vs_resample"] = resample / row["total_s"]
    n_samples = len(cache)
    print(f"\nN = {ns}, {n_samples} samples of {args.data} [{args.split}], "
          f"model {'run ' + args.run if args.run else 'untrained ' + args.preset + ' preset'}, device {args.device}, "
          f"{torch.get_num_threads()} thread(s); every aggregator + oracles + calibration/PCK/CPS/Spearman\n")
    print("| mode | sampling (s) | total (s) | speed-up vs resampling |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['mode']} | {row['sampling_s']:.2f} | {row['total_s']:.2f} | {row['speedup_vs_resample']:.1f}x |")
    out = {"hypotheses": ns, "num_samples": n_samples, "rows": rows, "environment": environment_info()}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
