"""Figures of the probabilistic evaluation (`diffupose.evaluation.hypothesis_cache.evaluate_cache`):
error against N per aggregator (oracles dashed and labelled), the reliability diagram of the
quantile calibration (and raw vs calibrated: `diffupose.evaluation.calibration`), the spread-error
scatter per joint and the most ambiguous joints/actions; and of the robustness matrix
(`diffupose.evaluation.robustness`): error per (missing joints, pixel noise) cell per model, and the
hypothesis spread at missing vs present joints.

Every function returns a `plotly.graph_objects.Figure` and never shows it; traces carry
`meta={"role": ..., "oracle": bool}` so code and tests can find them.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..model.masking import matrix_pivot
from ..utils import as_numpy

__all__ = ["aggregator_error_figure", "reliability_figure", "reliability_comparison_figure", "spread_error_figure",
           "ambiguity_figure", "robustness_heatmaps", "missing_spread_figure"]


def aggregator_error_figure(table: Sequence[dict[str, Any]], metric: str = "MPJPE",
                            title: str | None = None) -> go.Figure:
    """Error against the number of hypotheses N, one line per aggregator (log x axis).

    table: rows {aggregator, N, <metric>, oracle} (`UncertaintyReport.table`); ground-truth-free
    aggregators solid, oracles (which use the ground truth) dashed with "ORACLE" in the name.
    """
    fig = go.Figure()
    names = list(dict.fromkeys(r["aggregator"] for r in table))
    for name in sorted(names, key=lambda n: (any(r["oracle"] for r in table if r["aggregator"] == n), names.index(n))):
        rows = sorted((r for r in table if r["aggregator"] == name), key=lambda r: r["N"])
        oracle = bool(rows[0]["oracle"])
        fig.add_trace(go.Scatter(
            x=[r["N"] for r in rows], y=[r[metric] for r in rows], mode="lines+markers",
            name=f"ORACLE {name} (uses GT)" if oracle else name,
            line=dict(dash="dash" if oracle else "solid", width=1.5 if oracle else 2.5),
            meta={"role": "aggregator", "aggregator": name, "oracle": oracle}))
    fig.update_layout(title=title or f"{metric} vs number of hypotheses, per aggregator",
                      xaxis=dict(type="log", title="number of hypotheses N"),
                      yaxis=dict(title=f"{metric} (mm)"), template="plotly_white", height=460)
    return fig


def reliability_figure(calibration: dict[str, Any], joints: Sequence[str] | None = None,
                       title: str | None = None) -> go.Figure:
    """Reliability diagram: observed fraction of ground truths inside the q-quantile ball
    against q; the diagonal is perfect calibration, below it over-confident.

    calibration: `metrics.quantile_calibration` output; joints: per-joint curves to draw (default
    all, thin lines).
    """
    q = list(calibration["quantiles"])
    fig = _reliability_frame()
    per_joint = calibration.get("fraction_per_joint", {})
    for joint in (joints if joints is not None else list(per_joint)):
        fig.add_trace(go.Scatter(x=q, y=per_joint[joint], mode="lines", name=joint, opacity=0.45,
                                 line=dict(width=1), visible="legendonly" if len(per_joint) > 8 else True,
                                 meta={"role": "joint", "joint": joint, "oracle": False}))
    fig.add_trace(go.Scatter(x=q, y=calibration["fraction"], mode="lines+markers", name="all joints",
                             line=dict(width=3, color="#c44e52"), meta={"role": "overall", "oracle": False}))
    err = calibration.get("error")
    return _reliability_layout(fig, title or (f"Reliability diagram (calibration error {err:.3f})" if err is not None
                                              and math.isfinite(err) else "Reliability diagram"))


def reliability_comparison_figure(curves: dict[str, dict[str, Any]], title: str | None = None) -> go.Figure:
    """Reliability diagrams of several band sets in one figure, e.g. raw vs calibrated.

    curves: {label: figures} where figures carry "reliability" {"quantiles", "fraction"} and
    "calibration_error" (`diffupose.evaluation.calibration` reports: their "raw" and "calibrated",
    or a calibration file's held-out "raw", "scale" and "conformal"); None entries are skipped.
    """
    fig = _reliability_frame()
    colours = {"raw": "#4c72b0", "calibrated": "#c44e52", "scale": "#dd8452", "conformal": "#55a868"}
    for label, figures in curves.items():
        if not figures or not figures.get("reliability"):
            continue
        curve, err = figures["reliability"], figures.get("calibration_error")
        name = label + (f" (error {err:.3f})" if err is not None and math.isfinite(err) else "")
        fig.add_trace(go.Scatter(x=list(curve["quantiles"]), y=list(curve["fraction"]), mode="lines+markers",
                                 name=name, line=dict(width=3, color=colours.get(label.split(" ")[0])),
                                 meta={"role": "curve", "label": label, "oracle": False}))
    return _reliability_layout(fig, title or "Reliability diagram: raw vs calibrated")


def _reliability_frame() -> go.Figure:
    """A figure holding the diagonal of perfect calibration."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dot", color="#888"), meta={"role": "diagonal", "oracle": False}))
    return fig


def _reliability_layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, xaxis=dict(title="quantile level q", range=[0, 1]),
                      yaxis=dict(title="fraction of ground truths inside", range=[0, 1]),
                      template="plotly_white", height=460, width=560)
    return fig


def spread_error_figure(spread, errors, joint_names: Sequence[str], correlation: dict[str, float] | None = None,
                        max_points: int = 400, ncols: int = 4, seed: int = 0, title: str | None = None) -> go.Figure:
    """Spread against error per joint (one panel per joint, the root left out when it is
    always zero), at most `max_points` random samples per panel.

    spread, errors: (B, J) mm; correlation: {joint: Spearman rho} for the panel titles.
    """
    spread, errors = as_numpy(spread), as_numpy(errors)
    keep = [j for j in range(spread.shape[1]) if not ((spread[:, j] == 0).all() and (errors[:, j] == 0).all())]
    nrows = max(1, math.ceil(len(keep) / ncols))
    titles = []
    for j in keep:
        rho = (correlation or {}).get(joint_names[j])
        titles.append(f"{joint_names[j]}" + (f" ρ={rho:.2f}" if rho is not None and math.isfinite(rho) else ""))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles, horizontal_spacing=0.05,
                        vertical_spacing=0.08)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(spread), size=min(max_points, len(spread)), replace=False) if len(spread) else []
    for i, j in enumerate(keep):
        fig.add_trace(go.Scatter(x=spread[rows, j], y=errors[rows, j], mode="markers", name=joint_names[j],
                                   marker=dict(size=3, opacity=0.5, color="#4c72b0"), showlegend=False,
                                   meta={"role": "joint", "joint": joint_names[j], "oracle": False}),
                      row=i // ncols + 1, col=i % ncols + 1)
    fig.update_xaxes(title_text="spread (mm)", row=nrows)
    fig.update_yaxes(title_text="error (mm)", col=1)
    fig.update_layout(title=title or "Spread vs error of the mean pose, per joint", template="plotly_white",
                      height=230 * nrows + 80, showlegend=False)
    return fig


def ambiguity_figure(ambiguity: dict[str, Any], title: str | None = None) -> go.Figure:
    """Mean hypothesis spread per joint and per action (bars, largest first)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per joint", "per action"), horizontal_spacing=0.12)
    joints = {k: v for k, v in ambiguity["per_joint_spread_mm"].items() if v and v > 0}
    actions = {k: v for k, v in ambiguity["per_action_spread_mm"].items() if k != "Average" and v is not None}
    for col, cells in ((1, joints), (2, actions)):
        items = sorted(cells.items(), key=lambda kv: -kv[1])
        fig.add_trace(go.Bar(x=[k for k, _ in items], y=[v for _, v in items], marker_color="#4c72b0",
                             showlegend=False, meta={"role": "joints" if col == 1 else "actions", "oracle": False}),
                      row=1, col=col)
    fig.update_yaxes(title_text="spread (mm)", col=1)
    fig.update_layout(title=title or "Where the hypotheses disagree most", template="plotly_white", height=420)
    return fig


def robustness_heatmaps(rows: Sequence[dict[str, Any]], metric: str = "mpjpe_aggregate",
                        title: str | None = None) -> go.Figure:
    """One heatmap per model: rows = missing joints (none, k random, k limb), columns = 2D
    noise σ (px), cells = `metric` in mm (annotated), one shared colour scale.
    rows: `diffupose.evaluation.robustness.robustness_matrix` cells."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    grids = {m: matrix_pivot([r for r in rows if r["model"] == m], metric) for m in models}
    finite = np.concatenate([g[np.isfinite(g)] for _, _, g in grids.values()] or [np.zeros(1)])
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=[f"{m} ({_input_of(rows, m)})" for m in models],
                        horizontal_spacing=0.08)
    for col, model in enumerate(models, start=1):
        labels, sigmas, grid = grids[model]
        text = [["–" if not math.isfinite(v) else f"{v:.1f}" for v in row] for row in grid]
        fig.add_trace(go.Heatmap(z=np.where(np.isfinite(grid), grid, None).tolist(), x=[f"σ={s:g} px" for s in sigmas],
                                 y=labels, text=text, texttemplate="%{text}", colorscale="Viridis", zmin=zmin,
                                 zmax=zmax, showscale=col == len(models), colorbar=dict(title="mm"),
                                 meta={"role": "robustness", "model": model, "metric": metric, "oracle": "oracle" in metric}),
                      row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_layout(title=title or f"{metric} (mm) under missing 2D joints and pixel noise",
                      template="plotly_white", height=140 + 36 * max(len(g[0]) for g in grids.values()),
                      width=max(520, 420 * len(models)))
    return fig


def missing_spread_figure(rows: Sequence[dict[str, Any]], noise_px: float = 0.0, title: str | None = None) -> go.Figure:
    """Does the model know what it cannot see? Mean hypothesis spread (mm) at the missing joints
    and at the present non-root joints, per model and mask, at one noise level (bars)."""
    cells = [r for r in rows if r["noise_px"] == noise_px and r["missing"] > 0]
    fig = go.Figure()
    for model in dict.fromkeys(r["model"] for r in cells):
        mine = [r for r in cells if r["model"] == model]
        labels = [f"{r['missing']} {r['mask']}" for r in mine]
        for key, name, pattern in (("spread_missing_joints", "missing joints", "/"), ("spread_present_joints", "present joints", "")):
            fig.add_trace(go.Bar(x=labels, y=[r[key] for r in mine], name=f"{model}: {name}",
                                 marker_pattern_shape=pattern, meta={"role": key, "model": model, "oracle": False}))
    fig.update_layout(title=title or f"Hypothesis spread at missing vs present joints (σ = {noise_px:g} px)",
                      barmode="group", yaxis=dict(title="spread (mm)"), xaxis=dict(title="missing joints"),
                      template="plotly_white", height=420)
    return fig


def _input_of(rows: Sequence[dict[str, Any]], model: str) -> str:
    inputs = {r["input"] for r in rows if r["model"] == model}
    return ", ".join(sorted(inputs))
