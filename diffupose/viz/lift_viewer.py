"""Offline HTML viewer of a lift result: a frame slider over the samples, the hypotheses
translucent, the aggregate bold, every joint coloured and sized by its spread (the model's
uncertainty), joints missing in the input marked with a cross.

`write_lift_viewer` writes one HTML page that loads a local `plotly.min.js` (written beside it
once, or a report's one copy in the folder above; never fetched from a CDN), so the page works
offline.
Long tracks are subsampled to at most `max_frames` evenly spaced frames to keep the page small.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from ..utils import atomic_write_text
from .export import local_plotly_js
from .skeleton3d import COLORS, bone_polyline, equal_ranges, scene_layout, to_plot_frame

__all__ = ["lift_viewer_figure", "lift_viewer_dict", "write_lift_viewer", "viewer_frame_indices"]


def viewer_frame_indices(num_samples: int, max_frames: int) -> np.ndarray:
    """At most `max_frames` evenly spaced sample indices (all when there are fewer)."""
    if num_samples <= max_frames:
        return np.arange(num_samples)
    return np.unique(np.linspace(0, num_samples - 1, max_frames).round().astype(int))


def _r(values) -> list:
    """Plot coordinates rounded to 0.1 mm (None kept as the segment separator)."""
    return [None if v is None else round(v, 4) for v in values]


def _frame_traces(result, i: int, spread_max: float) -> list[dict]:
    """The three traces of sample i as plain dicts (validated once by plotly, not per frame)."""
    sk = result.skeleton
    hyps = to_plot_frame(result.hypotheses[i])                      # (H, J, 3)
    xs, ys, zs = [], [], []
    for h in hyps:
        x, y, z = bone_polyline(h, sk.edges)
        xs += x
        ys += y
        zs += z
    agg = to_plot_frame(result.aggregate[i])
    ax, ay, az = bone_polyline(agg, sk.edges)
    spread_mm = np.asarray(result.spread[i], dtype=np.float64) * 1000
    missing = ~np.asarray(result.keypoint_mask[i], dtype=bool)
    text = [f"{n}: spread {s:.0f} mm" + (" (missing in the input)" if m else "")
            for n, s, m in zip(sk.joint_names, spread_mm, missing)]
    size = 4 + 10 * np.clip(spread_mm / max(spread_max, 1e-6), 0, 1)
    return [
        dict(type="scatter3d", x=_r(xs), y=_r(ys), z=_r(zs), mode="lines", name=f"hypotheses (H={hyps.shape[0]})",
             opacity=0.25, line=dict(color=COLORS["hypothesis"], width=2), hoverinfo="skip",
             meta={"role": "hypothesis", "index": 0}),
        dict(type="scatter3d", x=_r(ax), y=_r(ay), z=_r(az), mode="lines", name="aggregate",
             line=dict(color=COLORS["aggregate"], width=6), hoverinfo="skip", meta={"role": "aggregate", "index": 0}),
        dict(type="scatter3d", x=_r(agg[:, 0].tolist()), y=_r(agg[:, 1].tolist()), z=_r(agg[:, 2].tolist()),
             mode="markers", name="joint spread (mm)", text=text, hoverinfo="text",
             marker=dict(size=np.round(size, 1).tolist(), color=np.round(spread_mm, 1).tolist(), cmin=0,
                         cmax=spread_max, colorscale="Viridis", symbol=["x" if m else "circle" for m in missing],
                         colorbar=dict(title=dict(text="spread (mm)"), x=1.0)),
             meta={"role": "spread", "index": 0}),
    ]


def lift_viewer_dict(result, max_frames: int = 200, title: str | None = None) -> dict:
    """A `LiftResult` -> plotly figure as a plain dict: one animation frame per shown sample
    (at most `max_frames`, evenly spaced) and a slider."""
    index = viewer_frame_indices(len(result), max_frames)
    spread_max = round(float(np.percentile(np.asarray(result.spread)[index] * 1000, 99)), 1) or 1.0
    frames = [dict(data=_frame_traces(result, int(i), spread_max), name=str(int(i))) for i in index]
    several = len(set(result.frame.tolist())) != len(result)   # several people per frame: frame/person
    labels = [str(result.frame[i]) + (f"/{int(result.person[i])}" if several else "") for i in index]
    steps = [dict(method="animate", label=lab,
                  args=[[str(int(i))], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                             transition=dict(duration=0))])
             for i, lab in zip(index, labels)]
    card = result.card
    subtitle = (("root-relative" if card.get("root_relative", True) else "root from focal length")
                + f" · {card.get('format', '?')} · missing joints: {card.get('missing_joints', 0)}"
                + f" ({card.get('missing_joint_handling', '?')})")
    layout = dict(
        title=dict(text=(title or f"{len(result)} samples, {result.hypotheses.shape[1]} hypotheses each")
                   + f"<br><sup>{subtitle}</sup>"),
        scene=scene_layout(ranges=equal_ranges(result.hypotheses[index])),
        margin=dict(l=0, r=0, t=60, b=0), height=640, legend=dict(x=0, y=1),
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="frame: "), pad=dict(t=30))],
        updatemenus=[dict(type="buttons", showactive=False, x=0.05, y=0.05, xanchor="right",
                          buttons=[dict(label="Play", method="animate",
                                        args=[None, dict(frame=dict(duration=60, redraw=True), fromcurrent=True)]),
                                   dict(label="Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
    )
    return dict(data=frames[0]["data"], frames=frames, layout=layout)


def lift_viewer_figure(result, max_frames: int = 200, title: str | None = None) -> go.Figure:
    """The viewer as a validated `plotly.graph_objects.Figure` (for notebooks)."""
    return go.Figure(lift_viewer_dict(result, max_frames=max_frames, title=title))


VIEWER_JS = ("inline", "file")


def write_lift_viewer(result, path: str | os.PathLike, max_frames: int = 200, plotly_js: str = "inline") -> Path:
    """Write the viewer page atomically. plotly_js: `inline` (default) puts plotly.js in the page,
    which then works alone wherever it is moved (about 4.8 MB); `file` loads a local
    `plotly.min.js` (written beside it, or the report's one copy in the folder above, see
    viz.export.local_plotly_js), for many pages sharing one copy."""
    if plotly_js not in VIEWER_JS:
        raise ValueError(f"plotly_js must be one of {', '.join(VIEWER_JS)}, got {plotly_js!r}")
    path = Path(path)
    fig = lift_viewer_dict(result, max_frames=max_frames)
    include = True if plotly_js == "inline" else local_plotly_js(path)
    html = pio.to_html(fig, include_plotlyjs=include, full_html=True, auto_play=False,
                       validate=False, config={"displaylogo": False})
    atomic_write_text(path, html)
    return path
