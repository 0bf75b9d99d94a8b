"""How a training computes: mixed precision (`amp_dtype`), the learning-rate schedule
(`lr_factor`, `build_lr_scheduler`) and whether to torch.compile (`should_compile`)."""
from __future__ import annotations

import importlib.util
import math
import shutil
from typing import Callable

import torch

from ..config import COMPILE_AUTO_MIN_STEPS, LR_SCHEDULES, TrainConfig
from ..errors import ConfigError
from ..utils import cpu_has_native_bf16

__all__ = ["cpu_has_native_bf16", "amp_dtype", "lr_factor", "build_lr_scheduler", "should_compile"]


def amp_dtype(mode: str, device: torch.device | str) -> torch.dtype | None:
    """Autocast dtype for an `amp` setting (train.amp; the one place it is decided, for training
    and sampling): auto = bf16 on CUDA when supported (else fp16) and on CPUs with native bf16
    (else off); bf16; fp16 (CUDA only); off = None (fp32)."""
    device = torch.device(device)
    if mode == "off":
        return None
    if mode == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; use bf16 or off on the CPU")
        return torch.float16
    raise ConfigError(f"unknown train.amp {mode!r}; known: auto, bf16, fp16, off")


def lr_factor(tc: TrainConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """The multiplier of `tc.lr` at optimiser step `step` (0-based), for `LambdaLR`.

    constant (released): 1. exponential (paper): lr_decay ** epoch. cosine: from 1 down to
    min_lr_ratio at `total_steps`. All three start with a linear warm-up of `warmup_steps`
    steps (0 = none). A closed form of the step (rather than LinearLR + CosineAnnealingLR in
    a SequentialLR) because the horizon may grow on resume (a larger max_steps), which those
    schedulers' stored, recursively updated state cannot follow.
    """
    warmup, schedule = tc.warmup_steps, tc.lr_schedule
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"unknown train.lr_schedule {schedule!r}; known: {list(LR_SCHEDULES)}")

    def factor(step: int) -> float:
        warm = (step + 1) / warmup if warmup > 0 and step < warmup else 1.0
        if schedule == "constant":
            return warm
        if schedule == "exponential":
            return warm * tc.lr_decay ** (step // steps_per_epoch)
        if warm < 1.0:
            return warm
        progress = min(max((step - warmup) / max(1, total_steps - warmup), 0.0), 1.0)
        return tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_lr_scheduler(optimizer: torch.optim.Optimizer, tc: TrainConfig, steps_per_epoch: int,
                       total_steps: int, start_step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """`LambdaLR` over `lr_factor`, positioned so the next optimiser step (number `start_step`)
    uses lr * factor(start_step); call `.step()` after each optimiser step. Nothing of it needs
    saving: on resume it is rebuilt from the step count."""
    for group in optimizer.param_groups:
        group["initial_lr"] = tc.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(tc, steps_per_epoch, total_steps),
                                             last_epoch=start_step - 1)


def should_compile(tc: TrainConfig, device: torch.device, total_steps: int) -> bool:
    """train.compile: on / off; auto = on for runs of at least COMPILE_AUTO_MIN_STEPS steps where
    torch.compile has a backend (CUDA with triton; a CPU with a C++ compiler). At the h36m_cpu
    preset a cold compile costs ~100 CPU-seconds and then trains 1.3-1.8x faster
    (benchmarks/throughput.py --compile-table): it pays back within ~7 minutes of a one-hour
    run; short runs (tests, demo) stay eager."""
    if tc.compile != "auto":
        return tc.compile == "on"
    if total_steps < COMPILE_AUTO_MIN_STEPS:
        return False
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return device.type == "cpu" and any(shutil.which(c) for c in ("g++", "c++", "clang++"))
