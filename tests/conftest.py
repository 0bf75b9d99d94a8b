"""Shared fixtures.

- `shared_data`: path of the real data folder (../shared/data from the repo root); tests that
  need a file in it skip with a clear reason when it is absent (see `require_file`).
- `synthetic_npz`: a small synthetic prepared file (3,840 samples: 5 subjects x 16 sequences x
  12 frames x 4 cameras; splits train/val/test), written once per session to a tmp dir.
- `benchmark_script`: loads a script of `benchmarks/` (not a package) as a module by name.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(n)), None)


def require_file(path: Path) -> Path:
    """Skip the calling test when a real-data file is absent."""
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing")
    return path


@pytest.fixture(scope="session")
def benchmark_script():
    """load(name) -> the module of benchmarks/<name>.py."""
    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data from the repo root (may not exist: use `require_file`)."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory) -> Path:
    """Path of a tiny synthetic prepared dataset (H36M-17 skeleton, gt-like 2D, seed 0)."""
    from diffupose.data import prepare_dataset

    out = tmp_path_factory.mktemp("synthetic") / "synthetic_tiny.npz"
    return prepare_dataset("synthetic", out=out, num_frames=12, seed=0)


@pytest.fixture(scope="session")
def chromium():
    """`run(url, profile_dir, *extra, window="1280,1600", timeout=120)`: headless Chromium with no
    network at all (every host resolves to nothing, every proxy hop goes nowhere), console on
    stderr. Skips the test when no chromium binary is installed."""
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (install it with `apt-get install -y chromium`)")

    def run(url: str, profile_dir: Path, *extra: str, window: str = "1280,1600",
            timeout: int = 120) -> subprocess.CompletedProcess:
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=127.0.0.1:9",
                f"--user-data-dir={profile_dir}", "--enable-logging=stderr", "--v=0",
                "--virtual-time-budget=15000", f"--window-size={window}", *extra, url]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two shared cores: one intra-op thread is much faster than two fighting other jobs.
    Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
