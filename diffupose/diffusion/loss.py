"""The training loss of eqs. 8-10, as released.

L = mean over (B, J, 5) of w_j · |[ε, y] - [ε̂, ŷ]| with the two 2D channels multiplied by λ
(L1; the released code), or the same with squared errors (`kind="l2"`, eq. 5's form).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .schedule import NoiseSchedule, q_sample

__all__ = ["diffusion_loss", "weighted_pose_loss", "LOSSES"]

LOSSES = ("l1", "l2")


def weighted_pose_loss(eps_hat: torch.Tensor, noise: torch.Tensor, y_hat: torch.Tensor, y: torch.Tensor, *,
                       joint_weights: torch.Tensor | None = None, lambda_2d: float = 0.8,
                       kind: str = "l1") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eqs. 8-10 (released form): L = L_ε + λ L_y, each channel weighted per joint, averaged
    over all 5 channels. eps_hat, noise: (B, J, 3); y_hat, y: (B, J, 2); joint_weights: (J,).
    Returns (loss, noise part, 2D part) — the parts sum to the loss."""
    if kind == "l1":
        err_eps, err_y = (eps_hat - noise).abs(), (y_hat - y).abs()
    elif kind == "l2":
        err_eps, err_y = (eps_hat - noise).square(), (y_hat - y).square()
    else:
        raise ConfigError(f"unknown diffusion.loss {kind!r}; known: {list(LOSSES)}")
    err_eps, err_y = err_eps.float(), err_y.float()
    if joint_weights is not None:
        w = joint_weights.to(device=err_eps.device, dtype=err_eps.dtype)[:, None]
        err_eps, err_y = err_eps * w, err_y * w
    denom = err_eps.shape[0] * err_eps.shape[1] * (err_eps.shape[2] + err_y.shape[2])
    part_eps = err_eps.sum() / denom
    part_y = err_y.sum() * lambda_2d / denom
    return part_eps + part_y, part_eps, part_y


def diffusion_loss(denoiser, schedule: NoiseSchedule, x0: torch.Tensor, y: torch.Tensor, *,
                   joint_weights: torch.Tensor | None = None, lambda_2d: float = 0.8, kind: str = "l1",
                   generator: torch.Generator | None = None, t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, return_parts: bool = True,
                   keypoint_mask: torch.Tensor | None = None):
    """One training loss: t ~ U{0..T-1}, ε ~ N(0, I), x_t by eq. 2, then eqs. 8-10.

    x0: (B, J, 3) metres, root-relative, camera frame; y: (B, J, 2) normalised 2D keypoints.
    `t`/`noise` may be given (tests); otherwise drawn with `generator` (on x0's device).
    Returns (loss scalar, parts) with parts = {"loss", "loss_eps", "loss_2d"} as floats, or
    as detached tensors when `return_parts=False` (no host sync; for accelerator loops).
    `keypoint_mask` (B, J) bool, True = present, goes to the denoiser (missing-joint training).
    The 2D term still targets the true 2D of a missing joint: the network learns to impute it.
    Flip augmentation mirrors whole training rows before batching (train.load_training_data),
    so each row's mask is drawn after mirroring and needs no flipping here.
    """
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_timesteps, (B,), device=x0.device, generator=generator)
    if noise is None:
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = q_sample(schedule, x0, t, noise)
    if keypoint_mask is None:
        eps_hat, y_hat = denoiser(x_t, y, t)
    else:
        eps_hat, y_hat = denoiser(x_t, y, t, keypoint_mask=keypoint_mask)
    loss, part_eps, part_y = weighted_pose_loss(eps_hat, noise, y_hat, y, joint_weights=joint_weights,
                                                lambda_2d=lambda_2d, kind=kind)
    parts = {"loss": loss.detach(), "loss_eps": part_eps.detach(), "loss_2d": part_y.detach()}
    if return_parts:
        parts = {k: float(v) for k, v in parts.items()}
    return loss, parts
