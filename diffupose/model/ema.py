"""Exponential moving average of a model's weights (as released: decay 0.995 every 10 steps).

The EMA is `torch.optim.swa_utils.AveragedModel` with `use_buffers=True`: a full copy of the
denoiser (`ema.module`), evaluated and saved exactly like the model (checkpoints store
`ema.module`'s state dict, so the tensor names are those of a plain denoiser). Every
floating-point parameter and buffer is averaged, BatchNorm running statistics included (so they
match the averaged weights); integer buffers (`num_batches_tracked`) are copied. The decay warms
up as in TensorFlow's ExponentialMovingAverage, min(decay, (1 + n) / (10 + n)) for update n
(0-based), so the EMA of a short run is not dominated by the random initialisation; the
library's `get_ema_multi_avg_fn` has a fixed decay, hence the small `multi_avg_fn` below.
"""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

__all__ = ["make_ema", "ema_decay", "set_num_updates"]


def ema_decay(decay: float, num_updates: int | None = None) -> float:
    """The decay of update number `num_updates` (0-based) with warm-up; `decay` when None."""
    if num_updates is None:
        return decay
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


def _warmup_ema_avg_fn(decay: float):
    """AveragedModel `multi_avg_fn`: ema <- d * ema + (1 - d) * model for floating tensors with
    d = ema_decay(decay, n - 1) (AveragedModel counts the initial copy as its first average),
    integer tensors copied."""

    @torch.no_grad()
    def multi_avg_fn(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():     # one dtype per call: integer buffers are copied
            torch._foreach_copy_(averaged, current)
            return
        weight = 1.0 - ema_decay(decay, int(num_averaged) - 1)
        torch._foreach_lerp_(averaged, [c.to(a.dtype) for a, c in zip(averaged, current)], weight)

    return multi_avg_fn


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """A frozen averaged copy of `model` (eval mode, no gradients); call
    `ema.update_parameters(model)` after optimiser steps. It starts equal to `model` (counted
    as AveragedModel's first average, so the first real update uses decay ema_decay(decay, 0))."""
    ema = AveragedModel(model, multi_avg_fn=_warmup_ema_avg_fn(decay), use_buffers=True)
    ema.update_parameters(model)          # n_averaged 0 -> 1: the copy the decay warm-up starts from
    ema.eval().requires_grad_(False)
    return ema


def set_num_updates(ema: AveragedModel, num_updates: int) -> None:
    """After loading EMA weights on resume: the count of `update_parameters` calls made so far
    (the decay warm-up depends on it)."""
    ema.n_averaged.fill_(num_updates + 1)
