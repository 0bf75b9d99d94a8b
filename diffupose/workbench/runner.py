"""Reports: execute the notebooks with papermill into reports/<name>/ and index them.

`run_report("demo")` runs notebooks/01_data_prep ... 11_samplers in order with the parameters
of a profile (diffupose.workbench.profiles), writes for each notebook the executed `.ipynb` and a
standalone `.html`, collects the figures the notebooks save under `figures/` and the numbers
they record in one `metrics.json`, and writes `index.html` (links, run config, seed, git
commit, library versions, the static-figure renderer, per-notebook and total wall time) and
`report.json` (the same as data).

An existing report folder (diffupose.workbench.resume): running the same report again resumes
it — its training run continues from the last checkpoint and the notebooks' pages are
rewritten; a report of another profile, or a finished one made with other `--set` values, is
never replaced without `overwrite` (which deletes the folder, and the training run inside it,
and starts over); a folder that is not a report is never touched.

Offline and small: the notebooks' plotly renderer (`PLOTLY_RENDERER`) writes each figure as
plotly JSON (JupyterLab and VS Code draw it) plus an HTML `<div>` that needs a global `Plotly`;
every report page loads the report's one local `plotly.min.js` and nothing from the network.

Progress: while a notebook runs the terminal shows each code cell (`cell i/n`, elapsed) and the
training progress the kernel writes to a progress file (diffupose.workbench.progress); the executed
notebooks keep one status line per training instead of a log.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..config import apply_overrides, preset
from ..errors import ConfigError
from ..utils import environment_info
from ..viz import record_metrics
from ..viz.export import write_plotly_js
from .assets import ReportError, notebook_dir, require_workbench, with_installed_paths
from .execute import NotebookFailed, check_kernel, declared_parameters, execute_notebook, notebook_to_html
from .index_page import write_index
from .profiles import CONFIG_SECTIONS, NOTEBOOKS, check_inputs, get_profile, parse_set, resolve_parameters
from .progress import ProgressTail, format_duration
from .resume import open_report_dir

__all__ = ["run_report"]

log = logging.getLogger("diffupose.reports")     # the terminal lines keep the name users know


def run_report(profile: str, name: str | None = None, overrides: list[str] | dict[str, Any] | None = None,
               out_root: str | Path = "reports", notebooks: Iterable[str] | None = None,
               kernel: str = "python3", notebooks_dir: str | Path | None = None,
               progress_interval_s: float = 10.0, overwrite: bool = False) -> Path:
    """Execute the notebooks of one report in order and return the report folder.

    profile: a name of diffupose.workbench.profiles.PROFILES; name: folder under out_root (default: the
    profile); overrides: `--set` items (`data_dir=...`, `train.lr=...`); notebooks: names or
    prefixes (`"01"`, `"02_train"`) or paths, default all of notebooks/ in order.
    Every override is checked before the first notebook runs (unknown keys, wrong types, a
    missing data folder). Writes out_root/name/{NN_x.ipynb, NN_x.html, plotly.min.js, figures/,
    metrics.json, index.html, report.json}. The terminal shows each code cell as it starts and
    the kernels' training progress (every `progress_interval_s` at most). A failing notebook stops
    the run: its partial executed notebook and HTML are kept, index.html marks the failure, and
    ReportError names the notebook and the failing cell's error.
    An existing report folder is resumed, refused, or (with `overwrite`) deleted first, by the
    rule of diffupose.workbench.resume; MissingExtraError without the workbench extra.
    """
    plan = _plan_report(profile, name or profile, overrides, out_root, notebooks, kernel, notebooks_dir, overwrite)
    info = _new_report_info(plan, overrides)
    write_index(plan.report_dir, info)
    # our own per-cell lines replace papermill's "Input/Output Notebook, Executing" chatter
    logging.getLogger("papermill").setLevel(logging.WARNING)
    logging.getLogger("traitlets").setLevel(logging.ERROR)   # nbconvert's alt-text notes on every figure
    warned: set[str] = set()
    start = time.perf_counter()
    entries = {entry["name"]: entry for entry in info["notebooks"]}
    for number, path in enumerate(plan.paths, start=1):
        entry = entries[path.stem]
        error = _run_report_notebook(plan, info, entry, path, number, start, warned, progress_interval_s)
        if error:
            _mark_report_failed(info, entry, error)
            write_index(plan.report_dir, info)
            raise ReportError(error)
        write_index(plan.report_dir, info)
    info["status"] = "ok" if all(nb["status"] == "ok" for nb in info["notebooks"]) else "incomplete"
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
    previous: dict[str, Any] | None        # the report.json of the report this one resumes


def _plan_report(profile: str, name: str, overrides, out_root: str | Path, notebooks: Iterable[str] | None,
                 kernel: str, notebooks_dir: str | Path | None, overwrite: bool = False) -> _ReportPlan:
    """Check everything a report needs (the workbench extra, profile, kernel, notebooks,
    overrides, inputs, an existing folder) and create its folder with figures/ and plotly.min.js."""
    require_workbench()
    spec = get_profile(profile)
    check_kernel(kernel)
    nb_dir = Path(notebooks_dir) if notebooks_dir else notebook_dir()
    paths = _select_notebooks(notebooks, nb_dir)
    report_dir = (Path(out_root) / name).resolve()
    params = resolve_parameters(profile, report_dir, overrides, notebooks=[p.stem for p in paths])
    params = {stem: with_installed_paths(values) for stem, values in params.items()}
    _validate_overrides(profile, params, overrides, paths, nb_dir)
    shared = params[paths[0].stem] if paths else {}
    check_inputs(shared, [p.stem for p in paths])
    previous = open_report_dir(report_dir, profile, overrides, overwrite)
    if previous is not None:
        log.info("report %s: resuming the report in %s (its training run continues from the last checkpoint)",
                 name, report_dir)
    if shared.get("allow_pickle"):
        log.warning("allow_pickle is on: pickled dataset files are unpickled (this runs code stored in "
                    "them; use it only for files you trust)")
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "figures").mkdir(exist_ok=True)
    write_plotly_js(report_dir)
    return _ReportPlan(profile=profile, name=name, description=spec.get("description", ""), kernel=kernel,
                       nb_dir=nb_dir, paths=paths, report_dir=report_dir, params=params, shared=shared,
                       previous=previous)


def _new_report_info(plan: _ReportPlan, overrides) -> dict[str, Any]:
    """The report's `info` dict (see write_index) before any notebook runs: every notebook of
    this run pending; when resuming, the earlier report's other notebooks kept as they were."""
    entries = [{"name": p.stem, "status": "pending", "wall_time_s": None, "html": None, "ipynb": None}
               for p in plan.paths]
    previous = plan.previous or {}
    return {
        "profile": plan.profile, "name": plan.name, "description": plan.description,
        "status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seed": plan.shared.get("seed"), "parameters": plan.shared, "overrides": overrides or [],
        "environment": environment_info(), "config": _run_config(plan.shared),
        "static_export": [item for item in previous.get("static_export") or [] if isinstance(item, dict)],
        "notebooks": _with_earlier_notebooks(entries, previous.get("notebooks") or []),
        "total_wall_time_s": 0.0,
    }


def _with_earlier_notebooks(entries: list[dict[str, Any]], earlier: list[Any]) -> list[dict[str, Any]]:
    """`entries` (this run's notebooks) plus the earlier report's entries of the notebooks not
    run now (one that was pending or running then is `skipped`), in the notebooks' order."""
    now = {entry["name"] for entry in entries}
    kept = []
    for entry in earlier:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"] not in now:
            entry = {"status": "skipped", "wall_time_s": None, "html": None, "ipynb": None, **entry}
            if entry["status"] in ("pending", "running"):
                entry["status"] = "skipped"
            kept.append(entry)
    merged = kept + entries

    def order(item: tuple[int, dict[str, Any]]) -> tuple[int, int]:
        position, entry = item
        return (NOTEBOOKS.index(entry["name"]) if entry["name"] in NOTEBOOKS else len(NOTEBOOKS), position)

    return [entry for _, entry in sorted(enumerate(merged), key=order)]


def _run_report_notebook(plan: _ReportPlan, info: dict[str, Any], entry: dict[str, Any], path: Path,
                         number: int, start: float, warned: set[str], progress_interval_s: float) -> str | None:
    """Execute one notebook of the report into report_dir (NN_x.ipynb and NN_x.html), updating
    its `entry` and `info` (wall times, run config); return its error message or None."""
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
        log.info("%s still running %s · %s in notebook", self.tag, self.cell,
                 format_duration(time.perf_counter() - self.t0))


def _execute_with_progress(plan: _ReportPlan, path: Path, dst: Path, terminal: _NotebookTerminal,
                           progress_interval_s: float) -> str | None:
    """Execute one notebook while tailing the kernel's progress file; the error message or None."""
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
    record_metrics(report_dir, "report", {
        "profile": info["profile"], "name": info["name"],
        "total_wall_time_s": info["total_wall_time_s"],
        "notebook_wall_time_s": {nb["name"]: nb["wall_time_s"] for nb in info["notebooks"]},
        "git_commit": info["environment"].get("git_commit"), "seed": info.get("seed"),
        "static_export": info.get("static_export"),
    })


def _run_config(params: dict[str, Any]) -> dict[str, Any] | None:
    """The training run's config.json if the run exists, else None."""
    if not params.get("run_dir"):
        return None
    path = Path(params["run_dir"]) / "config.json"
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
    given = parse_set(overrides)
    if not given:
        return
    declared: set[str] = set()
    for nb in sorted(nb_dir.glob("*.ipynb")) + list(paths):
        declared |= declared_parameters(nb)
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
