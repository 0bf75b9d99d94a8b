"""Evaluation: the protocols of the paper and everything measured on a split.

- `scoring`: the one evaluation entry — `open_run` (a model on a split, with the skeleton and
  checkpoint-choice checks) and `score_batches` (the batched scoring loop every caller uses);
- `protocols`: `evaluate` (GT-free and official-oracle protocols, per-action tables, the
  protocol card) and the comparison with the paper;
- `reference`: the paper's numbers as data;
- `hypothesis_store` / `hypothesis_cache`: hypotheses sampled once and stored, and what is
  measured on them (spread, calibration);
- `robustness`, `ablations`, `detection_analysis`, `sampler_curve`: the matrices, ablations,
  detected-2D analysis and accuracy-NFE curves of the reports.
"""
from .protocols import METRICS, PROTOCOLS, EvalResult, evaluate
from .scoring import EvalRun, open_run, score_batches

__all__ = ["evaluate", "EvalResult", "METRICS", "PROTOCOLS", "open_run", "EvalRun", "score_batches"]
