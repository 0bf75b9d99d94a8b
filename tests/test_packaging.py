"""Packaging: the two dependency declarations (pyproject.toml for pip, environment.yml for conda)
agree; the workbench is an extra the core commands do without; one version string; the
notebooks reach the sdist and the wheel (tests/test_wheel.py installs the wheel for real)."""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI names
CONDA_TO_PIP = {"pytorch": "torch", "python-kaleido": "kaleido"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()


def _pip_requirements() -> set[str]:
    """Every requirement of pyproject.toml: the core install and all extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        deps += list(extra)
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


# What lifting needs (the core install) and what only the notebooks and reports need.
CORE = {"torch", "numpy", "scipy", "plotly", "safetensors", "tqdm"}
WORKBENCH = {"jupyterlab", "papermill", "nbconvert", "nbformat", "ipykernel", "ipywidgets", "anywidget", "kaleido"}


def test_the_workbench_is_an_extra_and_make_setup_installs_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(d) for d in project["dependencies"]}
    workbench = {_name(d) for d in project["optional-dependencies"]["workbench"]}
    assert CORE <= core and WORKBENCH <= workbench
    assert not core & workbench, "a workbench package is also a core requirement"
    assert '-e ".[workbench,test]"' in (ROOT / "Makefile").read_text()


def test_version_is_the_package_metadata():
    import diffupose

    out = subprocess.run([sys.executable, "-m", "diffupose", "--version"], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == f"diffupose {importlib.metadata.version('diffupose')}"
    assert importlib.metadata.version("diffupose") == diffupose.__version__


def test_notebooks_and_examples_go_into_the_sdist_and_the_wheel():
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "include notebooks/*.ipynb" in manifest and "examples/*.json" in manifest
    assert "zoo_models" in manifest
    setup = (ROOT / "setup.py").read_text()
    assert '"_notebooks"' in setup and '"_examples"' in setup
    from diffupose.workbench.assets import PACKAGED_ASSETS
    assert PACKAGED_ASSETS == {"notebooks": "_notebooks", "examples": "_examples"}


def _blocked(modules) -> str:
    """Python source that makes `modules` unimportable (as if not installed)."""
    return f"import sys\nfor _m in {sorted(modules)!r}:\n    sys.modules[_m] = None\n"


def test_lifting_modules_import_nothing_of_jupyter():
    from diffupose.workbench.assets import EXTRA_MODULES

    code = ("import sys\nimport diffupose, diffupose.cli, diffupose.lifting, diffupose.inference.zoo, "
            "diffupose.evaluation.protocols\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(EXTRA_MODULES)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_core_commands_run_without_the_workbench_extra(tmp_path, synthetic_npz):
    """train, evaluate, lift and models with every workbench module unimportable; report says in
    one line what to install."""
    from diffupose.workbench.assets import EXTRA_MODULES

    run = tmp_path / "run"
    example = ROOT / "examples" / "coco17_S8_walking.json"
    commands = [
        ["models"],
        ["train", "--data", str(synthetic_npz), "--out", str(run), "--preset", "tiny", "--set", "train.max_steps=6",
         "--set", "train.val_every=6", "--set", "data.max_val_samples=32", "--no-progress"],
        ["evaluate", "--run", str(run), "--data", str(synthetic_npz), "--split", "val", "--max-samples", "16",
         "--hypotheses", "2", "--checkpoint", "ema"],
        ["lift", "--run", str(run), "--keypoints", str(example), "--image-size", "1000", "1002", "--hypotheses", "2",
         "--out", str(tmp_path / "lift" / "walk"), "--checkpoint", "ema"],
        ["report", "--profile", "tiny", "--out-root", str(tmp_path / "reports")],
    ]
    code = _blocked(EXTRA_MODULES) + (
        "import json\nfrom diffupose.cli import main\n"
        f"print(json.dumps([main(args) for args in {commands!r}]))\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules if sys.modules[m] is not None}} & set({list(EXTRA_MODULES)!r})))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    codes, imported = out.stdout.strip().splitlines()[-2:]
    assert json.loads(codes) == [0, 0, 0, 0, 2], out.stderr[-3000:]
    assert imported == "[]"
    assert (tmp_path / "lift" / "walk.html").is_file() and (tmp_path / "lift" / "walk.bvh").is_file()
    missing = [line for line in out.stderr.splitlines() if line.startswith("diffupose report:")]
    assert len(missing) == 1 and missing[0].startswith("diffupose report: error: the report needs the workbench "
                                                       "extra (papermill, nbconvert, nbformat, jupyter_client, ")
    assert missing[0].endswith("not installed): pip install 'diffupose[workbench]'")
    assert not (tmp_path / "reports").exists()
