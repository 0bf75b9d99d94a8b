"""Seaborn heatmaps of the skeleton adjacency and the learned affinities (Fig. 5).

What is plotted, per graph-conv layer, is the affinity the layer mixes joints with, as in the
released code: Â = ((A + Q) + (A + Q)ᵀ) / 2 — the skeleton adjacency A plus the learned
additive matrix Q, symmetrised (`diffupose.model.gcn.modulated_affinity`). There is no
multiplicative mask P (the paper's A ⊙ P); the learned per-joint modulation M scales features,
not the affinity, and is not shown. AFFINITY_LABEL names it in figure titles.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .skeleton3d import as_numpy

__all__ = ["model_affinities", "affinity_heatmaps", "affinity_figure", "strongest_nonskeletal_links",
           "AFFINITY_LABEL"]

AFFINITY_LABEL = "((A+Q) + (A+Q)ᵀ)/2"


def model_affinities(denoiser) -> tuple[list[str], list[np.ndarray]]:
    """The GCN denoiser's affinities, one (J, J) array per graph-conv layer
    (((A + Q) + (A + Q)ᵀ) / 2, see the module docstring), with the layer names. Models without
    them raise ConfigError."""
    if not hasattr(denoiser, "modulated_affinities"):
        raise ConfigError(f"{type(denoiser).__name__} has no modulated graph convolutions "
                          "(affinities exist only for the gcn denoiser)")
    affinities = [as_numpy(a) for a in denoiser.modulated_affinities()]
    names = list(denoiser.layer_names()) if hasattr(denoiser, "layer_names") else []
    if len(names) != len(affinities):
        names = [f"layer {i}" for i in range(len(affinities))]
    return names, affinities


def affinity_heatmaps(adjacency, affinities: Sequence, joint_names: Sequence[str],
                      layer_names: Sequence[str] | None = None, ncols: int = 3,
                      panel_size: float = 4.2):
    """adjacency: (J, J) skeleton adjacency A; affinities: list of (J, J) learned affinities
    ((A+Q) + (A+Q)ᵀ)/2, one per layer -> matplotlib Figure: the adjacency first, then one heatmap per
    layer, every panel labelled with the joint names (Fig. 5). Affinities use a diverging
    colour map centred at 0 (learned non-skeletal links can be negative)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = list(joint_names)
    adj = as_numpy(adjacency)
    mats = [as_numpy(a) for a in affinities]
    for m in [adj, *mats]:
        if m.shape != (len(names), len(names)):
            raise ValueError(f"affinity_heatmaps: expected ({len(names)}, {len(names)}) matrices, got {m.shape}")
    labels = list(layer_names) if layer_names is not None else [f"layer {i}" for i in range(len(mats))]
    panels = [("skeleton adjacency", adj, "Greys", None)] + [
        (f"{label}: {AFFINITY_LABEL}", m, "RdBu_r", 0.0) for label, m in zip(labels, mats)]
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False)
    for ax, (title, m, cmap, center) in zip(axes.flat, panels):
        sns.heatmap(m, ax=ax, cmap=cmap, center=center, square=True, xticklabels=names,
                    yticklabels=names, cbar_kws=dict(shrink=0.7))
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=6)
        ax.set_xticklabels(names, rotation=90)
        ax.set_yticklabels(names, rotation=0)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    plt.close(fig)  # returned, not shown: the caller displays or saves it
    return fig


def affinity_figure(affinity, joint_names: Sequence[str], title: str = "Learned affinity"):
    """affinity: (J, J) -> interactive plotly heatmap (hover shows both joint names and the
    weight), diverging colours centred at 0, rows top to bottom in joint order."""
    import plotly.graph_objects as go

    a = as_numpy(affinity)
    names = list(joint_names)
    if a.shape != (len(names), len(names)):
        raise ValueError(f"affinity_figure: expected ({len(names)}, {len(names)}), got {a.shape}")
    bound = float(np.abs(a).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=a, x=names, y=names, colorscale="RdBu_r", zmin=-bound, zmax=bound,
                               hovertemplate="%{y} – %{x}: %{z:.4f}<extra></extra>",
                               meta={"role": "affinity", "index": 0}))
    fig.update_layout(title=title, yaxis=dict(autorange="reversed", scaleanchor="x"),
                      xaxis=dict(tickangle=-60), width=620, height=600, template="plotly_white")
    return fig


def strongest_nonskeletal_links(affinity, adjacency, joint_names: Sequence[str], k: int = 10) -> list[dict]:
    """affinity: (J, J) learned affinity; adjacency: (J, J) skeleton adjacency (any non-zero
    off-diagonal entry is a bone) -> the k joint pairs i < j that are not bones with the
    largest |affinity| (symmetrised), strongest first, as dicts
    {i, j, names: [name_i, name_j], link: "name_i - name_j", weight}."""
    a = as_numpy(affinity)
    adj = as_numpy(adjacency)
    if a.shape != adj.shape or a.shape[0] != len(joint_names):
        raise ValueError(f"strongest_nonskeletal_links: shapes {a.shape}, {adj.shape} and "
                         f"{len(joint_names)} joint names disagree")
    a = (a + a.T) / 2.0
    bone = (adj != 0) | (adj.T != 0)
    rows, cols = np.triu_indices(a.shape[0], k=1)
    keep = ~bone[rows, cols]
    rows, cols = rows[keep], cols[keep]
    weights = a[rows, cols]
    order = np.argsort(-np.abs(weights), kind="stable")[:k]
    return [
        {"i": int(rows[o]), "j": int(cols[o]),
         "names": [joint_names[rows[o]], joint_names[cols[o]]],
         "link": f"{joint_names[rows[o]]} - {joint_names[cols[o]]}",
         "weight": float(weights[o])}
        for o in order
    ]
