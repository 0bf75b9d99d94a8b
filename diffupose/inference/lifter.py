"""The one inference path: a loaded denoiser that lifts 2D keypoints to 3D hypotheses.

Every caller goes through `Lifter` — evaluation, `diffupose sample`, `diffupose lift`, the
hypothesis explorer, the hypothesis cache and the validation during training — so loading a
model, batching, seeding, sampling H hypotheses and aggregating happen in one place:

    lifter = Lifter.load("runs/demo", checkpoint="best")
    settings = SamplingSettings(num_hypotheses=10, sampler="ddim", num_steps=5, flip=True)
    hyps = lifter.sample(keypoints_2d, settings)                 # (B, H, J, 3) metres
    for start, stop, hyps in lifter.iter_hypotheses(all_keypoints_2d, settings): ...
    out = lifter.lift(all_keypoints_2d, settings)                # hypotheses, aggregate, spread

Poses are metres, root-relative, camera frame; keypoints_2d are normalised screen
coordinates (`camera.normalize_screen_coordinates`), as in the prepared data.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import INPUT_SOURCES, SOURCE_INDEX, Config, EvalConfig, SamplingConfig
from ..diffusion import (FlowPath, NoiseSchedule, build_process, check_sampler, function_evaluations, objective_of,
                         resolve_sampler, sample)
from ..diffusion.flow import FlowSampler
from ..errors import ConfigError
from ..geometry.skeleton import Skeleton, centre_frame
from ..model.checkpoint import load_model
from ..utils import resolve_device
from .aggregate import AGGREGATIONS, aggregate
from .metrics import hypothesis_spread

__all__ = ["CHECKPOINTS", "SamplingSettings", "Lifter", "LiftOutput", "check_checkpoint_choice",
           "checkpoint_for_split"]

log = logging.getLogger("diffupose.lift")

# The checkpoint choice, one name everywhere (CLI --checkpoint, EvalConfig.checkpoint, notebooks):
#   best  - EMA weights of the checkpoint with the lowest val MPJPE (chosen on the `val` split;
#           the latest when no validation ran)
#   ema   - EMA weights of the latest checkpoint (no selection)
#   model - raw (non-averaged) weights of the latest checkpoint
# The split that chose `best` is the run's config.data.val_split (training validates on it).
CHECKPOINTS: dict[str, tuple[str, str]] = {"best": ("ema", "best"), "ema": ("ema", "latest"),
                                           "model": ("model", "latest")}
def check_checkpoint_choice(checkpoint: str) -> str:
    """`checkpoint` if it is one of CHECKPOINTS, else a one-line ConfigError."""
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"unknown checkpoint {checkpoint!r}; use one of {', '.join(CHECKPOINTS)} "
                          "(best: EMA weights chosen on val; ema: latest EMA weights; model: latest raw weights)")
    return checkpoint


def checkpoint_for_split(requested: str, eval_split: str | None, selection_split: str) -> str:
    """The weights to evaluate on `eval_split`. `auto`: `best` unless `eval_split` is the split
    that chose it (`selection_split`), then `ema`; an explicit `best` there is a one-line
    ConfigError (it would report the number that selected it)."""
    if requested == "auto":
        return "ema" if eval_split == selection_split else "best"
    check_checkpoint_choice(requested)
    if requested == "best" and eval_split == selection_split:
        raise ConfigError(f"checkpoint 'best' was chosen on split {selection_split!r}: evaluating it there would "
                          "report the number that selected it; use checkpoint 'ema' (latest EMA weights), "
                          "'auto', or evaluate another split")
    return requested


@dataclass(frozen=True)
class SamplingSettings(SamplingConfig):
    """How hypotheses are drawn and combined: the fields of `config.SamplingConfig` (which
    EvalConfig shares), checked on construction."""

    def __post_init__(self) -> None:
        check_sampler(self.sampler)
        if self.input_source not in INPUT_SOURCES:
            raise ConfigError(f"unknown input_source {self.input_source!r}; known: {', '.join(INPUT_SOURCES)}")
        if self.aggregate not in AGGREGATIONS:
            raise ConfigError(f"unknown aggregation {self.aggregate!r}; known: {', '.join(AGGREGATIONS)}")
        for name in ("num_hypotheses", "num_steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_eval_config(cls, ev: EvalConfig, **overrides: Any) -> "SamplingSettings":
        """The sampling settings of an evaluation config: the one place they are derived."""
        values = {f.name: getattr(ev, f.name) for f in fields(SamplingConfig)}
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "SamplingSettings":
        return SamplingSettings(**{**asdict(self), **changes})

    def steps_for(self, config: Config) -> int:
        """Network evaluations per chain (NFE): all T for DDPM, num_steps for every other sampler."""
        return function_evaluations(self.sampler, self.num_steps, config.diffusion.num_timesteps)


@dataclass
class LiftOutput:
    """Hypotheses (N, H, J, 3), their aggregate (N, J, 3) and per-joint spread (N, J): metres,
    root-relative, camera frame. The spread is the mean distance of the hypotheses to their mean
    (the model's own uncertainty; ground-truth free)."""

    hypotheses: np.ndarray
    aggregate: np.ndarray
    spread: np.ndarray
    settings: SamplingSettings
    sampling_seconds: float = 0.0


@dataclass
class Lifter:
    """A denoiser with everything sampling needs: noise schedule, config, skeleton, and where the
    weights came from (`checkpoint_card`, copied into every protocol card)."""

    denoiser: torch.nn.Module
    config: Config
    skeleton: Skeleton
    schedule: NoiseSchedule | FlowPath = field(init=False)  # the DDPM schedule, or the flow path
    checkpoint_card: dict[str, Any] = field(default_factory=lambda: {"path": None, "checkpoint": "in-memory"})
    sampling_seconds: float = field(default=0.0, init=False)
    _grids_checked: set = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.denoiser.eval()
        self.schedule = build_process(self.config.diffusion).to(self.device)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike, checkpoint: str = "best", device: str | torch.device = "auto") -> "Lifter":
        """The model of a run or checkpoint directory (or weight file); `checkpoint` is one of
        CHECKPOINTS. Errors are one-line CheckpointErrors naming the file."""
        weights, select = CHECKPOINTS[check_checkpoint_choice(checkpoint)]
        denoiser, config, skeleton = load_model(path, which=weights, device=resolve_device(device), select=select)
        return cls(denoiser, config, skeleton,
                   checkpoint_card={"path": str(path), "checkpoint": checkpoint,
                                    "selected_on": config.data.val_split if checkpoint == "best" else None})

    @classmethod
    def from_model(cls, denoiser: torch.nn.Module, config: Config | None = None,
                   skeleton: Skeleton | None = None) -> "Lifter":
        """An in-memory denoiser (e.g. during training); `config` defaults to Config()."""
        if skeleton is None:
            raise ConfigError("Lifter.from_model: pass the skeleton the denoiser was trained on")
        return cls(denoiser, config or Config(), skeleton)

    @classmethod
    def resolve(cls, model, checkpoint: str = "best", device: str | torch.device = "auto",
                config: Config | None = None, skeleton: Skeleton | None = None) -> "Lifter":
        """A Lifter from what callers hold: a Lifter, a run/checkpoint path, a
        `(denoiser, config[, skeleton])` tuple (as checkpoint.load_model returns), or a module."""
        if isinstance(model, Lifter):
            return model
        if isinstance(model, (str, os.PathLike)):
            return cls.load(Path(model), checkpoint=checkpoint, device=device)
        if isinstance(model, (tuple, list)):
            if len(model) not in (2, 3) or not isinstance(model[1], Config):
                raise ConfigError("pass a run directory, a Lifter or a (denoiser, Config[, Skeleton]) tuple")
            skeleton = model[2] if len(model) == 3 else skeleton
            return cls.from_model(model[0], model[1], skeleton)
        if isinstance(model, torch.nn.Module):
            return cls.from_model(model, config, skeleton)
        raise ConfigError(f"cannot lift with a {type(model).__name__}: pass a run directory or a Lifter")

    @property
    def window(self) -> int:
        """Frames of 2D the model reads per lifted frame (model.window; 1 = single frame). A
        windowed model takes (B, W, J, 2) windows wherever keypoints_2d (B, J, 2) are documented."""
        return int(self.config.model.window)

    @property
    def device(self) -> torch.device:
        try:
            return next(self.denoiser.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    # -- sampling -----------------------------------------------------------------------------

    def generator(self, seed: int) -> torch.Generator:
        """A generator on the model's device; one per sweep makes a whole sweep reproducible."""
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def sampler_card(self, settings: SamplingSettings) -> dict[str, Any]:
        """What runs for `settings` on this model: the objective (ddpm | flow), the sampler (ddim
        means euler for a flow model), its steps and the network evaluations per chain (NFE)."""
        objective = objective_of(self.schedule)
        nfe = settings.steps_for(self.config)
        card = {"objective": objective, "sampler": resolve_sampler(settings.sampler, objective), "num_steps": nfe,
                "nfe": nfe}
        if self.config.model.source_condition:
            card["input_source"] = self.input_source(settings)
        return card

    def sample_tensor(self, keypoints_2d, settings: SamplingSettings | None = None, *, keypoint_mask=None,
                      generator: torch.Generator | None = None, return_trajectory: bool = False,
                      noise: torch.Tensor | None = None, source: torch.Tensor | None = None):
        """One sampler call: keypoints_2d (B, J, 2) -> hypotheses (B, H, J, 3) as a tensor on the
        model's device (with `return_trajectory`, also (S+1, B, H, J, 3)). Without a generator, a
        new one seeded with settings.seed is used. `noise`: the chains' start (diffusion.sample);
        `source` (B,): each input's 2D source index for a source-conditioned model, in place of
        the one settings.input_source names."""
        settings = settings or SamplingSettings()
        self.check_sampling_grid(settings)
        y = torch.as_tensor(np.asarray(keypoints_2d, dtype=np.float32) if not torch.is_tensor(keypoints_2d)
                            else keypoints_2d).to(self.device)
        extra = {}
        if keypoint_mask is not None:
            extra["keypoint_mask"] = torch.as_tensor(keypoint_mask, dtype=torch.bool, device=self.device)
        if self.config.model.source_condition:
            extra["input_source"] = SOURCE_INDEX[self.input_source(settings)] if source is None else source
        return sample(self.denoiser, self.schedule, y, num_hypotheses=settings.num_hypotheses,
                      sampler=settings.sampler, num_steps=settings.steps_for(self.config), eta=settings.eta,
                      flip=settings.flip, skeleton=self.skeleton,
                      generator=generator if generator is not None else self.generator(settings.seed),
                      clip_x0=self.config.diffusion.clip_x0, prediction=self.config.diffusion.prediction,
                      return_trajectory=return_trajectory, noise=noise, **extra)

    def untrained_times(self, settings: SamplingSettings) -> list[float]:
        """The path times `settings` would evaluate a flow model at that its training never saw: a
        reflow student trained at fixed times only (train.reflow_times, e.g. "1" for Euler-1) is
        only good at those. Empty for every other model."""
        times = self.config.train.reflow_times
        if not times or objective_of(self.schedule) != "flow":
            return []
        trained = [float(x) for x in times.split(",")]
        solver = FlowSampler(resolve_sampler(settings.sampler, "flow"), settings.steps_for(self.config))
        return sorted({round(s, 4) for s in solver.evaluation_times() if all(abs(s - t) > 1e-6 for t in trained)},
                      reverse=True)

    def check_sampling_grid(self, settings: SamplingSettings) -> None:
        """One warning line per sampler setting that evaluates a fixed-time reflow student where it
        was not trained (untrained_times): its poses there are far worse (docs/samplers.md, "Reflow")."""
        key = (settings.sampler, settings.num_steps)
        if key in self._grids_checked:
            return
        self._grids_checked.add(key)
        missing = self.untrained_times(settings)
        if missing:
            own = self.config.eval
            log.warning("this model was trained at path times s = %s only (train.reflow_times); sampler %s with %d "
                        "evaluations also evaluates it at s = %s, where its poses are far worse: use its own "
                        "--sampler %s --steps %d", self.config.train.reflow_times, settings.sampler,
                        settings.steps_for(self.config), ", ".join(f"{t:g}" for t in missing), own.sampler,
                        own.num_steps)

    @staticmethod
    def input_source(settings: SamplingSettings) -> str:
        """The 2D source a source-conditioned model is told: settings.input_source, with `auto`
        (not resolved by an evaluation, which knows its data) meaning `detected` - the safe
        reading of keypoints of unknown origin."""
        return "detected" if settings.input_source == "auto" else settings.input_source

    def sample(self, keypoints_2d, settings: SamplingSettings | None = None, *, keypoint_mask=None,
               generator: torch.Generator | None = None) -> np.ndarray:
        """keypoints_2d (B, J, 2) -> hypotheses (B, H, J, 3) float32 numpy, metres."""
        return self.sample_tensor(keypoints_2d, settings, keypoint_mask=keypoint_mask,
                                  generator=generator).float().cpu().numpy()

    def iter_hypotheses(self, keypoints_2d, settings: SamplingSettings | None = None, *, keypoint_mask=None,
                        progress: bool = False, desc: str = "sample", generator: torch.Generator | None = None,
                        as_numpy: bool = True) -> Iterator[tuple[int, int, Any]]:
        """keypoints_2d (N, J, 2) -> yields (start, stop, hypotheses (stop-start, H, J, 3)) per batch
        of settings.batch_size, all drawn from ONE generator seeded with settings.seed (the same
        settings give the same hypotheses), or from `generator` (which the caller may also draw
        from between batches). Hypotheses are float32 numpy, or device tensors with
        `as_numpy=False`. `self.sampling_seconds` accumulates the sampler's wall time (device
        synchronised), for throughput numbers."""
        settings = settings or SamplingSettings()
        n = len(keypoints_2d)
        generator = generator if generator is not None else self.generator(settings.seed)
        self.sampling_seconds = 0.0
        starts = range(0, n, settings.batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
            stop = min(start + settings.batch_size, n)
            mask = None if keypoint_mask is None else keypoint_mask[start:stop]
            self._synchronize()
            tic = time.perf_counter()
            hyps = self.sample_tensor(keypoints_2d[start:stop], settings, keypoint_mask=mask, generator=generator)
            self._synchronize()
            self.sampling_seconds += time.perf_counter() - tic
            yield start, stop, (hyps.float().cpu().numpy() if as_numpy else hyps)

    def aggregate(self, hypotheses, method: str = "mean", *, keypoints_2d=None, intrinsics=None):
        """Hypotheses (B, H, J, 3) -> one pose per sample (diffupose.inference.aggregate; ground-truth free)."""
        return aggregate(hypotheses, method, keypoints_2d=keypoints_2d, intrinsics=intrinsics)

    def lift(self, keypoints_2d, settings: SamplingSettings | None = None, *, intrinsics=None, keypoint_mask=None,
             progress: bool = False) -> LiftOutput:
        """keypoints_2d (N, J, 2) -> LiftOutput: every hypothesis, the `settings.aggregate` pose
        and the per-joint spread, batched and seeded as iter_hypotheses."""
        settings = settings or SamplingSettings()
        n = len(keypoints_2d)
        hypotheses = np.empty((n, settings.num_hypotheses, self.skeleton.num_joints, 3), dtype=np.float32)
        for start, stop, hyps in self.iter_hypotheses(keypoints_2d, settings, keypoint_mask=keypoint_mask,
                                                      progress=progress, desc="lift"):
            hypotheses[start:stop] = hyps
        k = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        pred = self.aggregate(hypotheses.astype(np.float64), settings.aggregate,
                              keypoints_2d=centre_frame(np.asarray(keypoints_2d)), intrinsics=k)
        return LiftOutput(hypotheses=hypotheses, aggregate=np.asarray(pred, dtype=np.float32),
                          spread=hypothesis_spread(hypotheses).astype(np.float32), settings=settings,
                          sampling_seconds=self.sampling_seconds)

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
