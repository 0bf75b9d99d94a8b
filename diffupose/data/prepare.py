"""`prepare_dataset`: raw data -> one prepared `.npz` (the `diffupose prepare` command).

    prepare_dataset("h36m", "/path/to/h36m", out="data/h36m.npz", val_subjects=["S8"])
    prepare_dataset("synthetic", out="data/synthetic.npz", noise_px=3.0)

The output is written atomically (temp file in the target folder, then rename), so a failed
run leaves no output behind. `summarize` counts samples per split/subject/action/camera.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .h36m import load_h36m
from .humaneva import DEFAULT_ACTIONS, load_humaneva
from .prepared import PreparedData, save_prepared
from .synthetic import SYNTHETIC_ACTIONS, generate_synthetic

__all__ = ["DATASETS", "build_dataset", "prepare_dataset", "summarize"]

log = logging.getLogger(__name__)

DATASETS = ("h36m", "humaneva", "synthetic")


def _resolve_dir(dataset: str, data_dir) -> Path:
    if data_dir is None:
        raise DataError(f"dataset {dataset!r} needs a data directory (--data-dir)")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    # Accept the parent of an `h36m/` or `humaneva/` folder too (e.g. ../shared/data).
    nested = data_dir / dataset
    if nested.is_dir() and not any(data_dir.glob("*.npz")):
        return nested
    return data_dir


def build_dataset(dataset: str, data_dir: str | os.PathLike | None = None, *, keypoints: str = "gt",
                  allow_pickle: bool = False, val_subjects: Sequence[str] | None = None,
                  subjects: Sequence[str] | None = None, actions: Sequence[str] | None = None,
                  stride: int = 1, seed: int = 0, noise_px: float = 0.0,
                  require_splits: Iterable[str] = (), num_frames: int | None = None) -> PreparedData:
    """Load or generate `dataset` in memory (the work of `prepare_dataset`, without writing).

    num_frames: synthetic only, frames per sequence (small values for tiny test sets).
    """
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    if noise_px < 0:
        raise ConfigError(f"noise_px must be >= 0, got {noise_px}")
    if dataset == "synthetic":
        if data_dir is not None:
            log.info("synthetic dataset: ignoring data_dir %s", data_dir)
        kwargs = {"num_frames": num_frames} if num_frames else {}
        try:
            data = generate_synthetic(noise_px=noise_px, seed=seed, stride=stride,
                                      actions=tuple(actions) if actions else SYNTHETIC_ACTIONS, **kwargs)
        except ValueError as e:
            raise DataError(f"synthetic: {e}") from None
        for split in require_splits:
            if data.splits().get(split, 0) == 0:
                raise DataError(f"synthetic: required split {split!r} is empty")
        return data
    if dataset == "h36m":
        return load_h36m(_resolve_dir(dataset, data_dir), keypoints=keypoints, allow_pickle=allow_pickle,
                         subjects=subjects, actions=actions, val_subjects=val_subjects, stride=stride,
                         seed=seed, noise_px=noise_px, require_splits=require_splits)
    if dataset == "humaneva":
        return load_humaneva(_resolve_dir(dataset, data_dir), keypoints=keypoints, allow_pickle=allow_pickle,
                             subjects=subjects, actions=actions if actions is not None else DEFAULT_ACTIONS,
                             val_subjects=val_subjects, stride=stride, seed=seed, noise_px=noise_px,
                             require_splits=require_splits)
    raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def prepare_dataset(dataset: str, data_dir: str | os.PathLike | None = None, *, out: str | os.PathLike,
                    keypoints: str = "gt", allow_pickle: bool = False, val_subjects: Sequence[str] | None = None,
                    subjects: Sequence[str] | None = None, actions: Sequence[str] | None = None,
                    stride: int = 1, seed: int = 0, noise_px: float = 0.0,
                    require_splits: Iterable[str] = (), num_frames: int | None = None,
                    compress: bool = False) -> Path:
    """Build `dataset` ("h36m", "humaneva" or "synthetic") and write it to `out` atomically.

    Arguments map one-to-one onto `diffupose prepare` flags (--data-dir, --keypoints,
    --allow-pickle, --val-subjects, --subjects, --actions, --stride, --seed, --noise-px, --out).
    The prepare arguments are recorded in the file's `meta_json` (key "prepare").
    Returns the output path.
    """
    start = time.perf_counter()
    require_splits = tuple(require_splits)
    data = build_dataset(dataset, data_dir, keypoints=keypoints, allow_pickle=allow_pickle,
                         val_subjects=val_subjects, subjects=subjects, actions=actions, stride=stride,
                         seed=seed, noise_px=noise_px, require_splits=require_splits, num_frames=num_frames)
    data.meta["prepare"] = {
        "dataset": dataset, "data_dir": str(data_dir) if data_dir is not None else None,
        "keypoints": keypoints, "allow_pickle": allow_pickle,
        "val_subjects": list(val_subjects) if val_subjects else None,
        "subjects": list(subjects) if subjects else None, "actions": list(actions) if actions else None,
        "stride": stride, "seed": seed, "noise_px": noise_px, "require_splits": list(require_splits),
        "num_frames": num_frames,
    }
    path = save_prepared(out, data, compress=compress)
    log.info("prepared %s: %d samples %s -> %s (%.1f s)", dataset, len(data), data.splits(), path,
             time.perf_counter() - start)
    return path


def summarize(data: PreparedData) -> dict:
    """Counts for notebooks: total, per split, and per split x subject / action / camera, plus
    the number of sequences per split."""
    def counts(values: np.ndarray) -> dict[str, int]:
        keys, n = np.unique(values, return_counts=True)
        return {str(k): int(c) for k, c in zip(keys, n)}

    out = {"dataset": data.dataset, "skeleton": data.skeleton.name, "num_samples": len(data),
           "splits": data.splits(), "per_split": {}}
    for split in ("train", "val", "test"):
        mask = data.split == split
        if not mask.any():
            continue
        out["per_split"][split] = {
            "subjects": counts(data.subject[mask]),
            "actions": counts(data.action[mask]),
            "cameras": counts(data.camera[mask]),
            "num_sequences": int(len(np.unique(data.sequence[mask]))),
        }
    return out
