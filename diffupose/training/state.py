"""Everything one `train` call works with (`RunState`): the denoiser and its wrappers, EMA,
optimiser, AMP scaler, noise schedule and generators, built seeded (`build_run`), started from
another run (`init_from`), restored from a checkpoint (`restore`) and saved (`save`)."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..diffusion import build_process
from ..errors import ConfigError
from ..inference.lifter import Lifter
from ..inference.zoo import model_path
from ..model import build_denoiser
from ..model.checkpoint import CHECKPOINT_DIR, load_training_state, save_checkpoint
from ..model.ema import make_ema, set_num_updates
from .data import Budget, TrainingData, step_budget
from .distributed import Dist, rng_state, set_rng_state
from .optim import amp_dtype, should_compile
from .reflow import ReflowTeacher, load_teacher

__all__ = ["RunState", "build_run", "init_from", "restore", "save"]

log = logging.getLogger("diffupose.train")


@dataclass
class RunState:
    """Everything one call of `train` works with; `step`, `best_val` and `time_before` change."""
    cfg: Config
    run_dir: Path
    dist: Dist
    device: torch.device
    data: TrainingData
    identity: dict
    budget: Budget
    denoiser: torch.nn.Module          # the plain module (weights, saved as model.safetensors)
    model: torch.nn.Module             # what the loss calls: DDP- and/or torch.compile-wrapped
    ddp_model: torch.nn.Module         # the DDP wrapper (for no_sync), or the denoiser
    ema: torch.optim.swa_utils.AveragedModel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Any                      # diffusion NoiseSchedule, or FlowPath (objective flow)
    joint_weights: torch.Tensor | None
    noise_gen: torch.Generator
    autocast_dtype: torch.dtype | None
    t_call: float
    compiled: bool = False             # run.model is torch.compile'd (until a compile failure)
    scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
    step: int = 0
    best_val: float = math.inf
    time_before: float = 0.0           # training seconds of earlier calls (resumed runs)
    stopped_by_time_cap: bool = False  # train.max_minutes ended this call before the step budget
    teacher: ReflowTeacher | None = None  # train.reflow_from: the model whose sampler the loss follows

    def elapsed(self) -> float:
        return self.time_before + time.perf_counter() - self.t_call


def build_run(cfg: Config, run_dir: Path, data: TrainingData, identity: dict, dist: Dist, device: torch.device,
           t_call: float) -> RunState:
    """Denoiser (seeded), its EMA, Adam, the AMP scaler, the noise schedule and the per-rank
    noise generator; DDP / torch.compile wrappers around the denoiser when asked for."""
    tc = cfg.train
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        denoiser = build_denoiser(cfg.model, data.skeleton).to(device)
    model = ddp_model = denoiser
    if dist.world_size > 1:
        model = ddp_model = torch.nn.parallel.DistributedDataParallel(
            denoiser, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.released_unused_film)
    budget = step_budget(tc, len(data.poses_3d), dist.world_size)
    compiled = should_compile(tc, device, budget.total_steps)
    if compiled:
        if device.type == "cpu":   # in-process compilation: the worker pool stalled for minutes on 2 busy cores
            import torch._inductor.config as inductor_config
            inductor_config.compile_threads = 1
        model = torch.compile(model)
        log.info("torch.compile (train.compile=%s): the first step compiles (minutes on a CPU; cached afterwards)",
                 tc.compile)
    autocast_dtype = amp_dtype(tc.amp, device)
    joint_weights = (torch.tensor(data.skeleton.loss_weights, dtype=torch.float32, device=device)
                     if cfg.diffusion.joint_weights else None)
    return RunState(
        cfg=cfg, run_dir=run_dir, dist=dist, device=device, data=data, identity=identity,
        budget=budget, compiled=compiled,
        denoiser=denoiser, model=model, ddp_model=ddp_model, ema=make_ema(denoiser, tc.ema_decay),
        optimizer=torch.optim.Adam(denoiser.parameters(), lr=tc.lr, weight_decay=tc.weight_decay),
        scaler=torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16),
        schedule=build_process(cfg.diffusion).to(device), joint_weights=joint_weights,
        noise_gen=torch.Generator(device=device).manual_seed(tc.seed + 1_000_003 * (dist.rank + 1)),
        autocast_dtype=autocast_dtype, t_call=t_call, teacher=load_teacher(cfg, data.skeleton, device),
    )


def init_from(run: RunState, source: str) -> None:
    """Start a fresh run from the final EMA weights of another run (train.init_from): every
    parameter is copied; one that grew (the missing-joint input channel when the source was
    trained without it) gets the source's values in its leading slice and zeros in the rest, so
    the new model computes what the source did as long as nothing is missing. Any other
    difference (architecture, width, skeleton) is a one-line ConfigError naming the parameter."""
    src = Lifter.load(model_path(source), checkpoint="ema", device=run.device)
    if src.skeleton.name != run.data.skeleton.name:
        raise ConfigError(f"train.init_from {source}: skeleton {src.skeleton.name}, the data's is {run.data.skeleton.name}")
    theirs, ours = src.denoiser.state_dict(), run.denoiser.state_dict()
    if set(theirs) != set(ours):
        diff = sorted(set(theirs) ^ set(ours))
        raise ConfigError(f"train.init_from {source}: another architecture (parameters {diff[:3]} differ); "
                          f"match model.denoiser, model.num_blocks and model.nonlocal_block")
    grown = []
    with torch.no_grad():
        for name, target in ours.items():
            value = theirs[name].to(device=target.device, dtype=target.dtype)
            if value.shape == target.shape:
                target.copy_(value)
                continue
            wider = [d for d in range(target.ndim) if target.shape[d] != value.shape[d]]
            if value.ndim != target.ndim or len(wider) != 1 or target.shape[wider[0]] < value.shape[wider[0]]:
                raise ConfigError(f"train.init_from {source}: parameter {name} is {tuple(value.shape)} there, "
                                  f"{tuple(target.shape)} here (match model.dim)")
            target.zero_()
            target.narrow(wider[0], 0, value.shape[wider[0]]).copy_(value)
            grown.append(name)
    run.ema = make_ema(run.denoiser, run.cfg.train.ema_decay)
    log.info("initialised from %s (final EMA weights)%s", source,
             f"; zero-initialised the new part of {', '.join(grown)}" if grown else "")


def restore(run: RunState, ckpt: Path) -> None:
    """Load weights, EMA (and its update count), optimiser, scaler, RNG streams, step and best
    val of `ckpt` into `run`."""
    state = load_training_state(ckpt, model=run.denoiser, ema_model=run.ema, optimizer=run.optimizer,
                                scaler=run.scaler)
    run.step = state["step"]
    set_num_updates(run.ema, run.step // run.cfg.train.ema_every)
    set_rng_state(state["rng"], run.noise_gen, run.dist)
    extra = state["extra"]
    run.best_val = extra.get("best_val_mpjpe", math.inf)
    run.time_before = extra.get("time_s", 0.0)
    stored = extra.get("data") or {}
    if stored.get("train_samples", run.identity["train_samples"]) != run.identity["train_samples"]:
        raise ConfigError(f"{run.run_dir}: refusing to resume: {stored['train_samples']} training samples in the "
                          f"run, {run.identity['train_samples']} now")
    log.info("resuming %s at step %d", ckpt, run.step)


def save(run: RunState, which: str) -> None:
    """Checkpoint `which` (latest | best). Collective: every rank contributes its RNG state;
    rank 0 writes. save_checkpoint refuses non-finite weights."""
    rng = rng_state(run.noise_gen, run.dist)
    if run.dist.is_main:
        save_checkpoint(run.run_dir / CHECKPOINT_DIR / which, model=run.denoiser, ema_model=run.ema,
                        optimizer=run.optimizer, scaler=run.scaler, step=run.step,
                        epoch=run.step // run.budget.steps_per_epoch, config=run.cfg, skeleton=run.data.skeleton,
                        rng_state=rng, extra={"best_val_mpjpe": run.best_val, "time_s": run.elapsed(),
                                              "steps_per_epoch": run.budget.steps_per_epoch,
                                              "world_size": run.dist.world_size, "data": run.identity})
    run.dist.barrier()
