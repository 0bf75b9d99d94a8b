"""Curves and distributions: training curves, error vs number of hypotheses (Fig. 1),
bone-length histograms. Writing figures to disk is viz/export.py (`save_figure`)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..geometry.skeleton import Skeleton
from ..utils import read_history
from .skeleton3d import as_numpy

__all__ = ["training_curves_figure", "error_vs_hypotheses_figure", "bone_length_histograms"]

_LOSS_KEYS = ("loss", "train_loss", "train/loss")
_STEP_KEYS = ("step", "optimizer_step", "global_step", "iteration")


def _first_key(rows: list[dict], candidates: Iterable[str]) -> str | None:
    for key in candidates:
        if any(key in r for r in rows):
            return key
    return None


def training_curves_figure(history, title: str = "Training") -> go.Figure:
    """history: list of dicts (rows of history.jsonl) or a path to it or its run directory
    (`utils.read_history`) -> two stacked panels:
    the training loss and every `*mpjpe*` validation column against the optimiser step."""
    rows = read_history(history) if isinstance(history, (str, Path)) else list(history)
    step_key = _first_key(rows, _STEP_KEYS)
    loss_key = _first_key(rows, _LOSS_KEYS)
    val_keys = sorted({k for r in rows for k in r if "mpjpe" in k.lower()})
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("training loss", "validation MPJPE"))

    def column(key):
        pts = [(r[step_key] if step_key else i, r[key]) for i, r in enumerate(rows)
               if r.get(key) is not None and isinstance(r.get(key), (int, float))]
        return [p[0] for p in pts], [p[1] for p in pts]

    if loss_key:
        x, y = column(loss_key)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=loss_key, meta={"role": "loss"}), row=1, col=1)
    for key in val_keys:
        x, y = column(key)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=key, meta={"role": "val"}), row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="MPJPE", row=2, col=1)
    fig.update_xaxes(title_text=step_key or "row", row=2, col=1)
    fig.update_layout(title=title, height=520, template="plotly_white")
    return fig


def error_vs_hypotheses_figure(ours: Sequence[tuple[int, float]],
                               reference: Sequence[tuple[str, int, float]] = (),
                               title: str = "Error vs number of hypotheses",
                               unit: str = "mm", ours_name: str = "ours") -> go.Figure:
    """ours: [(N hypotheses, MPJPE)]; reference: [(method, N, MPJPE)] published points ->
    MPJPE against N on a log x axis (Fig. 1)."""
    fig = go.Figure()
    pts = sorted((int(n), float(e)) for n, e in ours)
    if pts:
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                 name=ours_name, line=dict(width=3), meta={"role": "ours"}))
    by_method: dict[str, list[tuple[int, float]]] = {}
    for method, n, e in reference:
        by_method.setdefault(str(method), []).append((int(n), float(e)))
    for method, mpts in by_method.items():
        mpts.sort()
        fig.add_trace(go.Scatter(x=[p[0] for p in mpts], y=[p[1] for p in mpts], mode="lines+markers",
                                 name=method, line=dict(dash="dot"), marker=dict(symbol="diamond"),
                                 meta={"role": "reference"}))
    fig.update_layout(title=title, xaxis=dict(type="log", title="number of hypotheses N"),
                      yaxis=dict(title=f"MPJPE ({unit})"), template="plotly_white", height=420)
    return fig


def bone_length_histograms(poses_3d, skeleton: Skeleton, unit: str = "mm", ncols: int = 4, bins: int = 30):
    """poses_3d: (S, J, 3) or (S, H, J, 3) metres -> matplotlib Figure with one seaborn
    histogram of the length of each bone (named child - parent), in `unit`."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    p = as_numpy(poses_3d).reshape(-1, skeleton.num_joints, 3)
    lengths = skeleton.bone_lengths(p) * (1000.0 if unit == "mm" else 1.0)
    edges = skeleton.edges
    nrows = math.ceil(len(edges) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for b, ((child, parent), ax) in enumerate(zip(edges, axes.flat)):
        sns.histplot(lengths[:, b], bins=bins, ax=ax, color="#4c72b0")
        ax.set_title(f"{skeleton.joint_names[child]} - {skeleton.joint_names[parent]}", fontsize=8)
        ax.set_xlabel(f"length ({unit})", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(edges):]:
        ax.set_visible(False)
    fig.tight_layout()
    plt.close(fig)
    return fig
