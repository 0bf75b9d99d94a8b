"""Figures of diffupose.viz: traces, styles, sliders, heatmap labels, saving, metrics merging."""
from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from diffupose.geometry.skeleton import H36M17, HUMANEVA15
from diffupose.viz import (affinity_heatmaps, bone_length_histograms, error_vs_hypotheses_figure,
                           hypotheses_3d_figure, pose_2d_figure, record_metrics, save_figure,
                           spread_figure, strongest_nonskeletal_links, traces_by_role,
                           training_curves_figure, trajectory_figure)
from diffupose.viz.skeleton3d import to_plot_frame

SK = H36M17
J = SK.num_joints
NUM_BONES = len(SK.edges)


def _segments(trace) -> int:
    """Number of None-separated two-point segments in a line trace."""
    return sum(1 for v in trace.x if v is None)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_hypotheses_figure_traces_and_styles(rng):
    hyps = rng.normal(scale=0.2, size=(4, J, 3))
    gt, agg = hyps[0] + 0.01, hyps.mean(axis=0)
    fig = hypotheses_3d_figure(hyps, SK, gt=gt, aggregate=agg)
    assert isinstance(fig, go.Figure)
    h = traces_by_role(fig, "hypothesis")
    assert len(h) == 4 and all(_segments(t) == NUM_BONES for t in h)   # H hypotheses x bones
    assert all(t.opacity < 1 for t in h)
    (g,) = traces_by_role(fig, "gt")
    (a,) = traces_by_role(fig, "aggregate")
    assert g.line.dash == "dash" and g.line.color != h[0].line.color
    assert a.line.width > h[0].line.width and a.line.dash in (None, "solid")
    # equal aspect: equal-length axis ranges (aspectmode cube) holding every pose
    scene = fig.layout.scene
    assert scene.aspectmode == "cube"
    spans = [scene[a].range[1] - scene[a].range[0] for a in ("xaxis", "yaxis", "zaxis")]
    assert spans[0] == pytest.approx(spans[1]) == pytest.approx(spans[2])
    z_all = [v for t in fig.data for v in t.z if v is not None]
    assert scene.zaxis.range[0] <= min(z_all) and max(z_all) <= scene.zaxis.range[1]
    # camera frame y points down: plotted up axis is -y, depth is z.
    child, parent = SK.edges[0]
    assert h[0].z[0] == pytest.approx(-hyps[0, child, 1])
    assert h[0].y[0] == pytest.approx(hyps[0, child, 2])


def test_hypotheses_figure_without_gt_and_single_pose(rng):
    fig = hypotheses_3d_figure(rng.normal(size=(J, 3)), SK)
    assert len(fig.data) == 1 and not traces_by_role(fig, "gt")
    with pytest.raises(ValueError):
        hypotheses_3d_figure(rng.normal(size=(2, J - 1, 3)), SK)


def test_upright_person_is_upright():
    # A standing person: the head is above the hip, i.e. smaller camera y.
    pose = np.zeros((J, 3))
    pose[10] = [0.0, -0.6, 0.0]
    up = to_plot_frame(pose)
    assert up[10, 2] > up[0, 2]


def test_pose_2d_figure(rng):
    fig = pose_2d_figure(rng.uniform(-1, 1, size=(J, 2)), SK)
    bones = traces_by_role(fig, "bones_2d")
    assert sum(_segments(t) for t in bones) == NUM_BONES
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"
    assert list(traces_by_role(fig, "joints_2d")[0].text) == list(SK.joint_names)


def test_trajectory_slider_has_one_step_per_entry(rng):
    steps = 5
    traj = rng.normal(size=(steps + 1, J, 3))
    fig = trajectory_figure(traj, SK)
    assert len(fig.frames) == steps + 1
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == steps + 1
    assert slider.steps[0].label == "x_T" and slider.steps[-1].label == "x_0"
    # the first frame shows x_T, the last x_0
    first = traces_by_role(go.Figure(fig.frames[0].data), "hypothesis")[0]
    last = traces_by_role(go.Figure(fig.frames[-1].data), "hypothesis")[0]
    c, _ = SK.edges[0]
    assert first.x[0] == pytest.approx(traj[0, c, 0]) and last.x[0] == pytest.approx(traj[-1, c, 0])
    # hypothesis trajectories (S+1, H, J, 3): H traces per frame
    fig_h = trajectory_figure(rng.normal(size=(steps + 1, 3, J, 3)), SK, gt=traj[-1])
    assert len(traces_by_role(go.Figure(fig_h.frames[2].data), "hypothesis")) == 3
    assert fig_h.layout.scene.xaxis.range is not None


def test_spread_figure_bars_named_by_joint():
    spread = np.linspace(0.01, 0.1, J)
    fig = spread_figure(spread, SK)
    bar = fig.data[0]
    assert list(bar.x) == list(SK.joint_names)
    assert bar.y[-1] == pytest.approx(100.0)  # metres -> mm


def test_affinity_heatmaps_labelled_with_joint_names(rng):
    adj = SK.normalized_adjacency()
    affinities = [adj + rng.normal(scale=0.05, size=(J, J)) for _ in range(2)]
    fig = affinity_heatmaps(adj, affinities, SK.joint_names, ["gconv_in", "block0.gconv1"])
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert len(visible) == 3
    assert "adjacency" in visible[0].get_title() and "block0.gconv1" in visible[2].get_title()
    # labelled with what is plotted: A + Q symmetrised (no mask P exists in the released model)
    assert all("(A+Q)" in ax.get_title() and "P" not in ax.get_title() for ax in visible[1:])
    for ax in visible:
        assert [t.get_text() for t in ax.get_xticklabels()] == list(SK.joint_names)
        assert [t.get_text() for t in ax.get_yticklabels()] == list(SK.joint_names)


def test_model_affinities_are_the_symmetrised_adjacency_plus_q():
    import torch

    from diffupose.config import ModelConfig
    from diffupose.model import build_denoiser
    from diffupose.viz import model_affinities

    torch.manual_seed(0)
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1), SK)
    layers = [m for m in model.modules() if hasattr(m, "Q") and hasattr(m, "adjacency")]
    with torch.no_grad():
        for layer in layers:
            layer.Q.normal_()
    names, affinities = model_affinities(model)
    assert len(affinities) == len(layers) == len(names)
    a_plus_q = (layers[0].adjacency + layers[0].Q).detach().numpy()
    np.testing.assert_allclose(affinities[0], (a_plus_q + a_plus_q.T) / 2, rtol=1e-6)


def test_affinity_figure_hover_names(rng):
    from diffupose.viz import affinity_figure

    fig = affinity_figure(rng.normal(size=(J, J)), SK.joint_names)
    (hm,) = fig.data
    assert list(hm.x) == list(SK.joint_names) == list(hm.y)
    assert hm.zmin == -hm.zmax and fig.layout.yaxis.autorange == "reversed"


def test_strongest_links_exclude_skeleton_edges_and_diagonal():
    adj = SK.adjacency()
    aff = np.full((J, J), 0.001)
    aff[adj > 0] = 5.0            # bones strongest: must be excluded
    np.fill_diagonal(aff, 9.0)    # diagonal: excluded
    aff[13, 16] = aff[16, 13] = -0.8   # wrists (negative, strong)
    aff[3, 6] = aff[6, 3] = 0.5        # ankles
    links = strongest_nonskeletal_links(aff, adj, SK.joint_names, k=5)
    assert len(links) == 5
    assert (links[0]["i"], links[0]["j"]) == (13, 16) and links[0]["weight"] == pytest.approx(-0.8)
    assert links[0]["names"] == ["left_wrist", "right_wrist"]
    assert (links[1]["i"], links[1]["j"]) == (3, 6)
    for link in links:
        assert link["i"] != link["j"] and adj[link["i"], link["j"]] == 0
    # works for another skeleton with the normalised adjacency (diagonal 1)
    adj15 = HUMANEVA15.normalized_adjacency()
    links15 = strongest_nonskeletal_links(np.ones((15, 15)), adj15, HUMANEVA15.joint_names, k=200)
    assert len(links15) == 15 * 14 // 2 - len(HUMANEVA15.edges)


def test_curves_figures(rng):
    history = [{"step": i * 10, "loss": 1.0 / (i + 1)} for i in range(5)]
    history += [{"step": 50, "val_mpjpe_mm": 80.0}, {"step": 100, "loss": 0.1, "val_mpjpe_mm": 60.0}]
    fig = training_curves_figure(history)
    assert len(traces_by_role(fig, "loss")[0].x) == 6
    assert list(traces_by_role(fig, "val")[0].y) == [80.0, 60.0]
    fig = error_vs_hypotheses_figure([(1, 60.0), (10, 50.0), (5, 52.0)],
                                     [("D3DP", 20, 39.5), ("D3DP", 1, 40.0), ("MHFormer", 3, 43.0)])
    assert fig.layout.xaxis.type == "log"
    assert list(traces_by_role(fig, "ours")[0].x) == [1, 5, 10]
    assert len(traces_by_role(fig, "reference")) == 2
    mpl = bone_length_histograms(rng.normal(scale=0.2, size=(20, J, 3)), SK)
    assert sum(1 for ax in mpl.axes if ax.get_visible()) == NUM_BONES


def test_save_figure_writes_files(tmp_path, rng):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = save_figure(fig, "line", tmp_path / "figs")
    plt.close(fig)
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert all(p.stat().st_size > 100 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert not list((tmp_path / "figs").glob(".*"))   # no temp files left


def test_save_plotly_figure_without_kaleido(tmp_path, rng, monkeypatch):
    from diffupose.viz import export

    monkeypatch.setattr(export, "_KALEIDO_OK", False)   # as on a machine without Chrome
    fig3d = hypotheses_3d_figure(rng.normal(size=(2, J, 3)), SK, gt=rng.normal(size=(J, 3)))
    paths = save_figure(fig3d, "hyps", tmp_path)
    assert sorted(p.suffix for p in paths) == [".html", ".png", ".svg"]
    assert paths[1].read_bytes()[:4] == b"\x89PNG"
    assert "plotly.min.js" in (tmp_path / "hyps.html").read_text()
    assert (tmp_path / "plotly.min.js").stat().st_size > 100_000
    curves_fig = error_vs_hypotheses_figure([(1, 60.0), (10, 50.0)], [("x", 2, 55.0)])
    assert len(save_figure(curves_fig, "curve", tmp_path, formats=("png",))) == 2


@pytest.mark.timeout(60)
def test_static_export_without_a_browser_returns_at_once(tmp_path, rng, monkeypatch):
    """No browser findable (as on a bare server / CI image): no probe starts, save_figure of a
    plotly figure returns within seconds with the matplotlib PNG/SVG and an HTML copy."""
    import time

    from diffupose.viz import export

    monkeypatch.setenv("DIFFUPOSE_NO_BROWSER", "1")
    monkeypatch.setattr(export, "_KALEIDO_OK", None)         # decide again in this process
    monkeypatch.setattr(export, "_probe_export", lambda timeout_s: pytest.fail("probe started without a browser"))
    tic = time.perf_counter()
    paths = save_figure(error_vs_hypotheses_figure([(1, 60.0), (10, 50.0)]), "curve", tmp_path)
    elapsed = time.perf_counter() - tic
    assert elapsed < 20, f"static export took {elapsed:.1f} s without a browser"
    assert sorted(p.suffix for p in paths) == [".html", ".png", ".svg"]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "curve.svg").read_bytes()[:2000]
    info = export.static_export_info()
    assert info["renderer"] == "matplotlib" and "DIFFUPOSE_NO_BROWSER" in info["reason"]


@pytest.mark.timeout(60)
def test_a_hanging_export_probe_is_abandoned(tmp_path, rng, monkeypatch):
    """A browser is found but kaleido never answers (the bug of issue 9): the probe is given up
    after its timeout and the export falls back to matplotlib."""
    import threading
    import time

    from diffupose.viz import export

    release = threading.Event()
    monkeypatch.delenv("DIFFUPOSE_NO_BROWSER", raising=False)
    monkeypatch.setattr(export, "_KALEIDO_OK", None)
    monkeypatch.setattr(export, "PROBE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(export, "find_export_browser", lambda: "/opt/fake/chrome")
    monkeypatch.setattr(export, "_start_kaleido_server", lambda: release.wait(30))   # hangs
    try:
        tic = time.perf_counter()
        assert export.kaleido_available() is False
        assert time.perf_counter() - tic < 10
        assert "did not finish" in export.static_export_info()["reason"]
        paths = save_figure(spread_figure(np.ones(J) * 0.01, SK), "spread", tmp_path)
        assert sorted(p.suffix for p in paths) == [".html", ".png", ".svg"]
    finally:
        release.set()


def test_figure_html_uses_the_reports_one_plotly_js(tmp_path, rng, monkeypatch):
    from diffupose.viz import export

    monkeypatch.setattr(export, "_KALEIDO_OK", False)
    export.write_plotly_js(tmp_path)                        # the report folder's copy
    save_figure(hypotheses_3d_figure(rng.normal(size=(2, J, 3)), SK), "hyps", tmp_path / "figures")
    page = (tmp_path / "figures" / "hyps.html").read_text()
    assert 'src="../plotly.min.js"' in page
    assert not (tmp_path / "figures" / "plotly.min.js").exists()
    assert "https://" not in "".join(re.findall(r"<script[^>]*>", page))


def test_save_plotly_figure_with_kaleido(tmp_path, rng):
    from diffupose.viz import kaleido_available

    if not kaleido_available():
        pytest.skip("kaleido cannot render here (no Chrome/Chromium)")
    paths = save_figure(spread_figure(np.ones(J) * 0.01, SK), "spread", tmp_path)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths[1].read_bytes()[:2000]
    # 3D scenes: PNG plus interactive HTML instead of a raster-in-SVG
    paths = save_figure(hypotheses_3d_figure(rng.normal(size=(2, J, 3)), SK), "hyps", tmp_path)
    assert sorted(p.suffix for p in paths) == [".html", ".png"]


def test_record_metrics_merges(tmp_path):
    record_metrics(tmp_path, "05_hypotheses", {"a": np.float32(1.5), "arr": np.arange(3)})
    record_metrics(tmp_path, "04_affinity", {"num_layers": 3})
    record_metrics(tmp_path, "05_hypotheses", {"b": float("nan")})
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["05_hypotheses"] == {"a": 1.5, "arr": [0, 1, 2], "b": None}
    assert data["04_affinity"] == {"num_layers": 3}


def test_matplotlib_rerender_keeps_panels_axes_and_titles(caplog):
    """The kaleido-free static export: one panel per plotly subplot, each trace type drawn, the
    plotly axis settings (log x, reversed y, titles, 3D scene titles) carried over."""
    from plotly.subplots import make_subplots

    from diffupose.viz.export import plotly_to_matplotlib

    fig = make_subplots(rows=1, cols=4, specs=[[{}, {}, {}, {"type": "scene"}]])
    fig.add_trace(go.Scatter(x=[1, 10, 100], y=[3, None, 1], mode="lines+markers", name="curve",
                             line=dict(color="red", dash="dash")), 1, 1)
    fig.add_trace(go.Bar(x=["a", "b"], y=[1, 2], name="bars"), 1, 2)
    fig.add_trace(go.Heatmap(z=[[0, 1], [1, 0]]), 1, 3)
    fig.add_trace(go.Scatter3d(x=[0, 1], y=[0, 1], z=[0, 1], mode="lines", name="pose"), 1, 4)
    fig.add_trace(go.Pie(values=[1, 2]))
    fig.update_xaxes(type="log", title_text="hypotheses", row=1, col=1)
    fig.update_yaxes(title_text="MPJPE", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_layout(title="overview", scene=dict(zaxis_title="up"))

    with caplog.at_level("WARNING", logger="diffupose.viz.export"):
        mpl = plotly_to_matplotlib(fig)
    curve, bars, heatmap, colorbar, scene = mpl.axes  # the pie has no axes; the heatmap adds its colorbar
    assert (curve.get_xscale(), curve.get_xlabel(), curve.get_ylabel()) == ("log", "hypotheses", "MPJPE")
    assert curve.lines[0].get_linestyle() == "--" and curve.lines[0].get_marker() == "o"
    assert curve.get_legend() is not None and bars.get_legend() is None
    assert len(bars.patches) == 2 and len(heatmap.images) == 1
    assert bars.yaxis_inverted() and not curve.yaxis_inverted()
    assert scene.name == "3d" and (scene.get_xlabel(), scene.get_zlabel()) == ("x", "up")
    assert len(curve.lines) == 1 and "trace type pie not rendered" in caplog.text
    assert mpl._suptitle.get_text() == "overview"


def test_matplotlib_rerender_draws_a_scatter_over_categories():
    """A scatter over named categories (the 90 % radius markers over the joints of the spread bar
    chart) is drawn on those categories, not refused as non-numbers."""
    from diffupose.viz.export import plotly_to_matplotlib

    fig = go.Figure([go.Bar(x=["hip", "knee"], y=[10, 20]),
                     go.Scatter(x=["hip", "knee"], y=[15, 30], mode="markers", name="90 % radius")])
    ax = plotly_to_matplotlib(fig).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["hip", "knee"]
    assert list(ax.lines[0].get_ydata()) == [15, 30]


def test_matplotlib_heatmap_keeps_row_order_labels_and_diverging_colours():
    """The static fallback of an affinity heatmap reads like the interactive one: row 0 at the
    top, joint names on the axes, a diverging map with symmetric limits."""
    import plotly.graph_objects as go

    from diffupose.viz.export import plotly_to_matplotlib

    z = np.arange(12.0).reshape(3, 4) - 5
    fig = go.Figure(go.Heatmap(z=z, x=list("abcd"), y=["r0", "r1", "r2"], zmid=0, colorscale="RdBu_r"))
    fig.update_yaxes(autorange="reversed")
    ax = plotly_to_matplotlib(fig).axes[0]
    bottom, top = ax.get_ylim()
    assert top < bottom                                  # row 0 drawn at the top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["r0", "r1", "r2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    image = ax.images[0]
    assert image.cmap.name == "RdBu_r" and image.norm.vmin == -image.norm.vmax == -6
