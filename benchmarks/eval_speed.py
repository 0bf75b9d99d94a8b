"""Evaluation throughput (poses/s) at N = 1 and N = 10 against the rows per denoiser forward.

    OMP_NUM_THREADS=2 python benchmarks/eval_speed.py --model h36m --data h36m_gt.npz --samples 2000 \\
        --chunk-rows 256,512,1024,2048,4096,0

One sampler call lifts `eval.batch_size` (2,048) inputs with H (x2 with flip) chains each; at
N = 10 that is 40,960 chains per denoiser forward unless the forward is chunked
(`diffusion.samplers.FORWARD_CHUNK_ROWS`; 0 here = one forward for all rows, the behaviour
before chunking). Each row: `diffupose.evaluation.protocols` on the val split (seeded subset, DDIM-5, flip,
mean; the user-facing protocol) with the sampler's wall time -> poses/s, the whole evaluation's
wall time, and the MPJPE (the same at every chunk size: rows are independent).
"""
from __future__ import annotations

import argparse
import time

from diffupose.inference import zoo
from diffupose.config import EvalConfig
from diffupose.diffusion import samplers
from diffupose.evaluation.protocols import evaluate
from diffupose.evaluation.metrics import AVERAGE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="run directory or zoo name")
    p.add_argument("--data", required=True)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--hypotheses", default="1,10")
    p.add_argument("--chunk-rows", default="1024,0", help="rows per forward; 0 = all rows at once")
    args = p.parse_args()
    model = str(zoo.model_path(args.model))
    print("| N | rows per forward | poses/s (sampling) | evaluation wall s | MPJPE (mm) |\n|---|---|---|---|---|")
    for n in (int(v) for v in args.hypotheses.split(",")):
        for chunk in (int(v) for v in args.chunk_rows.split(",")):
            samplers.FORWARD_CHUNK_ROWS = chunk if chunk > 0 else 10 ** 9
            ev = EvalConfig(num_hypotheses=n, num_steps=5, flip=True, aggregate="mean", checkpoint="ema",
                            max_samples=args.samples, seed=0)
            tic = time.perf_counter()
            r = evaluate(model, args.data, split="val", eval_cfg=ev, progress=False, keep_per_sample=False)
            wall = time.perf_counter() - tic
            print(f"| {n} | {chunk or 'all'} | {r.poses_per_second:.0f} | {wall:.1f} | "
                  f"{r.per_action['MPJPE'][AVERAGE]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
