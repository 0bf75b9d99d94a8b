"""Shared fixtures.

- `shared_data`: path of the real data folder (../shared/data from the repo root); tests that
  need a file in it skip with a clear reason when it is absent (see `require_file`).
- `synthetic_npz`: a small synthetic prepared file (3,840 samples: 5 subjects x 16 sequences x
  12 frames x 4 cameras; splits train/val/test), written once per session to a tmp dir.
"""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_file(path: Path) -> Path:
    """Skip the calling test when a real-data file is absent."""
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing")
    return path


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
