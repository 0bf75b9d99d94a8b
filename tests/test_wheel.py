"""The installed package: a wheel built from the sdist, installed with `--no-deps` into a fresh
venv that sees the test environment's packages, and run from a folder outside the checkout.

How: the working tree's package files are copied aside; the sdist is built there (PEP 517
hooks of setuptools, no network, no build isolation), unpacked, and the wheel built from it (so
MANIFEST.in must carry everything the wheel needs). `python -m venv --without-pip` makes the
venv; pip (this environment's, `--python`) installs the wheel into it before a `.pth` file
makes this environment's site-packages visible after the venv's own, so torch, papermill and
the rest resolve without a download while `diffupose` is the wheel's. The venv has no Jupyter
data folder of its own: JUPYTER_PATH points at nbconvert's templates only (never at this
environment's kernels), so the report's kernel is the venv's own interpreter.

The default suite builds, installs, checks the wheel's contents and `--version`, and runs one
packaged notebook with `diffupose report` (about 60 s on 2 busy cores, most of it the kernel and
01_data_prep); the whole tiny report from the wheel is `slow` (about 5 minutes):
`pytest -m slow tests/test_wheel.py`. The zoo lift runs
when the wheel ships a zoo model and skips, saying so, when it ships none.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the sdist is built from: the package, the folders the wheel copies in, the build files.
SOURCE = ("diffupose", "notebooks", "examples", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")
TEMPLATES = Path(sys.prefix) / "share" / "jupyter" / "nbconvert"
ZOO_PREFERENCE = ("h36m-det", "h36m", "humaneva")


def _build(hook: str, source: Path, out: Path) -> Path:
    """One PEP 517 hook of setuptools run in `source` -> the built file in `out`."""
    code = f"import sys, setuptools.build_meta as b\nprint('BUILT=' + b.{hook}(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{hook} failed:\n{done.stderr[-3000:]}"
    name = [line for line in done.stdout.splitlines() if line.startswith("BUILT=")][-1].split("=", 1)[1]
    return out / name


def _copy_source(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints")
    dest.mkdir(parents=True)
    for name in SOURCE:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, dest / name)
    return dest


def _venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A fresh venv with the wheel installed, then this environment's site-packages visible."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_diffupose_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, site


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not TEMPLATES.is_dir():
        pytest.skip(f"nbconvert's templates are not at {TEMPLATES} (the test environment is not a venv with the "
                    "workbench extra)")
    tmp = tmp_path_factory.mktemp("wheel")
    sdist = _build("build_sdist", _copy_source(tmp / "src"), tmp / "dist")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "sdist", filter="data")
    wheel = _build("build_wheel", next((tmp / "sdist").iterdir()), tmp / "dist")
    venv, site = _venv(tmp, wheel)
    jupyter = tmp / "jupyter"
    jupyter.mkdir()
    (jupyter / "nbconvert").symlink_to(TEMPLATES, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", JUPYTER_PATH=str(jupyter),
               OMP_NUM_THREADS="1")
    work = tmp / "elsewhere"                          # a folder outside the checkout
    work.mkdir()
    return SimpleNamespace(tmp=tmp, sdist=sdist, wheel=wheel, venv=venv, site=site, env=env, work=work)


def _run(installed, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=installed.work, env=installed.env, capture_output=True, text=True,
                          timeout=timeout)


def _python(installed, code: str) -> str:
    done = _run(installed, str(installed.venv / "bin" / "python"), "-c", code, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_the_wheel_and_the_sdist_carry_the_notebooks_and_examples(installed):
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    assert {f"diffupose/_notebooks/{n}" for n in notebooks} <= names
    assert "diffupose/_examples/coco17_S8_walking.json" in names
    assert any(n.startswith("diffupose/_examples/openpose_S8_directions/") for n in names)
    assert {"diffupose/resources/paper_tables.json", "diffupose/workbench/runner.py",
            "diffupose/workbench/reports.py"} <= names
    for zoo in (ROOT / "diffupose" / "zoo_models").glob("*/card.json"):
        assert f"diffupose/zoo_models/{zoo.parent.name}/ema.safetensors" in names
    with tarfile.open(installed.sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {f"notebooks/{n}" for n in notebooks} <= members
    assert {"setup.py", "MANIFEST.in", "examples/coco17_S8_walking.json"} <= members


def test_the_installed_package_is_the_wheel_and_has_one_version(installed):
    where, version, kernel = json.loads(_python(installed, (
        "import json, importlib.metadata, diffupose\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "print(json.dumps([diffupose.__file__, importlib.metadata.version('diffupose'),\n"
        "                  KernelSpecManager().get_kernel_spec('python3').argv[0]]))")))
    assert Path(where).is_relative_to(installed.site), f"imported {where}, not the wheel"
    assert Path(kernel).parent == installed.venv / "bin", f"the report's kernel would be {kernel}"
    done = _run(installed, "diffupose", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"diffupose {version}"


def _check_report(report: Path, notebooks: list[str]) -> dict:
    info = json.loads((report / "report.json").read_text())
    assert info["status"] == "ok", info.get("error")
    assert [nb["name"] for nb in info["notebooks"]] == notebooks
    for name in notebooks:
        page = (report / f"{name}.html").read_text()
        assert "plotly.min.js" in page and "cdn." not in page
    assert (report / "plotly.min.js").stat().st_size > 1_000_000
    return info


def test_installed_report_runs_a_packaged_notebook_from_any_folder(installed):
    done = _run(installed, "diffupose", "report", "--profile", "tiny", "--notebooks", "01",
                "--out-root", str(installed.tmp / "reports"))
    assert done.returncode == 0, done.stderr[-3000:]
    report = installed.tmp / "reports" / "tiny"
    _check_report(report, ["01_data_prep"])
    assert (report / "data" / "prepared.npz").is_file()
    assert sorted(p.name for p in (installed.site / "diffupose" / "_notebooks").iterdir() if p.suffix != ".ipynb") == []


@pytest.mark.slow
def test_installed_full_tiny_report(installed):
    done = _run(installed, "diffupose", "report", "--profile", "tiny", "--out-root", str(installed.tmp / "full"))
    assert done.returncode == 0, done.stderr[-3000:]
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    info = _check_report(installed.tmp / "full" / "tiny", notebooks)
    keypoints = info["parameters"]["keypoints_path"]                  # 07 lifted the packaged example
    assert Path(keypoints).is_relative_to(installed.site / "diffupose" / "_examples"), keypoints
    assert sorted(p.name for p in (installed.site / "diffupose" / "_notebooks").iterdir() if p.suffix != ".ipynb") == []


def test_installed_lift_with_a_zoo_model(installed):
    # what `diffupose models` lists (zoo.available: the folders with a card), read without starting torch
    if not list((installed.site / "diffupose" / "zoo_models").glob("*/card.json")):
        pytest.skip("the wheel ships no zoo model (`diffupose models` lists none); the lift from an installed "
                    "wheel is checked once diffupose/zoo_models/ has one (h36m-det)")
    listed = _run(installed, "diffupose", "models")
    assert listed.returncode == 0 and listed.stdout.strip() != "no models shipped", listed.stderr[-2000:]
    names = json.loads(_python(installed, "import json\nfrom diffupose.inference import zoo\n"
                                          "print(json.dumps(zoo.available()))"))
    model = next((n for n in ZOO_PREFERENCE if n in names), names[0])
    example = installed.site / "diffupose" / "_examples" / "coco17_S8_walking.json"
    out = installed.tmp / "lift" / "walk"
    done = _run(installed, "diffupose", "lift", "--model", model, "--keypoints", str(example),
                "--image-size", "1000", "1002", "--hypotheses", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(out.with_suffix(f".{ext}").is_file() for ext in ("npz", "json", "bvh", "html"))
