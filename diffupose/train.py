"""Training loop: single process or torchrun DDP, EMA, AMP, exact resume.

Read `train` top to bottom; each line is one named step below it:

1. `_open_run`: decide before any work whether `out_dir` is resumed, started or refused
   (an existing run is never replaced without `overwrite`; a resumed run must have been
   trained on the same data file and config), and repair checkpoints a crash left half-swapped;
2. `load_training_data`: the train split (flip-doubled) and a fixed val subsample, on the device;
3. `_build`: denoiser, EMA (`AveragedModel`), Adam, AMP scaler, noise schedule;
4. `_restore`: weights, optimiser, EMA count and RNG streams of the checkpoint (on resume);
5. `build_lr_scheduler`: the learning-rate schedule (`LambdaLR`) positioned at the current step;
6. `_loop`: `_train_step` (grad-accumulated `_loss`, optimiser, schedule, EMA), then
   `_after_step` (history row, validation, best/latest checkpoints, stop conditions).

Everything random comes from explicit generators:

- model initialisation: `torch.manual_seed(cfg.train.seed)` inside a forked RNG;
- the shuffle of epoch e: a CPU generator seeded from (`cfg.train.seed`, e) (so the position
  inside an epoch is recovered from the step count alone);
- noise and timesteps of the loss: one device generator per rank, saved in checkpoints;
- validation: a fresh generator with a fixed seed each time (the curve is not noisier than
  the model).

So a run stopped after k steps and resumed is bit-identical to an uninterrupted one (CPU),
and the same seed gives the same weights. A non-finite loss stops training with
`TrainingDiverged`; no checkpoint is written after it.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
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

from .checkpoint import (BEST, CHECKPOINT_DIR, LATEST, has_checkpoint, load_training_state, read_training_state,
                         recover_interrupted_saves, save_checkpoint)
from .config import COMPILE_AUTO_MIN_STEPS, LR_SCHEDULES, Config, TrainConfig
from .ema import make_ema, set_num_updates
from .errors import CheckpointError, ConfigError, DataError, DiffuPoseError
from .data.detector_noise import DetectorNoise
from .data.layout_mix import LayoutMix
from .skeleton import Skeleton, flip_horizontal
from .utils import atomic_write_text, environment_info, resolve_device

__all__ = ["TrainResult", "TrainingDiverged", "train", "validate", "read_history", "lr_factor",
           "build_lr_scheduler", "epoch_indices", "amp_dtype", "cpu_has_native_bf16", "data_identity",
           "load_training_data", "LR_SCHEDULES", "HISTORY_FILE", "HISTORY_KEYS", "RESUMABLE_CHANGES"]

log = logging.getLogger(__name__)      # "diffupose.train": the periodic progress line

HISTORY_FILE = "history.jsonl"
HISTORY_KEYS = ("step", "epoch", "loss", "loss_eps", "loss_2d", "lr", "samples_per_s",
                "val_mpjpe", "val_loss", "time_s")
PROGRESS_EVERY_S = 10.0                # seconds between progress log lines
# Config keys a resumed run may change: budget, logging cadence, execution and evaluation
# settings. Anything else differing from the run's config refuses the resume.
RESUMABLE_CHANGES = ("train.max_steps", "train.epochs", "train.max_minutes", "train.log_every",
                     "train.val_every", "train.checkpoint_every", "train.device", "train.amp",
                     "train.compile", "data.path", "eval.")


class TrainingDiverged(DiffuPoseError):
    """The loss became NaN/inf: training stopped, the last finite checkpoint is kept."""


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


# ---------------------------------------------------------------------------- precision


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX-BF16; Arm BF16), read
    from /proc/cpuinfo; elsewhere bf16 autocast is emulated and slower than fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


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


# ---------------------------------------------------------------------------- schedule, data


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


@dataclass
class TrainingData:
    poses_3d: torch.Tensor       # (N, J, 3) metres, root-relative, camera frame (flip-doubled)
    keypoints_2d: torch.Tensor   # (N, J, 2) normalised screen coordinates
    val_poses_3d: torch.Tensor   # (V, J, 3)
    val_keypoints_2d: torch.Tensor
    skeleton: Skeleton
    keypoints_2d_gt: torch.Tensor | None = None   # (N, J, 2) projected GT (input_2d gt+noise / mix)
    noise: DetectorNoise | None = None            # measured detector error (input_2d gt+noise / mix)
    input_2d: str = "file"
    mix_detected: float = 0.5
    layouts: LayoutMix | None = None              # train.input_layouts other than h36m17 alone

    def inputs(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The 2D input of the samples `idx` for one training step (train.input_2d, then the
        layout round trip of train.input_layouts)."""
        x = self._inputs_2d(idx, generator)
        return x if self.layouts is None else self.layouts.apply(x, generator)

    def _inputs_2d(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.noise is None:
            return self.keypoints_2d[idx]
        noisy = self.noise.apply(self.keypoints_2d_gt[idx], generator)
        if self.input_2d == "gt+noise":
            return noisy
        use_detection = torch.rand(len(idx), generator=generator, device=noisy.device) < self.mix_detected
        return torch.where(use_detection[:, None, None], self.keypoints_2d[idx], noisy)


def load_training_data(cfg: Config, device: torch.device) -> TrainingData:
    """Train split (doubled with mirrored copies when flip_augment, as released) and a
    fixed-seed subsample of the val split, as tensors on `device` (indexed there each step:
    no host-side input pipeline in the loop)."""
    from .data.prepared import load_prepared

    data = load_prepared(cfg.data.path)
    train = data.select(split=cfg.data.train_split)
    if len(train) == 0:
        raise DataError(f"{cfg.data.path}: no samples in split {cfg.data.train_split!r}")
    val = data.select(split=cfg.data.val_split, max_samples=cfg.data.max_val_samples, seed=0)
    mode = cfg.train.input_2d
    if mode != "file" and train.keypoints_2d_gt is None:
        raise DataError(f"{cfg.data.path}: train.input_2d={mode} needs detections with the ground-truth 2D kept "
                        f"beside them (keypoints_2d_gt); prepare with detections, e.g. --keypoints sh")
    flip = cfg.data.flip_augment

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return (torch.cat([t, flip_horizontal(t, data.skeleton)]) if flip else t).to(device)

    keypoints = tensor(train.keypoints_2d_gt if mode == "gt" else train.keypoints_2d)
    extra = {}
    if mode in ("gt+noise", "mix"):
        noise = DetectorNoise.measure(train.keypoints_2d, train.keypoints_2d_gt, data.skeleton, mirrored=flip,
                                      seed=cfg.train.seed, device=device)
        extra = {"keypoints_2d_gt": tensor(train.keypoints_2d_gt), "noise": noise, "input_2d": mode,
                 "mix_detected": cfg.train.mix_detected}
    layouts = [v.strip() for v in cfg.train.input_layouts.split(",")]
    if layouts != ["h36m17"]:
        if data.skeleton.name != "h36m17":
            raise ConfigError(f"train.input_layouts={cfg.train.input_layouts}: layouts map to H36M-17, but the data "
                              f"uses {data.skeleton.name}")
        extra["layouts"] = LayoutMix.build(layouts, device=device)
    return TrainingData(
        tensor(train.poses_3d), keypoints,
        torch.from_numpy(np.ascontiguousarray(val.poses_3d, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(val.keypoints_2d, dtype=np.float32)).to(device),
        data.skeleton, **extra,
    )


def data_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A cheap identity of a prepared data file, stored with every checkpoint: absolute path,
    size in bytes and the sha256 of its first and last MiB (milliseconds, even for 1 GB)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared data file not found (train.data.path / --data)")
    size, mib = path.stat().st_size, 1 << 20
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(mib))
        if size > mib:
            f.seek(max(mib, size - mib))
            digest.update(f.read())
    return {"path": str(path.resolve()), "size": size, "sha256_head_tail": digest.hexdigest()}


@dataclass(frozen=True)
class _Budget:
    micro: int              # samples per micro-batch per rank
    steps_per_epoch: int    # optimiser steps
    total_steps: int


def _budget(tc: TrainConfig, num_samples: int, world_size: int) -> _Budget:
    """Micro-batches per rank and optimiser steps per epoch; max_steps, or epochs when it is 0."""
    per_rank = math.ceil(num_samples / world_size)
    micro = min(tc.batch_size, max(1, per_rank // tc.grad_accum))
    steps_per_epoch = max(1, per_rank // (micro * tc.grad_accum))
    total_steps = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    return _Budget(micro, steps_per_epoch, total_steps)


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


def _resolve_train_device(name: str) -> torch.device:
    try:
        device = resolve_device(name)
    except RuntimeError as e:
        raise ConfigError(f"train.device {name!r} is not a device name ({' '.join(str(e).split())[:120]})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device {name!r}: no CUDA device is available; use auto or cpu")
    return device


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    """torchrun (WORLD_SIZE > 1): one process per device; nccl on CUDA, gloo on the CPU."""
    device = _resolve_train_device(device_name)
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


# ---------------------------------------------------------------------------- the run directory


def _open_run(run_dir: Path, cfg: Config, identity: dict, *, resume: bool, overwrite: bool,
              dist: _Dist) -> Path | None:
    """The checkpoint to resume from, or None to start a fresh run; decided before any work.

    Repairs what a killed checkpoint swap left behind, then: no run yet, or `overwrite` ->
    fresh (an existing run's checkpoints and history are removed only with `overwrite`);
    an existing run and not `resume` -> ConfigError; otherwise resume from `latest` (or
    `best` when the run was stopped before its first `latest`) after checking that data
    and config match the run.
    """
    root = run_dir / CHECKPOINT_DIR
    if dist.is_main:
        for line in recover_interrupted_saves(root):
            log.warning("%s", line)
    dist.barrier()
    if not has_checkpoint(root):
        return None
    if overwrite:
        if dist.is_main:
            log.warning("%s: replacing the existing run (overwrite): removing its checkpoints and history", run_dir)
            _remove_run(run_dir)
        dist.barrier()
        return None
    ckpt = root / LATEST if (root / LATEST).is_dir() else root / BEST
    step = read_training_state(ckpt)["step"]
    if not resume:
        raise ConfigError(f"{run_dir}: already holds a run (checkpoint at step {step}); pass --overwrite "
                          f"(overwrite=True) to replace it, or resume it (drop --no-resume)")
    _check_resumable(run_dir, ckpt, cfg, identity)
    return ckpt


def _remove_run(run_dir: Path) -> None:
    """Delete a run's checkpoints and history (renamed aside first, so a crash cannot leave a
    half-deleted checkpoint that looks resumable)."""
    doomed = run_dir / f".{CHECKPOINT_DIR}.removed-{os.getpid()}"
    os.replace(run_dir / CHECKPOINT_DIR, doomed)
    (run_dir / HISTORY_FILE).unlink(missing_ok=True)
    shutil.rmtree(doomed, ignore_errors=True)


def _flatten(cfg: Config) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}


def _check_resumable(run_dir: Path, ckpt: Path, cfg: Config, identity: dict) -> None:
    """ConfigError naming what differs when `cfg` or the data file are not those of the run
    (keys in RESUMABLE_CHANGES may differ; a moved but identical data file is accepted)."""
    try:
        stored = Config.from_json(ckpt / "config.json")
    except ConfigError as e:
        raise CheckpointError(f"cannot resume {run_dir}: {e}") from None
    old, new = _flatten(stored), _flatten(cfg)
    differences = [f"{key} is {old.get(key)!r} in the run, {new[key]!r} now" for key in sorted(new)
                   if not key.startswith(RESUMABLE_CHANGES) and old.get(key) != new[key]]
    stored_data = read_training_state(ckpt)["extra"].get("data")
    if stored_data is None:
        log.warning("%s: the run does not record its data file (older version): cannot check that %s is the same",
                    run_dir, identity["path"])
    elif (stored_data.get("size"), stored_data.get("sha256_head_tail")) != (identity["size"], identity["sha256_head_tail"]):
        differences.insert(0, f"data {identity['path']} ({identity['size']} bytes) is not the file the run was "
                              f"trained on ({stored_data.get('path')}, {stored_data.get('size')} bytes)")
    elif stored_data.get("path") != identity["path"]:
        log.info("%s: data file moved from %s (same size and fingerprint)", run_dir, stored_data.get("path"))
    if differences:
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise ConfigError(f"{run_dir}: refusing to resume: {'; '.join(differences[:3])}{more}; resume with the "
                          f"run's data and config, pass --overwrite to start over, or choose another --out")


def _prepare_run_dir(run_dir: Path, cfg: Config, resumed_step: int | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    atomic_write_text(run_dir / "environment.json", json.dumps(environment_info(), indent=2))
    # Rows logged after the checkpoint we resume from would appear twice: drop them.
    rows = [r for r in read_history(run_dir) if resumed_step is not None and r["step"] <= resumed_step]
    atomic_write_text(run_dir / HISTORY_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def _append_history(run_dir: Path, row: dict) -> None:
    with open(run_dir / HISTORY_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------------- model and state


@dataclass
class _Run:
    """Everything one call of `train` works with; `step`, `best_val` and `time_before` change."""
    cfg: Config
    run_dir: Path
    dist: _Dist
    device: torch.device
    data: TrainingData
    identity: dict
    budget: _Budget
    denoiser: torch.nn.Module          # the plain module (weights, saved as model.safetensors)
    model: torch.nn.Module             # what the loss calls: DDP- and/or torch.compile-wrapped
    ddp_model: torch.nn.Module         # the DDP wrapper (for no_sync), or the denoiser
    ema: torch.optim.swa_utils.AveragedModel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Any                      # diffusion NoiseSchedule
    joint_weights: torch.Tensor | None
    noise_gen: torch.Generator
    autocast_dtype: torch.dtype | None
    t_call: float
    compiled: bool = False             # run.model is torch.compile'd (until a compile failure)
    scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
    step: int = 0
    best_val: float = math.inf
    time_before: float = 0.0           # training seconds of earlier calls (resumed runs)

    def elapsed(self) -> float:
        return self.time_before + time.perf_counter() - self.t_call


def _build(cfg: Config, run_dir: Path, data: TrainingData, identity: dict, dist: _Dist, device: torch.device,
           t_call: float) -> _Run:
    """Denoiser (seeded), its EMA, Adam, the AMP scaler, the noise schedule and the per-rank
    noise generator; DDP / torch.compile wrappers around the denoiser when asked for."""
    from .diffusion import NoiseSchedule
    from .model import build_denoiser

    tc = cfg.train
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        denoiser = build_denoiser(cfg.model, data.skeleton).to(device)
    model = ddp_model = denoiser
    if dist.world_size > 1:
        model = ddp_model = torch.nn.parallel.DistributedDataParallel(
            denoiser, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.released_unused_film)
    budget = _budget(tc, len(data.poses_3d), dist.world_size)
    compiled = _should_compile(tc, device, budget.total_steps)
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
    return _Run(
        cfg=cfg, run_dir=run_dir, dist=dist, device=device, data=data, identity=identity,
        budget=budget, compiled=compiled,
        denoiser=denoiser, model=model, ddp_model=ddp_model, ema=make_ema(denoiser, tc.ema_decay),
        optimizer=torch.optim.Adam(denoiser.parameters(), lr=tc.lr, weight_decay=tc.weight_decay),
        scaler=torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16),
        schedule=NoiseSchedule.from_config(cfg.diffusion).to(device), joint_weights=joint_weights,
        noise_gen=torch.Generator(device=device).manual_seed(tc.seed + 1_000_003 * (dist.rank + 1)),
        autocast_dtype=autocast_dtype, t_call=t_call,
    )


def _init_from(run: _Run, source: str) -> None:
    """Start a fresh run from the final EMA weights of another run (train.init_from): every
    parameter is copied; one that grew (the missing-joint input channel when the source was
    trained without it) gets the source's values in its leading slice and zeros in the rest, so
    the new model computes what the source did as long as nothing is missing. Any other
    difference (architecture, width, skeleton) is a one-line ConfigError naming the parameter."""
    from .inference import Lifter

    src = Lifter.load(source, checkpoint="ema", device=run.device)
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


def _should_compile(tc: TrainConfig, device: torch.device, total_steps: int) -> bool:
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


def _restore(run: _Run, ckpt: Path) -> None:
    """Load weights, EMA (and its update count), optimiser, scaler, RNG streams, step and best
    val of `ckpt` into `run`."""
    state = load_training_state(ckpt, model=run.denoiser, ema_model=run.ema, optimizer=run.optimizer,
                                scaler=run.scaler)
    run.step = state["step"]
    set_num_updates(run.ema, run.step // run.cfg.train.ema_every)
    _set_rng_state(state["rng"], run.noise_gen, run.dist)
    extra = state["extra"]
    run.best_val = extra.get("best_val_mpjpe", math.inf)
    run.time_before = extra.get("time_s", 0.0)
    stored = extra.get("data") or {}
    if stored.get("train_samples", run.identity["train_samples"]) != run.identity["train_samples"]:
        raise ConfigError(f"{run.run_dir}: refusing to resume: {stored['train_samples']} training samples in the "
                          f"run, {run.identity['train_samples']} now")
    log.info("resuming %s at step %d", ckpt, run.step)


def _save(run: _Run, which: str) -> None:
    """Checkpoint `which` (latest | best). Collective: every rank contributes its RNG state;
    rank 0 writes. save_checkpoint refuses non-finite weights."""
    rng = _rng_state(run.noise_gen, run.dist)
    if run.dist.is_main:
        save_checkpoint(run.run_dir / CHECKPOINT_DIR / which, model=run.denoiser, ema_model=run.ema,
                        optimizer=run.optimizer, scaler=run.scaler, step=run.step,
                        epoch=run.step // run.budget.steps_per_epoch, config=run.cfg, skeleton=run.data.skeleton,
                        rng_state=rng, extra={"best_val_mpjpe": run.best_val, "time_s": run.elapsed(),
                                              "steps_per_epoch": run.budget.steps_per_epoch,
                                              "world_size": run.dist.world_size, "data": run.identity})
    run.dist.barrier()


# ---------------------------------------------------------------------------- one step


def _loss(run: _Run, poses_3d: torch.Tensor, keypoints_2d: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The diffusion loss (eqs. 8-10) of one micro-batch under autocast: the one place the
    training loss is computed. With train.joint_dropout / limb_dropout, a random keypoint
    mask (True = present) hides joints from the denoiser. Returns (loss, detached parts)."""
    from .diffusion import diffusion_loss
    from .masking import random_joint_mask

    cfg, tc = run.cfg, run.cfg.train
    keypoint_mask = (random_joint_mask(len(poses_3d), run.data.skeleton, joint_prob=tc.joint_dropout,
                                       limb_prob=tc.limb_dropout, generator=run.noise_gen, device=run.device)
                     if tc.joint_dropout > 0 or tc.limb_dropout > 0 else None)
    with torch.autocast(run.device.type, dtype=run.autocast_dtype, enabled=run.autocast_dtype is not None):
        return diffusion_loss(run.model, run.schedule, poses_3d, keypoints_2d, joint_weights=run.joint_weights,
                              lambda_2d=cfg.diffusion.lambda_2d, kind=cfg.diffusion.loss, generator=run.noise_gen,
                              return_parts=False, keypoint_mask=keypoint_mask, prediction=cfg.diffusion.prediction)


def _first_compiled_step(run: _Run, perm: torch.Tensor, window: "_Window") -> torch.Tensor:
    """The first step of a compiled run, where torch.compile builds its kernels. If that fails
    (no working compiler, an unsupported op, ...), one warning and the run continues eagerly
    (the failed step's gradients are dropped; its noise draws are not repeated)."""
    try:
        return _train_step(run, perm, window)
    except Exception as e:  # torch.compile raises backend-specific types (BackendCompilerFailed, InductorError, ...)
        log.warning("torch.compile failed (%s); training continues without it", " ".join(str(e).split())[:200])
        run.optimizer.zero_grad(set_to_none=True)
        run.model, run.compiled = run.ddp_model, False
        return _train_step(run, perm, window)


def _train_step(run: _Run, perm: torch.Tensor, window: "_Window") -> torch.Tensor:
    """One optimiser step = grad_accum micro-batches (DDP syncs gradients on the last), then
    Adam, the LR schedule and the EMA. Returns the last micro-batch's loss (detached)."""
    tc, budget = run.cfg.train, run.budget
    batch_in_epoch = run.step % budget.steps_per_epoch
    run.model.train()
    for k in range(tc.grad_accum):
        start = (batch_in_epoch * tc.grad_accum + k) * budget.micro
        idx = perm[start:start + budget.micro]
        last = k == tc.grad_accum - 1
        with nullcontext() if last or run.dist.world_size == 1 else run.ddp_model.no_sync():
            loss, parts = _loss(run, run.data.poses_3d[idx], run.data.inputs(idx, run.noise_gen))
            run.scaler.scale(loss / tc.grad_accum).backward()
        window.add(parts, len(idx))
    if tc.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.denoiser.parameters(), tc.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    run.step += 1
    run.dist.sync_buffers(run.denoiser)
    if run.step % tc.ema_every == 0:
        run.ema.update_parameters(run.denoiser)
    return loss.detach()


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
                                 lambda_2d=cfg.diffusion.lambda_2d, kind=cfg.diffusion.loss, generator=gen,
                                 prediction=cfg.diffusion.prediction)
        loss_sum += float(loss) * len(x0)
    return 1000.0 * float(np.concatenate(errors).mean()), loss_sum / n


# ---------------------------------------------------------------------------- progress


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


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Progress:
    """What a person watching sees (rank 0): a tqdm bar with loss / lr / val in its postfix,
    and every PROGRESS_EVERY_S seconds (and at each validation) one `diffupose.train` log line:
    step, loss, lr, steps/s, val MPJPE, elapsed and ETA (the log line is what reports relay)."""

    def __init__(self, run: _Run, bar: bool) -> None:
        from tqdm.auto import tqdm

        self.run, self.enabled = run, run.dist.is_main
        self.bar = tqdm(total=run.budget.total_steps, initial=run.step, desc="train", dynamic_ncols=True,
                        disable=not (bar and self.enabled))
        self.last: dict[str, Any] = {}
        self.t_line, self.step_line = time.perf_counter(), run.step
        self.start_step = run.step

    def update(self, row: dict | None, lr: float) -> None:
        """After each optimiser step (taken with `lr`); `row` is its history row, if any."""
        self.bar.update(1)
        if not self.enabled:
            return
        if row is not None:
            self.last.update({k: v for k, v in row.items() if v is not None})
            self.bar.set_postfix(loss=f"{self.last['loss']:.4f}", lr=f"{self.last['lr']:.2e}",
                                 val=f"{self.last['val_mpjpe']:.1f}mm" if "val_mpjpe" in self.last else "-",
                                 refresh=False)
        now = time.perf_counter()
        if now - self.t_line >= PROGRESS_EVERY_S or (row is not None and row["val_mpjpe"] is not None):
            self._line(now, lr)

    def _line(self, now: float, lr: float) -> None:
        run, last = self.run, self.last
        rate = (run.step - self.step_line) / max(now - self.t_line, 1e-9)
        remaining = (run.budget.total_steps - run.step) / max(rate, 1e-9)
        if run.cfg.train.max_minutes > 0:
            remaining = min(remaining, 60 * run.cfg.train.max_minutes - (now - run.t_call))
        best = "" if math.isinf(run.best_val) else f" (best {run.best_val:.1f})"
        val = f"{last['val_mpjpe']:.1f} mm{best}" if "val_mpjpe" in last else "-"
        loss = f"{last['loss']:.4f}" if "loss" in last else "-"
        log.info("step %d/%d | loss %s | lr %.2e | %.1f steps/s | val MPJPE %s | %s elapsed | ETA %s",
                 run.step, run.budget.total_steps, loss, lr, rate, val, _clock(run.elapsed()), _clock(remaining))
        self.t_line, self.step_line = now, run.step

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- the loop


def train(cfg: Config, out_dir: str | os.PathLike, *, resume: bool = True, overwrite: bool = False,
          progress: bool = True, callback: Callable[[dict], Any] | None = None) -> TrainResult:
    """Train a denoiser on `cfg.data.path`; write the run to `out_dir`.

    An existing run in `out_dir` is resumed exactly (`resume`, the default) when its data and
    config match; `resume=False` refuses an existing run unless `overwrite`, which replaces it.
    Stops at `max_steps` (or `epochs`), after `max_minutes` of wall clock in this call, or when
    `callback(row)` returns a true value; `callback` sees every history row (rank 0).
    Under torchrun the per-rank batch is `batch_size`; rank 0 logs, validates and saves.
    `progress`: the tqdm bar (the periodic `diffupose.train` log line is always on).
    """
    t_call = time.perf_counter()
    run_dir = Path(out_dir)
    dist, device = _setup_distributed(cfg.train.device)
    try:
        amp_dtype(cfg.train.amp, device)                      # refuse a bad AMP setting before any work
        identity = data_identity(cfg.data.path)
        resume_from = _open_run(run_dir, cfg, identity, resume=resume, overwrite=overwrite, dist=dist)
        data = load_training_data(cfg, device)
        identity = {**identity, "train_samples": len(data.poses_3d), "val_samples": len(data.val_poses_3d)}
        run = _build(cfg, run_dir, data, identity, dist, device, t_call)
        if resume_from is not None:
            _restore(run, resume_from)
        elif cfg.train.init_from:
            _init_from(run, cfg.train.init_from)
        run.scheduler = build_lr_scheduler(run.optimizer, cfg.train, run.budget.steps_per_epoch,
                                           run.budget.total_steps, start_step=run.step)
        if dist.is_main:
            _prepare_run_dir(run_dir, cfg, run.step if resume_from is not None else None)
        dist.barrier()
        _loop(run, progress, callback)
        return TrainResult(run_dir=run_dir, steps=run.step,
                           best_val_mpjpe=None if math.isinf(run.best_val) else run.best_val,
                           history=read_history(run_dir) if dist.is_main else [],
                           wall_time_s=time.perf_counter() - t_call, model=run.denoiser.eval(), ema_model=run.ema.module)
    finally:
        if dist.owns_group:
            torch.distributed.destroy_process_group()


def _loop(run: _Run, progress: bool, callback: Callable[[dict], Any] | None) -> None:
    """Steps until the budget, the wall clock or the callback says stop."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    if len(run.data.val_poses_3d) == 0 or run.cfg.train.val_every == 0:
        log.warning("no validation (empty %r split or val_every=0): no best checkpoint", run.cfg.data.val_split)
    bar = _Progress(run, bar=progress)
    window, perm, perm_epoch, start_step = _Window(), None, -1, run.step
    with logging_redirect_tqdm() if not bar.bar.disable else nullcontext():
        while run.step < run.budget.total_steps:
            epoch = run.step // run.budget.steps_per_epoch
            if epoch != perm_epoch:            # one device-side permutation per epoch; batches index it
                perm = epoch_indices(len(run.data.poses_3d), epoch, run.cfg.train.seed, run.dist.rank,
                                     run.dist.world_size).to(run.device)
                perm_epoch = epoch
            lr = run.optimizer.param_groups[0]["lr"]
            first_compiled = run.compiled and run.step == start_step
            loss = (_first_compiled_step if first_compiled else _train_step)(run, perm, window)
            if run.device.type == "cpu":       # free on the CPU; accelerators check once per history row
                _check_finite(run, float(loss), lr)
            row, stop = _after_step(run, window, lr, callback)
            bar.update(row, lr)
            if row is not None:
                window = _Window()
            if stop:
                break
    bar.close()


def _check_finite(run: _Run, loss: float, lr: float) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training diverged at step {run.step}: loss {loss}; nothing was saved after "
                               f"it (the last checkpoint in {run.run_dir / CHECKPOINT_DIR} is finite); lower "
                               f"train.lr (now {lr:.3g}) or set train.grad_clip")


def _after_step(run: _Run, window: _Window, lr: float,
                callback: Callable[[dict], Any] | None) -> tuple[dict | None, bool]:
    """History row, validation and the best checkpoint, the latest checkpoint, stop decision.
    Returns (this step's history row or None, stop)."""
    tc, dist, step = run.cfg.train, run.dist, run.step
    out_of_time = tc.max_minutes > 0 and time.perf_counter() - run.t_call > 60 * tc.max_minutes
    final = dist.agree(step >= run.budget.total_steps or out_of_time) if tc.max_minutes > 0 \
        else step >= run.budget.total_steps
    do_val = len(run.data.val_poses_3d) > 0 and tc.val_every > 0 and (step % tc.val_every == 0 or final)
    row = None
    if step % tc.log_every == 0 or final or do_val:
        row = {"step": step, "epoch": round(step / run.budget.steps_per_epoch, 4), **window.means(), "lr": lr,
               "samples_per_s": window.samples_per_s(dist.world_size), "val_mpjpe": None, "val_loss": None}
        _check_finite(run, row["loss"], lr)
    improved = False
    if do_val and dist.is_main:
        row["val_mpjpe"], row["val_loss"] = validate(run.ema.module, run.schedule, run.data, run.cfg,
                                                     run.joint_weights)
        improved = row["val_mpjpe"] < run.best_val
        run.best_val = min(run.best_val, row["val_mpjpe"])
    if do_val and dist.agree(improved):
        _save(run, BEST)
    stop = False
    if row is not None and dist.is_main:
        row["time_s"] = run.elapsed()
        _append_history(run.run_dir, row)
        stop = bool(callback(row)) if callback is not None else False
    if callback is not None and row is not None:
        stop = dist.agree(stop)
    if final or stop or step % tc.checkpoint_every == 0:
        _save(run, LATEST)
    return row, final or stop
