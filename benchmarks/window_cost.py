"""What a 2D window costs at sampling time: the same sampler call with model.window = 1, 9, 27, 81.

The temporal encoder of a windowed model runs once per input and view, not per step or
hypothesis (diffusion.samplers.sample), so the cost should barely grow with W. This times one
sampler call on `--inputs` random inputs with the h36m_det_cpu network (dim 128, 4 blocks,
missing joints, source condition), N hypotheses, flip, DDIM-5, per window size and precision,
with randomly initialised weights (the cost does not depend on the values), and prints a
Markdown table: seconds, poses/s, the encoder's share and the cost relative to W = 1.

    OMP_NUM_THREADS=2 python benchmarks/window_cost.py
    python benchmarks/window_cost.py --windows 1 27 --inputs 2000 --hypotheses 10 --threads 1
"""
from __future__ import annotations

import argparse
import time

import torch

from diffupose.config import preset
from diffupose.diffusion import build_process, make_sampler, sample
from diffupose.geometry.skeleton import H36M17
from diffupose.model import build_denoiser, count_parameters
from diffupose.utils import cpu_has_native_bf16, cpu_info


def time_call(denoiser, schedule, y, hypotheses: int, dtype, repeats: int) -> tuple[float, float]:
    """(best seconds of one sampler call, seconds spent in the encoder during it)."""
    sampler = make_sampler("ddim", schedule, num_steps=5, prediction="v")
    spent = [0.0]
    hooks = []
    if getattr(denoiser, "temporal", None) is not None:
        start = {}
        hooks.append(denoiser.temporal.register_forward_pre_hook(lambda m, a: start.__setitem__(0, time.perf_counter())))
        hooks.append(denoiser.temporal.register_forward_hook(
            lambda m, a, o: spent.__setitem__(0, spent[0] + time.perf_counter() - start[0])))
    best, encoder = float("inf"), 0.0
    for _ in range(repeats):
        spent[0] = 0.0
        tic = time.perf_counter()
        sample(denoiser, schedule, y, num_hypotheses=hypotheses, sampler=sampler, flip=True, skeleton=H36M17,
               generator=torch.Generator().manual_seed(0), autocast_dtype=dtype, input_source=1)
        seconds = time.perf_counter() - tic
        if seconds < best:
            best, encoder = seconds, spent[0]
    for h in hooks:
        h.remove()
    return best, encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 9, 27, 81])
    ap.add_argument("--inputs", type=int, default=1000)
    ap.add_argument("--hypotheses", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtypes = [("fp32", None)] + ([("bf16", torch.bfloat16)] if cpu_has_native_bf16() else [])
    print(f"\n{cpu_info()['model']}, {args.threads} threads, native bf16: {cpu_has_native_bf16()}; {args.inputs} inputs, "
          f"N = {args.hypotheses}, flip, DDIM-5, h36m_det_cpu network (random weights)\n")
    print("| W | parameters | precision | seconds | poses/s | encoder | vs W = 1 |\n|---:|---:|---|---:|---:|---:|---:|")
    base = {}
    for window in args.windows:
        cfg = preset("h36m_det_cpu", {"model.window": window})
        torch.manual_seed(0)
        denoiser = build_denoiser(cfg.model, H36M17).eval()
        schedule = build_process(cfg.diffusion)
        shape = (args.inputs, window, 17, 2) if window > 1 else (args.inputs, 17, 2)
        y = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 0.2
        for name, dtype in dtypes:
            seconds, encoder = time_call(denoiser, schedule, y, args.hypotheses, dtype, args.repeats)
            base.setdefault(name, seconds)
            print(f"| {window} | {count_parameters(denoiser):,} | {name} | {seconds:.2f} | {args.inputs / seconds:.0f} | "
                  f"{100 * encoder / seconds:.1f} % | {seconds / base[name]:.2f}x |")


if __name__ == "__main__":
    main()
