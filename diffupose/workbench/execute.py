"""One notebook through papermill, and its offline HTML page.

`execute_notebook` runs a notebook with papermill (atomic: a failing notebook keeps its partial
executed copy), passing only the parameters it declares; a papermill engine calls back when
each code cell starts, and the kernel inherits the progress file (diffupose.workbench.progress) and a
PYTHONPATH that makes it import this process's `diffupose` (`kernel_pythonpath`).
`notebook_to_html` writes the page: JupyterLab's look without CDN loaders, loading the report's
one local `plotly.min.js`.

papermill, nbconvert, nbformat and jupyter_client are the `workbench` extra: they are imported
where they are used, so this module imports without them (assets.require_workbench says what
to install).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from ..viz.export import write_plotly_js
from .assets import ReportError, write_page
from .progress import PROGRESS_ENV

__all__ = ["check_kernel", "declared_parameters", "NotebookFailed", "execute_notebook", "kernel_pythonpath",
           "notebook_to_html", "strip_remote_scripts", "remote_code_references"]

log = logging.getLogger("diffupose.reports")     # the runner's terminal lines keep their old name


def check_kernel(kernel: str = "python3") -> None:
    """Raise ReportError with the fix when the Jupyter kernel `kernel` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise ReportError(f"Jupyter kernel {kernel!r} not found; install it with "
                          f"`.venv/bin/python -m ipykernel install --user --name {kernel}`") from None


def declared_parameters(path: Path) -> set[str]:
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
                     on_cell: Callable[[int, int, str], None] | None = None,
                     progress_file: str | Path | None = None) -> None:
    """Execute `src` with papermill into `dst` (atomic: written beside it and renamed, also when
    a cell fails, so the partial executed notebook is kept). Only the parameters the notebook
    declares are passed. A failing cell raises NotebookFailed with `ename: evalue`.

    on_cell(code_index, num_code_cells, source): called when each code cell starts (terminal
    progress). progress_file: given to the kernel as DIFFUPOSE_PROGRESS_FILE (the kernel's
    training progress and `diffupose` log records are appended there as JSON lines)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src, dst = Path(src), Path(dst)
    declared = declared_parameters(src)
    params = {k: v for k, v in parameters.items() if k in declared}
    tmp = dst.with_name(f".{dst.stem}.running.ipynb")
    _register_progress_engine()
    try:
        with _kernel_environment(progress_file):
            papermill.execute_notebook(str(src), str(tmp), parameters=params, kernel_name=kernel,
                                       cwd=str(cwd or src.parent), progress_bar=False, log_output=False,
                                       report_mode=False, engine_name=_ENGINE, cell_hook=_cell_hook(on_cell))
    except PapermillExecutionError as e:
        if tmp.exists():
            os.replace(tmp, dst)
        evalue = str(e.evalue).strip().splitlines()
        raise NotebookFailed(f"{e.ename}: {evalue[-1] if evalue else ''}".strip(), e.cell_index) from None
    except BaseException:
        if tmp.exists():
            os.replace(tmp, dst)
        raise
    os.replace(tmp, dst)


def _cell_hook(on_cell: Callable[[int, int, str], None] | None):
    """The progress engine's `cell_hook(cell, index, nb)` that calls on_cell for code cells."""
    if on_cell is None:
        return None

    def hook(cell, index, nb):
        if cell.get("cell_type") != "code":
            return
        code = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
        injected = "injected-parameters" in cell.get("metadata", {}).get("tags", [])
        on_cell(code.index(index) + 1, len(code),
                "(parameters from the profile)" if injected else _first_line(cell.get("source", "")))

    return hook


@contextlib.contextmanager
def _kernel_environment(progress_file: str | Path | None) -> Iterator[None]:
    """The kernel inherits the progress file and kernel_pythonpath(); the caller's environment
    is restored afterwards."""
    saved = {key: os.environ.get(key) for key in (PROGRESS_ENV, "PYTHONPATH")}
    if progress_file is not None:
        os.environ[PROGRESS_ENV] = str(progress_file)
    os.environ["PYTHONPATH"] = kernel_pythonpath(saved["PYTHONPATH"])
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def kernel_pythonpath(current: str | None = None) -> str:
    """PYTHONPATH for a report's kernels: the folder holding the `diffupose` package this
    process runs, first, then `current`. Without it a kernel started in `notebooks/` imports
    whatever `diffupose` the environment has installed (an editable install of another checkout,
    say), and the notebooks would run other code than the report records. An installed (not
    editable) package lives in site-packages, which the kernel's interpreter finds itself:
    `current` is returned unchanged then."""
    root = Path(__file__).resolve().parents[2]    # diffupose/workbench/execute.py
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

    nb = nbformat.read(str(ipynb), as_version=4)
    _without_widget_state(nb)
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"diffupose_offline.html.j2": _OFFLINE_TEMPLATE})],
                            template_file="diffupose_offline.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    write_plotly_js(Path(out_html).parent)
    write_page(out_html, strip_remote_scripts(body))
    return Path(out_html)
