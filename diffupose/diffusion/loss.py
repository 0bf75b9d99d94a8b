"""The training loss of eqs. 8-10, as released.

L = mean over (B, J, 5) of w_j · |[ε, y] - [ε̂, ŷ]| (y = keypoints_2d) with the two 2D channels multiplied by λ
(L1; the released code), or the same with squared errors (`kind="l2"`, eq. 5's form).
With `prediction="x0"` or `"v"` the 3D channels compare the network's output with x0 or v
instead of ε (schedule.prediction_target); "eps" is the paper's.
`flow_matching_loss` is the same loss with the flow-matching velocity as the 3D target
(diffusion/flow.py); `diffusion_loss` hands a FlowPath to it, so callers hold one loss.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from ..geometry.skeleton import centre_frame
from .flow import FlowPath, flow_interpolate, flow_velocity_target
from .schedule import NoiseSchedule, prediction_target, q_sample

__all__ = ["diffusion_loss", "flow_matching_loss", "weighted_pose_loss", "LOSSES"]

LOSSES = ("l1", "l2")


def weighted_pose_loss(output_3d: torch.Tensor, target_3d: torch.Tensor, keypoints_2d_hat: torch.Tensor,
                       keypoints_2d: torch.Tensor, *, joint_weights: torch.Tensor | None = None, lambda_2d: float = 0.8,
                       kind: str = "l1") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eqs. 8-10 (released form): L = L_ε + λ L_y, each channel weighted per joint, averaged
    over all 5 channels. output_3d, target_3d: (B, J, 3) (ε̂ and ε for the paper's
    parameterisation); keypoints_2d_hat, keypoints_2d: (B, J, 2); joint_weights: (J,).
    Returns (loss, 3D part, 2D part) — the parts sum to the loss."""
    if kind == "l1":
        err_eps, err_y = (output_3d - target_3d).abs(), (keypoints_2d_hat - keypoints_2d).abs()
    elif kind == "l2":
        err_eps, err_y = (output_3d - target_3d).square(), (keypoints_2d_hat - keypoints_2d).square()
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


def denoiser_extras(keypoint_mask: torch.Tensor | None, source: torch.Tensor | None) -> dict:
    """The optional denoiser inputs that were given, as keyword arguments (a denoiser without
    them is never passed None); the training losses and the samplers build them here."""
    extras = {}
    if keypoint_mask is not None:
        extras["keypoint_mask"] = keypoint_mask
    if source is not None:
        extras["source"] = source
    return extras


def diffusion_loss(denoiser, schedule: NoiseSchedule, x0: torch.Tensor, keypoints_2d: torch.Tensor, *,
                   joint_weights: torch.Tensor | None = None, lambda_2d: float = 0.8, kind: str = "l1",
                   generator: torch.Generator | None = None, t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, return_parts: bool = True,
                   keypoint_mask: torch.Tensor | None = None, prediction: str = "eps",
                   source: torch.Tensor | None = None):
    """One training loss: t ~ U{0..T-1}, ε ~ N(0, I), x_t by eq. 2, then eqs. 8-10.

    x0: (B, J, 3) metres, root-relative, camera frame; keypoints_2d: (B, J, 2) normalised 2D keypoints,
    or a 2D window (B, W, J, 2) for a windowed denoiser (the 2D term then targets its centre frame).
    `t`/`noise` may be given (tests); otherwise drawn with `generator` (on x0's device).
    Returns (loss scalar, parts) with parts = {"loss", "loss_eps", "loss_2d"} as floats, or
    as detached tensors when `return_parts=False` (no host sync; for accelerator loops).
    `keypoint_mask` (B, J) bool, True = present, goes to the denoiser (missing-joint training);
    `source` (B,) int64, each row's 2D source index (config.SOURCE_INDEX), to a source-conditioned one.
    `prediction` ("eps" | "x0" | "v") names what the 3D output is trained to match; the part
    is still called "loss_eps" in the logs.
    The 2D term still targets the true 2D of a missing joint: the network learns to impute it.
    Flip augmentation mirrors whole training rows before batching (train.load_training_data),
    so each row's mask is drawn after mirroring and needs no flipping here.
    """
    if isinstance(schedule, FlowPath):
        return flow_matching_loss(denoiser, schedule, x0, keypoints_2d, joint_weights=joint_weights,
                                  lambda_2d=lambda_2d, kind=kind, generator=generator, s=t, noise=noise,
                                  return_parts=return_parts, keypoint_mask=keypoint_mask, source=source)
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_timesteps, (B,), device=x0.device, generator=generator)
    if noise is None:
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = q_sample(schedule, x0, t, noise)
    output_3d, keypoints_2d_hat = denoiser(x_t, keypoints_2d, t, **denoiser_extras(keypoint_mask, source))
    target = prediction_target(schedule, prediction, x0, noise, t)
    loss, part_eps, part_y = weighted_pose_loss(output_3d, target, keypoints_2d_hat, centre_frame(keypoints_2d),
                                                joint_weights=joint_weights,
                                                lambda_2d=lambda_2d, kind=kind)
    parts = {"loss": loss.detach(), "loss_eps": part_eps.detach(), "loss_2d": part_y.detach()}
    if return_parts:
        parts = {k: float(v) for k, v in parts.items()}
    return loss, parts


def flow_matching_loss(denoiser, path: FlowPath, x0: torch.Tensor, keypoints_2d: torch.Tensor, *,
                       joint_weights: torch.Tensor | None = None, lambda_2d: float = 0.8, kind: str = "l1",
                       generator: torch.Generator | None = None, s: torch.Tensor | None = None,
                       noise: torch.Tensor | None = None, return_parts: bool = True,
                       keypoint_mask: torch.Tensor | None = None, source: torch.Tensor | None = None):
    """Conditional flow matching: s ~ path.sample_time, ε ~ N(0, I), x_s = (1 - s) x0 + s ε, and
    the network's 3D output regressed on the velocity ε - x0 with the weighted loss of eqs. 8-10
    (the 2D reconstruction term unchanged). The network sees time s·T. `s` (B,) floats in [0, 1]
    and `noise` may be given (tests). Returns (loss, parts) as diffusion_loss."""
    B = x0.shape[0]
    if s is None:
        s = path.sample_time(B, x0.device, generator)
    if noise is None:
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_s = flow_interpolate(x0, noise, s)
    t_model = path.model_time(s)
    output_3d, keypoints_2d_hat = denoiser(x_s, keypoints_2d, t_model, **denoiser_extras(keypoint_mask, source))
    loss, part_v, part_y = weighted_pose_loss(output_3d, flow_velocity_target(x0, noise), keypoints_2d_hat,
                                              centre_frame(keypoints_2d), joint_weights=joint_weights, lambda_2d=lambda_2d, kind=kind)
    parts = {"loss": loss.detach(), "loss_eps": part_v.detach(), "loss_2d": part_y.detach()}
    if return_parts:
        parts = {k: float(v) for k, v in parts.items()}
    return loss, parts
