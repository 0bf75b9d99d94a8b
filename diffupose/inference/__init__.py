"""Inference: from 2D keypoints to 3D hypotheses, one path for every caller.

- `lifter`: `Lifter` (load a run, a checkpoint or a zoo model; sample H hypotheses; aggregate)
  and `SamplingSettings`;
- `aggregate`: H hypotheses -> one pose (mean, medians, reprojection-weighted, oracles) and
  their spread (`hypothesis_spread`); the metrics that score them live in `evaluation.metrics`;
- `calibration`: the post-hoc `Calibration` of the hypotheses' spread (calibration.json beside the
  weights), which the Lifter applies by default;
- `zoo`: the shipped models (`diffupose/zoo_models/`), cards and checksums.
"""
from .lifter import CHECKPOINTS, Lifter, LiftOutput, SamplingSettings, check_checkpoint_choice, checkpoint_for_split

__all__ = ["CHECKPOINTS", "Lifter", "LiftOutput", "SamplingSettings", "check_checkpoint_choice",
           "checkpoint_for_split"]
