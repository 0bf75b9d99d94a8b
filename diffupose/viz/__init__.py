"""Figures: plotly 3D skeletons, hypothesis clouds and trajectories; seaborn heatmaps of the
learned affinities; training/error curves; `save_figure` (export.py: static export) and
`record_metrics` for reports."""
from __future__ import annotations

import json
from pathlib import Path

from ..utils import atomic_write_text, to_jsonable
from .curves import bone_length_histograms, error_vs_hypotheses_figure, training_curves_figure
from .export import find_export_browser, kaleido_available, save_figure, static_export_renderer
from .heatmaps import affinity_figure, affinity_heatmaps, model_affinities, strongest_nonskeletal_links
from .skeleton3d import (hypotheses_3d_figure, pose_2d_figure, spread_figure, trajectory_figure,
                         traces_by_role)

__all__ = [
    "pose_2d_figure", "hypotheses_3d_figure", "trajectory_figure", "spread_figure", "traces_by_role",
    "affinity_heatmaps", "affinity_figure", "strongest_nonskeletal_links", "model_affinities",
    "training_curves_figure", "error_vs_hypotheses_figure", "bone_length_histograms",
    "save_figure", "kaleido_available", "find_export_browser", "static_export_renderer", "record_metrics",
    "to_jsonable",
]


def record_metrics(out_dir, section: str, values: dict) -> Path:
    """Merge `values` into the `section` entry of out_dir/metrics.json (created if absent;
    other sections and other keys of the section are kept) with an atomic write. Returns the path."""
    path = Path(out_dir) / "metrics.json"
    data: dict = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    if not isinstance(data, dict):
        data = {}
    current = data.get(section)
    merged = dict(current) if isinstance(current, dict) else {}
    merged.update(to_jsonable(dict(values)))
    data[section] = merged
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
