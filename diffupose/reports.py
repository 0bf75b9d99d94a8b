"""Reports: execute the notebooks with papermill into reports/<name>/ and index them.

`run_report("demo")` runs notebooks/01_data_prep ... 06_paper_figures in order with the
parameters of a profile (diffupose.profiles), writes for each notebook the executed `.ipynb`
and a standalone `.html`, collects the figures the notebooks save under `figures/` and the
numbers they record in one `metrics.json`, and writes `index.html` (links, run config, seed, git
commit, library versions, the static-figure renderer, per-notebook and total wall time) and
`report.json` (the same as data).

Offline and small: the notebooks' plotly renderer (`PLOTLY_RENDERER`) writes each figure as
plotly JSON (JupyterLab and VS Code draw it) plus an HTML `<div>` that needs a global `Plotly`;
every report page loads the report's one local `plotly.min.js` and nothing from the network.

Progress: while a notebook runs the terminal shows each code cell (`cell i/n`, elapsed) and the
training progress the kernel writes to a progress file (diffupose.progress); the executed
notebooks keep one status line per training instead of a log.

Also the small helpers the notebooks use: `table_html(rows, columns, caption, card)` renders a
list of dicts as a pandas-free HTML table followed by its protocol card; `resolve_split` picks
the evaluation split; `evaluation_checkpoint` picks weights that were not selected on it;
`resolve_inputs` finds a run and data for a notebook opened on its own.
"""
from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import ConfigError, DiffuPoseError
from .profiles import NOTEBOOKS, get_profile, repo_root, resolve_parameters
from .utils import atomic_write_text, environment_info

__all__ = [
    "ReportError", "NOTEBOOKS", "notebook_dir", "check_kernel", "table_html", "card_html",
    "resolve_split", "execute_notebook", "notebook_to_html", "strip_remote_scripts", "remote_code_references",
    "write_index", "run_report", "PLOTLY_RENDERER", "setup_notebook", "count_rows", "gallery_indices",
    "TrainingCurveDisplay", "evaluation_table", "table_card", "resolve_inputs", "evaluation_checkpoint",
    "paper_comparison_hypotheses", "STANDALONE_RUNS", "FALLBACK_REPORT", "kernel_pythonpath",
]

log = logging.getLogger(__name__)

# The plotly renderer the notebooks use (registered by setup_notebook): plotly JSON for
# JupyterLab / VS Code plus an HTML div that draws with the page's own plotly.js — no plotly.js
# and no MathJax inside the outputs, so executed notebooks stay small and pages offline.
PLOTLY_RENDERER = "diffupose_offline"
# Where the notebooks write when opened on their own (their default parameters), relative to the
# repository root, and the report whose run and data they fall back to (`make demo`).
STANDALONE_RUNS = Path("runs") / "notebooks"
FALLBACK_REPORT = Path("reports") / "demo"


class ReportError(DiffuPoseError):
    """A notebook of a report failed (names the notebook and the failing cell's error), or the
    report cannot start (missing kernel, unknown notebook)."""


# ---------------------------------------------------------------------------------------------
# Helpers used inside the notebooks
# ---------------------------------------------------------------------------------------------

def _offline_renderer():
    """The PLOTLY_RENDERER: plotly's mimetype JSON plus a text/html div without plotly.js."""
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer

    class OfflinePlotlyRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            bundle = PlotlyRenderer().to_mimebundle(dict(fig_dict))
            bundle["text/html"] = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False,
                                              full_html=False, default_width="100%", default_height=525,
                                              validate=False)
            return bundle

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
    import plotly.io as pio

    from .progress import ProgressFileHandler, progress_file

    pio.renderers[PLOTLY_RENDERER] = _offline_renderer()
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


def _format_cell(value: Any, float_format: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return float_format.format(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:   # numpy scalar
        return _format_cell(value.item(), float_format)
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_cell(v, float_format) for v in value)
    return str(value)


_TABLE_CSS = """<style>
.dp-table{border-collapse:collapse;font:13px/1.35 system-ui,-apple-system,Segoe UI,sans-serif;margin:.4em 0}
.dp-table caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
.dp-table th,.dp-table td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
.dp-table th:first-child,.dp-table td:first-child{text-align:left}
.dp-table thead th{border-bottom:2px solid #444;background:#f6f6f6}
.dp-table tr.dp-ours td{font-weight:600;background:#eef5ff}
.dp-table tr.dp-paper td{color:#555}
.dp-card{font:12px/1.35 system-ui,sans-serif;color:#333;background:#fafafa;border:1px solid #e3e3e3;
 border-radius:4px;padding:.35em .6em;margin:.2em 0 1em;max-width:70em}
.dp-card span{display:inline-block;margin-right:1.2em}.dp-card b{color:#000}
</style>"""


def card_html(card: dict[str, Any] | None, title: str = "Protocol") -> str:
    """A protocol card (dataset and split, 2D source, N, aggregation, flip, sampler, oracle,
    checkpoint, seed, ...) as one compact HTML block."""
    if not card:
        return ""
    items = "".join(f"<span><b>{html.escape(str(k))}</b>: {html.escape(_format_cell(v, '{:.4g}'))}</span>"
                    for k, v in card.items())
    return f'<div class="dp-card"><b>{html.escape(title)}</b> — {items}</div>'


def table_html(rows: Sequence[dict[str, Any]], columns: Sequence[str | tuple[str, str]] | None = None,
               caption: str | None = None, card: dict[str, Any] | None = None, *,
               float_format: str = "{:.1f}", row_class_key: str | None = "source") -> str:
    """rows: list of dicts -> a standalone HTML table (own CSS, no pandas), then the protocol card.

    columns: keys to show in order, or (key, header label) pairs; default: keys of the first row.
    Floats use `float_format` (errors in mm: one decimal). A row whose `row_class_key` value is
    "ours" or "paper" is styled as such (bold / grey) and that key is not shown as a column
    unless listed.
    """
    rows = list(rows)
    if columns is None:
        columns = [k for k in (rows[0] if rows else {}) if k != row_class_key]
    cols = [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    body = []
    for row in rows:
        kind = str(row.get(row_class_key, "")) if row_class_key else ""
        cls = f' class="dp-{html.escape(kind)}"' if kind in ("ours", "paper") else ""
        cells = "".join(f"<td>{html.escape(_format_cell(row.get(key), float_format))}</td>" for key, _ in cols)
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'{_TABLE_CSS}<table class="dp-table">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{card_html(card)}')


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


def count_rows(data, by: str) -> list[dict[str, Any]]:
    """Sample counts of a PreparedData per value of `by` (subject, action, camera, split), one
    column per split plus the total -> rows for table_html."""
    import numpy as np

    values = getattr(data, by)
    splits = [s for s in ("train", "val", "test") if np.any(data.split == s)]
    rows = []
    for value in sorted(np.unique(values).tolist()):
        mask = values == value
        row: dict[str, Any] = {by: value}
        row.update({s: int(np.count_nonzero(mask & (data.split == s))) for s in splits})
        row["total"] = int(np.count_nonzero(mask))
        rows.append(row)
    return rows


def gallery_indices(data, num_examples: int, seed: int = 0) -> list[int]:
    """Indices of `num_examples` samples spread over the actions (one per action first, seeded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    actions = sorted(np.unique(data.action).tolist())
    rng.shuffle(actions)
    picks = []
    for i in range(num_examples):
        pool = np.flatnonzero(data.action == actions[i % len(actions)]) if actions else np.arange(len(data))
        picks.append(int(rng.choice(pool)))
    return picks


class TrainingCurveDisplay:
    """A `callback` for `train(...)`: keeps the history rows, shows one status line (step/total,
    steps/s, loss, validation MPJPE, ETA) updated in place, and redraws the training curve in
    place every `every` rows and at each validation — live in JupyterLab, and the executed
    notebook keeps only the last state. Inside a report each row also goes to the runner's
    terminal (progress event `train`). cfg: the training Config (for the step budget and the
    ETA). Returns None (never stops training)."""

    def __init__(self, history: Sequence[dict] = (), every: int = 10, title: str = "Training",
                 cfg=None, label: str = "training"):
        from .progress import TrainingProgress

        self.rows = list(history)
        self.every = max(1, int(every))
        self.title = title
        self.label = label
        self.progress = TrainingProgress.from_config(cfg) if cfg is not None else TrainingProgress()
        self.last: dict[str, Any] | None = None
        self._handle = None
        self._status = None

    def draw(self) -> None:
        from IPython.display import display

        from .viz import training_curves_figure

        # as a raw bundle: a plotly Figure displays itself (_ipython_display_), which ignores
        # display_id, so each redraw would add an output instead of replacing the last one
        bundle = _offline_renderer().to_mimebundle(training_curves_figure(self.rows, title=self.title).to_dict())
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def status_html(self) -> str:
        from .progress import format_training

        text = format_training(self.last) if self.last else "waiting for the first logged step"
        return f"<p class='dp-progress'><b>{html.escape(self.label)}</b>: {html.escape(text)}</p>"

    def __call__(self, row: dict) -> None:
        from IPython.display import HTML, display

        from .progress import emit

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
    from .errors import DataError

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
    from .inference import checkpoint_for_split

    checkpoint = checkpoint_for_split(requested, eval_split, selection_split)
    return checkpoint, {"best": f"{selection_split} (lowest validation MPJPE)", "ema": "none (final EMA weights)",
                        "model": "none (final raw weights)"}[checkpoint]


def paper_comparison_hypotheses(numbers: Iterable[int], paper_n: int = 10) -> int:
    """The N of ours to put beside the paper's N=`paper_n` rows: `paper_n` itself when we
    evaluated it, else the closest N we have (the caption then says so)."""
    numbers = sorted({int(n) for n in numbers})
    if not numbers:
        raise ConfigError("no numbers of hypotheses to compare")
    return min(numbers, key=lambda n: (abs(n - paper_n), n))


def _action_label(action: str) -> str:
    from .reference import H36M_ACTION_ABBREVIATIONS

    return H36M_ACTION_ABBREVIATIONS.get(action, action)


def evaluation_table(results: dict[int, Any], metric: str = "MPJPE") -> tuple[list[dict], list, str]:
    """Ours vs the paper in the paper's layout -> (rows, columns, caption) for table_html.

    results: {H: EvalResult}. Human3.6M (or any per-action data): Table I layout, one column per
    action + Average, our row per H and the paper's "Ours (N=1)/(N=10)" rows of Table I (Table II
    for MPJPE with ground-truth 2D). HumanEva-I: Table III layout (subject x action cells, P-MPJPE)
    with the paper's rows for N = 1, 5, 10, 30.
    """
    from . import reference

    first = next(iter(results.values()))
    dataset = first.card.get("dataset")
    source = str(first.card.get("keypoints_2d_source", ""))
    rows: list[dict[str, Any]] = []
    if dataset == "humaneva":
        cols = [f"{reference.HUMANEVA_PAPER_ACTION[a]} {s}" for a in reference.HUMANEVA_ACTIONS
                for s in reference.HUMANEVA_SUBJECTS]
        for n, result in results.items():
            cells = result.subject_action.get(metric, {})
            row = {"method": f"ours (N={n})", "source": "ours"}
            row.update({f"{reference.HUMANEVA_PAPER_ACTION[a]} {s}": cells.get(a, {}).get(s)
                        for a in reference.HUMANEVA_ACTIONS for s in reference.HUMANEVA_SUBJECTS})
            row["Average"] = result.per_action.get(metric, {}).get("Average")
            rows.append(row)
        if metric == "P-MPJPE":
            for n, paper in reference.table3_rows().items():
                rows.append({"method": f"paper (N={n})", "source": "paper", **paper,
                             "Average": sum(paper.values()) / len(paper)})
        caption = f"{metric} (mm) per subject and action — layout of the paper's Table III (HumanEva-I)"
        return rows, ["method", *cols, "Average"], caption
    actions = [a for a in first.per_action.get(metric, {}) if a != "Average"]
    for n, result in results.items():
        table = result.per_action.get(metric, {})
        rows.append({"method": f"ours (N={n})", "source": "ours", **{a: table.get(a) for a in actions},
                     "Average": table.get("Average")})
    protocol = 1 if metric == "MPJPE" else 2
    for n in (1, 10):
        paper = reference.table1_ours(n, protocol)
        rows.append({"method": f"paper Table I (N={n}, detected 2D)", "source": "paper",
                     **{a: paper.get(a) for a in actions}, "Average": paper.get("Average")})
    if metric == "MPJPE" and source == "gt":
        paper = reference.table2_ours()
        rows.append({"method": "paper Table II (N=10, GT 2D)", "source": "paper",
                     **{a: paper.get(a) for a in actions}, "Average": paper.get("Average")})
    same = set(actions) <= set(reference.H36M_ACTIONS)
    caption = (f"{metric} (mm) per action — layout of the paper's Table I"
               + ("" if same else f" ({dataset} actions: only the paper's Average is comparable in kind, "
                                 "not in value)"))
    return rows, ["method", *[(a, _action_label(a)) for a in actions], "Average"], caption


def table_card(card: dict[str, Any], checkpoint_selected_on: str | None = None) -> dict[str, Any]:
    """The protocol-card fields shown under a table (the full card is in metrics.json):
    which weights (and on which split they were chosen: `checkpoint_selected_on`, from the card
    or given) and the count of samples with a non-finite prediction when the card has it."""
    keys = ("dataset", "split", "keypoints_2d_name", "keypoints_2d_source", "num_samples", "num_hypotheses", "aggregation", "flip",
            "sampler", "num_steps", "protocol", "oracle", "seed", "device")
    out = {k: card[k] for k in keys if k in card}
    ckpt = card.get("checkpoint")
    if isinstance(ckpt, dict):
        which = ckpt.get("checkpoint")
        out["checkpoint"] = f"{which} @ {Path(str(ckpt.get('path'))).name}"
    selected = checkpoint_selected_on or card.get("checkpoint_selected_on")
    if selected:
        out["checkpoint_selected_on"] = selected
    if card.get("num_nan_samples") is not None:
        out["num_nan_samples"] = card["num_nan_samples"]
    return out


# ---------------------------------------------------------------------------------------------
# Running notebooks
# ---------------------------------------------------------------------------------------------

def notebook_dir() -> Path:
    """The repository's notebooks/ folder."""
    return repo_root() / "notebooks"


def check_kernel(kernel: str = "python3") -> None:
    """Raise ReportError with the fix when the Jupyter kernel `kernel` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise ReportError(f"Jupyter kernel {kernel!r} not found; install it with "
                          f"`.venv/bin/python -m ipykernel install --user --name {kernel}`") from None


def _declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)))


class NotebookFailed(Exception):
    """Internal: carries the failing cell's error out of execute_notebook."""

    def __init__(self, message: str, cell_index: int | None):
        super().__init__(message)
        self.cell_index = cell_index


_ENGINE = "diffupose_progress"


def _register_progress_engine() -> None:
    """A papermill engine that calls `cell_hook(cell, index, nb)` when a cell starts."""
    from papermill.engines import NBClientEngine, papermill_engines

    if _ENGINE in papermill_engines._engines:
        return

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, cell_hook=None, **kwargs):
            if cell_hook is not None:
                start = nb_man.cell_start

                def cell_start(cell, cell_index=None, **kw):
                    try:
                        cell_hook(cell, cell_index, nb_man.nb)
                    except Exception as e:  # progress must never fail the notebook
                        log.debug("cell hook: %s", e)
                    return start(cell, cell_index, **kw)

                nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(_ENGINE, ProgressEngine)


def _first_line(source: str, width: int = 60) -> str:
    for line in source.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line if len(line) <= width else line[: width - 1] + "…"
    return ""


def execute_notebook(src: str | Path, dst: str | Path, parameters: dict[str, Any], *,
                     cwd: str | Path | None = None, kernel: str = "python3",
                     on_cell=None, progress_file: str | Path | None = None) -> None:
    """Execute `src` with papermill into `dst` (atomic: written beside it and renamed, also when
    a cell fails, so the partial executed notebook is kept). Only the parameters the notebook
    declares are passed. A failing cell raises NotebookFailed with `ename: evalue`.

    on_cell(code_index, num_code_cells, source): called when each code cell starts (terminal
    progress). progress_file: given to the kernel as DIFFUPOSE_PROGRESS_FILE (the kernel's
    training progress and `diffupose` log records are appended there as JSON lines)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .progress import PROGRESS_ENV

    src, dst = Path(src), Path(dst)
    declared = _declared_parameters(src)
    params = {k: v for k, v in parameters.items() if k in declared}
    tmp = dst.with_name(f".{dst.stem}.running.ipynb")
    hook = None
    if on_cell is not None:
        def hook(cell, index, nb):
            if cell.get("cell_type") != "code":
                return
            code = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
            injected = "injected-parameters" in cell.get("metadata", {}).get("tags", [])
            on_cell(code.index(index) + 1, len(code),
                    "(parameters from the profile)" if injected else _first_line(cell.get("source", "")))
    _register_progress_engine()
    saved = {key: os.environ.get(key) for key in (PROGRESS_ENV, "PYTHONPATH")}
    if progress_file is not None:
        os.environ[PROGRESS_ENV] = str(progress_file)   # the kernel inherits it
    os.environ["PYTHONPATH"] = kernel_pythonpath(saved["PYTHONPATH"])
    try:
        papermill.execute_notebook(str(src), str(tmp), parameters=params, kernel_name=kernel,
                                   cwd=str(cwd or src.parent), progress_bar=False,
                                   log_output=False, report_mode=False, engine_name=_ENGINE, cell_hook=hook)
    except PapermillExecutionError as e:
        if tmp.exists():
            os.replace(tmp, dst)
        evalue = str(e.evalue).strip().splitlines()
        raise NotebookFailed(f"{e.ename}: {evalue[-1] if evalue else ''}".strip(), e.cell_index) from None
    except BaseException:
        if tmp.exists():
            os.replace(tmp, dst)
        raise
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    os.replace(tmp, dst)


def kernel_pythonpath(current: str | None = None) -> str:
    """PYTHONPATH for a report's kernels: the folder holding the `diffupose` package this
    process runs, first, then `current`. Without it a kernel started in `notebooks/` imports
    whatever `diffupose` the environment has installed (an editable install of another checkout,
    say), and the notebooks would run other code than the report records. An installed (not
    editable) package lives in site-packages, which the kernel's interpreter finds itself:
    `current` is returned unchanged then."""
    root = Path(__file__).resolve().parent.parent
    rest = [p for p in (current or "").split(os.pathsep) if p and p != str(root)]
    if root.name in ("site-packages", "dist-packages"):
        return os.pathsep.join(rest)
    return os.pathsep.join([str(root), *rest])


# The report pages: JupyterLab's look, no require.js / MathJax / mermaid / widget-manager loaders
# (all CDN scripts), and the report's one local plotly.js in the head.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}<script charset="utf-8" src="plotly.min.js"></script>{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""

_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>", re.IGNORECASE)
# Code or styles fetched from the network: <script src=http..>, <link href=http..>, <iframe/img src=//..>,
# @import url(http..), also JSON-escaped (<\/script>, \") inside embedded state.
_REMOTE_CODE = re.compile(
    r"<(?:script|link|iframe|embed)\b[^>]*?\b(?:src|href)\s*=\s*\\?[\"']?(?:https?:)?//[^\s\"'>\\]+"
    r"|@import\s+(?:url\()?[\"']?(?:https?:)?//[^\s\"')]+"
    r"|\brequire(?:js)?\.config\([^)]*https?://[^\s\"')]+",
    re.IGNORECASE)


def strip_remote_scripts(text: str) -> str:
    """Remove `<script src="http(s)://...">` tags (MathJax/CDN loaders) so a page never fetches
    code from the network; inline scripts are kept."""
    return _REMOTE_SCRIPT.sub("", text)


def remote_code_references(text: str) -> list[str]:
    """Every place in an HTML text that would load code or styles from the network (script,
    link, iframe sources, @import, require.config paths), also inside escaped JSON."""
    return [m.group(0) for m in _REMOTE_CODE.finditer(text)]


def _without_widget_state(nb) -> None:
    """Drop the saved ipywidgets state (no widget manager runs in a static page; it also
    carried CDN script tags inside plotly outputs): widget outputs fall back to their HTML."""
    nb.metadata.pop("widgets", None)


def notebook_to_html(ipynb: str | Path, out_html: str | Path) -> Path:
    """Executed notebook -> standalone HTML beside the report's plotly.min.js (lab template
    without require.js/MathJax/mermaid/widget loaders; no widget state; remote script tags
    removed). Writes plotly.min.js into the page's folder when it is not there. Atomic write."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    from .viz.curves import write_plotly_js

    nb = nbformat.read(str(ipynb), as_version=4)
    _without_widget_state(nb)
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"diffupose_offline.html.j2": _OFFLINE_TEMPLATE})],
                            template_file="diffupose_offline.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    write_plotly_js(Path(out_html).parent)
    _write_text(out_html, strip_remote_scripts(body))
    return Path(out_html)


# ---------------------------------------------------------------------------------------------
# index.html
# ---------------------------------------------------------------------------------------------

_INDEX_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.status-ok{color:#18794e;font-weight:600}.status-failed{color:#c62828;font-weight:600}
.status-skipped{color:#777}
.error{background:#fff0f0;border:1px solid #f3b5b5;padding:.6em;border-radius:4px;white-space:pre-wrap}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0;width:22em}
.figs img{max-width:100%;border:1px solid #ddd}.figs figcaption{font-size:12px}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}
table.kv td{padding:.15em .8em .15em 0;vertical-align:top}
"""


def _write_text(path: str | Path, text: str) -> None:
    """Atomic write, readable by everyone (reports are meant to be served and shared)."""
    atomic_write_text(path, text)
    os.chmod(path, 0o644)


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _headline(section: dict[str, Any]) -> str:
    """A few scalar numbers of one metrics section, for the index."""
    parts = []
    flat: list[tuple[str, Any]] = []
    for key, value in section.items():
        if isinstance(value, dict) and key != "card" and len(value) <= 6:
            flat += [(f"{key}[{k}]", v) for k, v in value.items()]
        else:
            flat.append((key, value))
    for key, value in flat:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key} = {_format_cell(float(value) if isinstance(value, float) else value, '{:.4g}')}")
        if len(parts) >= 10:
            break
    return "; ".join(parts)


def write_index(report_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write report_dir/index.html (and report.json) from the report's `info` dict: profile,
    name, status, notebooks (name, status, wall_time_s, html, ipynb, error), parameters, config,
    environment, total time. Figures are listed from report_dir/figures."""
    report_dir = Path(report_dir)
    lines = (_index_header(info) + _index_notebooks(info) + _index_numbers(report_dir)
             + _index_figures(report_dir) + _index_provenance(info))
    _write_text(report_dir / "report.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    path = report_dir / "index.html"
    _write_text(path, "\n".join(lines))
    return path


def _index_header(info: dict[str, Any]) -> list[str]:
    """The index's head, title, status line, failure (if any) and the static-figure renderer."""
    esc = html.escape
    status = info.get("status", "running")
    lines = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DiffuPose report {esc(info.get('name', ''))}</title>"
             f"<style>{_INDEX_CSS}</style></head><body>",
             f"<h1>DiffuPose report: {esc(str(info.get('name', '')))}</h1>",
             f"<p>Profile <b>{esc(str(info.get('profile')))}</b> — {esc(str(info.get('description', '')))}. "
             f"Status: <span class='status-{esc(status)}'>{esc(status)}</span>. "
             f"Started {esc(str(info.get('started', '')))}; total wall time {_fmt_seconds(info.get('total_wall_time_s'))}.</p>"]
    if info.get("error"):
        lines.append(f"<div class='error'><b>Failure</b>: {esc(info['error'])}</div>")
    lines.append(f"<p>Static figures (PNG/SVG under <code>figures/</code>): {esc(_static_export_text(info))}. "
                 "Pages and interactive figures load plotly.js from this folder "
                 "(<code>plotly.min.js</code>); nothing is fetched from the network.</p>")
    return lines


def _index_notebooks(info: dict[str, Any]) -> list[str]:
    """The table of notebooks: status, wall time and links to the HTML and executed notebook."""
    esc = html.escape
    lines = ["<h2>Notebooks</h2><table class='dp-table'><thead><tr><th>notebook</th><th>status</th>"
             "<th>wall time</th><th>HTML</th><th>executed notebook</th></tr></thead><tbody>"]
    for nb in info.get("notebooks", []):
        link = (f"<a href='{esc(nb['html'])}'>{esc(nb['html'])}</a>" if nb.get("html") else "–")
        ipynb = (f"<a href='{esc(nb['ipynb'])}'>{esc(nb['ipynb'])}</a>" if nb.get("ipynb") else "–")
        lines.append(f"<tr><td>{esc(nb['name'])}</td><td class='status-{esc(nb['status'])}'>{esc(nb['status'])}</td>"
                     f"<td>{_fmt_seconds(nb.get('wall_time_s'))}</td><td>{link}</td><td>{ipynb}</td></tr>")
    lines.append(f"<tr><td><b>total</b></td><td></td><td><b>{_fmt_seconds(info.get('total_wall_time_s'))}</b></td>"
                 "<td></td><td></td></tr></tbody></table>")
    lines.append(_TABLE_CSS)
    return lines


def _index_numbers(report_dir: Path) -> list[str]:
    """A headline per metrics.json section (nothing before the first notebook records any)."""
    esc = html.escape
    metrics_path = report_dir / "metrics.json"
    if not metrics_path.exists():
        return []
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError:
        metrics = {}
    lines = ["<h2>Numbers</h2><p>All numbers: <a href='metrics.json'>metrics.json</a> "
             "(one section per notebook, each with its protocol card).</p><table class='kv'>"]
    for section, values in metrics.items():
        if isinstance(values, dict):
            lines.append(f"<tr><td><b>{esc(section)}</b></td><td>{esc(_headline(values))}</td></tr>")
    lines.append("</table>")
    return lines


def _index_figures(report_dir: Path) -> list[str]:
    """A thumbnail per figures/*.png, linking its PNG and any SVG / HTML copy."""
    esc = html.escape
    figures = sorted((report_dir / "figures").glob("*.png")) if (report_dir / "figures").is_dir() else []
    if not figures:
        return []
    lines = ["<h2>Figures</h2><div class='figs'>"]
    for png in figures:
        links = [f"<a href='figures/{esc(png.name)}'>PNG</a>"]
        for ext in ("svg", "html"):
            if png.with_suffix(f".{ext}").exists():
                links.append(f"<a href='figures/{esc(png.stem)}.{ext}'>{ext.upper()}</a>")
        lines.append(f"<figure><a href='figures/{esc(png.name)}'><img src='figures/{esc(png.name)}' "
                     f"alt='{esc(png.stem)}'></a><figcaption>{esc(png.stem)} — {' · '.join(links)}"
                     "</figcaption></figure>")
    lines.append("</div>")
    return lines


def _index_provenance(info: dict[str, Any]) -> list[str]:
    """Git commit, seed, machine and library versions, the run config and the parameters; the
    page's closing lines."""
    esc = html.escape
    env = info.get("environment", {})
    versions = env.get("versions", {})
    lines = ["<h2>Provenance</h2><table class='kv'>"
             f"<tr><td>git commit</td><td><code>{esc(str(env.get('git_commit')))}</code></td></tr>"
             f"<tr><td>seed</td><td>{esc(str(info.get('seed')))}</td></tr>"
             f"<tr><td>python</td><td>{esc(str(env.get('python')))}</td></tr>"
             f"<tr><td>platform</td><td>{esc(str(env.get('platform')))}</td></tr>"
             f"<tr><td>device</td><td>{esc(str(env.get('cuda') or 'cpu'))} "
             f"({esc(str(env.get('num_threads')))} threads)</td></tr>"
             + "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in versions.items())
             + "</table>"]
    if info.get("config") is not None:
        lines.append("<h2>Run config</h2><pre>" + esc(json.dumps(info["config"], indent=2, sort_keys=True)) + "</pre>")
    lines.append("<h2>Parameters</h2><p>Profile parameters after <code>--set</code> overrides "
                 "(each notebook receives the ones its <code>parameters</code> cell declares):</p><pre>"
                 + esc(json.dumps(info.get("parameters", {}), indent=2, sort_keys=True, default=str)) + "</pre>")
    lines.append("<p>Machine-readable: <a href='report.json'>report.json</a>.</p></body></html>")
    return lines


def _static_export_text(info: dict[str, Any]) -> str:
    """The renderer(s) the notebooks' kernels used for static figures, in words."""
    used = info.get("static_export") or []
    if not used:
        return "none written yet"
    parts = []
    for item in used:
        if item.get("renderer") == "kaleido":
            parts.append(f"rendered by plotly/kaleido ({item.get('reason')})")
        else:
            parts.append(f"matplotlib re-render of the plotly figures, with an interactive HTML copy "
                         f"beside each ({item.get('reason')})")
    return "; ".join(parts)


def _run_config(params: dict[str, Any]) -> dict[str, Any] | None:
    """The training run's config.json if the run exists, else None."""
    path = Path(params.get("run_dir", "")) / "config.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
    return None


def _select_notebooks(notebooks: Iterable[str] | None, directory: Path) -> list[Path]:
    available = sorted(directory.glob("*.ipynb"))
    if notebooks is None:
        chosen = [directory / f"{n}.ipynb" for n in NOTEBOOKS if (directory / f"{n}.ipynb").exists()]
        chosen += [p for p in available if p.stem not in NOTEBOOKS]
        return chosen
    out = []
    for name in notebooks:
        p = Path(name)
        if p.suffix == ".ipynb" and p.exists():
            out.append(p.resolve())
            continue
        matches = [a for a in available if a.stem == name or a.stem.startswith(f"{name}_") or a.stem.startswith(name)]
        if not matches:
            raise ReportError(f"no notebook {name!r} in {directory}; have: {[a.stem for a in available]}")
        out.append(matches[0])
    return out


def _validate_overrides(profile: str, params: dict[str, dict[str, Any]], overrides, paths: list[Path],
                        nb_dir: Path) -> None:
    """Before any notebook runs: every `--set` key is a parameter some notebook declares or a
    key of the config tree with a value of the right type (checked against the profile's presets)."""
    from .config import apply_overrides, preset
    from .profiles import CONFIG_SECTIONS, parse_set

    given = parse_set(overrides)
    if not given:
        return
    declared: set[str] = set()
    for nb in sorted(nb_dir.glob("*.ipynb")) + list(paths):
        declared |= _declared_parameters(nb)
    for key in given:
        if "." in key and key.split(".", 1)[0] in CONFIG_SECTIONS:
            continue
        if key not in declared:
            raise ConfigError(f"--set {key}: no notebook in {nb_dir} declares a parameter {key!r} "
                              f"(declared: {', '.join(sorted(declared))})")
    shared = next(iter(params.values()), {})
    config_overrides = {k: v for k, v in given.items() if "." in k and k.split(".", 1)[0] in CONFIG_SECTIONS}
    if config_overrides:
        for name in dict.fromkeys([shared.get("preset"), shared.get("ablation_preset")]):
            if name:
                apply_overrides(preset(name), config_overrides)


def _pickle_hint(error: str, profile: str) -> str:
    """The runner's wording for a loader's 'pass --allow-pickle' error."""
    if "allow-pickle" not in error and "allow_pickle" not in error:
        return error
    return (f"{error} — reports read pickled files only when told to: rerun with "
            f"`diffupose report --profile {profile} --allow-pickle` (or `--set allow_pickle=true`), "
            "only for files you trust")


def run_report(profile: str, name: str | None = None, overrides: list[str] | dict[str, Any] | None = None,
               out_root: str | Path = "reports", notebooks: Iterable[str] | None = None,
               kernel: str = "python3", notebooks_dir: str | Path | None = None,
               progress_interval_s: float = 10.0) -> Path:
    """Execute the notebooks of one report in order and return the report folder.

    profile: a name of diffupose.profiles.PROFILES; name: folder under out_root (default: the
    profile); overrides: `--set` items (`data_dir=...`, `train.lr=...`); notebooks: names or
    prefixes (`"01"`, `"02_train"`) or paths, default all of notebooks/ in order.
    Every override is checked before the first notebook runs (unknown keys, wrong types, a
    missing data folder). Writes out_root/name/{NN_x.ipynb, NN_x.html, plotly.min.js, figures/,
    metrics.json, index.html, report.json}. The terminal shows each code cell as it starts and
    the kernels' training progress (every `progress_interval_s` at most). A failing notebook stops
    the run: its partial executed notebook and HTML are kept, index.html marks the failure, and
    ReportError names the notebook and the failing cell's error.
    """
    plan = _plan_report(profile, name or profile, overrides, out_root, notebooks, kernel, notebooks_dir)
    info = _new_report_info(plan, overrides)
    write_index(plan.report_dir, info)
    # our own per-cell lines replace papermill's "Input/Output Notebook, Executing" chatter
    logging.getLogger("papermill").setLevel(logging.WARNING)
    logging.getLogger("traitlets").setLevel(logging.ERROR)   # nbconvert's alt-text notes on every figure
    warned: set[str] = set()
    start = time.perf_counter()
    for number, (entry, path) in enumerate(zip(info["notebooks"], plan.paths), start=1):
        error = _run_report_notebook(plan, info, entry, path, number, start, warned, progress_interval_s)
        if error:
            _mark_report_failed(info, entry, error)
            write_index(plan.report_dir, info)
            raise ReportError(error)
        write_index(plan.report_dir, info)
    info["status"] = "ok"
    _record_report_section(plan.report_dir, info)
    write_index(plan.report_dir, info)
    return plan.report_dir


@dataclass(frozen=True)
class _ReportPlan:
    """What run_report settles before the first notebook runs."""

    profile: str
    name: str
    description: str
    kernel: str
    nb_dir: Path
    paths: list[Path]
    report_dir: Path
    params: dict[str, dict[str, Any]]      # notebook stem -> its parameters
    shared: dict[str, Any]                 # the first notebook's parameters (seed, run_dir, ...)


def _plan_report(profile: str, name: str, overrides, out_root: str | Path, notebooks: Iterable[str] | None,
                 kernel: str, notebooks_dir: str | Path | None) -> _ReportPlan:
    """Check everything a report needs (profile, kernel, notebooks, overrides, inputs) and create
    its folder with figures/ and plotly.min.js."""
    from .profiles import check_inputs
    from .viz.curves import write_plotly_js

    spec = get_profile(profile)
    check_kernel(kernel)
    nb_dir = Path(notebooks_dir) if notebooks_dir else notebook_dir()
    paths = _select_notebooks(notebooks, nb_dir)
    report_dir = (Path(out_root) / name).resolve()
    params = resolve_parameters(profile, report_dir, overrides, notebooks=[p.stem for p in paths])
    _validate_overrides(profile, params, overrides, paths, nb_dir)
    shared = params[paths[0].stem] if paths else {}
    check_inputs(shared, [p.stem for p in paths])
    if shared.get("allow_pickle"):
        log.warning("allow_pickle is on: pickled dataset files are unpickled (this runs code stored in "
                    "them; use it only for files you trust)")
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "figures").mkdir(exist_ok=True)
    write_plotly_js(report_dir)
    return _ReportPlan(profile=profile, name=name, description=spec.get("description", ""), kernel=kernel,
                       nb_dir=nb_dir, paths=paths, report_dir=report_dir, params=params, shared=shared)


def _new_report_info(plan: _ReportPlan, overrides) -> dict[str, Any]:
    """The report's `info` dict (see write_index) before any notebook runs: every notebook pending."""
    return {
        "profile": plan.profile, "name": plan.name, "description": plan.description,
        "status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seed": plan.shared.get("seed"), "parameters": plan.shared, "overrides": overrides or [],
        "environment": environment_info(), "config": None, "static_export": [],
        "notebooks": [{"name": p.stem, "status": "pending", "wall_time_s": None, "html": None, "ipynb": None}
                      for p in plan.paths],
        "total_wall_time_s": 0.0,
    }


def _run_report_notebook(plan: _ReportPlan, info: dict[str, Any], entry: dict[str, Any], path: Path,
                         number: int, start: float, warned: set[str], progress_interval_s: float) -> str | None:
    """Execute one notebook of the report into report_dir (NN_x.ipynb and NN_x.html), updating
    its `entry` and `info` (wall times, run config); return its error message or None."""
    from .progress import format_duration

    dst = plan.report_dir / f"{path.stem}.ipynb"
    entry["status"] = "running"
    write_index(plan.report_dir, info)
    tag = f"[{path.stem} {number}/{len(plan.paths)}]"
    log.info("report %s %s: started (report %s)", plan.name, tag, format_duration(time.perf_counter() - start))
    terminal = _NotebookTerminal(tag, start, info, warned)
    error = _execute_with_progress(plan, path, dst, terminal, progress_interval_s)
    entry["wall_time_s"] = round(time.perf_counter() - terminal.t0, 2)
    log.info("report %s %s: %s in %s", plan.name, tag, "failed" if error else "done",
             format_duration(entry["wall_time_s"]))
    if dst.exists():
        entry["ipynb"] = dst.name
        try:
            entry["html"] = notebook_to_html(dst, plan.report_dir / f"{path.stem}.html").name
        except Exception as e:  # keep going: the executed notebook is the record
            log.warning("could not convert %s to HTML: %s", dst, e)
    entry["status"] = "failed" if error else "ok"
    info["total_wall_time_s"] = round(time.perf_counter() - start, 2)
    info["config"] = _run_config(plan.params[path.stem]) or info["config"]
    return error


class _NotebookTerminal:
    """The terminal lines while one notebook of a report runs: each code cell as it starts, the
    kernel's progress events (the static-export renderer and each warning once per report) and a
    heartbeat naming the running cell."""

    def __init__(self, tag: str, report_start: float, info: dict[str, Any], warned: set[str]):
        self.tag = tag
        self.report_start = report_start
        self.info = info
        self.warned = warned
        self.t0 = time.perf_counter()
        self.cell = "starting the kernel"

    def on_cell(self, i: int, n: int, source: str) -> None:
        from .progress import format_duration

        self.cell = f"cell {i}/{n}"
        log.info("%s cell %d/%d · %s in notebook · %s · %s", self.tag, i, n,
                 format_duration(time.perf_counter() - self.t0),
                 format_duration(time.perf_counter() - self.report_start), source)

    def on_event(self, event: dict[str, Any], line: str) -> None:
        if event.get("kind") == "static_export":
            item = {k: event.get(k) for k in ("renderer", "reason")}
            if item in self.info["static_export"]:
                return                          # each kernel decides; say it once per report
            self.info["static_export"].append(item)
        if event.get("kind") == "log" and event.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            if line in self.warned:
                return
            self.warned.add(line)
            log.warning("%s %s", self.tag, line)
        else:
            log.info("%s %s", self.tag, line)

    def heartbeat(self, idle: float) -> None:
        from .progress import format_duration

        log.info("%s still running %s · %s in notebook", self.tag, self.cell,
                 format_duration(time.perf_counter() - self.t0))


def _execute_with_progress(plan: _ReportPlan, path: Path, dst: Path, terminal: _NotebookTerminal,
                           progress_interval_s: float) -> str | None:
    """Execute one notebook while tailing the kernel's progress file; the error message or None."""
    from .progress import ProgressTail

    progress_path = plan.report_dir / ".progress.jsonl"
    progress_path.unlink(missing_ok=True)
    error: str | None = None
    tail = ProgressTail(progress_path, terminal.on_event, min_interval_s=progress_interval_s,
                        heartbeat=terminal.heartbeat)
    try:
        with tail:
            execute_notebook(path, dst, plan.params[path.stem], cwd=plan.nb_dir, kernel=plan.kernel,
                             on_cell=terminal.on_cell, progress_file=progress_path)
    except NotebookFailed as e:
        cell = f" (cell {e.cell_index})" if e.cell_index is not None else ""
        error = _pickle_hint(f"notebook {path.stem} failed{cell}: {e}", plan.profile)
    except Exception as e:  # kernel died, papermill could not start, ...
        error = f"notebook {path.stem} failed: {type(e).__name__}: {e}"
    progress_path.unlink(missing_ok=True)
    return error


def _mark_report_failed(info: dict[str, Any], entry: dict[str, Any], error: str) -> None:
    """Record a notebook's failure in `info`; the notebooks after it are skipped."""
    entry["error"] = error
    info["status"] = "failed"
    info["error"] = error
    for later in info["notebooks"]:
        if later["status"] == "pending":
            later["status"] = "skipped"


def _record_report_section(report_dir: Path, info: dict[str, Any]) -> None:
    from .viz import record_metrics

    record_metrics(report_dir, "report", {
        "profile": info["profile"], "name": info["name"],
        "total_wall_time_s": info["total_wall_time_s"],
        "notebook_wall_time_s": {nb["name"]: nb["wall_time_s"] for nb in info["notebooks"]},
        "git_commit": info["environment"].get("git_commit"), "seed": info.get("seed"),
        "static_export": info.get("static_export"),
    })
