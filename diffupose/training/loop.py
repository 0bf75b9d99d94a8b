"""The training loop: `train` reads top to bottom, each line one named step.

1. `run_dir.open_run_dir`: decide before any work whether `out_dir` is resumed, started or
   refused, and repair checkpoints a crash left half-swapped;
2. `data.load_training_data`: the train split (flip-doubled) and a fixed val subsample, on the device;
3. `state.build_run`: denoiser, EMA (`AveragedModel`), Adam, AMP scaler, noise schedule;
4. `state.restore`: weights, optimiser, EMA count and RNG streams of the checkpoint (on resume);
5. `optim.build_lr_scheduler`: the learning-rate schedule positioned at the current step;
6. `_loop`: `_train_step` (grad-accumulated `_loss`, optimiser, schedule, EMA), then
   `_after_step` (history row, validation, best/latest checkpoints, stop conditions);
7. `_finish`: the time-cap line, `run_card.json` and the `TrainResult`.
"""
from __future__ import annotations

import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import SOURCE_INDEX, Config
from ..diffusion import FlowPath, diffusion_loss
from ..errors import ConfigError, DiffuPoseError
from ..evaluation.scoring import BatchScores, check_eval_config, score_batches
from ..inference.lifter import Lifter, SamplingSettings
from ..evaluation.metrics import mpjpe
from ..model.checkpoint import BEST, CHECKPOINT_DIR, LATEST, has_checkpoint
from ..model.masking import random_joint_mask
from .data import TrainingData, data_identity, epoch_indices, load_training_data
from .distributed import setup_distributed
from .optim import amp_dtype, build_lr_scheduler
from .progress import LossWindow, ProgressDisplay
from .run_dir import append_history, open_run_dir, prepare_run_dir, read_history, write_run_card
from .state import RunState, build_run, init_from, restore, save

__all__ = ["TrainResult", "TrainingDiverged", "train", "validate"]

log = logging.getLogger("diffupose.train")      # the name reports relay (progress.ProgressTail)


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
    stopped_by_time_cap: bool = False  # train.max_minutes stopped this call before max_steps: undertrained
    max_steps: int = 0                # the step budget (train.max_steps, or epochs x steps per epoch)


def train(cfg: Config, out_dir: str | os.PathLike, *, resume: bool = True, overwrite: bool = False,
          progress: bool = True, callback: Callable[[dict], Any] | None = None) -> TrainResult:
    """Train a denoiser on `cfg.data.path`; write the run to `out_dir`.

    An existing run in `out_dir` is resumed exactly (`resume`, the default) when its data and
    config match; `resume=False` refuses an existing run unless `overwrite`, which replaces it.
    Stops at `max_steps` (or `epochs`), after `max_minutes` of wall clock in this call (said on
    the terminal: the model is then undertrained), or when `callback(row)` returns a true value;
    `callback` sees every history row (rank 0). Every call ends by writing `run_card.json`.
    Under torchrun the per-rank batch is `batch_size`; rank 0 logs, validates and saves.
    `progress`: the tqdm bar (the periodic `diffupose.train` log line is always on).
    """
    t_call = time.perf_counter()
    run_dir = Path(out_dir)
    dist, device = setup_distributed(cfg.train.device)
    try:
        amp_dtype(cfg.train.amp, device)                      # refuse a bad AMP setting before any work
        _check_eval_settings(cfg)
        identity = data_identity(cfg.data.path)
        resume_from = open_run_dir(run_dir, cfg, identity, resume=resume, overwrite=overwrite, dist=dist)
        data = load_training_data(cfg, device)
        identity = {**identity, "train_samples": len(data.poses_3d), "val_samples": len(data.val_poses_3d)}
        run = build_run(cfg, run_dir, data, identity, dist, device, t_call)
        if resume_from is not None:
            restore(run, resume_from)
        elif cfg.train.init_from:
            init_from(run, cfg.train.init_from)
        run.scheduler = build_lr_scheduler(run.optimizer, cfg.train, run.budget.steps_per_epoch,
                                           run.budget.total_steps, start_step=run.step)
        if dist.is_main:
            prepare_run_dir(run_dir, cfg, run.step if resume_from is not None else None)
        dist.barrier()
        _loop(run, progress, callback)
        return _finish(run, t_call)
    finally:
        if dist.owns_group:
            torch.distributed.destroy_process_group()


def _check_eval_settings(cfg: Config) -> None:
    """The run's eval.* (validation and later evaluations use them), checked before any work:
    one line naming the section instead of a failure at the first validation."""
    try:
        check_eval_config(cfg.eval)
    except ConfigError as e:
        raise ConfigError(f"eval settings of the run: {e}") from None


def _finish(run: RunState, t_call: float) -> TrainResult:
    """The end of a call: the time-cap line, `run_card.json` (rank 0) and the TrainResult."""
    tc, total = run.cfg.train, run.budget.total_steps
    best = None if math.isinf(run.best_val) else run.best_val
    if run.dist.is_main:
        if run.stopped_by_time_cap:
            log.warning("stopped by the time cap (%g min) at step %s of %s — the model is undertrained; run the "
                        "same command again to resume it, or raise train.max_minutes", tc.max_minutes,
                        f"{run.step:,}", f"{total:,}")
        write_run_card(run.run_dir, steps=run.step, max_steps=total, stopped_by_time_cap=run.stopped_by_time_cap,
                       max_minutes=tc.max_minutes, training_seconds=run.elapsed(), best_val_mpjpe=best,
                       seed=tc.seed)
    return TrainResult(run_dir=run.run_dir, steps=run.step, best_val_mpjpe=best,
                       history=read_history(run.run_dir) if run.dist.is_main else [],
                       wall_time_s=time.perf_counter() - t_call, model=run.denoiser.eval(),
                       ema_model=run.ema.module, stopped_by_time_cap=run.stopped_by_time_cap, max_steps=total)


def _loop(run: RunState, progress: bool, callback: Callable[[dict], Any] | None) -> None:
    """Steps until the budget, the wall clock or the callback says stop."""
    if len(run.data.val_poses_3d) == 0 or run.cfg.train.val_every == 0:
        log.warning("no validation (empty %r split or val_every=0): no best checkpoint", run.cfg.data.val_split)
    bar = ProgressDisplay(run, bar=progress)
    window, perm, perm_epoch, start_step = LossWindow(), None, -1, run.step
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
                window = LossWindow()
            if stop:
                break
    bar.close()


def _check_finite(run: RunState, loss: float, lr: float) -> None:
    if not math.isfinite(loss):
        root = run.run_dir / CHECKPOINT_DIR
        kept = (f"nothing was saved after it (the last checkpoint in {root} is finite)" if has_checkpoint(root)
                else "no checkpoint was saved")
        raise TrainingDiverged(f"training diverged at step {run.step}: loss {loss}; {kept}; lower "
                               f"train.lr (now {lr:.3g}) or set train.grad_clip")


def _after_step(run: RunState, window: LossWindow, lr: float,
                callback: Callable[[dict], Any] | None) -> tuple[dict | None, bool]:
    """History row, validation and the best checkpoint, the latest checkpoint, stop decision.
    Returns (this step's history row or None, stop)."""
    tc, dist, step = run.cfg.train, run.dist, run.step
    out_of_time = tc.max_minutes > 0 and time.perf_counter() - run.t_call > 60 * tc.max_minutes
    budget_done = step >= run.budget.total_steps
    final = dist.agree(budget_done or out_of_time) if tc.max_minutes > 0 else budget_done
    run.stopped_by_time_cap = final and not budget_done
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
        save(run, BEST)
    stop = False
    if row is not None and dist.is_main:
        row["time_s"] = run.elapsed()
        append_history(run.run_dir, row)
        stop = bool(callback(row)) if callback is not None else False
    if callback is not None and row is not None:
        stop = dist.agree(stop)
    if final or stop or step % tc.checkpoint_every == 0:
        save(run, LATEST)
    return row, final or stop


def _loss(run: RunState, poses_3d: torch.Tensor, keypoints_2d: torch.Tensor,
          source: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The diffusion loss (eqs. 8-10) of one micro-batch under autocast: the one place the
    training loss is computed. With train.joint_dropout / limb_dropout, a random keypoint
    mask (True = present) hides joints from the denoiser; `source` is each row's 2D source
    index for a source-conditioned model (model.source_condition). With a reflow teacher
    (train.reflow_from), the 3D target is the teacher's pose for a noise draw, paired with
    that same noise (training/reflow.py). Returns (loss, detached parts)."""
    cfg, tc = run.cfg, run.cfg.train
    keypoint_mask = (random_joint_mask(len(poses_3d), run.data.skeleton, joint_prob=tc.joint_dropout,
                                       limb_prob=tc.limb_dropout, generator=run.noise_gen, device=run.device)
                     if tc.joint_dropout > 0 or tc.limb_dropout > 0 else None)
    noise = times = None
    if run.teacher is not None:
        noise = torch.randn(poses_3d.shape, generator=run.noise_gen, device=poses_3d.device, dtype=poses_3d.dtype)
        poses_3d = run.teacher.poses(noise, keypoints_2d, keypoint_mask=keypoint_mask, source=source)
        times = run.teacher.path_times(len(poses_3d), run.noise_gen,
                                       None if isinstance(run.schedule, FlowPath) else run.schedule.num_timesteps)
    with torch.autocast(run.device.type, dtype=run.autocast_dtype, enabled=run.autocast_dtype is not None):
        return diffusion_loss(run.model, run.schedule, poses_3d, keypoints_2d, joint_weights=run.joint_weights,
                              lambda_2d=cfg.diffusion.lambda_2d, kind=cfg.diffusion.loss, generator=run.noise_gen,
                              return_parts=False, keypoint_mask=keypoint_mask, prediction=cfg.diffusion.prediction,
                              source=source, noise=noise, t=times)


def _first_compiled_step(run: RunState, perm: torch.Tensor, window: LossWindow) -> torch.Tensor:
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


def _train_step(run: RunState, perm: torch.Tensor, window: LossWindow) -> torch.Tensor:
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
            loss, parts = _loss(run, run.data.poses_3d[idx], *run.data.inputs(idx, run.noise_gen))
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
    5e-4 at t = T), which magnifies low-precision rounding. The batches go through the shared
    scoring loop (`scoring.score_batches`); the loss of a batch draws from the same generator
    right after its hypotheses."""
    tc = cfg.train
    gen = torch.Generator(device=data.val_poses_3d.device).manual_seed(tc.seed + 7919)
    lifter = Lifter.from_model(ema, cfg, data.skeleton)
    settings = SamplingSettings(num_hypotheses=tc.val_hypotheses, sampler=tc.val_sampler, num_steps=tc.val_steps,
                                flip=False, batch_size=cfg.eval.batch_size, input_source=data.val_source)
    val_source = (torch.full((len(data.val_poses_3d),), SOURCE_INDEX[data.val_source], dtype=torch.long,
                             device=data.val_poses_3d.device) if cfg.model.source_condition else None)

    def score(scores: BatchScores, start: int, stop: int, hypotheses: torch.Tensor) -> None:
        x0, y = data.val_poses_3d[start:stop], data.val_keypoints_2d[start:stop]
        scores.put("mpjpe", start, stop, mpjpe(hypotheses.mean(dim=1), x0))
        loss, _ = diffusion_loss(ema, schedule, x0, y, joint_weights=joint_weights,
                                 lambda_2d=cfg.diffusion.lambda_2d, kind=cfg.diffusion.loss, generator=gen,
                                 prediction=cfg.diffusion.prediction,
                                 source=None if val_source is None else val_source[start:stop])
        scores.add("loss", float(loss) * len(x0))

    n = len(data.val_poses_3d)
    batches = lifter.iter_hypotheses(data.val_keypoints_2d, settings, generator=gen, as_numpy=False)
    scores = score_batches(batches, n, score)
    return 1000.0 * float(scores.per_sample["mpjpe"].mean()), scores.sums["loss"] / n
