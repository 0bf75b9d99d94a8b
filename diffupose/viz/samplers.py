"""Figures of the sampler curve (`diffupose.evaluation.sampler_curve`): accuracy and calibration against
network evaluations per chain (NFE), one line per model x sampler x η. Returns plotly Figures."""
from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["sampler_curve_figure", "curve_label"]


def curve_label(row: dict[str, Any]) -> str:
    """'flow · heun', 'ddpm · ddim η=1' ... (the model label first when the row has one)."""
    name = row.get("model") or row["objective"]
    eta = f" η={row['eta']:g}" if row.get("eta") else ""
    return f"{name} · {row['sampler']}{eta}"


def sampler_curve_figure(rows: Sequence[dict[str, Any]], title: str | None = None) -> go.Figure:
    """Three panels against NFE (log axis): MPJPE of the mean of N hypotheses (solid) and of one
    hypothesis (dotted), the ORACLE best-of-N (uses the ground truth), and the quantile
    calibration error (0 = honest spread)."""
    hyp_key = next((k for r in rows for k in r if k.startswith("mpjpe_n") and k not in ("mpjpe_n1",)
                    and not k.endswith("average")), "mpjpe_n1")
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07,
                        subplot_titles=("MPJPE (mm): mean of N (solid), one hypothesis (dotted)",
                                        "ORACLE best-of-N (mm; uses the ground truth)", "calibration error"))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(curve_label(r), []).append(r)
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
    for i, (label, group) in enumerate(groups.items()):
        group = sorted(group, key=lambda r: r["nfe"])
        x, color = [r["nfe"] for r in group], palette[i % len(palette)]
        common = dict(mode="lines+markers", legendgroup=label, line=dict(color=color))
        fig.add_trace(go.Scatter(x=x, y=[r[hyp_key] for r in group], name=label, **common), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r["mpjpe_n1"] for r in group], name=label, showlegend=False,
                                 mode="lines+markers", legendgroup=label, line=dict(color=color, dash="dot")),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r["oracle"] for r in group], showlegend=False, **common), row=1, col=2)
        fig.add_trace(go.Scatter(x=x, y=[r["calibration_error"] for r in group], showlegend=False, **common),
                      row=1, col=3)
    fig.update_xaxes(type="log", title_text="network evaluations per chain (NFE)")
    fig.update_layout(height=440, title=title or "Accuracy, spread and calibration against NFE",
                      legend=dict(orientation="h", y=-0.25))
    return fig
