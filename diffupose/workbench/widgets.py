"""ipywidgets explorers built on `diffupose.viz`.

`HypothesisExplorer`: pick a sample (subject, action, frame), set the number of hypotheses,
the sampler, its step count, the seed and flip; the 3D hypotheses (with ground truth and
aggregate), the 2D input, the per-joint spread and the denoising trajectory (with its own step
slider) update in place. Callbacks are plain methods (`on_change`), so tests drive them by
setting `explorer.controls[name].value` in-process, no browser needed.

Plotly's `FigureWidget` needs the `anywidget` package; without it (or with
`use_figure_widget=False`) the explorer draws plain figures into `ipywidgets.Output` areas (same
controls, same methods). Saved notebooks: the Output areas keep their figures as plotly JSON in
the widget state, which JupyterLab restores after a save-and-reload; FigureWidgets do not come
back (anywidget cannot re-initialise them from saved state). Either way the cell's first output
is a plain line, saved with the notebook, saying to re-run the cell for the live explorer, and
a static page (nbconvert) shows that line and a short note instead of an empty widget.

Sizes are fixed (SIZES, pixels): the 3D view is exactly as tall as the 2D input and the spread
stacked beside it, and every view sits in a box of its figure's size, so nothing is cut off.

`static_gallery` computes the same figures for a fixed selection of samples, for executed
reports where no live kernel answers the widgets.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..diffusion import DDPM_SAMPLERS, FLOW_SAMPLERS, objective_of, resolve_sampler
from ..geometry.skeleton import Skeleton
from ..inference.lifter import Lifter
from ..viz import hypotheses_3d_figure, pose_2d_figure, spread_figure
from ..viz.skeleton3d import equal_ranges, hypotheses_3d_traces, scene_layout, step_label, trajectory_step_traces
from .explore import (HypothesisResult, explore_sample, result_figures, result_spread_figure, sample_indices,
                      subjects_and_actions)

__all__ = ["HypothesisExplorer", "GalleryItem", "static_gallery", "gallery_figure",
           "figure_widget_available", "replace_figure", "SIZES", "RERUN_NOTE", "explorer_placeholder"]

log = logging.getLogger(__name__)

# (width, height) in pixels of each view; width None = the row's remaining width.
SIZES: dict[str, tuple[int | None, int]] = {
    "input_2d": (380, 380),
    "spread": (380, 360),
    "hypotheses_3d": (600, 740),     # = input_2d + spread heights: the row's height
    "trajectory": (None, 480),
}
RERUN_NOTE = ("Live explorer: it needs this notebook's running kernel. After reopening a saved notebook "
              "(or when the controls below do nothing), re-run this cell for the live explorer.")
STATIC_NOTE = ("(The live explorer's controls and figures appear here when the notebook runs in "
               "JupyterLab; a static page cannot run them — the gallery below shows the same figures.)")


def figure_widget_available() -> bool:
    """Whether plotly's FigureWidget works here (it needs the anywidget package)."""
    try:
        go.FigureWidget()
        return True
    except ImportError:
        return False


def replace_figure(target, source: go.Figure, keep_layout: Sequence[str] = ("title",)) -> None:
    """Copy `source`'s traces (and the named layout parts and 3D axis ranges) into `target` in
    place: trace by trace when the trace count and types match, otherwise by replacing the
    trace list. The view (e.g. a rotated 3D camera) is kept."""
    with target.batch_update():
        same = len(target.data) == len(source.data) and all(
            a.type == b.type for a, b in zip(target.data, source.data))
        if same:
            for t, s in zip(target.data, source.data):
                props = s.to_plotly_json()
                props.pop("type", None)
                props.pop("uid", None)
                t.update(props, overwrite=True)
        else:
            target.data = ()
            target.add_traces(list(source.data))
        for key in keep_layout:
            target.layout[key] = source.layout[key]
        if "scene" in source.layout and source.layout.scene.xaxis.range is not None:
            for axis in ("xaxis", "yaxis", "zaxis"):   # axis ranges follow the data; camera kept
                target.layout.scene[axis].range = source.layout.scene[axis].range
            target.layout.scene.aspectmode = source.layout.scene.aspectmode


class HypothesisExplorer:
    """Live explorer of one sample's hypotheses.

    model_or_run: run directory, `(denoiser, config, skeleton)` tuple or denoiser (see
    `inference.Lifter.resolve`); data: PreparedData. Display it as a notebook cell's last value
    (or `explorer.widget`). `controls` maps names (subject, action, frame, num_hypotheses,
    sampler, num_steps, seed, flip, step) to widgets; `figures` maps names (hypotheses_3d,
    input_2d, spread, trajectory) to FigureWidgets (plain Figures in fallback mode);
    `result` is the latest HypothesisResult. Start on a sample with `index` (into data) or
    with subject, action and `frame` (position among that pair's samples).
    """

    def __init__(self, model_or_run, data, skeleton: Skeleton | None = None, *, subject: str | None = None,
                 action: str | None = None, frame: int = 0, num_hypotheses: int = 5, sampler: str = "ddim",
                 num_steps: int = 5, seed: int = 0, flip: bool = False, aggregate: str = "mean",
                 config=None, device: str = "cpu", max_hypotheses: int = 50, max_steps: int = 50,
                 use_figure_widget: bool | None = None, index: int | None = None):
        self.data = data
        self.handle = Lifter.resolve(model_or_run, device=device, config=config, skeleton=skeleton or data.skeleton)
        self.skeleton = skeleton or self.handle.skeleton
        self.objective = objective_of(self.handle.schedule)
        self.aggregate = aggregate
        self.choices = subjects_and_actions(data)
        if not self.choices:
            raise ValueError("HypothesisExplorer: the dataset has no samples")
        self.live = figure_widget_available() if use_figure_widget is None else use_figure_widget
        self.result: HypothesisResult | None = None
        self.num_recomputes = 0
        self._updating = False

        subject, action, frame = self._start_sample(subject, action, frame, index)
        self.controls = self._make_controls(subject, action, num_hypotheses=num_hypotheses, sampler=sampler,
                                            num_steps=num_steps, seed=seed, flip=flip,
                                            max_hypotheses=max_hypotheses, max_steps=max_steps)
        self._update_frame_range()
        self.controls["frame"].value = min(max(int(frame), 0), self.controls["frame"].max)
        self.sample_info = widgets.HTML()
        self.step_info = widgets.HTML()
        views = self._make_views()
        for control in self.controls.values():
            control.observe(self.on_change, names="value")
        self.widget = self._arrange(views)
        self.recompute()

    # -- construction -------------------------------------------------------------------------
    def _start_sample(self, subject: str | None, action: str | None, frame: int,
                      index: int | None) -> tuple[str, str, int]:
        """The starting (subject, action, frame): sample `index` of the data if given, else the
        requested pair where the data has it (the first subject / action otherwise)."""
        if index is not None:  # start on sample `index` of data
            subject, action = str(self.data.subject[index]), str(self.data.action[index])
            frame = int(np.flatnonzero(sample_indices(self.data, subject, action) == index)[0])
        subject = subject if subject in self.choices else next(iter(self.choices))
        actions = self.choices[subject]
        action = action if action in actions else actions[0]
        return subject, action, frame

    def _make_controls(self, subject: str, action: str, *, num_hypotheses: int, sampler: str, num_steps: int,
                       seed: int, flip: bool, max_hypotheses: int, max_steps: int) -> dict[str, widgets.Widget]:
        """The control widgets by name (the frame slider's range is set afterwards)."""
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        return {
            "subject": widgets.Dropdown(options=list(self.choices), value=subject, description="subject"),
            "action": widgets.Dropdown(options=self.choices[subject], value=action, description="action"),
            "frame": widgets.IntSlider(value=0, min=0, max=0, description="frame", **slider),
            "num_hypotheses": widgets.IntSlider(value=int(num_hypotheses), min=1, max=max_hypotheses,
                                                description="hypotheses H", **slider),
            # the samplers of this model's objective (ddim is euler for a flow model)
            "sampler": widgets.Dropdown(options=list(FLOW_SAMPLERS if self.objective == "flow" else DDPM_SAMPLERS),
                                        value=resolve_sampler(sampler, self.objective), description="sampler"),
            "num_steps": widgets.IntSlider(value=int(num_steps), min=1, max=max_steps,
                                           description="steps", **slider),
            "seed": widgets.IntText(value=int(seed), description="seed"),
            "flip": widgets.Checkbox(value=bool(flip), description="flip test-time augmentation"),
            "step": widgets.IntSlider(value=0, min=0, max=1, description="denoising step", **slider),
        }

    def _make_views(self) -> dict[str, widgets.Widget]:
        """Set `figures` (FigureWidgets, or plain Figures with `outputs` to draw them in) to empty
        figures of their fixed sizes; return the widget showing each figure, by name."""
        empty = {k: self._sized(k, f) for k, f in self._make_empty_figures().items()}
        if self.live:
            self.figures = {k: go.FigureWidget(f) for k, f in empty.items()}
            self.outputs = {}
            return {k: self._box(k, f) for k, f in self.figures.items()}
        self.figures = empty
        self.outputs = {k: widgets.Output(layout=self._box_layout(k)) for k in empty}
        return dict(self.outputs)

    def _arrange(self, views: dict[str, widgets.Widget]) -> widgets.VBox:
        """The explorer's layout: two rows of controls, the sample line, the 3D view beside the
        2D input over the spread, the step slider and the trajectory."""
        row1 = widgets.HBox([self.controls["subject"], self.controls["action"], self.controls["frame"]])
        row2 = widgets.HBox([self.controls["num_hypotheses"], self.controls["sampler"],
                             self.controls["num_steps"], self.controls["seed"], self.controls["flip"]])
        return widgets.VBox([
            row1, row2, self.sample_info,
            widgets.HBox([views["hypotheses_3d"], widgets.VBox([views["input_2d"], views["spread"]])],
                         layout=widgets.Layout(align_items="flex-start", overflow="visible")),
            widgets.HBox([self.controls["step"], self.step_info]), views["trajectory"],
        ], layout=widgets.Layout(overflow="visible"))

    # -- display ------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        """The widget view, plus an HTML fallback for static pages (no widget state there)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle or {})
        bundle["text/html"] = f"<p><i>{STATIC_NOTE}</i></p>"
        return bundle

    def _ipython_display_(self):
        """Two outputs: the re-run line (a plain output, saved with the notebook, shown whatever
        becomes of the widget state) and the explorer itself."""
        from IPython.display import HTML, display

        display(HTML(f"<p><b>↻</b> {RERUN_NOTE}</p>"))
        display(self._repr_mimebundle_(), raw=True)

    @staticmethod
    def _box_layout(name: str):
        width, height = SIZES[name]
        return widgets.Layout(width=f"{width + 10}px" if width else "auto", min_height=f"{height + 10}px",
                              overflow="visible")

    def _box(self, name: str, view):
        return widgets.Box([view], layout=self._box_layout(name))

    @staticmethod
    def _sized(name: str, fig: go.Figure) -> go.Figure:
        width, height = SIZES[name]
        fig.update_layout(height=height, autosize=width is None, **({"width": width} if width else {}))
        return fig

    def _make_empty_figures(self) -> dict[str, go.Figure]:
        zeros3 = np.zeros((self.skeleton.num_joints, 3))
        zeros2 = np.zeros((self.skeleton.num_joints, 2))
        traj = go.Figure(hypotheses_3d_traces(zeros3, self.skeleton))
        traj.update_layout(title="Denoising trajectory", scene=scene_layout(1.0), height=480,
                           margin=dict(l=0, r=0, t=40, b=0), uirevision="keep-camera")
        return {
            "hypotheses_3d": hypotheses_3d_figure(zeros3[None], self.skeleton),
            "input_2d": pose_2d_figure(zeros2, self.skeleton),
            "spread": spread_figure(np.zeros(self.skeleton.num_joints), self.skeleton),
            "trajectory": traj,
        }

    # -- state --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _hold(self):
        """Suppress callbacks while controls are changed programmatically."""
        previous, self._updating = self._updating, True
        try:
            yield
        finally:
            self._updating = previous

    def _control_name(self, owner) -> str | None:
        return next((k for k, w in self.controls.items() if w is owner), None)

    def _candidates(self) -> np.ndarray:
        return sample_indices(self.data, self.controls["subject"].value, self.controls["action"].value)

    def _update_frame_range(self) -> None:
        n = len(self._candidates())
        frame = self.controls["frame"]
        frame.max = max(n - 1, 0)
        frame.value = min(frame.value, frame.max)

    def current_index(self) -> int:
        """Index into `data` of the selected sample (the frame slider walks the samples of the
        chosen subject and action, ordered by sequence, camera and frame)."""
        return int(self._candidates()[self.controls["frame"].value])

    def settings(self) -> dict:
        c = self.controls
        return dict(num_hypotheses=c["num_hypotheses"].value, sampler=c["sampler"].value,
                    num_steps=c["num_steps"].value, seed=c["seed"].value, flip=c["flip"].value,
                    aggregate=self.aggregate)

    # -- callbacks ----------------------------------------------------------------------------
    def on_change(self, change=None) -> None:
        """Observer of every control: sample/sampler settings recompute the hypotheses, the
        step slider only redraws the trajectory."""
        if self._updating:
            return
        name = self._control_name(change["owner"]) if change else None
        with self._hold():
            if name == "subject":
                actions = self.choices[self.controls["subject"].value]
                keep = self.controls["action"].value
                self.controls["action"].options = actions
                self.controls["action"].value = keep if keep in actions else actions[0]
            if name in ("subject", "action"):
                self.controls["frame"].value = 0
                self._update_frame_range()
        if name == "step":
            self.show_step(self.controls["step"].value)
        else:
            self.recompute()

    def recompute(self) -> HypothesisResult:
        """Sample the selected frame with the current settings and redraw every figure."""
        settings = self.settings()
        self.controls["num_steps"].disabled = settings["sampler"] == "ddpm"  # DDPM walks every step
        self.result = explore_sample(self.handle, self.data, self.current_index(), **settings)
        self.num_recomputes += 1
        r = self.result
        metrics = r.metrics()
        self.sample_info.value = (
            f"<b>{r.label}</b> — aggregate ({self.aggregate}) MPJPE {metrics.get('aggregate_mpjpe_mm', float('nan')):.1f} mm, "
            f"oracle best-of-{r.hypotheses.shape[0]} {metrics.get('oracle_best_of_h_mpjpe_mm', float('nan')):.1f} mm "
            f"(oracle: uses the ground truth), mean spread {metrics['mean_spread_mm']:.1f} mm")
        self._set("hypotheses_3d", hypotheses_3d_figure(r.hypotheses, self.skeleton, gt=r.gt, aggregate=r.aggregate,
                                                        title=f"{r.hypotheses.shape[0]} hypotheses"))
        self._set("input_2d", pose_2d_figure(r.keypoints_2d, self.skeleton))
        self._set("spread", result_spread_figure(r, self.skeleton))
        num_steps = r.trajectory.shape[0] - 1
        if self.live:  # fixed axes over all steps of this trajectory; the camera is kept
            ranges = equal_ranges(r.trajectory, r.gt)
            with self.figures["trajectory"].batch_update():
                for axis, axis_range in zip(("xaxis", "yaxis", "zaxis"), ranges):
                    self.figures["trajectory"].layout.scene[axis].range = axis_range
        with self._hold():
            self.controls["step"].max = num_steps
            self.controls["step"].value = num_steps
        self.show_step(num_steps)
        return self.result

    def show_step(self, step: int) -> None:
        """Draw denoising step `step` of the current trajectory (0 = x_T noise, S = x_0)."""
        r = self.result
        num_steps = r.trajectory.shape[0] - 1
        step = int(min(max(step, 0), num_steps))
        fig = go.Figure(trajectory_step_traces(r.trajectory, self.skeleton, step, gt=r.gt))
        fig.update_layout(title=f"Denoising trajectory: {step_label(step, num_steps)} (step {step} of {num_steps})")
        self._set("trajectory", fig)
        self.step_info.value = f"{step_label(step, num_steps)}"

    def _set(self, name: str, fig: go.Figure) -> None:
        if self.live:
            replace_figure(self.figures[name], fig)
            return
        self.figures[name] = self._sized(name, fig if name != "trajectory" else self._with_scene(fig))
        out = self.outputs[name]
        from IPython.display import display

        with out:
            out.clear_output(wait=True)
            display(self.figures[name])

    def _with_scene(self, fig: go.Figure) -> go.Figure:
        ranges = equal_ranges(self.result.trajectory, self.result.gt)
        fig.update_layout(scene=scene_layout(ranges=ranges), margin=dict(l=0, r=0, t=40, b=0))
        return fig


def explorer_placeholder():
    """What a report shows instead of the live explorer (reports do not build it: a static page
    cannot run it, and executing Output widgets headless is slow): one line saying how to get it."""
    from IPython.display import HTML

    return HTML(f"<p><b>↻</b> Live explorer: open this notebook in JupyterLab and re-run this cell for the live "
                f"explorer (it needs a running kernel). {STATIC_NOTE[1:-1]}</p>")


@dataclass
class GalleryItem:
    """One sample of a static gallery: its result and figures (input_2d, hypotheses_3d,
    spread, trajectory)."""

    result: HypothesisResult
    figures: dict


def static_gallery(model_or_run, data, skeleton: Skeleton | None = None, indices: Sequence[int] | None = None,
                   num_samples: int = 3, *, num_hypotheses: int = 5, sampler: str = "ddim", num_steps: int = 5,
                   seed: int = 0, flip: bool = False, aggregate: str = "mean", config=None,
                   device: str = "cpu") -> list[GalleryItem]:
    """The explorer's figures for a fixed selection of samples (for executed reports).
    indices: sample indices into `data`; default `num_samples` samples evenly spaced over the
    data's actions (the first sample of each chosen action)."""
    handle = Lifter.resolve(model_or_run, device=device, config=config, skeleton=skeleton or data.skeleton)
    skeleton = skeleton or handle.skeleton
    if indices is None:
        pairs = [(s, a) for s, acts in subjects_and_actions(data).items() for a in acts]
        chosen = np.linspace(0, len(pairs) - 1, num=min(num_samples, len(pairs))).round().astype(int)
        indices = [int(sample_indices(data, *pairs[i])[0]) for i in dict.fromkeys(chosen.tolist())]
    items = []
    for index in indices:
        result = explore_sample(handle, data, int(index), num_hypotheses=num_hypotheses, sampler=sampler,
                                num_steps=num_steps, seed=seed, flip=flip, aggregate=aggregate)
        items.append(GalleryItem(result, result_figures(result, skeleton)))
    return items


def gallery_figure(items: Sequence[GalleryItem], skeleton: Skeleton, title: str = "Hypotheses gallery") -> go.Figure:
    """One figure with a 3D scene per gallery item (hypotheses, ground truth, aggregate)."""
    n = max(len(items), 1)
    fig = make_subplots(rows=1, cols=n, specs=[[{"type": "scene"}] * n],
                        subplot_titles=[it.result.label for it in items] or None)
    for col, item in enumerate(items, start=1):
        r = item.result
        for tr in hypotheses_3d_traces(r.hypotheses, skeleton, gt=r.gt, aggregate=r.aggregate):
            tr.showlegend = col == 1 and tr.showlegend is not False
            fig.add_trace(tr, row=1, col=col)
    scenes = {("scene" if i == 1 else f"scene{i}"): scene_layout(ranges=equal_ranges(
        item.result.hypotheses, item.result.gt, item.result.aggregate), distance=1.5) for i, item in enumerate(items, start=1)}
    fig.update_layout(title=title, height=480, width=max(420 * n, 600), margin=dict(l=0, r=0, t=60, b=0), **scenes)
    fig.update_annotations(font_size=10)
    return fig
