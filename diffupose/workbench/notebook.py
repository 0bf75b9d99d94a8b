"""What the notebooks call: setup, the live training display, the split, inputs and weights.

`setup_notebook()` (each notebook's imports cell) registers the offline plotly renderer
(`PLOTLY_RENDERER`) and quiets the logs; `TrainingCurveDisplay` is the training callback that
keeps one status line and one live curve; `resolve_split` picks the evaluation split;
`evaluation_checkpoint` picks weights that were not selected on it; `resolve_inputs` finds a
run and data for a notebook opened on its own.
"""
from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

from ..errors import ConfigError, DataError
from ..inference.lifter import checkpoint_for_split
from ..viz import training_curves_figure
from .profiles import repo_root
from .progress import ProgressFileHandler, TrainingProgress, emit, format_training, progress_file

__all__ = ["PLOTLY_RENDERER", "STANDALONE_RUNS", "FALLBACK_REPORT", "offline_renderer", "setup_notebook",
           "TrainingCurveDisplay", "resolve_split", "resolve_inputs", "evaluation_checkpoint"]

# The plotly renderer the notebooks use (registered by setup_notebook): plotly JSON for
# JupyterLab / VS Code plus an HTML div that draws with the page's own plotly.js — no plotly.js
# and no MathJax inside the outputs, so executed notebooks stay small and pages offline.
PLOTLY_RENDERER = "diffupose_offline"
# Where the notebooks write when opened on their own (their default parameters), relative to the
# repository root, and the report whose run and data they fall back to (`make demo`).
STANDALONE_RUNS = Path("runs") / "notebooks"
FALLBACK_REPORT = Path("reports") / "demo"


class OfflinePlotlyRenderer(MimetypeRenderer):
    """The PLOTLY_RENDERER: plotly's mimetype JSON plus a text/html div without plotly.js."""

    def to_mimebundle(self, fig_dict):
        bundle = PlotlyRenderer().to_mimebundle(dict(fig_dict))
        bundle["text/html"] = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False,
                                          full_html=False, default_width="100%", default_height=525,
                                          validate=False)
        return bundle


def offline_renderer() -> OfflinePlotlyRenderer:
    """A new PLOTLY_RENDERER instance."""
    return OfflinePlotlyRenderer()


class _NotebookLogFilter(logging.Filter):
    """Keeps the per-step training log out of the notebook (TrainingCurveDisplay shows one
    status line instead; inside a report the lines go to the terminal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("diffupose.train") and record.levelno < logging.WARNING)


def setup_notebook(seed: int | None = None) -> None:
    """Called once in each notebook's imports cell: the offline plotly renderer, quiet logging
    of third-party libraries, no per-step training log in the notebook, and inside a report
    (DIFFUPOSE_PROGRESS_FILE set) the `diffupose` loggers forwarded to the runner's terminal."""
    pio.renderers[PLOTLY_RENDERER] = offline_renderer()
    pio.renderers.default = PLOTLY_RENDERER
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NotebookLogFilter) for f in handler.filters):
            handler.addFilter(_NotebookLogFilter())
    for noisy in ("matplotlib", "PIL", "kaleido", "choreographer", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    package_log = logging.getLogger("diffupose")
    package_log.setLevel(logging.INFO)
    if progress_file() is not None and not any(isinstance(h, ProgressFileHandler) for h in package_log.handlers):
        package_log.addHandler(ProgressFileHandler(level=logging.INFO))


class TrainingCurveDisplay:
    """A `callback` for `train(...)`: keeps the history rows, shows one status line (step/total,
    steps/s, loss, validation MPJPE, ETA) updated in place, and redraws the training curve in
    place every `every` rows and at each validation — live in JupyterLab, and the executed
    notebook keeps only the last state. Inside a report each row also goes to the runner's
    terminal (progress event `train`). cfg: the training Config (for the step budget and the
    ETA). Returns None (never stops training)."""

    def __init__(self, history: Sequence[dict] = (), every: int = 10, title: str = "Training",
                 cfg=None, label: str = "training"):
        self.rows = list(history)
        self.every = max(1, int(every))
        self.title = title
        self.label = label
        self.progress = TrainingProgress.from_config(cfg) if cfg is not None else TrainingProgress()
        self.last: dict[str, Any] | None = None
        self._handle = None
        self._status = None

    def draw(self) -> None:
        from IPython.display import display   # IPython: the workbench extra, only in a kernel

        # as a raw bundle: a plotly Figure displays itself (_ipython_display_), which ignores
        # display_id, so each redraw would add an output instead of replacing the last one
        bundle = offline_renderer().to_mimebundle(training_curves_figure(self.rows, title=self.title).to_dict())
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def status_html(self) -> str:
        text = format_training(self.last) if self.last else "waiting for the first logged step"
        return f"<p class='dp-progress'><b>{html.escape(self.label)}</b>: {html.escape(text)}</p>"

    def __call__(self, row: dict) -> None:
        from IPython.display import HTML, display

        self.rows.append(dict(row))
        self.last = self.progress.update(row)
        emit("train", label=self.label, **self.last)
        if self._status is None:
            self._status = display(HTML(self.status_html()), display_id=True)
        else:
            self._status.update(HTML(self.status_html()))
        if len(self.rows) % self.every == 0 or row.get("val_mpjpe") is not None:
            self.draw()
        return None


def resolve_split(split_counts: dict[str, int], requested: str = "auto") -> tuple[str, str]:
    """Evaluation split from the prepared data's split counts -> (split, one-line reason).

    `auto`: `test` when it has samples (H36M S9/S11, HumanEva Validate/S1..S3), else the held-out
    `val` split of the training data (then the numbers are not the paper's protocol). A named
    split must have samples."""
    counts = {k: int(v) for k, v in split_counts.items()}
    if requested != "auto":
        if counts.get(requested, 0) <= 0:
            raise ConfigError(f"split {requested!r} has no samples; prepared splits: {counts}")
        return requested, f"split {requested!r} as requested"
    if counts.get("test", 0) > 0:
        return "test", "evaluated on the dataset's test split (for Human3.6M S9, S11; for HumanEva-I Validate)"
    if counts.get("val", 0) > 0:
        return "val", ("no test split in the prepared data: evaluated on the held-out 'val' split "
                       "of the training data (not the paper's test protocol)")
    raise ConfigError(f"no test or val samples to evaluate on; prepared splits: {counts}")


def _default_path(path: Path) -> bool:
    """Whether `path` is the standalone default of a notebook (under <repo>/runs/notebooks)."""
    try:
        path.resolve().relative_to((repo_root() / STANDALONE_RUNS).resolve())
        return True
    except ValueError:
        return False


def resolve_inputs(data_path: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
                   *, fallback: str | os.PathLike | None = None, announce: bool = True) -> tuple[str | None, str | None]:
    """The prepared data and trained run a notebook reads -> (data_path, run_dir) as strings.

    A path that exists is used as given. When a notebook opened on its own (its default paths
    under `runs/notebooks/`) finds its inputs absent, it uses the demo report's (`make demo`:
    reports/demo/data/prepared.npz and reports/demo/run) and prints one line saying so; when
    those are absent too, DataError says in one line what to run first. Paths given by a report
    or by hand are never replaced. Pass None for an input the notebook does not read."""
    fallback_dir = Path(fallback) if fallback is not None else repo_root() / FALLBACK_REPORT
    wanted = {"data_path": (data_path, fallback_dir / "data" / "prepared.npz", "prepared data", "01_data_prep"),
              "run_dir": (run_dir, fallback_dir / "run", "trained run", "02_train")}
    resolved: dict[str, str | None] = {}
    used_fallback = []
    for key, (given, alternative, what, producer) in wanted.items():
        if given is None:
            resolved[key] = None
            continue
        path = Path(given).expanduser()
        present = path.is_file() if key == "data_path" else (path / "config.json").is_file()
        if present:
            resolved[key] = str(given)
            continue
        alt_present = alternative.is_file() if key == "data_path" else (alternative / "config.json").is_file()
        if _default_path(path) and alt_present:
            resolved[key] = str(alternative)
            used_fallback.append(f"{what} {alternative}")
            continue
        hint = (f"run notebooks/{producer}.ipynb first (or `make demo`, whose {what} the notebooks then use)"
                if _default_path(path) else f"check the {key} parameter")
        raise DataError(f"{path.resolve()}: no {what} here; {hint}")
    if used_fallback and announce:
        print(f"Using the demo report's {' and '.join(used_fallback)} "
              f"(this notebook's own inputs under {STANDALONE_RUNS}/ are absent).")
    return resolved["data_path"], resolved["run_dir"]


def evaluation_checkpoint(requested: str, eval_split: str | None, selection_split: str = "val",
                          run_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """Weights to evaluate on `eval_split` -> (checkpoint, checkpoint_selected_on text).

    requested: "auto" | "best" | "ema" | "model". `best` (the EMA weights with the lowest
    validation MPJPE) was chosen on `selection_split` (read from the run's config.json,
    `data.val_split`, when `run_dir` is given); reporting it on that split would report the
    number that chose it. "auto" takes `best` when the evaluation split is another one (or None:
    nothing is evaluated) and the final EMA weights (`ema`) otherwise; an explicit `best` on the
    selection split raises."""
    if run_dir is not None and (Path(run_dir) / "config.json").is_file():
        try:
            config = json.loads((Path(run_dir) / "config.json").read_text())
            selection_split = config.get("data", {}).get("val_split") or selection_split
        except (json.JSONDecodeError, AttributeError):
            pass
    checkpoint = checkpoint_for_split(requested, eval_split, selection_split)
    return checkpoint, {"best": f"{selection_split} (lowest validation MPJPE)", "ema": "none (final EMA weights)",
                        "model": "none (final raw weights)"}[checkpoint]
