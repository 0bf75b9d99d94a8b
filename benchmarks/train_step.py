"""Where a training step's time goes, per preset: the 2D inputs, the loss forward, backward, Adam.

One optimiser step as `diffupose train` takes it (the preset's batch, AMP and torch.compile
setting, real rows of a prepared file), split into five timed parts: the step's 2D inputs
(`train.input_2d` mix, synthetic noise, layouts, the window gather), the loss forward (eqs.
8-10 under autocast), the backward pass, Adam with the LR schedule, and the EMA update. The
first `--warmup` steps (compilation included) are not timed. The parts are timed one by one, so
this is `training.loop._train_step` taken apart: one micro-batch, no gradient clipping or fp16
scaler (the CPU presets use none of them); for the whole step's rate, read the training log. Prints a Markdown table in
milliseconds per step, with each part's share and the steps/s that the parts add up to.
If the network (forward + backward) dominates, a CPU-hour run is limited by its arithmetic, not
by the data path around it.

    OMP_NUM_THREADS=2 python benchmarks/train_step.py --data h36m_sh.npz --presets h36m_det_cpu h36m_det_video_cpu
    python benchmarks/train_step.py --data h36m_sh.npz --presets h36m_cpu --set train.compile=off --threads 1
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from diffupose.config import preset
from diffupose.training.data import epoch_indices, load_training_data
from diffupose.training.distributed import setup_distributed
from diffupose.training.loop import _loss
from diffupose.training.optim import build_lr_scheduler
from diffupose.training.state import build_run
from diffupose.utils import cpu_has_native_bf16, cpu_info

PARTS = ("inputs", "forward", "backward", "adam", "ema")


def breakdown(preset_name: str, data_path: str | Path, overrides: list[str], *, steps: int, warmup: int) -> dict:
    """Mean milliseconds per step of each part over `steps` steps after `warmup` untimed ones,
    the steps/s they add up to, and what the run used (batch, window, AMP dtype, compiled)."""
    cfg = preset(preset_name, [f"data.path={data_path}", "train.max_minutes=0",
                               f"train.max_steps={max(steps + warmup, 2000)}", *overrides])
    dist, device = setup_distributed("cpu")
    data = load_training_data(cfg, device)
    with tempfile.TemporaryDirectory() as tmp:       # build_run writes nothing; a run dir is still named
        run = build_run(cfg, Path(tmp), data, {}, dist, device, time.perf_counter())
    run.scheduler = build_lr_scheduler(run.optimizer, cfg.train, run.budget.steps_per_epoch,
                                       run.budget.total_steps, start_step=0)
    batch = cfg.train.batch_size
    perm = epoch_indices(len(data.poses_3d), 0, cfg.train.seed, 0, 1)
    spent = dict.fromkeys(PARTS, 0.0)
    run.model.train()
    for i in range(warmup + steps):
        if i == warmup:
            spent = dict.fromkeys(PARTS, 0.0)
        start = (i * batch) % max(len(perm) - batch, 1)
        idx = perm[start:start + batch]
        tic = time.perf_counter()
        inputs = run.data.inputs(idx, run.noise_gen)
        marks = [tic, time.perf_counter()]
        loss, _ = _loss(run, run.data.poses_3d[idx], *inputs)
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.scheduler.step()
        marks.append(time.perf_counter())
        run.ema.update_parameters(run.denoiser)
        marks.append(time.perf_counter())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{preset_name}: the loss became {float(loss)} at step {i}")
        for part, a, b in zip(PARTS, marks, marks[1:]):
            spent[part] += b - a
    ms = {part: 1000.0 * s / steps for part, s in spent.items()}
    total = sum(ms.values())
    return {"preset": preset_name, "batch": batch, "window": cfg.model.window, "compiled": run.compiled,
            "amp": str(run.autocast_dtype).replace("torch.", "") if run.autocast_dtype else "fp32",
            **ms, "total": total, "steps_per_s": 1000.0 / total}


def format_table(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| preset | batch | W | AMP | compiled | " + " | ".join(f"{p} ms" for p in PARTS)
             + " | total ms | steps/s | network share |",
             "|---|---:|---:|---|---|" + "---:|" * (len(PARTS) + 3)]
    for r in rows:
        parts = " | ".join(f"{r[p]:.1f}" for p in PARTS)
        share = 100.0 * (r["forward"] + r["backward"]) / r["total"]
        lines.append(f"| {r['preset']} | {r['batch']} | {r['window']} | {r['amp']} | {'yes' if r['compiled'] else 'no'}"
                     f" | {parts} | {r['total']:.1f} | {r['steps_per_s']:.1f} | {share:.0f} % |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared .npz (diffupose prepare), e.g. h36m_sh.npz")
    ap.add_argument("--presets", nargs="+", default=["h36m_det_cpu", "h36m_det_video_cpu"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides for every preset")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per preset")
    ap.add_argument("--warmup", type=int, default=30, help="untimed steps first (torch.compile compiles here)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: no such file (make one with `diffupose prepare`)")
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.presets:
        rows.append(breakdown(name, args.data, args.set, steps=args.steps, warmup=args.warmup))
        print(f"{name}: {rows[-1]['steps_per_s']:.1f} steps/s", flush=True)
    header = (f"{cpu_info()['model']}, {args.threads} threads, native bf16: {cpu_has_native_bf16()}; "
              f"{args.data}, {args.steps} timed steps after {args.warmup}")
    print("\n" + format_table(rows, header))


if __name__ == "__main__":
    main()
