"""What a denoiser reads besides the noisy pose: the per-joint 2D condition, with the missing
indicator and the neighbour fill of missing joints (`model.missing_joints`, `model.missing_fill`).
Shared by the GCN denoiser and the U-Net, so neither imports the other.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import MISSING_FILLS
from ..errors import ConfigError
from .masking import graph_diameter, neighbour_fill

__all__ = ["condition_channels", "MissingJointFill", "missing_joint_fill"]


def condition_channels(keypoints_2d: torch.Tensor, keypoint_mask: torch.Tensor | None, missing_joints: bool,
                       dtype: torch.dtype, fill: "MissingJointFill | None" = None) -> torch.Tensor:
    """The per-joint condition the denoiser reads: keypoints_2d (B, J, 2) normalised keypoints and
    keypoint_mask (B, J) bool, True = present (None = all present) -> (B, J, 2), or (B, J, 3)
    with the missing indicator when `missing_joints`. Missing joints' 2D (NaN allowed) become the
    mean of their present skeleton neighbours with `fill` (model.missing_fill = neighbour), else 0.
    A model without missing-joint support given a mask with missing joints raises ConfigError."""
    if keypoint_mask is not None and keypoint_mask.shape != keypoints_2d.shape[:2]:
        raise ValueError(f"keypoint_mask must have shape {tuple(keypoints_2d.shape[:2])} (B, J), got {tuple(keypoint_mask.shape)}")
    if not missing_joints:
        if keypoint_mask is not None and not bool(keypoint_mask.all()):
            raise ConfigError("missing joints given to a model without missing-joint support "
                              "(model.missing_joints=false): train with model.missing_joints=true, or fill "
                              "them first (diffupose.model.masking.fill_missing)")
        return keypoints_2d.to(dtype)
    if keypoint_mask is None:
        return torch.cat((keypoints_2d.to(dtype), keypoints_2d.new_zeros(keypoints_2d.shape[:2] + (1,), dtype=dtype)), dim=-1)
    present = keypoint_mask.to(device=keypoints_2d.device, dtype=torch.bool)
    if fill is not None:
        keypoints_2d = fill(keypoints_2d, present).to(dtype)
    else:
        keypoints_2d = torch.where(present.unsqueeze(-1), keypoints_2d,
                                   torch.zeros((), dtype=keypoints_2d.dtype, device=keypoints_2d.device)).to(dtype)
    return torch.cat((keypoints_2d, (~present).unsqueeze(-1).to(dtype)), dim=-1)


class MissingJointFill(nn.Module):
    """model.missing_fill = neighbour: a missing joint's 2D input is the mean of its present
    skeleton neighbours (masking.neighbour_fill), not 0. Zeros shift the BatchNorm statistics of
    masked training batches away from complete inputs and cost ~6 mm on complete inputs (H36M
    S8, measured); a neighbour mean keeps the inputs, and so the statistics, close to complete
    ones. No parameters; the adjacency is a non-persistent buffer (not in checkpoints)."""

    def __init__(self, adjacency) -> None:
        super().__init__()
        self.register_buffer("adjacency", torch.as_tensor(adjacency, dtype=torch.float32), persistent=False)
        self.hops = graph_diameter(adjacency)

    def forward(self, keypoints_2d: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return neighbour_fill(keypoints_2d, present, self.adjacency, self.hops)


def missing_joint_fill(missing_joints: bool, missing_fill: str, skeleton_adjacency) -> MissingJointFill | None:
    """The fill module of a denoiser: None unless missing joints are supported with the neighbour fill."""
    if missing_fill not in MISSING_FILLS:
        raise ConfigError(f"unknown model.missing_fill {missing_fill!r}; known: {list(MISSING_FILLS)}")
    return MissingJointFill(skeleton_adjacency) if missing_joints and missing_fill == "neighbour" else None
