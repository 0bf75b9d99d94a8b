"""Where a report's notebooks and example files are, and whether the workbench extra is installed.

A checkout (an editable install) uses its own top-level `notebooks/` and `examples/`. An
installed wheel carries copies of both inside the package (`diffupose/_notebooks/`,
`diffupose/_examples/`: `setup.py` copies them in at build time), so `diffupose report` runs
from any folder. The report's other asset, `plotly.min.js`, comes from the installed plotly
(`viz.export.write_plotly_js`); the camera and paper tables are package data (`resources/`).

Running notebooks needs the `workbench` extra (JupyterLab, papermill, nbconvert, ipykernel, ...);
`require_workbench` says in one line what to install when it is missing.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from ..errors import DiffuPoseError
from ..utils import atomic_write_text
from .profiles import PATH_KEYS, repo_root

__all__ = ["ReportError", "MissingExtraError", "WORKBENCH_MODULES", "EXTRA_MODULES", "WORKBENCH_INSTALL",
           "PACKAGED_ASSETS", "require_workbench", "missing_workbench_modules", "in_checkout", "asset_dir",
           "notebook_dir", "installed_path", "with_installed_paths", "write_page"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Top-level folder of the checkout -> its copy inside the installed package (setup.py, build_py).
PACKAGED_ASSETS = {"notebooks": "_notebooks", "examples": "_examples"}
# What running a report imports beyond the core install (the `workbench` extra of pyproject.toml).
WORKBENCH_MODULES = ("papermill", "nbconvert", "nbformat", "jupyter_client", "ipykernel")
WORKBENCH_INSTALL = "pip install 'diffupose[workbench]'"
# Every top-level module the extra brings (an import of one failing means the extra is missing).
EXTRA_MODULES = WORKBENCH_MODULES + ("IPython", "ipywidgets", "anywidget", "jupyterlab", "kaleido", "matplotlib",
                                     "seaborn")


class ReportError(DiffuPoseError):
    """A notebook of a report failed (names the notebook and the failing cell's error), or the
    report cannot start (missing kernel, unknown notebook, a folder it must not replace)."""


class MissingExtraError(DiffuPoseError):
    """The `workbench` extra (papermill, nbconvert, Jupyter) is not installed."""


def missing_workbench_modules() -> list[str]:
    """The modules of the workbench extra that cannot be imported here."""
    return [name for name in WORKBENCH_MODULES if importlib.util.find_spec(name) is None]


def require_workbench(what: str = "the report") -> None:
    """MissingExtraError (one line: what is missing, what to install) without the workbench extra."""
    missing = missing_workbench_modules()
    if missing:
        raise MissingExtraError(f"{what} needs the workbench extra ({', '.join(missing)} not installed): "
                                f"{WORKBENCH_INSTALL}")


def in_checkout() -> bool:
    """Whether this package runs from a source checkout (its folder sits beside pyproject.toml
    and notebooks/), not from an installed wheel."""
    root = repo_root()
    return (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir()


def asset_dir(name: str) -> Path:
    """The checkout's top-level folder `name` ("notebooks", "examples"), else its copy in the
    installed package."""
    if name not in PACKAGED_ASSETS:
        raise KeyError(f"no packaged asset folder {name!r}; known: {', '.join(PACKAGED_ASSETS)}")
    return repo_root() / name if in_checkout() else PACKAGE_DIR / PACKAGED_ASSETS[name]


def notebook_dir() -> Path:
    """The report notebooks: the checkout's notebooks/, else the copies shipped in the package."""
    return asset_dir("notebooks")


def installed_path(path: str) -> str:
    """A profile's path into the repository's shipped folders (`examples/...`, taken from the
    repository root) -> the same file in the installed package when running from a wheel;
    every other path (and every path in a checkout) unchanged."""
    if not path or in_checkout():
        return path
    try:
        rel = Path(path).resolve().relative_to(repo_root())
    except ValueError:
        return path
    if len(rel.parts) < 2 or rel.parts[0] not in PACKAGED_ASSETS:
        return path
    return str(PACKAGE_DIR / PACKAGED_ASSETS[rel.parts[0]] / Path(*rel.parts[1:]))


def with_installed_paths(params: dict[str, Any]) -> dict[str, Any]:
    """`params` (one notebook's parameters) with installed_path applied to every path key."""
    return {key: installed_path(value) if key in PATH_KEYS and isinstance(value, str) else value
            for key, value in params.items()}


def write_page(path: str | os.PathLike, text: str) -> None:
    """Atomic write, readable by everyone (reports are meant to be served and shared)."""
    atomic_write_text(path, text)
    os.chmod(path, 0o644)
