"""The hypothesis explorer: sample picking, callbacks driven in-process, fallback without
FigureWidget, the static gallery, and the explorer inside a real Jupyter kernel."""
from __future__ import annotations

import json

import numpy as np
import pytest

from diffupose.config import Config, ModelConfig
from diffupose.errors import DataError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def data():
    from diffupose.data import build_dataset

    return build_dataset("synthetic", num_frames=6, seed=0).select(split="test")


@pytest.fixture(scope="module")
def model(data):
    from diffupose.model import build_denoiser

    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(dim=32, num_blocks=1))
    return build_denoiser(cfg.model, data.skeleton), cfg, data.skeleton


def _snapshot(fig) -> str:
    return json.dumps([tr.to_plotly_json() for tr in fig.data], default=str, sort_keys=True)


def test_find_sample_and_indices(data):
    from diffupose.workbench.explore import find_sample, sample_indices, sample_label, subjects_and_actions

    choices = subjects_and_actions(data)
    subject = next(iter(choices))
    action = choices[subject][0]
    idx = sample_indices(data, subject, action)
    assert np.all(data.subject[idx] == subject) and np.all(data.action[idx] == action)
    i = find_sample(data, subject, action, frame=3)
    assert data.frame[i] == 3 and data.subject[i] == subject
    assert find_sample(data, index=7) == 7
    assert f"frame {int(data.frame[i])}" in sample_label(data, i)
    with pytest.raises(DataError):
        find_sample(data, "nobody", action)
    with pytest.raises(DataError):
        find_sample(data, index=len(data))


def test_explore_sample_shapes_and_seed(model, data):
    from diffupose.workbench.explore import explore_sample
    from diffupose.inference import Lifter

    handle = Lifter.resolve(model)
    r = explore_sample(handle, data, 3, num_hypotheses=4, num_steps=3, seed=1)
    J = data.skeleton.num_joints
    assert r.hypotheses.shape == (4, J, 3) and r.trajectory.shape == (4, 4, J, 3)
    assert r.aggregate.shape == (J, 3) and r.spread.shape == (J,)
    np.testing.assert_allclose(r.trajectory[-1], r.hypotheses, atol=1e-6)
    m = r.metrics()
    assert m["oracle_best_of_h_mpjpe_mm"] <= max(m["aggregate_mpjpe_mm"], m["oracle_best_of_h_mpjpe_mm"])
    again = explore_sample(handle, data, 3, num_hypotheses=4, num_steps=3, seed=1)
    np.testing.assert_array_equal(again.hypotheses, r.hypotheses)
    other = explore_sample(handle, data, 3, num_hypotheses=4, num_steps=3, seed=2)
    assert not np.array_equal(other.trajectory[0], r.trajectory[0])


def test_explorer_callbacks_update_figures_in_place(model, data):
    from diffupose.workbench.widgets import HypothesisExplorer

    ex = HypothesisExplorer(model, data, num_hypotheses=3, num_steps=3, use_figure_widget=True)
    fig = ex.figures["hypotheses_3d"]
    assert type(fig).__name__ == "FigureWidget"
    before, n = _snapshot(fig), ex.num_recomputes
    index_before = ex.current_index()

    ex.controls["frame"].value = 5
    assert ex.num_recomputes == n + 1
    assert ex.current_index() != index_before and ex.result.index == ex.current_index()
    assert ex.figures["hypotheses_3d"] is fig          # the same widget, updated in place
    assert _snapshot(fig) != before

    ex.controls["num_hypotheses"].value = 6
    roles = [tr.meta["role"] for tr in fig.data]
    assert roles.count("hypothesis") == 6 and "gt" in roles and "aggregate" in roles

    # the step slider redraws only the trajectory
    n = ex.num_recomputes
    assert ex.controls["step"].max == 3 and ex.controls["step"].value == 3
    traj_before = _snapshot(ex.figures["trajectory"])
    ex.controls["step"].value = 0
    assert ex.num_recomputes == n and _snapshot(ex.figures["trajectory"]) != traj_before
    assert "x_T" in ex.figures["trajectory"].layout.title.text

    # a new subject resets the action list and the frame
    subjects = list(ex.choices)
    ex.controls["subject"].value = subjects[-1]
    assert ex.controls["action"].value in ex.choices[subjects[-1]]
    assert data.subject[ex.result.index] == subjects[-1]

    ex.controls["sampler"].value = "ddpm"
    assert ex.controls["num_steps"].disabled
    assert ex.result.trajectory.shape[0] == ex.handle.config.diffusion.num_timesteps + 1
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_explorer_fallback_without_figure_widget(model, data):
    from diffupose.workbench.widgets import HypothesisExplorer

    ex = HypothesisExplorer(model, data, num_hypotheses=2, num_steps=2, use_figure_widget=False)
    before = _snapshot(ex.figures["hypotheses_3d"])
    ex.controls["frame"].value = 2
    assert _snapshot(ex.figures["hypotheses_3d"]) != before
    assert set(ex.outputs) == {"hypotheses_3d", "input_2d", "spread", "trajectory"}


@pytest.mark.parametrize("use_figure_widget", [False, True])
def test_explorer_fits_its_rows_and_says_how_to_get_it_back(model, data, use_figure_widget):
    from diffupose.workbench.widgets import RERUN_NOTE, SIZES, HypothesisExplorer

    ex = HypothesisExplorer(model, data, num_hypotheses=2, num_steps=2, use_figure_widget=use_figure_widget)
    ex.controls["frame"].value = 1                          # sizes survive a redraw
    heights = {k: ex.figures[k].layout.height for k in SIZES}
    assert heights == {k: h for k, (_, h) in SIZES.items()}
    # the 3D view is exactly as tall as the 2D input and the spread stacked beside it
    assert heights["hypotheses_3d"] == heights["input_2d"] + heights["spread"]
    row = ex.widget.children[3]
    boxes = [row.children[0], *row.children[1].children]
    for box, name in zip(boxes, ("hypotheses_3d", "input_2d", "spread")):
        assert int(box.layout.min_height.rstrip("px")) >= SIZES[name][1]     # its box holds it
        assert box.layout.overflow == "visible"
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "JupyterLab" in bundle["text/html"]              # what a static page shows instead
    assert "re-run this cell for the live explorer" in RERUN_NOTE


def test_explorer_display_starts_with_the_rerun_line(model, data, monkeypatch):
    import IPython.display

    from diffupose.workbench.widgets import HypothesisExplorer

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    ex = HypothesisExplorer(model, data, num_hypotheses=2, num_steps=2, use_figure_widget=False)
    shown.clear()                                           # (the Output areas' own redraws)
    ex._ipython_display_()
    assert "re-run this cell for the live explorer" in shown[0][0].data
    assert "application/vnd.jupyter.widget-view+json" in shown[1][0] and shown[1][1] == {"raw": True}


def test_static_gallery(model, data):
    from diffupose.workbench.widgets import gallery_figure, static_gallery

    items = static_gallery(model, data, indices=[0, 5], num_hypotheses=2, num_steps=2)
    assert [it.result.index for it in items] == [0, 5]
    assert set(items[0].figures) == {"input_2d", "hypotheses_3d", "spread", "trajectory"}
    fig = gallery_figure(items, data.skeleton)
    scenes = {tr.scene for tr in fig.data}
    assert scenes == {"scene", "scene2"}
    auto = static_gallery(model, data, num_samples=3, num_hypotheses=1, num_steps=1)
    assert len(auto) == 3 and len({it.result.index for it in auto}) == 3


KERNEL_CELLS = [
    """
import json, torch
from diffupose.config import Config, ModelConfig
from diffupose.data import build_dataset
from diffupose.model import build_denoiser
from diffupose.workbench.widgets import HypothesisExplorer
data = build_dataset("synthetic", num_frames=4, seed=0).select(split="test")
cfg = Config(model=ModelConfig(dim=32, num_blocks=1))
torch.manual_seed(0)
explorer = HypothesisExplorer((build_denoiser(cfg.model, data.skeleton), cfg, data.skeleton), data,
                              num_hypotheses=2, num_steps=2)
explorer
""",
    """
before = json.dumps([t.to_plotly_json() for t in explorer.figures["hypotheses_3d"].data], default=str)
explorer.controls["frame"].value = 3
after = json.dumps([t.to_plotly_json() for t in explorer.figures["hypotheses_3d"].data], default=str)
print(json.dumps({"changed": before != after, "index": explorer.result.index,
                  "widget": type(explorer.figures["hypotheses_3d"]).__name__}))
""",
]


def test_explorer_in_a_real_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no python3 Jupyter kernel installed")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src.strip()) for src in KERNEL_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    (stream,) = [o for o in nb.cells[1].outputs if o.output_type == "stream"]
    result = json.loads(stream.text.strip().splitlines()[-1])
    assert result == {"changed": True, "index": result["index"], "widget": "FigureWidget"}
