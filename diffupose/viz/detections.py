"""Figures of the detected-2D analysis (`diffupose.evaluation.detection_analysis`): the detector's
per-joint 2D error beside the lifter's per-joint 3D error, and 3D error and hypothesis spread
binned by the 2D error of the input. Each function returns a plotly Figure and never shows it."""
from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["per_joint_error_figure", "error_bins_figure"]


def per_joint_error_figure(rows: Sequence[dict[str, Any]], title: str | None = None) -> go.Figure:
    """Two panels over the joints: the detector's mean 2D error (px), and the 3D error (mm) on
    detections and on ground-truth 2D (the `per_joint` rows of `analyse_detections`)."""
    joints = [r["joint"] for r in rows]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("detector: 2D error per joint (px)", "lifter: 3D error per joint (mm)"))
    fig.add_trace(go.Bar(x=joints, y=[r["2D error (px)"] for r in rows], name="2D error (px)",
                         marker_color="#7f7f7f", meta={"role": "2d"}), row=1, col=1)
    keys = [k for k in rows[0] if k.startswith("3D error")] if rows else []
    for key, color in zip(keys, ("#d62728", "#1f77b4")):
        fig.add_trace(go.Bar(x=joints, y=[r[key] for r in rows], name=key.replace("3D error, ", "").replace(" (mm)", ""),
                             marker_color=color, meta={"role": "3d"}), row=1, col=2)
    fig.update_xaxes(tickangle=-60)
    fig.update_layout(barmode="group", height=480, title=title or "Where the detector errs, and what it costs in 3D",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def error_bins_figure(bins: Sequence[dict[str, Any]], title: str | None = None) -> go.Figure:
    """3D MPJPE and hypothesis spread (mm) per bin of the input's 2D error; the share of
    samples in each bin is in the hover text."""
    labels = [b["2D error"] for b in bins]
    text = [f"{b['samples']} samples ({100 * b['share']:.1f} %)" for b in bins]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[b["3D MPJPE (mm)"] for b in bins], name="3D MPJPE (mm)", hovertext=text,
                         marker_color="#d62728", meta={"role": "error"}))
    fig.add_trace(go.Bar(x=labels, y=[b["spread (mm)"] for b in bins], name="hypothesis spread (mm)", hovertext=text,
                         marker_color="#2ca02c", meta={"role": "spread"}))
    fig.update_layout(barmode="group", height=420, xaxis_title="mean 2D error of the input (px)", yaxis_title="mm",
                      title=title or "Does the model know when its input is bad? Error and spread by 2D error")
    return fig
