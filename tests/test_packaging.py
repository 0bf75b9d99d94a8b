"""The two dependency declarations (pyproject.toml for pip, environment.yml for conda) agree."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI names
CONDA_TO_PIP = {"pytorch": "torch", "python-kaleido": "kaleido"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()


def _pip_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    return {_name(d) for d in deps}


def _conda_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # pip: section
            names |= {_name(d) for d in dep.get("pip", [])}
        else:
            names.add(CONDA_TO_PIP.get(_name(dep), _name(dep)))
    return names - {"python", "pip"}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pip, conda = _pip_requirements(), _conda_requirements()
    assert pip == conda, f"only in pyproject: {sorted(pip - conda)}; only in environment.yml: {sorted(conda - pip)}"


def test_environment_yml_pins_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_design_card_dependencies_are_declared():
    required = {"torch", "jupyterlab", "ipywidgets", "plotly", "numpy", "seaborn", "papermill",
                "nbconvert", "tqdm", "safetensors"}
    assert required <= _pip_requirements()


def test_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["diffupose"] == "diffupose.cli:main"


def test_top_level_layout():
    for name in ("notebooks", "diffupose", "reports", "tests", "environment.yml", "pyproject.toml",
                 "Makefile", "README.md", "benchmarks", ".ci/run"):
        assert (ROOT / name).exists(), f"missing top-level {name}"
