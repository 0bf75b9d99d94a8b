"""Detector-like 2D noise, drawn from the *measured* error of real detections.

Training on ground-truth 2D with Gaussian pixel noise teaches a lifter the wrong error model:
a real detector's error is per joint (the head and neck joints of an MPII-trained detector sit
20-30 px from their Human3.6M counterparts, the hips 7-16 px), heavy-tailed (1.5 % of joints
off by more than 50 px), correlated inside a frame, and now and then swaps left and right.

`DetectorNoise` keeps the measured residuals `detection - projected ground truth` of the
training split (whole frames: all joints of one detection together, in normalised screen
units) and resamples them: a training sample's 2D input becomes its ground-truth 2D plus the
residual of a random other training frame. That reproduces every per-joint marginal, the
tails, the gross errors and the within-frame correlation exactly as measured, with no fitted
distribution. Left/right swaps are the one error a residual cannot carry to another pose
(a swap's residual is the width of *that* person): frames whose detection matches the
left/right-swapped ground truth better than the plain one are counted, stored as residuals
against the swapped ground truth, and swaps are applied explicitly at the measured rate.

Only the training split's detections are read (never val or test).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry.skeleton import Skeleton, flip_horizontal

__all__ = ["DetectorNoise", "measure_residuals", "error_summary", "transplant_errors", "SWAP_MARGIN"]

SWAP_MARGIN = 0.5     # a frame counts as left/right-swapped when the swapped GT fits it this much better


def measure_residuals(detected: np.ndarray, ground_truth: np.ndarray, skeleton: Skeleton
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(residuals (N, J, 2), swapped (N,) bool): detection minus ground truth, taken against the
    left/right-swapped ground truth for frames where that fits at least twice as well."""
    det = np.asarray(detected, dtype=np.float32)
    gt = np.asarray(ground_truth, dtype=np.float32)
    perm = skeleton.flip_permutation
    gt_swapped = gt[:, perm]
    err = np.linalg.norm(det - gt, axis=-1).mean(axis=1)
    err_swapped = np.linalg.norm(det - gt_swapped, axis=-1).mean(axis=1)
    swapped = err_swapped < SWAP_MARGIN * err
    residual = np.where(swapped[:, None, None], det - gt_swapped, det - gt)
    return residual.astype(np.float32), swapped


def error_summary(detected: np.ndarray, ground_truth: np.ndarray, skeleton: Skeleton, scale_px: float
                  ) -> dict:
    """Per-joint and overall 2D error of detections in pixels (`scale_px` pixels per normalised
    unit: half the image width): median, mean, p90, share beyond 50 / 100 px, swapped frames."""
    residual, swapped = measure_residuals(detected, ground_truth, skeleton)
    raw = np.linalg.norm(np.asarray(detected) - np.asarray(ground_truth), axis=-1) * scale_px
    per_joint = {}
    for j, name in enumerate(skeleton.joint_names):
        e = raw[:, j]
        per_joint[name] = {"median_px": float(np.median(e)), "mean_px": float(e.mean()),
                           "p90_px": float(np.percentile(e, 90))}
    return {
        "median_px": float(np.median(raw)), "mean_px": float(raw.mean()), "p90_px": float(np.percentile(raw, 90)),
        "beyond_50px": float((raw > 50).mean()), "beyond_100px": float((raw > 100).mean()),
        "swapped_frames": float(swapped.mean()), "num_frames": int(len(raw)), "per_joint": per_joint,
    }


@dataclass
class DetectorNoise:
    """A bank of measured whole-frame residuals plus the left/right swap rate."""

    residuals: torch.Tensor     # (M, J, 2) normalised screen units
    swap_rate: float
    perm: torch.Tensor          # (J,) left/right swap permutation

    @classmethod
    def measure(cls, detected: np.ndarray, ground_truth: np.ndarray, skeleton: Skeleton, *,
                mirrored: bool = True, max_frames: int = 400_000, seed: int = 0,
                device: torch.device | str = "cpu") -> "DetectorNoise":
        """Measure on training-split arrays (N, J, 2) normalised. mirrored: add the residuals of
        the mirrored frames (for flip-augmented training). max_frames: a seeded subset keeps the
        bank small (the marginals are unchanged)."""
        detected, ground_truth = np.asarray(detected), np.asarray(ground_truth)
        if len(detected) > max_frames:
            keep = np.sort(np.random.default_rng(seed).choice(len(detected), size=max_frames, replace=False))
            detected, ground_truth = detected[keep], ground_truth[keep]
        residual, swapped = measure_residuals(detected, ground_truth, skeleton)
        if mirrored:
            residual = np.concatenate([residual, flip_horizontal(residual, skeleton)])
        return cls(torch.from_numpy(np.ascontiguousarray(residual)).to(device), float(swapped.mean()),
                   torch.as_tensor(skeleton.flip_permutation, device=device))

    def apply(self, keypoints_2d: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ground-truth 2D (B, J, 2) -> detector-like 2D: a random measured residual each, and a
        left/right swap with the measured probability. A window (B, W, J, 2) gets one residual
        and one swap draw per sample, the same in all its frames."""
        b, device = keypoints_2d.shape[0], keypoints_2d.device
        idx = torch.randint(0, self.residuals.shape[0], (b,), generator=generator, device=device)
        swap = torch.rand(b, generator=generator, device=device) < self.swap_rate
        x = keypoints_2d if keypoints_2d.ndim == 4 else keypoints_2d[:, None]    # (B, W, J, 2)
        base = torch.where(swap[:, None, None, None], x[..., self.perm, :], x)
        out = base + self.residuals[idx][:, None].to(keypoints_2d.dtype)
        return out if keypoints_2d.ndim == 4 else out[:, 0]


def transplant_errors(target: torch.Tensor, detected: torch.Tensor, ground_truth: torch.Tensor,
                      perm: torch.Tensor) -> torch.Tensor:
    """Ground-truth 2D windows `target` (B, W, J, 2) -> detector-like windows carrying, frame by
    frame, the measured error of other windows: `detected` and `ground_truth` (B, W, J, 2) of
    source windows of the training split. Each frame gets its source frame's residual
    (`measure_residuals`' rule: against the left/right-swapped ground truth where that fits the
    detection SWAP_MARGIN times better, and then the target frame is swapped too), so the
    detector's jitter, slow drift and swaps keep their order in time."""
    gt_swapped = ground_truth[..., perm, :]
    err = torch.linalg.vector_norm(detected - ground_truth, dim=-1).mean(dim=-1)             # (B, W)
    err_swapped = torch.linalg.vector_norm(detected - gt_swapped, dim=-1).mean(dim=-1)
    swapped = (err_swapped < SWAP_MARGIN * err)[..., None, None]
    residual = torch.where(swapped, detected - gt_swapped, detected - ground_truth)
    return torch.where(swapped, target[..., perm, :], target) + residual
