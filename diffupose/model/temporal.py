"""The temporal 2D encoder of a windowed model (`model.window = W > 1`).

A W-frame window of 2D keypoints around the frame being lifted, (B, W, J, 2) (+ the missing
indicator per frame and joint for a masked model, whose missing 2D reads 0), becomes `features` channels per joint,
(B, J, features), that the denoiser reads beside the centre frame's own 2D. The encoder is the
dilated temporal convolution of VideoPose3D (Pavllo et al., CVPR 2019) in its single-output
form: all joints' coordinates are channels, and each level is a kernel-3 convolution with
stride 3 (equal to a kernel-3 convolution dilated by 3^level evaluated at the centre frame),
so W must be a power of 3 and log3(W) levels reduce the window to one vector, which a linear
layer spreads back over the joints.

The encoding depends on the 2D input only (not on the noisy pose or the time step), so a
sampler computes it once per input and reuses it across every step, hypothesis and flip
(`diffusion.samplers.sample`): sampling costs almost what a single-frame model costs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import window_levels
from ..errors import ConfigError

__all__ = ["TemporalEncoder", "window_levels", "WINDOW_FEATURES"]

WINDOW_FEATURES = 16      # channels per joint the encoder hands the denoiser


class _Level(nn.Module):
    """Linear -> BatchNorm -> ReLU over the channels of (B, L, C) rows; with `group=3` the rows are
    first joined in groups of 3 consecutive frames, (B, L, C) -> (B, L / 3, 3C): a kernel-3,
    stride-3 temporal convolution written as one matrix product (faster on a CPU than a conv)."""

    def __init__(self, in_features: int, out_features: int, group: int = 1) -> None:
        super().__init__()
        self.group = group
        self.linear = nn.Linear(in_features * group, out_features, bias=False)
        self.norm = nn.BatchNorm1d(out_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, L, C = h.shape
        h = self.linear(h.reshape(B, L // self.group, self.group * C))
        return torch.relu(self.norm(h.flatten(0, 1)).view(h.shape))


class TemporalEncoder(nn.Module):
    """(B, W, J, C) 2D window (C = 2, or 3 with the missing indicator) -> (B, J, features).

    Level 0 joins each group of 3 frames of all joints' channels (J·C·3 -> width); each further
    level is a residual pair [groups of 3 (3·width -> width), then 1 x 1 (width -> width)], each
    with BatchNorm and ReLU, whose residual is the centre frame of each group (VideoPose3D's
    slice). Then Linear(width -> J · features)."""

    def __init__(self, num_joints: int, in_channels: int, window: int, width: int = 256,
                 features: int = WINDOW_FEATURES) -> None:
        super().__init__()
        self.levels = window_levels(window)
        if self.levels == 0:
            raise ConfigError("TemporalEncoder needs model.window > 1")
        self.window, self.num_joints, self.features = int(window), int(num_joints), int(features)
        self.expand = _Level(num_joints * in_channels, width, group=3)
        self.stages = nn.ModuleList(nn.Sequential(_Level(width, width, group=3), _Level(width, width))
                                    for _ in range(self.levels - 1))
        self.out = nn.Linear(width, num_joints * features)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        B, W, J, C = window.shape
        if W != self.window or J != self.num_joints:
            raise ValueError(f"temporal encoder: expected a window of shape (B, {self.window}, {self.num_joints}, C), "
                             f"got {tuple(window.shape)}")
        h = self.expand(window.reshape(B, W, J * C))                      # (B, W / 3, width)
        for stage in self.stages:
            h = h[:, 1::3] + stage(h)                                    # centre of each group of 3
        return self.out(h[:, 0]).view(B, J, self.features)
