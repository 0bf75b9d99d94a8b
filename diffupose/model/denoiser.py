"""The GCN denoiser of DiffuPose: (x_t, keypoints_2d, t) -> (eps_hat, keypoints_2d_hat).

Input block (5 -> d), `num_blocks` residual blocks of two modulated graph convs, a time FiLM
block, a non-local block over the joints, a second time FiLM block and the output graph conv
d -> 5 (3 = predicted noise, 2 = reconstructed 2D) — the released network.

Missing joints (`model.missing_joints=True`): the 2D input of a missing joint is replaced by
the mean of its present skeleton neighbours (`model.missing_fill = neighbour`, the default;
`zero` for models trained before it) and a sixth input channel carries the missing indicator
(1 = missing). Through the first
modulated graph conv that channel is a *learned missing-joint embedding*: joint i gets
`M_i ∘ W0[6]` added when it is missing itself and `a_ij M_i ∘ W1[6]` for each missing neighbour
j — joint-specific vectors in feature space, for 2 x dim extra parameters. An all-present mask
makes the channel zero, so the network then computes exactly what the 5-channel one would.
With `missing_joints=False` (default) the network, its parameter count and its outputs are the
released ones; a mask that marks joints missing is then a ConfigError (fill them first, e.g.
`diffupose.model.masking.fill_missing`).

2D source (`model.source_condition=True`): a learned embedding of the input's source (0 =
clean, the projected ground truth; 1 = detected, detector output or detector-like noise) is
added to the time embedding both FiLM blocks read, so one network can trust clean 2D and
hedge on detections. It starts at zero (the unconditioned network); a forward without
`source` uses `detected`. Off by default: the released network.

2D window (`model.window = W > 1`, a power of 3): the 2D condition is a W-frame window
(B, W, J, 2) centred on the frame whose 3D pose is predicted (a keypoint mask (B, W, J), or
(B, J) for every frame alike; a joint missing in only some frames is interpolated in time from the
others first, `masking.fill_window_in_time`). A temporal encoder (model/temporal.py) turns it into
WINDOW_FEATURES channels per joint, read beside the centre frame's own 2D (and missing
indicator); the 2D reconstruction output is the centre frame's. `encode_condition` computes the
encoding once; `forward` takes either the raw window (B, W, J, 2) or that encoding
(B, J, 2 + WINDOW_FEATURES), so a sampler encodes each input once and reuses it at every step.
`window = 1` (default) builds no encoder: the single-frame network, unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import SOURCE_INDEX
from ..errors import ConfigError
from ..geometry.skeleton import Skeleton
from .condition import MissingJointFill, condition_channels, missing_joint_fill
from .masking import fill_window_in_time
from .temporal import WINDOW_FEATURES, TemporalEncoder
from .gcn import GraphConvBlock, ModulatedGraphConv, NonLocalBlock, ResidualGraphBlock, TimeFiLM, time_mlp
from .unet import UNetDenoiser

__all__ = ["GCNDenoiser", "build_denoiser", "count_parameters", "condition_channels"]


class GCNDenoiser(nn.Module):
    """Modulated-GCN noise predictor.

    forward(x_t: (B, J, 3) noisy pose, keypoints_2d: (B, J, 2) 2D keypoints, t: (B,) int64 steps,
            keypoint_mask: (B, J) bool, True = present, or None) -> (eps_hat: (B, J, 3), keypoints_2d_hat: (B, J, 2)).
    `missing_joints` adds the missing-indicator input channel, `source_condition` the 2D source
    embedding (source: (B,) int64, config.SOURCE_INDEX; see the module docstring).
    `released_unused_film` builds the third FiLM block the released code constructs but never
    calls (only so the parameter count matches the paper's 1.45 M / 3.22 M).
    """

    def __init__(self, adjacency, dim: int = 256, num_blocks: int = 4, nonlocal_block: bool = True,
                 released_unused_film: bool = False, in_channels: int = 5, out_channels: int = 5,
                 missing_joints: bool = False, missing_fill: MissingJointFill | None = None,
                 source_condition: bool = False, window: int = 1, window_dim: int = 256) -> None:
        super().__init__()
        self.missing_joints = missing_joints
        self.missing_fill = missing_fill
        in_channels += int(missing_joints)
        self.window = int(window)
        self.temporal = (TemporalEncoder(int(adjacency.shape[0]), 2 + int(missing_joints), self.window, width=window_dim)
                         if self.window > 1 else None)
        in_channels += WINDOW_FEATURES if self.temporal is not None else 0
        if dim % 16:
            raise ConfigError(f"model.dim must be a multiple of 16, got {dim}")
        self.num_joints = int(adjacency.shape[0])
        self.dim = dim
        time_dim = dim // 2
        self.time_mlp = time_mlp(dim)
        self.source_embedding = nn.Embedding(len(SOURCE_INDEX), time_dim) if source_condition else None
        if self.source_embedding is not None:
            nn.init.zeros_(self.source_embedding.weight)
        self.input_block = GraphConvBlock(in_channels, dim, adjacency)
        self.blocks = nn.ModuleList(ResidualGraphBlock(dim, adjacency) for _ in range(num_blocks))
        self.film1 = TimeFiLM(dim, time_dim)
        self.non_local = NonLocalBlock(dim) if nonlocal_block else None
        self.film2 = TimeFiLM(dim, time_dim)
        self.film3 = TimeFiLM(dim, time_dim) if released_unused_film else None  # never called
        self.output_conv = ModulatedGraphConv(dim, out_channels, adjacency)

    def forward(self, x_t: torch.Tensor, keypoints_2d: torch.Tensor, t: torch.Tensor,
                keypoint_mask: torch.Tensor | None = None,
                source: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        t_emb = self.time_mlp(t)                                         # (B, d/2)
        if self.source_embedding is not None:
            if source is None:
                source = torch.full(t.shape, SOURCE_INDEX["detected"], dtype=torch.long, device=t.device)
            t_emb = t_emb + self.source_embedding(source).to(t_emb.dtype)
        elif source is not None:
            raise ConfigError("a 2D source given to a denoiser without model.source_condition")
        if self.temporal is None:
            cond = condition_channels(keypoints_2d, keypoint_mask, self.missing_joints, x_t.dtype, self.missing_fill)
        else:
            if keypoints_2d.ndim == 4:
                keypoints_2d, keypoint_mask = self.encode_condition(keypoints_2d, keypoint_mask)
            elif keypoints_2d.shape[-1] != 2 + WINDOW_FEATURES:
                raise ValueError(f"a windowed denoiser (model.window={self.window}) takes a 2D window (B, W, J, 2) or "
                                 f"its encoding (B, J, {2 + WINDOW_FEATURES}), got {tuple(keypoints_2d.shape)}")
            cond = torch.cat((condition_channels(keypoints_2d[..., :2], keypoint_mask, self.missing_joints, x_t.dtype,
                                                 self.missing_fill), keypoints_2d[..., 2:].to(x_t.dtype)), dim=-1)
        h = torch.cat((x_t, cond), dim=-1).transpose(0, 1).contiguous()  # (J, B, 5 or 6)
        h = self.input_block(h)
        for block in self.blocks:
            h = block(h)
        h = self.film1(h, t_emb)
        if self.non_local is not None:
            h = self.non_local(h)
        h = self.film2(h, t_emb)
        out = self.output_conv(h).transpose(0, 1)                        # (B, J, 5)
        return out[..., :3], out[..., 3:]

    def encode_condition(self, window: torch.Tensor, keypoint_mask: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A 2D window (B, W, J, 2) and its mask ((B, W, J), (B, J) for all frames alike, or None;
        True = present) -> (the encoding (B, J, 2 + WINDOW_FEATURES): the centre frame's 2D then
        the temporal features; the centre frame's mask (B, J) or None). Depends on the 2D only:
        compute it once per input and pass it to `forward` at every step. A joint missing in some
        frames of its window only is first interpolated in time from the others
        (masking.fill_window_in_time): training hides a joint in the whole window, so only a joint
        missing in every frame reaches the network as missing."""
        if self.temporal is None:
            raise ConfigError("encode_condition: this denoiser is single-frame (model.window=1)")
        if window.ndim != 4 or window.shape[1] != self.window:
            raise ValueError(f"expected a 2D window (B, {self.window}, J, 2), got {tuple(window.shape)}")
        B, W, J, _ = window.shape
        if keypoint_mask is not None and keypoint_mask.ndim == 2:
            keypoint_mask = keypoint_mask.unsqueeze(1).expand(B, W, J)
        elif keypoint_mask is not None:   # per-frame masks: a joint seen elsewhere in its window is filled in time
            window, keypoint_mask = fill_window_in_time(window, keypoint_mask)
        frames = condition_channels(window.reshape(B * W, J, 2),   # missing joints read 0 (+ the indicator)
                                    None if keypoint_mask is None else keypoint_mask.reshape(B * W, J),
                                    self.missing_joints, torch.float32)
        features = self.temporal(frames.view(B, W, J, -1)).float()
        centre_mask = None if keypoint_mask is None else keypoint_mask[:, W // 2]
        return torch.cat((window[:, W // 2].float(), features), dim=-1), centre_mask

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
    missing = getattr(model_cfg, "missing_joints", False)
    fill = missing_joint_fill(missing, getattr(model_cfg, "missing_fill", "zero"), skeleton.adjacency())
    if kind == "gcn":
        return GCNDenoiser(skeleton.normalized_adjacency(), dim=model_cfg.dim, num_blocks=model_cfg.num_blocks,
                           nonlocal_block=model_cfg.nonlocal_block,
                           released_unused_film=model_cfg.released_unused_film,
                           missing_joints=missing, missing_fill=fill,
                           source_condition=getattr(model_cfg, "source_condition", False),
                           window=getattr(model_cfg, "window", 1), window_dim=getattr(model_cfg, "window_dim", 256))
    if getattr(model_cfg, "window", 1) > 1:
        raise ConfigError(f"model.window is built into the GCN denoiser only, not model.denoiser={kind}")
    if getattr(model_cfg, "source_condition", False):
        raise ConfigError(f"model.source_condition is built into the GCN denoiser only, not model.denoiser={kind}")
    if kind == "unet":
        return UNetDenoiser(skeleton.num_joints, dim=model_cfg.dim, missing_joints=missing, missing_fill=fill)
    raise ConfigError(f"unknown model.denoiser {kind!r}; known: ['gcn', 'unet']")


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in module.parameters())
