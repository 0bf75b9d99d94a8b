"""Inference: from 2D keypoints to 3D hypotheses, one path for every caller.

- `lifter`: `Lifter` (load a run, a checkpoint or a zoo model; sample H hypotheses; aggregate)
  and `SamplingSettings`;
- `aggregate`: H hypotheses -> one pose (mean, medians, reprojection-weighted, oracles);
- `metrics`: MPJPE, P-MPJPE, N-MPJPE, hypothesis spread, calibration;
- `zoo`: the shipped models (`diffupose/zoo_models/`), cards and checksums.
"""
from .lifter import CHECKPOINTS, Lifter, LiftOutput, SamplingSettings, check_checkpoint_choice, checkpoint_for_split

__all__ = ["CHECKPOINTS", "Lifter", "LiftOutput", "SamplingSettings", "check_checkpoint_choice",
           "checkpoint_for_split"]
