"""Training loop: single process or torchrun DDP, EMA, AMP, exact resume.

Read `train` top to bottom: data -> model/EMA/optimiser -> resume -> the step loop
(learning rate, grad-accumulated diffusion loss, optimiser step, EMA, log, validate,
checkpoint). Everything random comes from explicit generators:

- model initialisation: `torch.manual_seed(cfg.train.seed)` inside a forked RNG;
- the shuffle of epoch e: a CPU generator seeded from (`cfg.train.seed`, e) (so the position
  inside an epoch is recovered from the step count alone);
- noise and timesteps of the loss: one device generator per rank, saved in checkpoints;
- validation: a fresh generator with a fixed seed each time (the curve is not noisier than
  the model).

So a run stopped after k steps and resumed is bit-identical to an uninterrupted one (CPU),
and the same seed gives the same weights.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checkpoint import BEST, CHECKPOINT_DIR, LATEST, load_training_state, save_checkpoint
from .config import Config, TrainConfig
from .ema import ema_decay, ema_update, make_ema
from .errors import ConfigError, DataError
from .skeleton import Skeleton, flip_horizontal
from .utils import atomic_write_text, environment_info, resolve_device

__all__ = ["TrainResult", "train", "read_history", "learning_rate", "epoch_indices", "amp_dtype",
           "LR_SCHEDULES", "HISTORY_FILE"]

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "exponential", "cosine")
HISTORY_FILE = "history.jsonl"
HISTORY_KEYS = ("step", "epoch", "loss", "loss_eps", "loss_2d", "lr", "samples_per_s",
                "val_mpjpe", "val_loss", "time_s")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int                        # optimiser steps done (in total, across resumes)
    best_val_mpjpe: float | None      # mm, EMA weights, held-out training data
    history: list[dict] = field(repr=False)
    wall_time_s: float = 0.0          # this call
    model: torch.nn.Module | None = field(default=None, repr=False)      # raw weights, eval mode
    ema_model: torch.nn.Module | None = field(default=None, repr=False)  # what evaluation uses


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """Rows of `history.jsonl` (safe to call while training runs: a partial last line is skipped)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


# ---------------------------------------------------------------------------- schedules, data


def learning_rate(tc: TrainConfig, step: int, epoch: int, total_steps: int) -> float:
    """Learning rate of optimiser step `step` (0-based), which lies in epoch `epoch`.

    constant (released): lr. exponential (paper): lr * lr_decay ** epoch. cosine: from lr down
    to lr * min_lr_ratio at `total_steps`. All three start with a linear warm-up of
    `warmup_steps` steps (0 = none).
    """
    if tc.warmup_steps > 0 and step < tc.warmup_steps:
        warm = (step + 1) / tc.warmup_steps
    else:
        warm = 1.0
    if tc.lr_schedule == "constant":
        return tc.lr * warm
    if tc.lr_schedule == "exponential":
        return tc.lr * warm * tc.lr_decay ** epoch
    if tc.lr_schedule == "cosine":
        if warm < 1.0:
            return tc.lr * warm
        progress = (step - tc.warmup_steps) / max(1, total_steps - tc.warmup_steps)
        progress = min(max(progress, 0.0), 1.0)
        return tc.lr * (tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ConfigError(f"unknown train.lr_schedule {tc.lr_schedule!r}; known: {list(LR_SCHEDULES)}")


def epoch_indices(num_samples: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's shuffled sample indices for one epoch, with DistributedSampler semantics:
    the same permutation on every rank (a function of seed and epoch only, so a resumed run
    recomputes it), padded by wrapping to a multiple of world_size, then sliced
    rank::world_size (equal lengths)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)   # seeds 0 and 1 never share an order
    perm = torch.randperm(num_samples, generator=g)
    total = math.ceil(num_samples / world_size) * world_size
    if total > num_samples:
        perm = perm.repeat(math.ceil(total / num_samples))[:total]
    return perm[rank::world_size]


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for train.amp: auto = bf16 on CUDA if supported else fp16, off on CPU."""
    if mode == "off":
        return None
    if mode == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA device; use bf16 or off on the CPU")
        return torch.float16
    raise ConfigError(f"unknown train.amp {mode!r}; known: auto, bf16, fp16, off")


@dataclass
class TrainingData:
    poses_3d: torch.Tensor       # (N, J, 3) metres, root-relative, camera frame (flip-doubled)
    keypoints_2d: torch.Tensor   # (N, J, 2) normalised screen coordinates
    val_poses_3d: torch.Tensor   # (V, J, 3)
    val_keypoints_2d: torch.Tensor
    skeleton: Skeleton


def load_training_data(cfg: Config, device: torch.device) -> TrainingData:
    """Train split (doubled with mirrored copies when flip_augment, as released) and a
    fixed-seed subsample of the val split, as tensors on `device`."""
    from .data.prepared import load_prepared

    data = load_prepared(cfg.data.path)
    train = data.select(split=cfg.data.train_split)
    if len(train) == 0:
        raise DataError(f"{cfg.data.path}: no samples in split {cfg.data.train_split!r}")
    val = data.select(split=cfg.data.val_split, max_samples=cfg.data.max_val_samples, seed=0)
    poses = torch.from_numpy(np.ascontiguousarray(train.poses_3d, dtype=np.float32))
    keypoints = torch.from_numpy(np.ascontiguousarray(train.keypoints_2d, dtype=np.float32))
    if cfg.data.flip_augment:
        poses = torch.cat([poses, flip_horizontal(poses, data.skeleton)])
        keypoints = torch.cat([keypoints, flip_horizontal(keypoints, data.skeleton)])
    return TrainingData(
        poses.to(device), keypoints.to(device),
        torch.from_numpy(np.ascontiguousarray(val.poses_3d, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(val.keypoints_2d, dtype=np.float32)).to(device),
        data.skeleton,
    )


# ---------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False
    comm_device: torch.device = torch.device("cpu")   # where collectives run (CUDA for nccl)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.comm_device)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """All ranks' copies of a same-shaped tensor (CPU), in rank order."""
        if self.world_size == 1:
            return [t]
        t = t.to(self.comm_device)
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, t)
        return [o.cpu() for o in out]

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's BatchNorm statistics on every rank (DDP only copies them at the start of the
        next forward, so without this each rank's EMA would average its own statistics)."""
        if self.world_size > 1:
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    """torchrun (WORLD_SIZE > 1): one process per device; nccl on CUDA, gloo on the CPU."""
    device = resolve_device(device_name)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist(), device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    comm_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return _Dist(rank=rank, world_size=world_size, owns_group=owns, comm_device=comm_device), device


# ---------------------------------------------------------------------------- helpers


def _rng_state(noise_gen: torch.Generator, dist: _Dist) -> dict[str, Any]:
    state = {"torch_cpu": torch.get_rng_state(), "noise_generator": dist.gather(noise_gen.get_state())}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], noise_gen: torch.Generator, dist: _Dist) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if torch.cuda.is_available() and len(state.get("torch_cuda", [])) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    noise_states = state["noise_generator"]
    if len(noise_states) == dist.world_size:
        noise_gen.set_state(noise_states[dist.rank])
    else:
        log.warning("resuming with %d ranks from a checkpoint of %d: noise generators re-seeded",
                    dist.world_size, len(noise_states))


@torch.no_grad()
def validate(ema: torch.nn.Module, schedule, data: TrainingData, cfg: Config,
             joint_weights: torch.Tensor | None) -> tuple[float, float]:
    """(MPJPE in mm of the mean of val_hypotheses samples, diffusion loss) of `ema` on the val
    subsample; no flip; a fixed-seed generator, so successive validations are comparable.
    Always fp32: x0 is recovered from the noise estimate divided by sqrt(alpha_bar_t) (about
    5e-4 at t = T), which magnifies low-precision rounding."""
    from .diffusion import diffusion_loss
    from .inference import Lifter, SamplingSettings
    from .metrics import mpjpe

    tc = cfg.train
    device = data.val_poses_3d.device
    gen = torch.Generator(device=device).manual_seed(tc.seed + 7919)
    lifter = Lifter.from_model(ema, cfg, data.skeleton)
    settings = SamplingSettings(num_hypotheses=tc.val_hypotheses, sampler=tc.val_sampler, num_steps=tc.val_steps,
                                flip=False)
    errors, loss_sum, n = [], 0.0, len(data.val_poses_3d)
    for start in range(0, n, cfg.eval.batch_size):
        x0 = data.val_poses_3d[start:start + cfg.eval.batch_size]
        y = data.val_keypoints_2d[start:start + cfg.eval.batch_size]
        hypotheses = lifter.sample_tensor(y, settings, generator=gen)
        errors.append(mpjpe(hypotheses.mean(dim=1), x0))
        loss, _ = diffusion_loss(ema, schedule, x0, y, joint_weights=joint_weights,
                                 lambda_2d=cfg.diffusion.lambda_2d, kind=cfg.diffusion.loss, generator=gen)
        loss_sum += float(loss) * len(x0)
    return 1000.0 * float(np.concatenate(errors).mean()), loss_sum / n


class _Window:
    """Sample-weighted running sums of the loss parts between two history rows (kept as
    device tensors, so logging costs no host sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.t0 = time.perf_counter()

    def add(self, parts: dict[str, torch.Tensor], n: int) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.float() * n
        self.n += n

    def means(self) -> dict[str, float | None]:
        return {k: float(self.sums[k]) / self.n if self.n and k in self.sums else None
                for k in ("loss", "loss_eps", "loss_2d")}

    def samples_per_s(self, world_size: int) -> float:
        return self.n * world_size / max(time.perf_counter() - self.t0, 1e-9)


def _check_train_config(tc: TrainConfig) -> None:
    for name in ("batch_size", "grad_accum", "ema_every", "log_every", "checkpoint_every"):
        if getattr(tc, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {getattr(tc, name)}")
    if tc.max_steps <= 0 and tc.epochs <= 0:
        raise ConfigError("set train.max_steps or train.epochs to a positive number")
    if not 0.0 <= tc.ema_decay <= 1.0:
        raise ConfigError(f"train.ema_decay must lie in [0, 1], got {tc.ema_decay}")


def _prepare_run_dir(run_dir: Path, cfg: Config, resumed_step: int | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if resumed_step is None and (run_dir / CHECKPOINT_DIR).exists():
        log.warning("%s: starting over (resume=False); removing its old checkpoints", run_dir)
        shutil.rmtree(run_dir / CHECKPOINT_DIR)
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    atomic_write_text(run_dir / "environment.json", json.dumps(environment_info(), indent=2))
    # Rows logged after the checkpoint we resume from would appear twice: drop them.
    rows = [r for r in read_history(run_dir) if resumed_step is not None and r["step"] <= resumed_step]
    atomic_write_text(run_dir / HISTORY_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def _append_history(run_dir: Path, row: dict) -> None:
    with open(run_dir / HISTORY_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------------- the loop


def train(cfg: Config, out_dir: str | os.PathLike, *, resume: bool = True, progress: bool = True,
          callback: Callable[[dict], Any] | None = None) -> TrainResult:
    """Train a denoiser on `cfg.data.path`; write the run to `out_dir`.

    Resumes exactly from `out_dir/checkpoint/latest` when present (and `resume`). Stops at
    `max_steps` (or `epochs`), after `max_minutes` of wall clock in this call, or when
    `callback(row)` returns a true value; `callback` sees every history row (rank 0).
    Under torchrun the per-rank batch is `batch_size`; rank 0 logs, validates and saves.
    """
    from tqdm.auto import tqdm

    from .diffusion import NoiseSchedule, diffusion_loss
    from .masking import random_joint_mask
    from .model import build_denoiser

    t_call = time.perf_counter()
    tc = cfg.train
    _check_train_config(tc)
    amp_dtype(tc.amp, resolve_device(tc.device))      # refuse a bad AMP setting before any work
    run_dir = Path(out_dir)
    dist, device = _setup_distributed(tc.device)
    try:
        # --- data, model, EMA, optimiser
        data = load_training_data(cfg, device)
        skeleton = data.skeleton
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tc.seed)
            denoiser = build_denoiser(cfg.model, skeleton).to(device)
        ema = make_ema(denoiser)
        optimizer = torch.optim.Adam(denoiser.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        autocast_dtype = amp_dtype(tc.amp, device)
        scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
        schedule = NoiseSchedule.from_config(cfg.diffusion).to(device)
        joint_weights = (torch.tensor(skeleton.loss_weights, dtype=torch.float32, device=device)
                         if cfg.diffusion.joint_weights else None)
        noise_gen = torch.Generator(device=device).manual_seed(tc.seed + 1_000_003 * (dist.rank + 1))

        # --- resume
        step, best_val, time_before = 0, math.inf, 0.0
        latest_dir = run_dir / CHECKPOINT_DIR / LATEST
        resumed = resume and latest_dir.is_dir()
        if resumed:
            state = load_training_state(latest_dir, model=denoiser, ema_model=ema, optimizer=optimizer,
                                        scaler=scaler)
            step = state["step"]
            best_val = state["extra"].get("best_val_mpjpe", math.inf)
            time_before = state["extra"].get("time_s", 0.0)
            _set_rng_state(state["rng"], noise_gen, dist)
            log.info("resuming %s at step %d", latest_dir, step)
        if dist.is_main:
            _prepare_run_dir(run_dir, cfg, step if resumed else None)
        dist.barrier()

        model = denoiser
        if dist.world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                denoiser, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.model.released_unused_film)
        ddp_model = model
        if tc.compile:
            model = torch.compile(model)

        # --- budget: micro-batches per rank, optimiser steps per epoch
        num_samples = len(data.poses_3d)
        per_rank = math.ceil(num_samples / dist.world_size)
        micro = min(tc.batch_size, max(1, per_rank // tc.grad_accum))
        steps_per_epoch = max(1, per_rank // (micro * tc.grad_accum))
        total_steps = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
        has_val = len(data.val_poses_3d) > 0 and tc.val_every > 0
        if not has_val:
            log.warning("no validation (empty %r split or val_every=0): no best checkpoint", cfg.data.val_split)

        def save(which: str) -> None:  # collective: every rank contributes its RNG state
            rng = _rng_state(noise_gen, dist)
            if dist.is_main:
                save_checkpoint(run_dir / CHECKPOINT_DIR / which, model=denoiser, ema_model=ema,
                                optimizer=optimizer, scaler=scaler, step=step, epoch=step // steps_per_epoch,
                                config=cfg, skeleton=skeleton, rng_state=rng,
                                extra={"best_val_mpjpe": best_val, "time_s": time_before + time.perf_counter() - t_call,
                                       "steps_per_epoch": steps_per_epoch, "world_size": dist.world_size})
            dist.barrier()

        bar = tqdm(total=total_steps, initial=step, desc="train", disable=not (progress and dist.is_main),
                   dynamic_ncols=True)
        window = _Window()
        perm, perm_epoch = None, -1
        while step < total_steps:
            epoch, batch_in_epoch = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:
                perm = epoch_indices(num_samples, epoch, tc.seed, dist.rank, dist.world_size).to(device)
                perm_epoch = epoch
            lr = learning_rate(tc, step, epoch, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # one optimiser step = grad_accum micro-batches (DDP syncs gradients on the last)
            model.train()
            for k in range(tc.grad_accum):
                start = (batch_in_epoch * tc.grad_accum + k) * micro
                idx = perm[start:start + micro]
                last = k == tc.grad_accum - 1
                with nullcontext() if last or dist.world_size == 1 else ddp_model.no_sync():
                    keypoint_mask = (random_joint_mask(len(idx), skeleton, joint_prob=tc.joint_dropout,
                                                       limb_prob=tc.limb_dropout, generator=noise_gen, device=device)
                                     if tc.joint_dropout > 0 or tc.limb_dropout > 0 else None)
                    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                        loss, parts = diffusion_loss(model, schedule, data.poses_3d[idx], data.keypoints_2d[idx],
                                                     joint_weights=joint_weights, lambda_2d=cfg.diffusion.lambda_2d,
                                                     kind=cfg.diffusion.loss, generator=noise_gen,
                                                     return_parts=False, keypoint_mask=keypoint_mask)
                    scaler.scale(loss / tc.grad_accum).backward()
                window.add(parts, len(idx))
            if tc.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(denoiser.parameters(), tc.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            dist.sync_buffers(denoiser)
            if step % tc.ema_every == 0:
                ema_update(ema, denoiser, ema_decay(tc.ema_decay, step // tc.ema_every - 1))
            bar.update(1)

            # --- log, validate, checkpoint, stop
            out_of_time = tc.max_minutes > 0 and time.perf_counter() - t_call > 60 * tc.max_minutes
            final = dist.agree(step >= total_steps or out_of_time) if tc.max_minutes > 0 else step >= total_steps
            do_val = has_val and (step % tc.val_every == 0 or final)
            row = None
            if step % tc.log_every == 0 or final or do_val:
                row = {"step": step, "epoch": round(step / steps_per_epoch, 4), **window.means(), "lr": lr,
                       "samples_per_s": window.samples_per_s(dist.world_size), "val_mpjpe": None, "val_loss": None}
            improved = False
            if do_val and dist.is_main:
                row["val_mpjpe"], row["val_loss"] = validate(ema, schedule, data, cfg, joint_weights)
                improved = row["val_mpjpe"] < best_val
                best_val = min(best_val, row["val_mpjpe"])
            if do_val and dist.agree(improved):
                save(BEST)
            stop = False
            if row is not None and dist.is_main:
                row["time_s"] = time_before + time.perf_counter() - t_call
                _append_history(run_dir, row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}")
                log.info("step %d loss %.4f lr %.2e val_mpjpe %s", step, row["loss"], lr, row["val_mpjpe"])
                stop = bool(callback(row)) if callback is not None else False
            if callback is not None and row is not None:
                stop = dist.agree(stop)
            if final or stop or step % tc.checkpoint_every == 0:
                save(LATEST)
            if row is not None:
                window = _Window()
            if final or stop:
                break
        bar.close()
        history = read_history(run_dir) if dist.is_main else []
        return TrainResult(run_dir=run_dir, steps=step, best_val_mpjpe=None if math.isinf(best_val) else best_val,
                           history=history, wall_time_s=time.perf_counter() - t_call,
                           model=denoiser.eval(), ema_model=ema)
    finally:
        if dist.owns_group:
            torch.distributed.destroy_process_group()
