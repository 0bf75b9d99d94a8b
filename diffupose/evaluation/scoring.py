"""The one evaluation entry: a model opened on a split, and the batched scoring loop.

Every evaluation starts with `open_run` — `evaluate`, the hypothesis cache
(`hypothesis_cache.run_uncertainty`), the robustness matrix (`robustness.run_robustness`) and,
through `evaluate`, the ablations (`workbench.ablations`):

    run = open_run("runs/demo", "data/synthetic.npz", "test", EvalConfig(checkpoint="ema"))
    run.lifter, run.data, run.settings      # the model, the selected samples, how to sample

It loads the prepared file and the model (`inference.Lifter.resolve`), checks the evaluation
config, refuses a `best` checkpoint on the split that chose it, selects the seeded subset
(`select_indices`, the same samples as `PreparedData.select`), swaps in the 2D input asked for
(`with_input_2d`) and checks that the model's skeleton is the data's. The `EvalRun` it returns
holds what the protocol card reports about data, split and checkpoint.

`score_batches` is the loop every scorer shares — `evaluate`, the cache's prefixes, the
validation during training: it hands each batch of hypotheses (from `Lifter.iter_hypotheses`
or a cache) to a `score(scores, start, stop, hypotheses)` callback, which files per-sample values
(`BatchScores.put`) and running sums (`BatchScores.add`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..config import EvalConfig
from ..data.prepared import PreparedData, load_prepared
from ..data.windows import sample_windows
from ..errors import ConfigError, DataError
from ..inference.lifter import Lifter, SamplingSettings, check_checkpoint_choice, checkpoint_for_split
from ..utils import resolve_device
from .reference import H36M_ACTIONS, HUMANEVA_ACTIONS

__all__ = ["PROTOCOLS", "EvalRun", "open_run", "check_protocol", "check_eval_config", "select_indices",
           "with_input_2d", "input_source_of", "has_detections", "pixel_scale", "keypoint_errors_px",
           "check_selection_split", "check_skeleton", "action_order", "BatchScores", "score_batches", "batch_ranges"]

PROTOCOLS: tuple[str, ...] = ("gt_free", "official_oracle")


# ---------------------------------------------------------------------------------------------
# Opening a run on a split


def check_protocol(protocol: str) -> str:
    """`protocol` if known; the old name of the ground-truth-free protocol gets a one-line error."""
    if protocol == "default":
        raise ConfigError("protocol 'default' was renamed: use 'gt_free' (ground-truth free) "
                          "or 'official_oracle' (the released evaluation, uses 3D ground truth)")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


def check_eval_config(ev: EvalConfig) -> SamplingSettings:
    """Validate an EvalConfig up front (one-line ConfigErrors) -> its sampling settings."""
    check_protocol(ev.protocol)
    check_checkpoint_choice(ev.checkpoint)
    if ev.max_samples < 0:
        raise ConfigError(f"eval.max_samples must be >= 0 (0 = all), got {ev.max_samples}")
    return SamplingSettings.from_eval_config(ev)


def select_indices(data: PreparedData, split: str, max_samples: int = 0, seed: int = 0) -> np.ndarray:
    """Indices into the prepared file of `data.select(split=split, max_samples=..., seed=...)`
    (the same seeded subset, kept in file order). -> (S,) int64"""
    index = np.flatnonzero(np.isin(data.split, [split]))
    if max_samples and len(index) > max_samples:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(index, size=max_samples, replace=False))
    return index.astype(np.int64)


def with_input_2d(data: PreparedData, input_2d: str, data_path) -> PreparedData:
    """The samples with the 2D input an evaluation asks for: `file` keeps keypoints_2d (the
    prepared source: GT projection or detections), `gt` swaps in keypoints_2d_gt (a detections
    file's projected ground truth) and says so in data.meta["keypoints_2d_name"]."""
    if input_2d == "file":
        return data
    if data.keypoints_2d_gt is None:
        raise DataError(f"{data_path}: eval.input_2d=gt needs keypoints_2d_gt (a file prepared from detections); "
                        f"this file's keypoints_2d already are its 2D source "
                        f"({data.meta.get('keypoints_2d_name', data.meta.get('keypoints', 'unknown'))})")
    meta = {**data.meta, "keypoints": "gt", "keypoints_2d_name": "GT (projected ground truth)",
            "keypoints_source": "projection (keypoints_2d_gt)"}
    return replace(data, keypoints_2d=data.keypoints_2d_gt, meta=meta)


def input_source_of(data: PreparedData, input_2d: str) -> str:
    """The 2D source of an evaluation's input (what `auto` means for a source-conditioned model):
    detected for a detections file's own keypoints_2d, clean for projected ground truth."""
    return "detected" if input_2d == "file" and data.keypoints_2d_gt is not None else "clean"


def has_detections(data: PreparedData) -> bool:
    """Whether the file holds detections with the projected ground truth beside them."""
    return data.keypoints_2d_gt is not None


def pixel_scale(data: PreparedData) -> np.ndarray:
    """(S,) pixels per normalised screen unit (half the image width) of every sample, from the
    prepared file's camera resolutions (meta "camera_resolution"); 500 (a 1000-px wide image,
    as every Human3.6M camera) when the file does not record them."""
    res = data.meta.get("camera_resolution") or {}
    scale = np.full(len(data), 500.0)
    for cam, (w, _) in res.items():
        scale[data.camera == cam] = float(w) / 2.0
    return scale


def keypoint_errors_px(data: PreparedData) -> np.ndarray:
    """(S, J) distance in pixels between the file's 2D and its ground-truth 2D."""
    if not has_detections(data):
        raise DataError("keypoint_errors_px: the data has no keypoints_2d_gt (not a detections file)")
    d = np.linalg.norm(data.keypoints_2d.astype(np.float64) - data.keypoints_2d_gt, axis=-1)
    return d * pixel_scale(data)[:, None]


def check_selection_split(lifter: Lifter, split: str) -> None:
    """A `best` checkpoint is refused on the split that chose it (one-line ConfigError)."""
    selected_on = lifter.checkpoint_card.get("selected_on")
    if selected_on is not None:
        checkpoint_for_split("best", split, selected_on)


def check_skeleton(lifter: Lifter, data: PreparedData, data_path) -> None:
    """The model must have been trained on the data's skeleton (one-line DataError)."""
    if lifter.skeleton.name != data.skeleton.name:
        raise DataError(f"{data_path}: skeleton {data.skeleton.name!r} does not match the model's "
                        f"{lifter.skeleton.name!r}")


@dataclass
class EvalRun:
    """A model opened on a split: the Lifter, the selected samples and where they came from.

    data: the selected samples (the 2D input of `eval.input_2d`); index: their indices in the
    prepared file; source: the whole prepared file (the hypothesis cache keys samples by index);
    ev / settings: the evaluation config and its sampling settings."""

    lifter: Lifter
    data: PreparedData
    index: np.ndarray
    source: PreparedData
    data_path: Path
    split: str
    ev: EvalConfig
    settings: SamplingSettings
    _windows: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def condition_2d(self) -> np.ndarray:
        """What the model reads for the selected samples: their 2D (n, J, 2), or for a windowed
        model (model.window = W > 1) their 2D windows (n, W, J, 2), gathered from the whole file."""
        if self.lifter.window == 1:
            return self.data.keypoints_2d
        if self._windows is None:
            gt = self.ev.input_2d == "gt"
            self._windows = sample_windows(self.source, self.index, self.lifter.window,
                                           self.source.keypoints_2d_gt if gt else None)
        return self._windows

    def data_card(self) -> dict[str, Any]:
        """The protocol card's data part: dataset, file, split, 2D source, skeleton."""
        meta = self.data.meta
        return {
            "dataset": self.data.dataset,
            "data_file": str(self.data_path),
            "split": self.split,
            "keypoints_2d_source": str(meta.get("keypoints", meta.get("keypoints_2d", "unknown"))),
            "keypoints_2d_name": str(meta.get("keypoints_2d_name") or _source_label(meta)),
            "keypoints_2d_file": meta.get("keypoints_source"),
            "skeleton": self.lifter.skeleton.name,
        }

    def checkpoint_card(self) -> dict[str, Any]:
        """The protocol card's checkpoint part: which weights, and the split that chose them."""
        card = self.lifter.checkpoint_card
        return {"checkpoint": dict(card),
                "checkpoint_selected_on": card.get("selected_on") or "none (no selection)"}


def _source_label(meta: dict) -> str:
    """GT / detector name for files that do not record keypoints_2d_name (synthetic data, files
    prepared before it existed): GT unless the file names a detections source."""
    kp = meta.get("keypoints", meta.get("keypoints_2d"))
    if kp is None:
        kp = (meta.get("prepare") or {}).get("keypoints", "gt")
    kp = str(kp)
    if kp == "gt":
        noise = meta.get("noise_px") or (meta.get("prepare") or {}).get("noise_px")
        return "GT (projected ground truth)" + (f" + {noise} px Gaussian noise" if noise else "")
    return f"detections ({kp})"


def open_run(model, data_path, split: str, eval_cfg: EvalConfig | None = None, *, device: str = "auto",
             source: PreparedData | None = None) -> EvalRun:
    """Open `model` (a run/checkpoint directory, a Lifter or a `(denoiser, Config[, Skeleton])`)
    on `split` of the prepared file `data_path` -> EvalRun.

    eval_cfg: the checkpoint choice, the sample selection (max_samples, seed), the 2D input and
    the sampling; None = the run's own `config.eval` with checkpoint `best`. `source`: the
    prepared file when the caller has it loaded already. One-line errors: ConfigError for a bad
    config or `best` on the split that chose it; DataError for an empty split, a missing 2D
    input or another skeleton.
    """
    if eval_cfg is not None:
        check_eval_config(eval_cfg)
    source = source if source is not None else load_prepared(data_path)
    lifter = Lifter.resolve(model, checkpoint=eval_cfg.checkpoint if eval_cfg is not None else "best",
                            device=resolve_device(device), skeleton=source.skeleton)
    ev = eval_cfg or lifter.config.eval
    settings = check_eval_config(ev)
    check_selection_split(lifter, split)
    index = select_indices(source, split, ev.max_samples, ev.seed)
    if len(index) == 0:
        raise DataError(f"{data_path}: split {split!r} is empty (samples per split: {source.splits()})")
    data = with_input_2d(source.subset(index), ev.input_2d, data_path)
    check_skeleton(lifter, data, data_path)
    if settings.input_source == "auto" and lifter.config.model.source_condition:
        settings = settings.replace(input_source=input_source_of(source, ev.input_2d))
    return EvalRun(lifter, data, index, source, Path(data_path), split, ev, settings)


def action_order(actions, dataset: str = "") -> tuple[str, ...]:
    """The paper's column order: HumanEva-I's for HumanEva data (or when only its actions
    occur and the dataset is unnamed), else Human3.6M's."""
    present = set(np.unique(actions).tolist())
    if "humaneva" in dataset.lower() or (not dataset and present <= set(HUMANEVA_ACTIONS)):
        return HUMANEVA_ACTIONS
    return H36M_ACTIONS


# ---------------------------------------------------------------------------------------------
# The batched scoring loop


@dataclass
class BatchScores:
    """What a scorer files batch by batch: per-sample arrays (allocated at the first batch with
    the values' trailing shape and dtype) and running sums over the batches."""

    num_samples: int
    per_sample: dict[Any, np.ndarray] = field(default_factory=dict)
    sums: dict[Any, Any] = field(default_factory=dict)

    def put(self, key, start: int, stop: int, values) -> None:
        """The values (stop - start, ...) of samples start..stop under `key`."""
        values = np.asarray(values)
        if key not in self.per_sample:
            self.per_sample[key] = np.empty((self.num_samples,) + values.shape[1:], dtype=values.dtype)
        self.per_sample[key][start:stop] = values

    def add(self, key, value) -> None:
        """Add one batch's `value` to the running sum under `key`."""
        self.sums[key] = self.sums[key] + value if key in self.sums else value


def batch_ranges(num_samples: int, batch_size: int) -> Iterable[tuple[int, int]]:
    """(start, stop) of consecutive batches of at most `batch_size` samples."""
    for start in range(0, num_samples, batch_size):
        yield start, min(start + batch_size, num_samples)


def score_batches(batches: Iterable[tuple[int, int, Any]], num_samples: int,
                  score: Callable[[BatchScores, int, int, Any], None]) -> BatchScores:
    """Hand every batch (start, stop, hypotheses) to `score(scores, start, stop, hypotheses)`,
    in order, and return what it filed. `batches` may be a generator that samples lazily
    (`Lifter.iter_hypotheses`): `score` then runs between two sampler calls."""
    scores = BatchScores(num_samples)
    for start, stop, hypotheses in batches:
        score(scores, start, stop, hypotheses)
    return scores
