"""Writing figures to disk: `save_figure` (PNG/SVG of any plotly or matplotlib figure of the
package, atomic writes), plotly's static export through kaleido when a browser can run it here
(`kaleido_available`, decided once per process and bounded in time) and the matplotlib re-render
without it (`plotly_to_matplotlib`), and the one local copy of plotly.js that HTML pages load
(`write_plotly_js`, `local_plotly_js`)."""
from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ..utils import atomic_path, atomic_write_text, emit

__all__ = [
    "save_figure", "kaleido_available", "plotly_to_matplotlib", "find_export_browser", "static_export_renderer",
    "static_export_info", "PLOTLY_JS_NAME", "write_plotly_js", "local_plotly_js",
]

log = logging.getLogger(__name__)

_KALEIDO_OK: bool | None = None
_EXPORT_INFO: dict[str, str | None] = {}
# Seconds the one-off export probe may take (browser start + a 50 px PNG; ~2 s on a 2-core box).
PROBE_TIMEOUT_S = 30.0
# Set to 1 to never look for a browser (static export then always uses the matplotlib re-render).
NO_BROWSER_ENV = "DIFFUPOSE_NO_BROWSER"


def find_export_browser() -> str | None:
    """Path of the Chrome/Chromium that kaleido would drive, or None (no browser, kaleido < 1
    or not installed, or DIFFUPOSE_NO_BROWSER=1). Looks at files only: never starts anything."""
    if os.environ.get(NO_BROWSER_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:  # kaleido < 1 (bundled renderer) or no kaleido: nothing to find
        return None
    try:
        return Chromium.find_browser(skip_local=False)
    except Exception as e:  # a broken lookup means: no browser
        log.debug("browser lookup failed: %s", e)
        return None


def _probe_export(timeout_s: float) -> str | None:
    """Render a tiny PNG in a daemon thread, waiting at most `timeout_s`: None when it worked,
    else the reason (an error, or a time-out: kaleido can wait forever on a browser that died)."""
    outcome: dict[str, str | None] = {}

    def probe() -> None:
        try:
            _start_kaleido_server()
            _to_image(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), format="png", width=50, height=50)
            outcome["error"] = None
        except Exception as e:  # kaleido missing, a broken browser start, ...
            text = str(e).strip()
            outcome["error"] = text.splitlines()[0] if text else type(e).__name__

    thread = threading.Thread(target=probe, name="diffupose-export-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return f"the export probe did not finish within {timeout_s:.0f} s"
    return outcome.get("error", "the export probe ended without a result")


def static_export_renderer() -> str:
    """The renderer static figures get here: "kaleido" or "matplotlib" (the fallback)."""
    return "kaleido" if kaleido_available() else "matplotlib"


def static_export_info() -> dict[str, str | None]:
    """{renderer: kaleido | matplotlib, reason: why, browser: path or None} for this process
    (decides it first, see kaleido_available)."""
    renderer = static_export_renderer()
    return {"renderer": renderer, "reason": _EXPORT_INFO.get("reason"), "browser": _EXPORT_INFO.get("browser")}


def kaleido_available() -> bool:
    """Whether plotly can render static images here (kaleido >= 1 needs a Chrome/Chromium).
    Decided once per process and bounded in time: without a browser on disk it is False at
    once; otherwise a probe export must finish within PROBE_TIMEOUT_S. Inside a report the
    decision is also sent to the runner (progress event `static_export`), which records it in
    the report index."""
    global _KALEIDO_OK
    if _KALEIDO_OK is None:
        no_browser = os.environ.get(NO_BROWSER_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        browser = find_export_browser()
        if browser is None:
            reason = f"{NO_BROWSER_ENV}=1" if no_browser else "no Chrome/Chromium found"
        else:
            reason = _probe_export(PROBE_TIMEOUT_S)
        _KALEIDO_OK = reason is None
        _EXPORT_INFO.update(browser=browser, reason=reason or f"kaleido with {browser}")
        if reason is not None:
            log.warning("plotly static export unavailable (%s); PNG/SVG of plotly figures are "
                        "re-rendered with matplotlib and an HTML copy is written", reason)
        emit("static_export", renderer="kaleido" if _KALEIDO_OK else "matplotlib",
             reason=_EXPORT_INFO["reason"], browser=browser)
    return _KALEIDO_OK


def _start_kaleido_server() -> None:
    """Keep one headless browser for all exports of this process (kaleido >= 1: ~0.15 s per
    figure instead of ~2 s); stopped at exit. Older kaleido has no server: nothing to do."""
    try:
        import kaleido
    except ImportError:
        return
    if hasattr(kaleido, "start_sync_server"):
        try:
            kaleido.start_sync_server(silence_warnings=True)
        except Exception as e:  # no browser: the probe that follows reports it
            log.debug("kaleido server not started: %s", e)
            return
        atexit.register(_stop_kaleido_server)


def _stop_kaleido_server() -> None:
    import kaleido

    with contextlib.suppress(Exception):
        kaleido.stop_sync_server(silence_warnings=True)


def _to_image(fig: go.Figure, **kwargs) -> bytes:
    import plotly.io as pio

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The kopts argument is ignored")
        return pio.to_image(fig, **kwargs)


def _nan_list(values) -> np.ndarray:
    if values is None:
        return np.array([])
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def plotly_to_matplotlib(fig: go.Figure):
    """Approximate matplotlib re-render of a plotly figure (Scatter, Scatter3d, Bar, Heatmap
    traces; one panel per subplot) for static export where kaleido cannot run."""
    import matplotlib.pyplot as plt

    groups = _traces_by_panel(fig)
    keys = list(groups) or ["x|y"]
    n = len(keys)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    mpl = plt.figure(figsize=(6 * ncols, 5 * nrows))
    layout = fig.layout
    titles = [a.text for a in (layout.annotations or ()) if a.text]     # make_subplots' panel titles
    for idx, key in enumerate(keys):
        traces = groups.get(key, [])
        is3d = bool(traces) and traces[0].type == "scatter3d"
        ax = mpl.add_subplot(nrows, ncols, idx + 1, projection="3d" if is3d else None)
        bars = [t for t in traces if t.type == "bar"]
        grouped = len(bars) > 1 and layout.barmode == "group"
        for tr in traces:
            if grouped and tr.type == "bar":
                _draw_grouped_bar(ax, tr, bars.index(tr), len(bars))
            else:
                _draw_trace(ax, tr)
        if is3d:
            _setup_3d_axes(ax, layout[key] if key in layout else layout.scene)
        else:
            _setup_2d_axes(ax, layout, key)
        if len(titles) == n > 1:
            ax.set_title(titles[idx], fontsize=9)
        if (any(getattr(t, "name", None) for t in traces) and len(traces) < 15
                and (traces[0].type not in ("bar", "heatmap") or grouped)):
            ax.legend(fontsize=7)
    if layout.title.text:
        mpl.suptitle(layout.title.text)
    mpl.tight_layout()
    plt.close(mpl)
    return mpl


def _traces_by_panel(fig: go.Figure) -> dict[str, list]:
    """The figure's traces grouped by subplot: key "x2|y2" for 2D axes, "scene2" for 3D scenes."""
    groups: dict[str, list] = {}
    for tr in fig.data:
        if tr.type == "scatter3d":
            key = tr.scene or "scene"
        else:
            key = f"{getattr(tr, 'xaxis', None) or 'x'}|{getattr(tr, 'yaxis', None) or 'y'}"
        groups.setdefault(key, []).append(tr)
    return groups


def _draw_trace(ax, tr) -> None:
    """Draw one plotly trace on a matplotlib axes (a warning for trace types not rendered)."""
    color = None
    if getattr(tr, "line", None) is not None and tr.line.color is not None and isinstance(tr.line.color, str):
        color = tr.line.color
    alpha = tr.opacity if tr.opacity is not None else 1.0
    if tr.type == "scatter3d":
        ls = "--" if tr.line.dash not in (None, "solid") else "-"
        ax.plot(_nan_list(tr.x), _nan_list(tr.y), _nan_list(tr.z), ls, color=color, alpha=alpha,
                linewidth=(tr.line.width or 2) / 2, label=tr.name if tr.showlegend is not False else None)
    elif tr.type == "scatter":
        ls = "--" if tr.line.dash not in (None, "solid") else "-"
        marker = "o" if tr.mode and "markers" in tr.mode else None
        categorical = tr.x is not None and any(isinstance(v, str) for v in tr.x)     # e.g. joint names
        ax.plot([str(v) for v in tr.x] if categorical else _nan_list(tr.x), _nan_list(tr.y),
                linestyle=ls if "lines" in (tr.mode or "lines") else "none",
                marker=marker, color=color, alpha=alpha, label=tr.name)
    elif tr.type == "bar":
        ax.bar([str(v) for v in tr.x], _nan_list(tr.y), color=tr.marker.color if isinstance(tr.marker.color, str) else None)
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    elif tr.type == "heatmap":
        _draw_heatmap(ax, tr)
    else:
        log.warning("plotly_to_matplotlib: trace type %s not rendered", tr.type)


def _draw_grouped_bar(ax, tr, slot: int, slots: int) -> None:
    """One bar trace of a plotly barmode="group" panel: side by side with the others, hatched
    when the trace has a pattern, named in the legend."""
    labels = [str(v) for v in tr.x]
    width = 0.8 / slots
    x = np.arange(len(labels)) + (slot - (slots - 1) / 2) * width
    pattern = getattr(getattr(tr.marker, "pattern", None), "shape", None)
    ax.bar(x, _nan_list(tr.y), width=width, label=tr.name, hatch="//" if pattern else None,
           color=tr.marker.color if isinstance(tr.marker.color, str) else f"C{slot // 2 if pattern is not None else slot}",
           alpha=0.6 if pattern == "" else 1.0)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7)


def _draw_heatmap(ax, tr) -> None:
    """imshow with row 0 at the top (as plotly's reversed y axis shows it), the trace's tick
    labels and cell text, its zmin/zmax, and a diverging map with symmetric limits when the
    trace has a midpoint of 0."""
    z = np.asarray([[np.nan if v is None else v for v in row] for row in tr.z], dtype=float)
    kwargs = {"cmap": "viridis", "vmin": tr.zmin, "vmax": tr.zmax}
    if tr.zmid is not None or (tr.colorscale and "rd" in str(tr.colorscale).lower()):
        limit = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        kwargs = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
    image = ax.imshow(z, **kwargs)
    if tr.text is not None and tr.texttemplate and np.shape(tr.text) == z.shape:
        for (i, j), text in np.ndenumerate(np.asarray(tr.text, dtype=object)):
            ax.text(j, i, str(text), ha="center", va="center", fontsize=7, color="white")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for labels, set_ticks, set_labels in ((tr.x, ax.set_xticks, ax.set_xticklabels),
                                          (tr.y, ax.set_yticks, ax.set_yticklabels)):
        if labels is not None and len(labels) == z.shape[1 if set_ticks == ax.set_xticks else 0]:
            set_ticks(range(len(labels)))
            set_labels([str(v) for v in labels], fontsize=6)
    ax.tick_params(axis="x", labelrotation=90)


def _setup_3d_axes(ax, scene) -> None:
    """Axis titles of a plotly scene, equal aspect where matplotlib allows it, a fixed view."""
    ax.set_xlabel(scene.xaxis.title.text or "x")
    ax.set_ylabel(scene.yaxis.title.text or "y")
    ax.set_zlabel(scene.zaxis.title.text or "z")
    try:
        ax.set_aspect("equal")
    except (NotImplementedError, ValueError):
        pass
    ax.view_init(elev=15, azim=-70)


def _setup_2d_axes(ax, layout, key: str) -> None:
    """Log x scale, reversed y and axis titles of the plotly axes named by `key` ("x2|y2")."""
    xname, yname = key.split("|")
    xa = layout[xname.replace("x", "xaxis", 1)] if xname != "x" else layout.xaxis
    ya = layout[yname.replace("y", "yaxis", 1)] if yname != "y" else layout.yaxis
    if xa.type == "log":
        ax.set_xscale("log")
    if ya.autorange == "reversed" and not ax.images:
        ax.invert_yaxis()           # (an image panel: imshow already draws row 0 at the top)
    if xa.title.text:
        ax.set_xlabel(xa.title.text)
    if ya.title.text:
        ax.set_ylabel(ya.title.text)


PLOTLY_JS_NAME = "plotly.min.js"


def write_plotly_js(folder) -> Path:
    """Write plotly.js (the installed plotly's bundle) as folder/plotly.min.js unless it is there."""
    path = Path(folder) / PLOTLY_JS_NAME
    if not path.exists():
        import plotly.offline as po

        atomic_write_text(path, po.get_plotlyjs())
    return path


def local_plotly_js(html_path) -> str:
    """The `src` an HTML page at `html_path` loads plotly.js from (offline, no CDN): the report's
    one copy when the folder above has it (reports/<name>/plotly.min.js for figures/ and lift/),
    else a copy written beside the page."""
    html_path = Path(html_path)
    if (html_path.parent.parent / PLOTLY_JS_NAME).is_file():
        return f"../{PLOTLY_JS_NAME}"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    return write_plotly_js(html_path.parent).name


def _write_html(fig: go.Figure, path: Path) -> Path:
    """Interactive standalone HTML referencing a local plotly.js (see local_plotly_js)."""
    src = local_plotly_js(path)
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=src, include_mathjax=False, full_html=True)
    return path


def save_figure(fig, stem: str, out_dir, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write `fig` (plotly or matplotlib) as out_dir/stem.{png,svg} (atomic writes) and return
    the written paths. Plotly figures go through kaleido when it can render here (for 3D
    scenes, whose plotly SVG only wraps a raster, an interactive out_dir/stem.html replaces the
    SVG); without kaleido, stem.html is written (plotly.js once, beside it) and the PNG/SVG are
    a matplotlib re-render (a warning is logged once)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if isinstance(fig, go.Figure) or (hasattr(fig, "to_plotly_json") and hasattr(fig, "write_image")):
        fig = go.Figure(fig)  # also turns a FigureWidget into a plain figure
        if kaleido_available():
            if any(tr.type == "scatter3d" for tr in fig.data) and "svg" in formats:
                # plotly's SVG of a WebGL scene only wraps a PNG: write the interactive HTML instead
                formats = [f for f in formats if f != "svg"]
                written.append(_write_html(fig, out_dir / f"{stem}.html"))
            for fmt in formats:
                path = out_dir / f"{stem}.{fmt}"
                with atomic_path(path) as tmp:
                    tmp.write_bytes(_to_image(fig, format=fmt, scale=2 if fmt == "png" else 1))
                written.append(path)
            return written
        written.append(_write_html(fig, out_dir / f"{stem}.html"))
        fig = plotly_to_matplotlib(fig)
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150 if fmt == "png" else None, bbox_inches="tight")
        written.append(path)
    return written
