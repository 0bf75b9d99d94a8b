"""Post-hoc calibration of the hypotheses' spread, stored beside a model's weights.

The sampler's hypotheses are over-confident (docs/probabilistic.md): their spread is smaller
than their error. A `Calibration` corrects that after the fact, per 2D source ("detected" or
"clean"), without touching the aggregate pose:

- `joint_scale` (J,): each hypothesis' deviation from the aggregate is scaled per joint,
  h' = agg + s_j (h - agg) (`scale_hypotheses`), so the aggregate (mean, median, ...) and its
  MPJPE do not change;
- `conformal_factors` (Q, J) at `levels` (Q,): split-conformal per-joint radius factors, the
  finite-sample conformal quantile (the ceil((n + 1) q)-th smallest of n fitting scores) of the
  nonconformity score |gt_j - agg_j| / spread_j, spread_j the per-joint spread of the
  calibrated hypotheses (`hypothesis_spread`): radius_j(q) = factor_j(q) x spread_j covers the
  ground truth with probability >= q on data exchangeable with the fitting rows;
- `method`: which of the two calibrated better on held-out rows; it decides the bands:
  "scale" = the calibrated hypotheses' own q-quantile balls around their per-coordinate median
  (`quantile_bands`, the same balls the quantile calibration error scores), "conformal" = balls
  of radius_j(q) around the aggregate;
- `fitted_on`: provenance (model, data file, split, subjects, rows, N, sampler, steps, flip,
  seed, date, git commit) and `held_out`: the held-out numbers that chose the method.

Stored as `calibration.json` (plain JSON, no pickle, written atomically) at the top of a run
folder or a zoo model's folder, one entry per source (`load_calibrations`, `save_calibration`).
`Lifter` applies it by default (`SamplingSettings.calibrated`); the fit and its report live in
`diffupose.evaluation.calibration` (`diffupose calibrate`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError
from ..utils import as_numpy, atomic_write_text, to_jsonable
from .aggregate import hypothesis_spread

__all__ = ["CALIBRATION_FILE", "CALIBRATION_QUANTILES", "CALIBRATION_SOURCES", "CALIBRATION_METHODS",
           "Calibration", "quantile_bands", "scale_hypotheses", "load_calibrations", "save_calibration"]

CALIBRATION_FILE = "calibration.json"
FORMAT_VERSION = 1
# The quantile calibration grid (evaluation.metrics re-exports it): 0.05, 0.10, ..., 0.95;
# 0.5, 0.9 and 0.95 (the bands the reports quote) are on it.
CALIBRATION_QUANTILES = np.round(np.arange(0.05, 0.951, 0.05), 2)
CALIBRATION_SOURCES: tuple[str, ...] = ("clean", "detected")
CALIBRATION_METHODS: tuple[str, ...] = ("scale", "conformal")
_SPREAD_FLOOR = 1e-9      # metres: a joint whose hypotheses all agree (the root) divides by this


def quantile_bands(hyps, quantiles=CALIBRATION_QUANTILES) -> tuple[np.ndarray, np.ndarray]:
    """The hypotheses' own q-quantile balls: centre = per-coordinate median of the H hypotheses,
    radius r_q = q-quantile of their distances to the centre, taken as the order statistic at rank
    q (H + 1) (linear interpolation between ranks: `np.quantile` at level (q (H + 1) - 1) / (H - 1),
    clipped to [0, 1]), so that one more draw of the sampler falls inside with probability q for
    any H. `evaluation.metrics.calibration_indicators` scores these balls.

    hyps: (B, H, J, 3), quantiles: (Q,) in (0, 1) -> centre (B, J, 3), radius (B, Q, J)
    """
    hyps = as_numpy(hyps)
    assert hyps.ndim == 4 and hyps.shape[-1] == 3, f"hyps: expected (B, H, J, 3), got {hyps.shape}"
    q = np.asarray(quantiles, dtype=np.float64)
    assert q.ndim == 1 and ((q > 0) & (q < 1)).all(), f"quantiles must lie in (0, 1), got {q}"
    centre = np.median(hyps, axis=1)                                     # (B, J, 3)
    distance = np.linalg.norm(hyps - centre[:, None], axis=-1)           # (B, H, J)
    num_h = hyps.shape[1]
    level = np.clip((q * (num_h + 1) - 1) / max(num_h - 1, 1), 0.0, 1.0)
    return centre, np.moveaxis(np.quantile(distance, level, axis=1), 0, 1)


def scale_hypotheses(hyps, aggregate, joint_scale) -> np.ndarray:
    """h' = agg + s_j (h - agg): every hypothesis' deviation from the aggregate scaled per joint.

    hyps: (B, H, J, 3), aggregate: (B, J, 3), joint_scale: (J,) -> (B, H, J, 3) in hyps' dtype
    (float64 arithmetic)."""
    h = np.asarray(hyps)
    agg = np.asarray(aggregate, dtype=np.float64)[:, None]
    s = np.asarray(joint_scale, dtype=np.float64)
    assert h.ndim == 4 and agg.shape == (h.shape[0], 1) + h.shape[2:], f"hyps {h.shape} / aggregate {agg.shape}"
    assert s.shape == (h.shape[2],), f"joint_scale: expected ({h.shape[2]},), got {s.shape}"
    out = agg + s[None, None, :, None] * (h.astype(np.float64) - agg)
    return out.astype(h.dtype) if np.issubdtype(h.dtype, np.floating) else out


@dataclass(frozen=True)
class Calibration:
    """One 2D source's calibration (see the module docstring). Arrays in float64; radii metres."""

    source: str
    joint_scale: np.ndarray                      # (J,)
    levels: tuple[float, ...]                    # (Q,) coverage levels of the conformal factors
    conformal_factors: np.ndarray                # (Q, J), inf where too few rows for the level
    method: str = "scale"
    joint_names: tuple[str, ...] = ()
    fitted_on: dict = field(default_factory=dict)
    held_out: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in CALIBRATION_SOURCES:
            raise ConfigError(f"calibration source must be one of {', '.join(CALIBRATION_SOURCES)}, got {self.source!r}")
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}")
        scale = np.asarray(self.joint_scale, dtype=np.float64).reshape(-1)
        factors = np.asarray(self.conformal_factors, dtype=np.float64)
        levels = tuple(float(v) for v in self.levels)
        if factors.shape != (len(levels), len(scale)) or not (np.isfinite(scale) & (scale > 0)).all():
            raise ConfigError(f"calibration ({self.source}): joint_scale {scale.shape} must be positive and the "
                              f"conformal factors (levels x joints) {factors.shape} match {len(levels)} levels")
        object.__setattr__(self, "joint_scale", scale)
        object.__setattr__(self, "conformal_factors", factors)
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))

    @property
    def num_joints(self) -> int:
        return len(self.joint_scale)

    def replace(self, **changes: Any) -> "Calibration":
        return replace(self, **changes)

    def apply(self, hypotheses, aggregate) -> np.ndarray:
        """Raw hypotheses (B, H, J, 3) and their aggregate (B, J, 3) -> calibrated hypotheses (the
        aggregate unchanged: `scale_hypotheses` with `joint_scale`)."""
        return scale_hypotheses(hypotheses, aggregate, self.joint_scale)

    def factors(self, level: float) -> np.ndarray:
        """The conformal factors (J,) of a stored level (one-line ConfigError for another)."""
        i = [k for k, v in enumerate(self.levels) if abs(v - float(level)) < 1e-9]
        if not i:
            raise ConfigError(f"calibration ({self.source}): no conformal factors for level {level:g}; stored levels: "
                              + ", ".join(f"{v:g}" for v in self.levels))
        return self.conformal_factors[i[0]]

    def bands(self, hypotheses, aggregate, levels) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated bands at `levels` (Q,): centre (B, J, 3) and radius (B, Q, J) metres.
        hypotheses: the CALIBRATED hypotheses (`apply`); aggregate: (B, J, 3), the centre of the
        conformal bands. "scale": `quantile_bands` of the hypotheses; "conformal": around the
        aggregate, radius factor_j(q) x per-joint spread of the hypotheses."""
        if self.method == "scale":
            return quantile_bands(hypotheses, levels)
        spread = hypothesis_spread(hypotheses)
        radius = np.stack([self.factors(q)[None, :] * spread for q in np.atleast_1d(levels)], axis=1)
        return np.asarray(aggregate, dtype=np.float64), radius

    def radii(self, hypotheses_or_spread, level: float = 0.9) -> np.ndarray:
        """Per-joint radius (N, J) metres of the level-`level` band, from the CALIBRATED hypotheses
        (N, H, J, 3); the conformal method also takes their per-joint spread (N, J). Centre: the
        per-coordinate median of the hypotheses ("scale") or the aggregate ("conformal")."""
        x = as_numpy(hypotheses_or_spread)
        if x.ndim == 2:
            if self.method != "conformal":
                raise ConfigError(f"calibration ({self.source}): method 'scale' takes its radii from the hypotheses "
                                  f"(N, H, J, 3), not a spread")
            return self.factors(level)[None, :] * x
        if self.method == "conformal":
            return self.factors(level)[None, :] * hypothesis_spread(x)
        return quantile_bands(x, [level])[1][:, 0]

    def summary(self) -> dict[str, Any]:
        """What a card says about it: source, method, the fitting data and the held-out numbers."""
        return to_jsonable({"source": self.source, "method": self.method,
                            "joint_scale_mean": float(self.joint_scale.mean()), "fitted_on": self.fitted_on,
                            "held_out": self.held_out})

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"source": self.source, "method": self.method, "joint_names": list(self.joint_names),
                            "joint_scale": self.joint_scale, "levels": list(self.levels),
                            "conformal_factors": self.conformal_factors, "fitted_on": self.fitted_on,
                            "held_out": self.held_out})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        factors = np.array([[math.inf if v is None else float(v) for v in row] for row in d["conformal_factors"]],
                           dtype=np.float64).reshape(len(d["levels"]), -1)
        return cls(source=d["source"], joint_scale=np.asarray(d["joint_scale"], dtype=np.float64),
                   levels=tuple(d["levels"]), conformal_factors=factors, method=d.get("method", "scale"),
                   joint_names=tuple(d.get("joint_names", ())), fitted_on=dict(d.get("fitted_on") or {}),
                   held_out=dict(d.get("held_out") or {}))


def _path(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    return folder if folder.name == CALIBRATION_FILE else folder / CALIBRATION_FILE


def load_calibrations(folder: str | os.PathLike) -> dict[str, Calibration]:
    """The calibrations stored in `folder`/calibration.json, by source ({} when there is none).
    A damaged file is a one-line CheckpointError naming it."""
    path = _path(folder)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {source: Calibration.from_dict(entry) for source, entry in doc["sources"].items()}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{path}: not a calibration file ({type(e).__name__}: {e})") from None


def save_calibration(folder: str | os.PathLike, calibration: Calibration) -> Path:
    """Write `calibration` into `folder`/calibration.json (atomic, JSON), keeping the entries of
    the other sources already there. Returns the file's path."""
    path = _path(folder)
    entries = {s: c.to_dict() for s, c in load_calibrations(path).items() if s != calibration.source}
    entries[calibration.source] = calibration.to_dict()
    doc = {"format": "diffupose calibration", "version": FORMAT_VERSION,
           "note": "post-hoc calibration of the hypotheses' spread (diffupose.inference.calibration); "
                   "fit with `diffupose calibrate`",
           "sources": {s: entries[s] for s in sorted(entries)}}
    atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path
