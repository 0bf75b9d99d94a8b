"""The U-Net baseline of Table IV: a 1D U-Net over the joint axis.

Same interface, input (concat of x_t and keypoints_2d, 5 channels per joint), time embedding and 5-channel
output as the GCN denoiser; the joints are treated as a 1D sequence (padded to a multiple of 4)
with two down/up-sampling levels and skip connections. About 2.9 M parameters at dim 256
(paper: 2.99 M).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .condition import condition_channels
from .gcn import time_mlp

__all__ = ["UNetDenoiser"]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock1d(nn.Module):
    """GN-SiLU-conv3, + time shift, GN-SiLU-conv3, + skip. h: (B, C_in, L) -> (B, C_out, L)."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(in_ch), nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Linear(time_dim, out_ch)
        self.norm2, self.conv2 = _norm(out_ch), nn.Conv1d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.silu(self.norm1(h)))
        out = out + self.time(F.silu(t_emb))[:, :, None]
        out = self.conv2(F.silu(self.norm2(out)))
        return self.skip(h) + out


class UNetDenoiser(nn.Module):
    """1D U-Net noise predictor over joints (Table IV baseline).

    forward(x_t: (B, J, 3), keypoints_2d: (B, J, 2), t: (B,) int64, keypoint_mask: (B, J) bool or None)
    -> (eps_hat (B, J, 3), keypoints_2d_hat (B, J, 2)).
    Channels per level: dim/2 (J), dim (J/2), dim (J/4, with two middle blocks).
    """

    def __init__(self, num_joints: int, dim: int = 256, in_channels: int = 5, out_channels: int = 5,
                 missing_joints: bool = False, missing_fill: nn.Module | None = None) -> None:
        super().__init__()
        self.missing_joints = missing_joints    # + 1 input channel, the missing indicator (as the GCN)
        self.missing_fill = missing_fill        # condition.MissingJointFill or None (zeros)
        in_channels += int(missing_joints)
        self.num_joints = num_joints
        self.padded = -(-num_joints // 4) * 4
        time_dim = dim // 2
        self.time_mlp = time_mlp(dim)
        c1, c2 = dim // 2, dim
        self.input_conv = nn.Conv1d(in_channels, c1, 3, padding=1)
        self.enc1 = ResBlock1d(c1, c1, time_dim)
        self.down1 = nn.Conv1d(c1, c2, 3, stride=2, padding=1)
        self.enc2 = ResBlock1d(c2, c2, time_dim)
        self.down2 = nn.Conv1d(c2, c2, 3, stride=2, padding=1)
        self.mid1 = ResBlock1d(c2, c2, time_dim)
        self.mid2 = ResBlock1d(c2, c2, time_dim)
        self.up2 = nn.ConvTranspose1d(c2, c2, 2, stride=2)
        self.dec2 = ResBlock1d(2 * c2, c2, time_dim)
        self.up1 = nn.ConvTranspose1d(c2, c1, 2, stride=2)
        self.dec1 = ResBlock1d(2 * c1, c1, time_dim)
        self.out_norm = _norm(c1)
        self.output_conv = nn.Conv1d(c1, out_channels, 3, padding=1)

    def forward(self, x_t: torch.Tensor, keypoints_2d: torch.Tensor, t: torch.Tensor,
                keypoint_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        t_emb = self.time_mlp(t)
        cond = condition_channels(keypoints_2d, keypoint_mask, self.missing_joints, x_t.dtype, self.missing_fill)
        h = torch.cat((x_t, cond), dim=-1).transpose(1, 2)                  # (B, 5 or 6, J)
        h = F.pad(h, (0, self.padded - self.num_joints))
        s1 = self.enc1(self.input_conv(h), t_emb)                              # (B, c1, L)
        s2 = self.enc2(self.down1(s1), t_emb)                                  # (B, c2, L/2)
        m = self.mid2(self.mid1(self.down2(s2), t_emb), t_emb)                 # (B, c2, L/4)
        d2 = self.dec2(torch.cat((self.up2(m), s2), dim=1), t_emb)
        d1 = self.dec1(torch.cat((self.up1(d2), s1), dim=1), t_emb)
        out = self.output_conv(F.silu(self.out_norm(d1)))[:, :, : self.num_joints].transpose(1, 2)
        return out[..., :3], out[..., 3:]
