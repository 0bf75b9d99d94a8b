"""The GCN denoiser of DiffuPose: (x_t, y, t) -> (eps_hat, y_hat).

Input block (5 -> d), `num_blocks` residual blocks of two modulated graph convs, a time FiLM
block, a non-local block over the joints, a second time FiLM block and the output graph conv
d -> 5 (3 = predicted noise, 2 = reconstructed 2D) — the released network.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..skeleton import Skeleton
from .gcn import (GraphConvBlock, ModulatedGraphConv, NonLocalBlock, ResidualGraphBlock,
                  SinusoidalTimeEmbedding, TimeFiLM)

__all__ = ["GCNDenoiser", "build_denoiser", "count_parameters"]


class GCNDenoiser(nn.Module):
    """Modulated-GCN noise predictor.

    forward(x_t: (B, J, 3) noisy pose, y: (B, J, 2) 2D keypoints, t: (B,) int64 steps)
    -> (eps_hat: (B, J, 3), y_hat: (B, J, 2)).
    `released_unused_film` builds the third FiLM block the released code constructs but never
    calls (only so the parameter count matches the paper's 1.45 M / 3.22 M).
    """

    def __init__(self, adjacency, dim: int = 256, num_blocks: int = 4, nonlocal_block: bool = True,
                 released_unused_film: bool = False, in_channels: int = 5, out_channels: int = 5) -> None:
        super().__init__()
        if dim % 16:
            raise ConfigError(f"model.dim must be a multiple of 16, got {dim}")
        self.num_joints = int(adjacency.shape[0])
        self.dim = dim
        time_dim = dim // 2
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(dim // 8), nn.Linear(dim // 8, time_dim), nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )
        self.input_block = GraphConvBlock(in_channels, dim, adjacency)
        self.blocks = nn.ModuleList(ResidualGraphBlock(dim, adjacency) for _ in range(num_blocks))
        self.film1 = TimeFiLM(dim, time_dim)
        self.non_local = NonLocalBlock(dim) if nonlocal_block else None
        self.film2 = TimeFiLM(dim, time_dim)
        self.film3 = TimeFiLM(dim, time_dim) if released_unused_film else None  # never called
        self.output_conv = ModulatedGraphConv(dim, out_channels, adjacency)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t_emb = self.time_mlp(t)                                         # (B, d/2)
        h = torch.cat((x_t, y.to(x_t.dtype)), dim=-1).transpose(0, 1).contiguous()  # (J, B, 5)
        h = self.input_block(h)
        for block in self.blocks:
            h = block(h)
        h = self.film1(h, t_emb)
        if self.non_local is not None:
            h = self.non_local(h)
        h = self.film2(h, t_emb)
        out = self.output_conv(h).transpose(0, 1)                        # (B, J, 5)
        return out[..., :3], out[..., 3:]

    def graph_convs(self) -> list[tuple[str, ModulatedGraphConv]]:
        return [(name, m) for name, m in self.named_modules() if isinstance(m, ModulatedGraphConv)]

    def layer_names(self) -> list[str]:
        """Names of the modulated graph-conv layers, in forward order."""
        return [name for name, _ in self.graph_convs()]

    def modulated_affinities(self) -> list[torch.Tensor]:
        """One (J, J) symmetrised affinity ((A+Q)+(A+Q)^T)/2 per graph-conv layer, detached."""
        return [m.modulated_affinity() for _, m in self.graph_convs()]


def build_denoiser(model_cfg, skeleton: Skeleton) -> nn.Module:
    """Build the denoiser named by `model_cfg.denoiser` (gcn | unet) for `skeleton`."""
    kind = getattr(model_cfg, "denoiser", "gcn")
    if kind == "gcn":
        return GCNDenoiser(skeleton.normalized_adjacency(), dim=model_cfg.dim, num_blocks=model_cfg.num_blocks,
                           nonlocal_block=model_cfg.nonlocal_block,
                           released_unused_film=model_cfg.released_unused_film)
    if kind == "unet":
        from .unet import UNetDenoiser
        return UNetDenoiser(skeleton.num_joints, dim=model_cfg.dim)
    raise ConfigError(f"unknown model.denoiser {kind!r}; known: ['gcn', 'unet']")


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
