"""Modulated graph convolution (paper eq. 7, as released) and the blocks built from it.

Internal layout is *joint-major*: `h: (J, N, C)` (N = batch rows, C = channels). It lets the
joint mixing be a single `(J, J) @ (J, N*C)` matrix product and the joint-specific weights a
batched product over J, with no permutes between layers. The denoiser converts from and to the
public `(B, J, C)` layout once, at its input and output.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "modulated_affinity", "ModulatedGraphConv", "GraphConvBlock", "ResidualGraphBlock",
    "NonLocalBlock", "TimeFiLM", "SinusoidalTimeEmbedding", "time_mlp",
]


def modulated_affinity(adjacency: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Eq. 7 (as released): effective affinity ((A + Q) + (A + Q)^T) / 2.

    adjacency: (J, J) skeleton adjacency (row-normalised, diagonal 1); q: (J, J) learnable.
    Returns (J, J), symmetric.
    """
    a = adjacency + q
    return (a + a.transpose(0, 1)) / 2


class ModulatedGraphConv(nn.Module):
    """Modulated graph convolution (eq. 7 as released):

        out = (Â ∘ I)(M ∘ h0) + (Â ∘ (1 - I))(M ∘ h1) + bias,  h_k = x W[k],
        Â = ((A + Q) + (A + Q)^T) / 2.

    Computed as joint-specific weights W[k] diag(M_j) (so `M ∘ (x W) = x (W diag M_j)`), one
    batched product over joints per term, and one `(J, J) @ (J, N*C)` product for the mixing —
    mathematically identical to the released formula (see `forward_reference`).
    """

    def __init__(self, in_features: int, out_features: int, adjacency, bias: bool = True) -> None:
        super().__init__()
        adjacency = torch.as_tensor(np.asarray(adjacency), dtype=torch.float32)
        num_joints = adjacency.shape[0]
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("adjacency", adjacency.clone())
        self.W = nn.Parameter(torch.empty(2, in_features, out_features))
        self.M = nn.Parameter(torch.empty(num_joints, out_features))
        self.Q = nn.Parameter(torch.empty(num_joints, num_joints))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.W, gain=1.414)
        nn.init.xavier_uniform_(self.M, gain=1.414)
        nn.init.constant_(self.Q, 1e-6)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.out_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def modulated_affinity(self) -> torch.Tensor:
        """(J, J) symmetrised effective affinity ((A+Q) + (A+Q)^T)/2, detached (for Fig. 5)."""
        return modulated_affinity(self.adjacency, self.Q).detach()

    def joint_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Joint-specific weights (J, in, out) for the self and neighbour terms, and the (J, J)
        off-diagonal affinity."""
        a = modulated_affinity(self.adjacency, self.Q)
        diag = torch.diagonal(a)
        off = a - torch.diag_embed(diag)
        w_self = self.W[0].unsqueeze(0) * (diag.unsqueeze(1) * self.M).unsqueeze(1)
        w_neigh = self.W[1].unsqueeze(0) * self.M.unsqueeze(1)
        return w_self, w_neigh, off

    def forward(self, h: torch.Tensor, out_scale: torch.Tensor | None = None,
                out_shift: torch.Tensor | None = None) -> torch.Tensor:
        """h: (J, N, in) joint-major -> (J, N, out).

        `out_scale`/`out_shift` (out,) fold a following per-channel affine map (an eval-mode
        BatchNorm) into the weights: returns gconv(h) * out_scale + out_shift at no extra cost.
        """
        w_self, w_neigh, off = self.joint_weights()
        bias = self.bias
        if out_scale is not None:
            w_self, w_neigh = w_self * out_scale, w_neigh * out_scale
            bias = out_shift if bias is None else torch.addcmul(out_shift, bias, out_scale)
        if torch.is_autocast_enabled(h.device.type):
            # cast once here (autocast would cast h separately for each product)
            dtype = torch.get_autocast_dtype(h.device.type)
            h, w_self, w_neigh, off = (v.to(dtype) for v in (h, w_self, w_neigh, off))
            bias = None if bias is None else bias.to(dtype)
        num_joints, n = h.shape[0], h.shape[1]
        if bias is not None:
            h_self = torch.baddbmm(bias, h, w_self)
        else:
            h_self = torch.bmm(h, w_self)
        h_neigh = torch.bmm(h, w_neigh)
        out = h_self.view(num_joints, -1).addmm_(off, h_neigh.view(num_joints, -1))
        return out.view(num_joints, n, self.out_features)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The released formula, literally. x: (N, J, in) -> (N, J, out). For tests."""
        h0 = x @ self.W[0]
        h1 = x @ self.W[1]
        a = modulated_affinity(self.adjacency, self.Q)
        eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        out = (a * eye) @ (self.M * h0) + (a * (1 - eye)) @ (self.M * h1)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, joints={self.adjacency.shape[0]}"


def _batch_norm_joint_major(bn: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
    """BatchNorm over channels with statistics over joints and batch (= BatchNorm1d on the
    released (N, C, J) layout). h: (J, N, C)."""
    return bn(h.reshape(-1, h.shape[-1])).view(h.shape)


class GraphConvBlock(nn.Module):
    """Modulated graph conv -> BatchNorm -> ReLU. h: (J, N, in) -> (J, N, out)."""

    def __init__(self, in_features: int, out_features: int, adjacency) -> None:
        super().__init__()
        self.gconv = ModulatedGraphConv(in_features, out_features, adjacency)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        if not self.training and not torch.is_grad_enabled() and bn.running_var is not None:
            # inference: fold the BatchNorm into the graph conv, ReLU in place
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
            return torch.relu_(self.gconv(h, scale, shift))
        return F.relu(_batch_norm_joint_major(bn, self.gconv(h)))


class ResidualGraphBlock(nn.Module):
    """h + block2(block1(h)), two GraphConvBlocks of width `dim`. h: (J, N, dim)."""

    def __init__(self, dim: int, adjacency) -> None:
        super().__init__()
        self.block1 = GraphConvBlock(dim, dim, adjacency)
        self.block2 = GraphConvBlock(dim, dim, adjacency)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.block2(self.block1(h))


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block over the J joints (Wang et al., as released):
    y = softmax(θ(h) φ(h)^T) g(h); out = h + BN(W y), with the BN initialised to zero so the
    block starts as the identity. θ, φ, g are fused into one linear map of width 3*inner.
    h: (J, N, C) -> (J, N, C)."""

    def __init__(self, dim: int, inner: int | None = None) -> None:
        super().__init__()
        self.inner = inner or dim // 2
        self.qkv = nn.Linear(dim, 3 * self.inner)
        self.out = nn.Linear(self.inner, dim)
        self.bn = nn.BatchNorm1d(dim)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(h).transpose(0, 1)                         # (N, J, 3*inner)
        theta, phi, g = qkv.split(self.inner, dim=-1)
        y = F.scaled_dot_product_attention(theta, phi, g, scale=1.0)   # (N, J, inner), no scaling
        y = self.out(y.transpose(0, 1))                           # (J, N, C)
        return h + _batch_norm_joint_major(self.bn, y)


class TimeFiLM(nn.Module):
    """Time FiLM block (as released): (scale, shift) = Linear(SiLU(t_emb));
    out = SiLU(h * (1 + scale) + shift). h: (J, N, C), t_emb: (N, time_dim)."""

    def __init__(self, dim: int, time_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(time_dim, 2 * dim)

    def forward(self, h: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(F.silu(t_emb)).chunk(2, dim=-1)   # (N, C) each
        return F.silu(torch.addcmul(shift, h, scale + 1))


class SinusoidalTimeEmbedding(nn.Module):
    """Sinusoidal embedding of the integer step (released form: frequencies
    exp(-log(10000) k / (half-1)), [sin, cos]). t: (N,) -> (N, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"time embedding width must be even and >= 4, got {dim}")
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.to(torch.float32)[:, None] * self.freqs[None, :]
        return torch.cat((args.sin(), args.cos()), dim=-1)


def time_mlp(dim: int) -> nn.Sequential:
    """The step embedding of both denoisers (released form): sinusoids of width dim/8, then
    Linear -> GELU -> Linear to dim/2. t: (N,) -> (N, dim/2)."""
    time_dim = dim // 2
    return nn.Sequential(SinusoidalTimeEmbedding(dim // 8), nn.Linear(dim // 8, time_dim), nn.GELU(),
                         nn.Linear(time_dim, time_dim))
