"""The hypothesis cache on disk: sample H hypotheses per sample of one split once, store them,
reuse them while nothing they depend on changed (`diffupose.evaluation.hypothesis_cache` evaluates them
and re-exports everything here).

`build_cache` draws H hypotheses (default 50, DDIM-5, flip as configured) per sample of one
split through the shared inference path (`Lifter.iter_hypotheses`, filed by
`scoring.score_batches`) and `save_cache` stores them as float16 in an `.npz` (atomic write)
with the samples' ids (index in the prepared file, subject, action, camera, frame), the sampling
settings and the identity of the checkpoint (sha256 of its weights) and of the inputs (sha256 of
the 2D keypoints and indices). `cached_hypotheses` reuses a cache file when all of these match
and recomputes it otherwise.

Storage: (S, H, J, 3) float16 metres: rounding of at most 0.5 mm per coordinate for
root-relative values under 1 m, which moved the MPJPE of single hypotheses by 0.01 mm and of
their mean by < 0.001 mm on synthetic poses. The cache never holds the ground truth.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.prepared import open_npz, read_array
from ..data.windows import sample_windows
from ..errors import DataError
from ..inference.lifter import SamplingSettings
from ..utils import as_numpy, atomic_savez, git_commit
from .scoring import BatchScores, score_batches, select_indices

__all__ = [
    "CACHE_VERSION", "DEFAULT_NUM_HYPOTHESES", "ID_KEYS", "HypothesisCache", "select_indices", "settings_dict",
    "model_identity", "inputs_identity", "build_cache", "save_cache", "load_cache", "cached_hypotheses",
    "default_cache_path", "cache_settings",
]

log = logging.getLogger("diffupose.hypothesis_cache")     # the name its messages always had

CACHE_VERSION = 1
DEFAULT_NUM_HYPOTHESES = 50
ID_KEYS: tuple[str, ...] = ("subject", "action", "camera", "frame")


@dataclass
class HypothesisCache:
    """Hypotheses of one run on one split.

    hypotheses: (S, H, J, 3) float16 metres, root-relative, camera frame
    index: (S,) int64 sample indices into the prepared file; ids: subject, action, camera, frame
    settings: the sampling settings; identity: checkpoint, inputs, split, seed, max_samples
    """

    hypotheses: np.ndarray
    index: np.ndarray
    ids: dict[str, np.ndarray]
    settings: dict[str, Any]
    identity: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_hypotheses(self) -> int:
        return int(self.hypotheses.shape[1])

    def __len__(self) -> int:
        return int(self.hypotheses.shape[0])

    def key(self) -> dict[str, Any]:
        """What must match for the cache to be reused."""
        return {"version": CACHE_VERSION, "settings": self.settings, "identity": self.identity}


def settings_dict(settings) -> dict[str, Any]:
    """Sampling settings (a dataclass such as `inference.SamplingSettings`, or a dict) -> a
    JSON-safe dict. `aggregate` is left out: the cache holds raw hypotheses; `input_source` when
    it is `auto` (what every model without model.source_condition uses) and `calibrated` when it is
    False (a cache holds the raw sampler's hypotheses), so caches made before these fields
    existed stay valid."""
    if dataclasses.is_dataclass(settings):
        d = dataclasses.asdict(settings)
    else:
        d = dict(settings)
    d.pop("aggregate", None)
    if d.get("input_source") == "auto":   # only source-conditioned models' caches record the 2D source
        d.pop("input_source")
    if d.get("calibrated") is False:      # raw hypotheses, as every cache made before the field
        d.pop("calibrated")
    return json.loads(json.dumps(d, default=str, sort_keys=True))


def model_identity(denoiser) -> str:
    """sha256 of the denoiser's weights (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    state = denoiser.state_dict()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def inputs_identity(keypoints_2d, index) -> str:
    """sha256 of the selected 2D inputs (float32) and their indices."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(as_numpy(keypoints_2d, np.float32)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(index, np.int64)).tobytes())
    return h.hexdigest()


def default_cache_path(run_dir, split: str, num_hypotheses: int) -> Path:
    """`<run_dir>/hypotheses/<split>_H<num_hypotheses>.npz`."""
    return Path(run_dir) / "hypotheses" / f"{split}_H{num_hypotheses}.npz"


def cache_settings(num_hypotheses: int = DEFAULT_NUM_HYPOTHESES, *, sampler: str = "ddim", num_steps: int = 5,
                   eta: float = 0.0, flip: bool = True, seed: int = 0, batch_size: int | None = None):
    """`inference.SamplingSettings` for a cache: the raw sampler (calibrated=False; a model's
    calibration is applied when the cache is read); batch_size defaults to about 8192 chains per
    sampler call (inputs x H x 2 with flip), which fits CPU memory."""
    if batch_size is None:
        batch_size = max(1, 8192 // (int(num_hypotheses) * (2 if flip else 1)))
    return SamplingSettings(num_hypotheses=int(num_hypotheses), sampler=sampler, num_steps=int(num_steps),
                            eta=float(eta), flip=bool(flip), aggregate="mean", batch_size=int(batch_size),
                            seed=int(seed), calibrated=False)


def build_cache(lifter, data, split: str, settings, *, max_samples: int = 0, seed: int = 0,
                checkpoint: dict[str, Any] | None = None, data_path: str | None = None,
                progress: bool = True) -> HypothesisCache:
    """Sample `settings.num_hypotheses` hypotheses for every selected sample, once.

    lifter: an `inference.Lifter` (anything with `iter_hypotheses(keypoints_2d, settings,
    progress=...)` yielding (start, stop, hyps (b, H, J, 3)) and a `denoiser`); data: a
    `PreparedData`; split, max_samples, seed: which samples (as `PreparedData.select`).
    """
    index = select_indices(data, split, max_samples, seed)
    if len(index) == 0:
        raise DataError(f"{data_path or 'prepared data'}: split {split!r} is empty "
                        f"(samples per split: {data.splits()})")
    keypoints_2d = np.ascontiguousarray(sample_windows(data, index, getattr(lifter, "window", 1)))

    def keep(scores: BatchScores, start: int, stop: int, batch) -> None:
        batch = as_numpy(batch, np.float32)
        if not np.isfinite(batch).all():
            log.warning("hypotheses of samples %d-%d contain non-finite values", start, stop)
        scores.put("hypotheses", start, stop, batch.astype(np.float16))

    hyps = score_batches(lifter.iter_hypotheses(keypoints_2d, settings, progress=progress), len(index),
                         keep).per_sample["hypotheses"]
    identity = {
        "checkpoint": {**(checkpoint or {}), "sha256": model_identity(lifter.denoiser)},
        "inputs_sha256": inputs_identity(keypoints_2d, index),
        "data_file": str(data_path) if data_path else None,
        "split": split, "max_samples": int(max_samples), "seed": int(seed), "num_samples": int(len(index)),
    }
    meta = {"created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "dataset": data.dataset, "skeleton": data.skeleton.name}
    return HypothesisCache(hyps, index, {k: np.asarray(getattr(data, k))[index] for k in ID_KEYS},
                           settings_dict(settings), identity, meta)


def save_cache(cache: HypothesisCache, path) -> Path:
    """Write the cache as an `.npz` (no pickle; atomic)."""
    meta = {**cache.key(), "meta": cache.meta}
    return atomic_savez(path, hypotheses=cache.hypotheses.astype(np.float16), index=cache.index,
                        **{k: np.asarray(v) for k, v in cache.ids.items()},
                        meta_json=np.array(json.dumps(meta, sort_keys=True)))


def load_cache(path) -> HypothesisCache:
    """Read a cache written by `save_cache` (DataError naming the file on any problem)."""
    path = Path(path)
    npz = open_npz(path)
    with npz:
        meta = json.loads(str(read_array(npz, path, "meta_json")))
        if meta.get("version") != CACHE_VERSION:
            raise DataError(f"{path}: hypothesis cache version {meta.get('version')} (expected {CACHE_VERSION})")
        hyps = read_array(npz, path, "hypotheses")
        index = read_array(npz, path, "index")
        ids = {k: read_array(npz, path, k) for k in ID_KEYS}
    if hyps.ndim != 4 or hyps.shape[-1] != 3 or len(index) != len(hyps):
        raise DataError(f"{path}: hypotheses {hyps.shape} / index {index.shape} are not (S, H, J, 3) / (S,)")
    return HypothesisCache(hyps, index, ids, meta["settings"], meta["identity"], meta.get("meta", {}))


def cached_hypotheses(path, lifter, data, split: str, settings, *, max_samples: int = 0, seed: int = 0,
                      checkpoint: dict[str, Any] | None = None, data_path: str | None = None,
                      progress: bool = True, refresh: bool = False) -> tuple[HypothesisCache, bool]:
    """The cache at `path` when its settings, checkpoint weights and inputs match; otherwise
    sample anew and overwrite it. -> (cache, reused)"""
    path = Path(path)
    want_settings = settings_dict(settings)
    if path.exists() and not refresh:
        try:
            old = load_cache(path)
        except DataError as e:
            log.warning("ignoring unreadable hypothesis cache: %s", e)
            old = None
        if old is not None:
            index = select_indices(data, split, max_samples, seed)
            want = {"settings": want_settings,
                    "checkpoint": model_identity(lifter.denoiser),
                    "inputs": inputs_identity(sample_windows(data, index, getattr(lifter, "window", 1)), index)}
            have = {"settings": old.settings, "checkpoint": old.identity.get("checkpoint", {}).get("sha256"),
                    "inputs": old.identity.get("inputs_sha256")}
            differ = [k for k in want if want[k] != have[k]]
            if not differ:
                log.info("reusing hypothesis cache %s (%d samples, H=%d)", path, len(old), old.num_hypotheses)
                return old, True
            log.info("hypothesis cache %s is stale (%s differ); resampling", path, ", ".join(differ))
    cache = build_cache(lifter, data, split, settings, max_samples=max_samples, seed=seed,
                        checkpoint=checkpoint, data_path=data_path, progress=progress)
    save_cache(cache, path)
    return cache, False
