"""Throughput of the DiffuPose denoiser: training samples/s and sampling poses/s.

    python benchmarks/throughput.py --quick               # CPU, < 2 min
    python benchmarks/throughput.py --device cuda --compile --train-batch 4096 --sample-batch 16384
    python benchmarks/throughput.py --precision-table --presets h36m_cpu,humaneva_cpu --threads 1
    python benchmarks/throughput.py --compile-table --presets h36m_cpu --threads 1

--precision-table: training samples/s in fp32 and bf16 autocast side by side, at each preset's
width, depth and batch, with the preset's EMA (one optimiser step = forward + backward + Adam +
EMA update, as in `diffupose.train`); fp32 and bf16 rounds alternate so both see the same
machine load, and the median round is reported. --compile-table: eager vs torch.compile (the
autocast the preset's `train.amp=auto` picks here), with the compile time.

Prints a markdown table (and writes JSON with --json). Training: forward + backward + Adam on
random poses (batch --train-batch). Sampling: `diffupose.diffusion.sample` with DDPM-100 and
DDIM-2/5/10/20, H = 1 and 10, with and without flip; --sample-batch is the number of chains per
denoiser forward (poses per call = sample-batch // (H · views)). On CUDA the data stays on the
GPU, bf16 autocast is always on, and the device is synchronised only around the timed loops.
"""
from __future__ import annotations

import argparse
import json
import logging
import time

import torch

from diffupose.config import DiffusionConfig, ModelConfig, preset
from diffupose.diffusion import NoiseSchedule, diffusion_loss, sample
from diffupose.model import build_denoiser, count_parameters
from diffupose.geometry.skeleton import H36M17
from diffupose.utils import environment_info, resolve_device

log = logging.getLogger("throughput")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _compile(model, mode: str):
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(model, mode=None if mode == "default" else mode)


def bench_train(dim: int, batch: int, device: torch.device, amp_dtype, compile_mode: str | None,
                warmup: int, repeats: int) -> dict:
    """Forward + backward + Adam step on random data; returns samples/s."""
    step = _train_stepper(ModelConfig(dim=dim), batch, device, amp_dtype, compile_mode, None)
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        loss = step()
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"kind": "train", "dim": dim, "batch": batch, "precision": _precision(amp_dtype),
            "samples_per_s": batch * repeats / elapsed, "ms_per_step": 1e3 * elapsed / repeats,
            "final_loss": float(loss.detach())}


def _train_stepper(model_cfg: ModelConfig, batch: int, device: torch.device, amp_dtype,
                   compile_mode: str | bool | None, ema_decay: float | None):
    """A closure running one training step (forward + backward + Adam [+ EMA]) on fixed random data."""
    from diffupose.model.ema import make_ema

    skeleton = H36M17
    torch.manual_seed(0)
    model = build_denoiser(model_cfg, skeleton).to(device).train()
    ema = make_ema(model, ema_decay) if ema_decay is not None else None
    schedule = NoiseSchedule.from_config(DiffusionConfig()).to(device)
    if compile_mode is True:
        compile_mode = "default"
    net = _compile(model, compile_mode) if compile_mode else model
    # fused Adam on CUDA (what training uses there); the learning rate does not affect the speed
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))
    g = torch.Generator(device=device).manual_seed(0)
    x0 = torch.randn((batch, skeleton.num_joints, 3), generator=g, device=device) * 0.2
    y = torch.randn((batch, skeleton.num_joints, 2), generator=g, device=device) * 0.5
    weights = torch.tensor(skeleton.loss_weights, dtype=torch.float32, device=device)

    def step():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss, _ = diffusion_loss(net, schedule, x0, y, joint_weights=weights, generator=g, return_parts=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
        return loss

    return step


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (compiler workers)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed(step, repeats: int, device: torch.device, clock=time.perf_counter) -> float:
    _sync(device)
    start = clock()
    for _ in range(repeats):
        step()
    _sync(device)
    return clock() - start


def precision_table(preset_names: list[str], device: torch.device, rounds: int, repeats: int,
                    clock=time.perf_counter, compile_mode: str | None = None) -> list[dict]:
    """fp32 vs bf16-autocast training samples/s at each preset's model and batch, alternating
    rounds (median reported). `clock`: wall time, or CPU time (`--cpu-time`: per-thread
    speed on a machine shared with other jobs; meaningful with --threads 1). `compile_mode`:
    torch.compile both steppers (as the CPU presets train); their compile happens in the
    untimed warm-up."""
    import statistics

    rows = []
    for name in preset_names:
        cfg = preset(name)
        batch = cfg.train.batch_size
        ema = cfg.train.ema_decay if cfg.train.ema_every == 1 else None
        steppers = {label: _train_stepper(cfg.model, batch, device, dtype, compile_mode, ema)
                    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16))}
        for stepper in steppers.values():       # warm-up (allocator, oneDNN primitive caches)
            _timed(stepper, 2, device)
        times = {label: [] for label in steppers}
        for r in range(rounds):
            for label, stepper in steppers.items():
                times[label].append(_timed(stepper, repeats, device, clock))
            log.info("%s round %d/%d: %s", name, r + 1, rounds,
                     ", ".join(f"{k} {batch * repeats / v[-1]:.0f} samples/s" for k, v in times.items()))
        sps = {label: batch * repeats / statistics.median(t) for label, t in times.items()}
        rows.append({"kind": "precision", "preset": name, "dim": cfg.model.dim, "num_blocks": cfg.model.num_blocks,
                     "batch": batch, "fp32": sps["fp32"], "bf16": sps["bf16"], "speedup": sps["bf16"] / sps["fp32"],
                     "compile": compile_mode or "off", "rounds": rounds, "repeats": repeats})
    return rows


def compile_table(preset_names: list[str], device: torch.device, steady_steps: int,
                  clock=time.perf_counter) -> list[dict]:
    """Eager vs torch.compile training at each preset (autocast as train.amp=auto picks it):
    compile time (first steps) and steady-state samples/s; the break-even point in minutes."""
    from diffupose.training import amp_dtype

    rows = []
    for name in preset_names:
        cfg = preset(name)
        dtype = amp_dtype(cfg.train.amp, device)
        ema = cfg.train.ema_decay if cfg.train.ema_every == 1 else None
        out = {"kind": "compile", "preset": name, "precision": _precision(dtype), "batch": cfg.train.batch_size}
        for label, compiled in (("eager", False), ("compiled", True)):
            stepper = _train_stepper(cfg.model, cfg.train.batch_size, device, dtype, compiled, ema)
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            try:
                _timed(stepper, 3, device)
            except Exception as e:  # report the failure in the table instead of dying
                out[f"{label}_error"] = " ".join(str(e).split())[:120]
                continue
            out[f"{label}_first3_s"] = time.perf_counter() - start
            out[f"{label}_first3_cpu_s"] = _cpu_seconds() - cpu_start
            out[f"{label}_samples_per_s"] = cfg.train.batch_size * steady_steps / _timed(stepper, steady_steps, device,
                                                                                        clock)
            log.info("%s %s: first 3 steps %.1f s wall, %.1f s CPU; %.0f samples/s", name, label,
                     out[f"{label}_first3_s"], out[f"{label}_first3_cpu_s"], out[f"{label}_samples_per_s"])
        if "compiled_samples_per_s" in out and "eager_samples_per_s" in out:
            # wall time after which the compiled run has done as many steps as the eager one
            eager, compiled = out["eager_samples_per_s"], out["compiled_samples_per_s"]
            key = "first3_cpu_s" if clock is time.process_time else "first3_s"
            extra = out[f"compiled_{key}"] - out[f"eager_{key}"]
            out["break_even_min"] = compiled * extra / (compiled - eager) / 60 if compiled > eager else float("inf")
        rows.append(out)
    return rows


def bench_sample(model, dim: int, sampler: str, steps: int, num_hypotheses: int, flip: bool, rows: int,
                 device: torch.device, amp_dtype, repeats: int) -> dict:
    """`sample` on random 2D inputs; returns poses/s (one pose = H hypotheses, ×2 with flip)."""
    skeleton = H36M17
    schedule = NoiseSchedule.from_config(DiffusionConfig()).to(device)
    views = 2 if flip else 1
    poses = max(1, rows // (num_hypotheses * views))
    g = torch.Generator(device=device).manual_seed(0)
    y = torch.randn((poses, skeleton.num_joints, 2), generator=g, device=device) * 0.5

    def run():
        return sample(model, schedule, y, num_hypotheses=num_hypotheses, sampler=sampler, num_steps=steps,
                      flip=flip, skeleton=skeleton, generator=g, autocast_dtype=amp_dtype)

    run()  # warm-up (and compilation for this row count)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    elapsed = time.perf_counter() - start
    forwards = repeats * (schedule.num_timesteps if sampler == "ddpm" else steps)
    return {"kind": "sample", "dim": dim, "sampler": sampler, "steps": steps if sampler == "ddim" else schedule.num_timesteps,
            "num_hypotheses": num_hypotheses, "flip": flip, "poses_per_call": poses, "rows": poses * num_hypotheses * views,
            "precision": _precision(amp_dtype), "poses_per_s": poses * repeats / elapsed,
            "chain_steps_per_s": poses * num_hypotheses * views * forwards / elapsed}


def _precision(amp_dtype) -> str:
    return "fp32" if amp_dtype is None else f"{str(amp_dtype).replace('torch.', '')}-autocast"


def format_table(results: list[dict], header: dict) -> str:
    lines = ["# DiffuPose throughput", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    prec = [r for r in results if r["kind"] == "precision"]
    if prec:
        lines += ["", "## Training samples/s, fp32 vs bf16 autocast (same run, alternating rounds, median)", "",
                  "| preset | dim | blocks | batch | compile | fp32 samples/s | bf16 samples/s | bf16 / fp32 |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['preset']} | {r['dim']} | {r['num_blocks']} | {r['batch']} | {r.get('compile', 'off')} | "
                  f"{r['fp32']:.0f} | {r['bf16']:.0f} | {r['speedup']:.2f}x |" for r in prec]
    comp = [r for r in results if r["kind"] == "compile"]
    if comp:
        lines += ["", "## torch.compile (training)", "",
                  "| preset | precision | batch | eager samples/s | compiled samples/s | first 3 steps eager / compiled (s) | break-even (min) |",
                  "|---|---|---|---|---|---|---|"]
        for r in comp:
            err = r.get("compiled_error")
            lines.append(f"| {r['preset']} | {r['precision']} | {r['batch']} | {r.get('eager_samples_per_s', 0):.0f} | "
                         + (f"failed: {err} | - | - |" if err else
                            f"{r['compiled_samples_per_s']:.0f} | {r['eager_first3_s']:.1f} / {r['compiled_first3_s']:.1f} | "
                            f"{r['break_even_min']:.1f} |"))
    train = [r for r in results if r["kind"] == "train"]
    if train:
        lines += ["", "## Training (forward + backward + Adam)", "",
                  "| dim | batch | precision | samples/s | ms/step |", "|---|---|---|---|---|"]
        lines += [f"| {r['dim']} | {r['batch']} | {r['precision']} | {r['samples_per_s']:.0f} | {r['ms_per_step']:.0f} |"
                  for r in train]
    samp = [r for r in results if r["kind"] == "sample"]
    if samp:
        lines += ["", "## Sampling (poses/s; one pose = H hypotheses, x2 chains with flip)", "",
                  "| dim | sampler | steps | H | flip | precision | poses/call | poses/s | chain-steps/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dim']} | {r['sampler']} | {r['steps']} | {r['num_hypotheses']} | {r['flip']} | "
                  f"{r['precision']} | {r['poses_per_call']} | {r['poses_per_s']:.1f} | {r['chain_steps_per_s']:.0f} |"
                  for r in samp]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dims", default="256,384", help="comma-separated model widths")
    p.add_argument("--quick", action="store_true", help="small repeat counts and a reduced grid (< 2 min on CPU)")
    p.add_argument("--amp", action="store_true", help="CPU: also measure bf16 autocast (CUDA: always bf16)")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune")
    p.add_argument("--train-batch", type=int, default=1024)
    p.add_argument("--sample-batch", type=int, default=0,
                   help="chains per denoiser forward (0 = 256 quick / 2048 CPU / 16384 CUDA)")
    p.add_argument("--repeats", type=int, default=0, help="timed repeats (0 = automatic)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-sample", action="store_true")
    p.add_argument("--json", default="", help="also write the results as JSON to this path")
    p.add_argument("--precision-table", action="store_true",
                   help="only: fp32 vs bf16 training samples/s at the --presets' width and batch")
    p.add_argument("--compile-table", action="store_true", help="only: eager vs torch.compile training at the --presets")
    p.add_argument("--presets", default="h36m_cpu", help="comma-separated config presets for the tables")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds for --precision-table")
    p.add_argument("--cpu-time", action="store_true",
                   help="--precision-table: time with the process CPU clock instead of the wall clock "
                        "(a machine shared with other jobs; use with --threads 1)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dims = [int(d) for d in args.dims.split(",") if d]
    precisions = [torch.bfloat16] if cuda else ([None, torch.bfloat16] if args.amp else [None])
    train_precisions = [torch.bfloat16] if cuda else [None, torch.bfloat16]
    rows = args.sample_batch or (256 if args.quick else (16384 if cuda else 2048))
    train_repeats = args.repeats or (2 if args.quick else (20 if cuda else 5))
    sample_repeats = args.repeats or (1 if args.quick else (5 if cuda else 2))
    compile_mode = args.compile_mode if args.compile else None
    samplers = [("ddpm", 100), ("ddim", 2), ("ddim", 5), ("ddim", 10), ("ddim", 20)]
    combos = [(1, False), (10, True)] if args.quick else [(1, False), (1, True), (10, False), (10, True)]

    env = environment_info()
    header = {"device": env["cuda"] or f"cpu ({torch.get_num_threads()} threads)", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "precisions": ", ".join(_precision(d) for d in precisions),
              "compile": compile_mode or "off", "quick": args.quick, "git": env["git_commit"]}
    if args.precision_table or args.compile_table:
        names = [n for n in args.presets.split(",") if n]
        header = {"device": env["cuda"] or "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "git": env["git_commit"]}
        results = []
        if args.precision_table:
            results += precision_table(names, device, args.rounds, args.repeats or 10,
                                       clock=time.process_time if args.cpu_time else time.perf_counter,
                                       compile_mode=compile_mode)
            header["clock"] = "process CPU time" if args.cpu_time else "wall clock"
        if args.compile_table:
            results += compile_table(names, device, args.repeats or 30,
                                     clock=time.process_time if args.cpu_time else time.perf_counter)
        print(format_table(results, header))
        if args.json:
            from diffupose.utils import atomic_write_text
            atomic_write_text(args.json, json.dumps({"header": header, "results": results}, indent=2))
        return
    results = []
    for dim in dims:
        if not args.skip_train:
            for amp_dtype in train_precisions:
                log.info("train dim=%d %s", dim, _precision(amp_dtype))
                results.append(bench_train(dim, args.train_batch, device, amp_dtype, compile_mode,
                                           warmup=3 if (cuda and compile_mode) else 1, repeats=train_repeats))
        if not args.skip_sample:
            model = build_denoiser(ModelConfig(dim=dim), H36M17).to(device).eval()
            header[f"params_dim{dim}"] = count_parameters(model)
            net = _compile(model, compile_mode) if compile_mode else model
            for amp_dtype in precisions:
                for num_hypotheses, flip in combos:
                    for sampler, steps in samplers:
                        log.info("sample dim=%d %s-%d H=%d flip=%s %s", dim, sampler, steps, num_hypotheses, flip,
                                 _precision(amp_dtype))
                        results.append(bench_sample(net, dim, sampler, steps, num_hypotheses, flip, rows, device,
                                                    amp_dtype, sample_repeats))
    print(format_table(results, header))
    if args.json:
        from diffupose.utils import atomic_write_text
        atomic_write_text(args.json, json.dumps({"header": header, "results": results}, indent=2))


if __name__ == "__main__":
    main()
