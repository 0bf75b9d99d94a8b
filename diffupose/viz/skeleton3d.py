"""Plotly figures of poses: the 2D input, 3D hypothesis clouds, the denoising trajectory
(Fig. 2 of the paper) and the per-joint spread of the hypotheses.

Every function returns a `plotly.graph_objects.Figure` and never shows it. Poses are in the
camera frame (x right, y down, z forward, metres); the 3D plots draw camera x as x, depth z as
the horizontal "depth" axis and -y as up, so a person stands upright. Each trace carries
`meta={"role": ..., "index": ...}` so code (and tests) can find traces by role.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ..geometry.skeleton import Skeleton
from ..utils import as_numpy

__all__ = [
    "COLORS", "as_numpy", "to_plot_frame", "bone_polyline", "pose_2d_figure", "pose_3d_trace",
    "hypotheses_3d_traces", "hypotheses_3d_figure", "equal_ranges", "trajectory_figure", "trajectory_step_traces",
    "spread_figure", "scene_layout", "traces_by_role",
]

COLORS = {
    "hypothesis": "#4c72b0",
    "gt": "#dd8452",
    "aggregate": "#c44e52",
    "left": "#55a868",
    "right": "#8172b3",
    "center": "#444444",
    "spread": "#4c72b0",
}


def to_plot_frame(poses) -> np.ndarray:
    """poses: (..., J, 3) camera frame -> (..., J, 3) plot frame (x, depth z, up -y)."""
    p = as_numpy(poses)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def bone_polyline(pose: np.ndarray, edges: Sequence[tuple[int, int]]) -> tuple[list, ...]:
    """pose: (J, C) -> one coordinate list per axis holding every bone as a two-point segment,
    segments separated by None (one trace draws the whole skeleton)."""
    coords: list[list] = [[] for _ in range(pose.shape[-1])]
    for child, parent in edges:
        for c in range(pose.shape[-1]):
            coords[c].extend([float(pose[child, c]), float(pose[parent, c]), None])
    return tuple(coords)


def _side_edges(skeleton: Skeleton) -> dict[str, list[tuple[int, int]]]:
    left, right = set(skeleton.joints_left), set(skeleton.joints_right)
    groups: dict[str, list[tuple[int, int]]] = {"center": [], "left": [], "right": []}
    for child, parent in skeleton.edges:
        side = "left" if child in left else "right" if child in right else "center"
        groups[side].append((child, parent))
    return groups


def _check_pose(pose: np.ndarray, skeleton: Skeleton, channels: int, what: str) -> None:
    if pose.ndim != 2 or pose.shape != (skeleton.num_joints, channels):
        raise ValueError(f"{what}: expected shape ({skeleton.num_joints}, {channels}), got {pose.shape}")


def pose_2d_figure(keypoints_2d, skeleton: Skeleton, title: str = "2D input") -> go.Figure:
    """keypoints_2d: (J, 2) normalised screen coordinates (y down) -> figure with the bones
    coloured by side, joints hoverable by name; equal aspect, image y axis pointing down."""
    kp = as_numpy(keypoints_2d)
    _check_pose(kp, skeleton, 2, "pose_2d_figure")
    fig = go.Figure()
    for side, edges in _side_edges(skeleton).items():
        if not edges:
            continue
        x, y = bone_polyline(kp, edges)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{side} bones",
                                 line=dict(color=COLORS[side], width=3),
                                 meta={"role": "bones_2d", "index": side}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=kp[:, 0], y=kp[:, 1], mode="markers", name="joints",
                             text=list(skeleton.joint_names), hoverinfo="text",
                             marker=dict(color=COLORS["center"], size=6),
                             meta={"role": "joints_2d", "index": 0}))
    fig.update_layout(title=title, showlegend=False, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(title="u (normalised)", zeroline=False),
                      yaxis=dict(title="v (normalised)", autorange="reversed", scaleanchor="x",
                                 scaleratio=1, zeroline=False),
                      height=380, width=380, template="plotly_white")
    return fig


def pose_3d_trace(pose, skeleton: Skeleton, *, name: str, role: str, index: int = 0,
                  color: str, width: float = 2.0, opacity: float = 1.0, dash: str = "solid",
                  markers: bool = False, showlegend: bool = True, legendgroup: str | None = None
                  ) -> go.Scatter3d:
    """pose: (J, 3) metres, camera frame -> one Scatter3d trace drawing every bone."""
    p = to_plot_frame(pose)
    _check_pose(p, skeleton, 3, name)
    x, y, z = bone_polyline(p, skeleton.edges)
    mode = "lines+markers" if markers else "lines"
    hover = [n for c, par in skeleton.edges for n in (skeleton.joint_names[c], skeleton.joint_names[par], "")]
    return go.Scatter3d(
        x=x, y=y, z=z, mode=mode, name=name, opacity=opacity, showlegend=showlegend,
        legendgroup=legendgroup, text=hover, hoverinfo="text+name",
        line=dict(color=color, width=width, dash=dash),
        marker=dict(size=3, color=color) if markers else None,
        meta={"role": role, "index": index},
    )


def equal_ranges(*poses, margin: float = 0.08) -> list[list[float]]:
    """Plot-frame axis ranges of equal length that hold every pose given (camera frame,
    (..., J, 3)); with aspectmode 'cube' they give an equal-aspect view that always fits."""
    pts = np.concatenate([to_plot_frame(p).reshape(-1, 3) for p in poses if p is not None])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.size == 0:
        return [[-1.0, 1.0]] * 3
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo).max()) / 2 * (1 + margin), 0.05)
    return [[float(c - half), float(c + half)] for c in centre]


def scene_layout(extent: float | None = None, ranges: list[list[float]] | None = None,
                 distance: float = 1.0) -> dict:
    """Scene settings: equal aspect, labelled camera-frame axes, a front view of the person.
    `ranges` (three equal-length [lo, hi] in plot frame, see `equal_ranges`) or `extent`
    (all axes [-extent, extent]) fix the axes with aspectmode 'cube' (equal aspect, the whole
    person in view); with neither, aspectmode 'data'. `distance` scales the camera's distance
    (> 1 for small subplot scenes)."""
    if ranges is None and extent is not None:
        ranges = [[-extent, extent]] * 3
    axes = {}
    for i, (key, title) in enumerate((("xaxis", "x (m)"), ("yaxis", "depth z (m)"), ("zaxis", "up: -y (m)"))):
        axes[key] = dict(title=title)
        if ranges is not None:
            axes[key]["range"] = list(ranges[i])
    return dict(
        aspectmode="cube" if ranges is not None else "data",
        camera=dict(eye=dict(x=0.7 * distance, y=-1.7 * distance, z=0.35 * distance), up=dict(x=0, y=0, z=1), center=dict(x=0, y=0, z=0)),
        **axes,
    )


def hypotheses_3d_traces(hyps, skeleton: Skeleton, gt=None, aggregate=None) -> list[go.Scatter3d]:
    """hyps: (H, J, 3) or (J, 3) metres, camera frame; gt, aggregate: (J, 3) or None.
    Hypotheses thin and translucent, ground truth dashed orange, the aggregate bold red."""
    h = as_numpy(hyps)
    if h.ndim == 2:
        h = h[None]
    traces = [
        pose_3d_trace(h[i], skeleton, name=f"hypothesis {i + 1}", role="hypothesis", index=i,
                      color=COLORS["hypothesis"], width=2, opacity=0.35, showlegend=(i == 0),
                      legendgroup="hypotheses")
        for i in range(h.shape[0])
    ]
    if h.shape[0] > 1:
        traces[0].name = f"hypotheses (H={h.shape[0]})"
    if gt is not None:
        traces.append(pose_3d_trace(gt, skeleton, name="ground truth", role="gt", color=COLORS["gt"],
                                    width=5, dash="dash"))
    if aggregate is not None:
        traces.append(pose_3d_trace(aggregate, skeleton, name="aggregate", role="aggregate",
                                    color=COLORS["aggregate"], width=7, markers=True))
    return traces


def hypotheses_3d_figure(hyps, skeleton: Skeleton, gt=None, aggregate=None,
                         title: str = "3D hypotheses") -> go.Figure:
    """hyps: (H, J, 3) metres, camera frame; gt, aggregate: (J, 3) or None -> 3D figure with
    one trace per hypothesis (all bones), then ground truth and aggregate if given; equal
    aspect (equal-length axis ranges, aspectmode 'cube') with the whole set in view."""
    fig = go.Figure(data=hypotheses_3d_traces(hyps, skeleton, gt=gt, aggregate=aggregate))
    ranges = equal_ranges(hyps, gt, aggregate)
    fig.update_layout(title=title, scene=scene_layout(ranges=ranges), margin=dict(l=0, r=0, t=40, b=0),
                      legend=dict(x=0, y=1), height=520, uirevision="keep-camera")
    return fig


def _trajectory_array(trajectory) -> np.ndarray:
    t = as_numpy(trajectory)
    if t.ndim == 3:          # (S+1, J, 3)
        t = t[:, None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"trajectory: expected (S+1, J, 3) or (S+1, H, J, 3), got {t.shape}")
    return t


def step_label(k: int, num_steps: int) -> str:
    """Slider label for trajectory entry k of num_steps + 1 (0 = x_T, last = x_0)."""
    if k == 0:
        return "x_T"
    if k == num_steps:
        return "x_0"
    return str(k)


def trajectory_step_traces(trajectory, skeleton: Skeleton, step: int, gt=None) -> list[go.Scatter3d]:
    """trajectory: (S+1, J, 3) or (S+1, H, J, 3) -> the traces of denoising step `step`."""
    t = _trajectory_array(trajectory)
    traces = hypotheses_3d_traces(t[step], skeleton, gt=gt)
    for tr in traces:
        if tr.meta["role"] == "hypothesis":
            tr.opacity = 0.8 if t.shape[1] == 1 else 0.45
            tr.line.width = 4 if t.shape[1] == 1 else 2
    return traces


def trajectory_figure(trajectory, skeleton: Skeleton, gt=None, title: str = "Denoising trajectory"
                      ) -> go.Figure:
    """trajectory: (S+1, J, 3) or (S+1, H, J, 3) metres, entry 0 = x_T (noise), last = x_0.
    One plotly frame per entry and a slider over them (Fig. 2); axes fixed across frames."""
    t = _trajectory_array(trajectory)
    num_steps = t.shape[0] - 1
    frames = [go.Frame(data=trajectory_step_traces(t, skeleton, k, gt=gt), name=str(k))
              for k in range(num_steps + 1)]
    fig = go.Figure(data=frames[0].data, frames=frames)
    slider_steps = [
        dict(method="animate", label=step_label(k, num_steps),
             args=[[str(k)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                  transition=dict(duration=0))])
        for k in range(num_steps + 1)
    ]
    fig.update_layout(
        title=title, scene=scene_layout(ranges=equal_ranges(t, gt)), margin=dict(l=0, r=0, t=40, b=0), height=560,
        sliders=[dict(active=0, steps=slider_steps, currentvalue=dict(prefix="denoising step: "),
                      pad=dict(t=30))],
        updatemenus=[dict(type="buttons", showactive=False, x=0.05, y=0.05, xanchor="right",
                          buttons=[dict(label="Play", method="animate",
                                        args=[None, dict(frame=dict(duration=300, redraw=True),
                                                         fromcurrent=True)])])],
    )
    return fig


def spread_figure(spread, skeleton: Skeleton, unit: str = "mm", title: str = "Per-joint spread of the hypotheses",
                  radius=None, radius_label: str = "90 % radius") -> go.Figure:
    """spread: (J,) per-joint spread of the hypotheses, in metres -> bar chart in `unit`
    (mm or m), one bar per joint name; radius: optional (J,) metres, the per-joint radius of the
    90 % band (the Lifter's, calibrated when the model has a calibration), drawn as markers."""
    s = as_numpy(spread).reshape(-1)
    if s.shape[0] != skeleton.num_joints:
        raise ValueError(f"spread_figure: expected {skeleton.num_joints} values, got {s.shape[0]}")
    scale = 1000.0 if unit == "mm" else 1.0
    fig = go.Figure(go.Bar(x=list(skeleton.joint_names), y=s * scale, marker_color=COLORS["spread"], name="spread",
                           meta={"role": "spread", "index": 0}))
    if radius is not None:
        fig.add_trace(go.Scatter(x=list(skeleton.joint_names), y=as_numpy(radius).reshape(-1) * scale, mode="markers",
                                 name=radius_label, marker=dict(symbol="line-ew-open", size=18, color="#c44e52"),
                                 meta={"role": "radius_90", "index": 0}))
    fig.update_layout(title=title, yaxis_title=f"spread ({unit})", xaxis_tickangle=-45,
                      margin=dict(l=10, r=10, t=40, b=10), height=360, template="plotly_white")
    return fig


def traces_by_role(fig: go.Figure, role: str) -> list:
    """The traces of `fig` whose meta role is `role` (hypothesis, gt, aggregate, ...)."""
    return [tr for tr in fig.data if isinstance(tr.meta, dict) and tr.meta.get("role") == role]
