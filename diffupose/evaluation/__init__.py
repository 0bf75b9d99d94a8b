"""Evaluation: the protocols of the paper and everything measured on a split.

- `scoring`: the one evaluation entry — `open_run` (a model on a split, with the skeleton and
  checkpoint-choice checks) and `score_batches` (the batched scoring loop every caller uses);
- `protocols`: `evaluate` (GT-free and official-oracle protocols, per-action tables, the
  protocol card) and the comparison with the paper;
- `metrics`: MPJPE, P-MPJPE, N-MPJPE, hypothesis errors, calibration, PCK, the per-action tables
  (the hypothesis spread is the inference floor's, re-exported);
- `reference`: the paper's numbers as data;
- `calibration`: fitting the post-hoc calibration of the hypotheses on a validation split (held
  out by sequence), its raw vs calibrated report, and `calibrate_model` (`diffupose calibrate`);
- `hypothesis_store` / `hypothesis_cache`: hypotheses sampled once and stored, and what is
  measured on them (spread, calibration);
- `robustness`, `detection_analysis`, `sampler_curve`: the matrices, detected-2D analysis and
  accuracy-NFE curves of the reports (the ablations, which train, are `workbench.ablations`).
"""
from .protocols import METRICS, PROTOCOLS, EvalResult, evaluate
from .scoring import EvalRun, open_run, score_batches

__all__ = ["evaluate", "EvalResult", "METRICS", "PROTOCOLS", "open_run", "EvalRun", "score_batches"]
