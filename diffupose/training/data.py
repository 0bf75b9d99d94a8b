"""What a training reads: the train split (flip-doubled) and a fixed val subsample as device
tensors (`load_training_data`), the shuffle of each epoch (`epoch_indices`), the identity of the
data file (`data_identity`) and the step budget (`step_budget`)."""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import SOURCE_INDEX, Config, TrainConfig
from ..data.detector_noise import DetectorNoise, transplant_errors
from ..data.layout_mix import LayoutMix
from ..data.prepared import PreparedData, load_prepared
from ..data.windows import track_bounds, window_index
from ..errors import ConfigError, DataError
from ..geometry.skeleton import Skeleton, flip_horizontal

__all__ = ["TrainingData", "load_training_data", "epoch_indices", "data_identity", "Budget", "step_budget"]


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
    mix_clean: float = 0.0
    layouts: LayoutMix | None = None              # train.input_layouts other than h36m17 alone
    detections_file: bool = False                 # the prepared file's keypoints_2d are detections
    source_condition: bool = False                # model.source_condition: inputs() also returns the source
    window: int = 1                               # model.window: inputs() returns (B, W, J, 2) windows
    track_lo: torch.Tensor | None = None          # (N,) first index of each sample's track (window > 1)
    track_hi: torch.Tensor | None = None          # (N,) last index
    noise_in_time: str = "constant"               # train.noise_in_time (windows only)

    def inputs(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The 2D input of the samples `idx` for one training step (train.input_2d, then the
        layout round trip of train.input_layouts) and, for a source-conditioned model, each
        row's 2D source index (config.SOURCE_INDEX), else None. A windowed model (window > 1)
        gets each sample's 2D window (B, W, J, 2), gathered by index (data/windows.py); the
        per-sample draws (detection or not, clean or not, layout) hold for the whole window."""
        if self.window > 1:
            idx = window_index(self.track_lo, self.track_hi, idx, self.window)
        x, clean = self._inputs_2d(idx, generator)
        x = x if self.layouts is None else self.layouts.apply(x, generator)
        if not self.source_condition:
            return x, None
        return x, torch.where(clean, SOURCE_INDEX["clean"], SOURCE_INDEX["detected"])

    def _inputs_2d(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (2D input (B, J, 2), which rows are clean ground truth (B,) bool)."""
        n, device = len(idx), self.keypoints_2d.device
        if self.noise is None:
            clean = self.input_2d == "gt" or not self.detections_file
            return self.keypoints_2d[idx], torch.full((n,), clean, dtype=torch.bool, device=device)
        noisy = self._noisy(idx, generator)
        if self.input_2d == "gt+noise":
            return noisy, torch.zeros(n, dtype=torch.bool, device=device)
        use_detection = torch.rand(n, generator=generator, device=device) < self.mix_detected
        x = torch.where(_per_row(use_detection, noisy), self.keypoints_2d[idx], noisy)
        if self.mix_clean <= 0:       # no extra draw: runs without mix_clean keep their random stream
            return x, torch.zeros(n, dtype=torch.bool, device=device)
        clean = torch.rand(n, generator=generator, device=device) < self.mix_clean
        return torch.where(_per_row(clean, x), self.keypoints_2d_gt[idx], x), clean

    def _noisy(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Ground truth plus measured detector error for the samples (B,) or windows (B, W) `idx`:
        a random frame's residual (DetectorNoise), or with train.noise_in_time=measured, the
        residuals of a random training window, frame by frame (`transplant_errors`)."""
        if self.noise_in_time != "measured" or idx.ndim != 2:
            return self.noise.apply(self.keypoints_2d_gt[idx], generator)
        source = torch.randint(0, len(self.track_lo), (len(idx),), generator=generator, device=idx.device)
        source = window_index(self.track_lo, self.track_hi, source, idx.shape[1])
        return transplant_errors(self.keypoints_2d_gt[idx], self.keypoints_2d[source], self.keypoints_2d_gt[source],
                                 self.noise.perm)

    @property
    def val_source(self) -> str:
        """The 2D source of the val keypoints (always the prepared file's keypoints_2d)."""
        return "detected" if self.detections_file else "clean"


def _per_row(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) per-sample flags shaped to broadcast over `like` (B, J, 2) or a window (B, W, J, 2)."""
    return flags.view((-1,) + (1,) * (like.ndim - 1))


def val_windows(full_val: PreparedData, rows: np.ndarray, window: int) -> np.ndarray:
    """The 2D windows (V, W, J, 2) of the val subsample full_val.subset(rows), gathered
    from the whole val split (so the subsample's neighbours are real frames)."""
    lo, hi = track_bounds(full_val.subject, full_val.sequence, full_val.camera, full_val.frame)
    return full_val.keypoints_2d[window_index(lo, hi, rows, window)]


def load_training_data(cfg: Config, device: torch.device) -> TrainingData:
    """Train split (doubled with mirrored copies when flip_augment, as released) and a
    fixed-seed subsample of the val split, as tensors on `device` (indexed there each step:
    no host-side input pipeline in the loop). A windowed model (model.window > 1) also gets
    each train sample's track bounds, and the val subsample's 2D windows."""
    data = load_prepared(cfg.data.path)
    train = data.select(split=cfg.data.train_split)
    if len(train) == 0:
        raise DataError(f"{cfg.data.path}: no samples in split {cfg.data.train_split!r}")
    val = data.select(split=cfg.data.val_split, max_samples=cfg.data.max_val_samples, seed=0)
    val_2d = val.keypoints_2d
    window = cfg.model.window
    if window > 1:
        full_val = data.select(split=cfg.data.val_split)
        rows = _subsample_rows(len(full_val), cfg.data.max_val_samples, seed=0)
        val_2d = val_windows(full_val, rows, window)
    mode = cfg.train.input_2d
    if cfg.train.noise_in_time == "measured" and (window == 1 or mode not in ("gt+noise", "mix")):
        raise ConfigError(f"train.noise_in_time=measured moves measured detector error along windows: it needs "
                          f"model.window > 1 and train.input_2d gt+noise or mix (got window {window}, {mode})")
    if mode != "file" and train.keypoints_2d_gt is None:
        raise DataError(f"{cfg.data.path}: train.input_2d={mode} needs detections with the ground-truth 2D kept "
                        f"beside them (keypoints_2d_gt); prepare with detections, e.g. --keypoints sh")
    flip = cfg.data.flip_augment

    def tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return (torch.cat([t, flip_horizontal(t, data.skeleton)]) if flip else t).to(device)

    keypoints = tensor(train.keypoints_2d_gt if mode == "gt" else train.keypoints_2d)
    extra = {"input_2d": mode, "detections_file": train.keypoints_2d_gt is not None,
             "source_condition": cfg.model.source_condition}
    if mode in ("gt+noise", "mix"):
        noise = DetectorNoise.measure(train.keypoints_2d, train.keypoints_2d_gt, data.skeleton, mirrored=flip,
                                      seed=cfg.train.seed, device=device)
        extra.update(keypoints_2d_gt=tensor(train.keypoints_2d_gt), noise=noise, mix_detected=cfg.train.mix_detected,
                     mix_clean=cfg.train.mix_clean, noise_in_time=cfg.train.noise_in_time)
    layouts = [v.strip() for v in cfg.train.input_layouts.split(",")]
    if layouts != ["h36m17"]:
        if data.skeleton.name != "h36m17":
            raise ConfigError(f"train.input_layouts={cfg.train.input_layouts}: layouts map to H36M-17, but "
                              f"{cfg.data.path} uses {data.skeleton.name}")
        extra["layouts"] = LayoutMix.build(layouts, device=device)
    if window > 1:
        lo, hi = track_bounds(train.subject, train.sequence, train.camera, train.frame)
        n = len(train)
        if flip:                     # the mirrored copies follow the originals: the same tracks, shifted by n
            lo, hi = np.concatenate([lo, lo + n]), np.concatenate([hi, hi + n])
        extra.update(window=window, track_lo=torch.from_numpy(lo).to(device), track_hi=torch.from_numpy(hi).to(device))
    return TrainingData(
        tensor(train.poses_3d), keypoints,
        torch.from_numpy(np.ascontiguousarray(val.poses_3d, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(val_2d, dtype=np.float32)).to(device),
        data.skeleton, **extra,
    )


def _subsample_rows(n: int, max_samples: int, seed: int) -> np.ndarray:
    """The rows PreparedData.select(max_samples=..., seed=...) keeps of an n-sample selection."""
    index = np.arange(n)
    if max_samples and n > max_samples:
        index = np.sort(np.random.default_rng(seed).choice(index, size=max_samples, replace=False))
    return index


def data_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A cheap identity of a prepared data file, stored with every checkpoint: absolute path,
    size in bytes and the sha256 of its first and last MiB (milliseconds, even for 1 GB)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared data file not found (data.path / --data)")
    size, mib = path.stat().st_size, 1 << 20
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(mib))
        if size > mib:
            f.seek(max(mib, size - mib))
            digest.update(f.read())
    return {"path": str(path.resolve()), "size": size, "sha256_head_tail": digest.hexdigest()}


@dataclass(frozen=True)
class Budget:
    micro: int              # samples per micro-batch per rank
    steps_per_epoch: int    # optimiser steps
    total_steps: int


def step_budget(tc: TrainConfig, num_samples: int, world_size: int) -> Budget:
    """Micro-batches per rank and optimiser steps per epoch; max_steps, or epochs when it is 0."""
    per_rank = math.ceil(num_samples / world_size)
    micro = min(tc.batch_size, max(1, per_rank // tc.grad_accum))
    steps_per_epoch = max(1, per_rank // (micro * tc.grad_accum))
    total_steps = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    return Budget(micro, steps_per_epoch, total_steps)


# ---------------------------------------------------------------------------- distributed


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
