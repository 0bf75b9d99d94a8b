"""Exponential moving average of a model's weights (as released: decay 0.995 every 10 steps).

The EMA is a full copy of the denoiser, so it is evaluated and saved exactly like the model.
Every floating-point entry of the state dict is averaged, BatchNorm running statistics
included (so they match the averaged weights); integer buffers (`num_batches_tracked`) are
copied. `ema_decay(decay, num_updates)` warms the decay up as in TensorFlow's
ExponentialMovingAverage: min(decay, (1 + n) / (10 + n)), so the EMA of a short run is not
dominated by the random initialisation.
"""
from __future__ import annotations

import copy

import torch

__all__ = ["make_ema", "ema_update", "ema_decay"]


def make_ema(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `model` in eval mode that `ema_update` keeps averaging."""
    ema = copy.deepcopy(model)
    ema.eval().requires_grad_(False)
    return ema


def ema_decay(decay: float, num_updates: int | None = None) -> float:
    """The decay of update number `num_updates` (0-based) with warm-up; `decay` when None."""
    if num_updates is None:
        return decay
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter and float buffer.

    Averaging the BatchNorm statistics too keeps them consistent with the averaged weights
    (the released EMA helper copies the current ones instead); without the decay warm-up the
    initial running_var of 1 lingers and spoils short runs.
    """
    model_state = model.state_dict()
    for name, e in ema.state_dict().items():
        m = model_state[name].detach()
        if e.is_floating_point():
            e.lerp_(m.to(e.dtype), 1.0 - decay)
        else:
            e.copy_(m)
