"""The one inference path: a loaded denoiser that lifts 2D keypoints to 3D hypotheses.

Every caller goes through `Lifter` — evaluation, `diffupose sample`, `diffupose lift`, the
hypothesis explorer, the hypothesis cache and the validation during training — so loading a
model, batching, seeding, sampling H hypotheses and aggregating happen in one place:

    lifter = Lifter.load("runs/demo", checkpoint="best")
    settings = SamplingSettings(num_hypotheses=10, sampler="ddim", num_steps=5, flip=True)
    hyps = lifter.sample(keypoints_2d, settings)                 # (B, H, J, 3) metres
    for start, stop, hyps in lifter.iter_hypotheses(all_keypoints_2d, settings): ...
    out = lifter.predict(all_keypoints_2d, settings)             # hypotheses, aggregate, spread

Poses are metres, root-relative, camera frame; keypoints_2d are normalised screen
coordinates (`camera.normalize_screen_coordinates`), as in the prepared data.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import INPUT_SOURCES, PRECISIONS, SOURCE_INDEX, Config, EvalConfig, SamplingConfig
from ..diffusion import FlowPath, NoiseSchedule, build_process, check_sampler, make_sampler, sample, sampler_class
from ..errors import CheckpointError, ConfigError
from ..geometry.skeleton import Skeleton, centre_frame
from ..model.checkpoint import load_model
from ..utils import cpu_has_native_bf16, resolve_device
from . import zoo
from .aggregate import AGGREGATIONS, aggregate, hypothesis_spread
from .calibration import Calibration, load_calibrations, quantile_bands

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
                          "report the number that selected it; use checkpoint 'ema' (--checkpoint ema: the final EMA "
                          "weights), or evaluate another split")
    return requested


def sampling_dtype(precision: str, device: torch.device, prediction: str = "v") -> torch.dtype | None:
    """The autocast dtype of the network while sampling (SamplingConfig.precision): bf16 for `bf16`;
    for `auto`, bf16 on a CPU with native bf16 or a CUDA device that supports it unless the model
    predicts eps (`prediction`, config.diffusion.prediction; a flow model's velocity counts as v);
    None (fp32) else."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and prediction != "eps":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    return None


def _package_version() -> str | None:
    """The installed diffupose version (package metadata; None when not installed)."""
    try:
        return importlib.metadata.version("diffupose")
    except importlib.metadata.PackageNotFoundError:
        return None


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
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        for name in ("num_hypotheses", "num_steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")

    @classmethod
    def from_eval_config(cls, ev: EvalConfig, **overrides: Any) -> "SamplingSettings":
        """The sampling settings of an evaluation config: the one place they are derived."""
        values = {f.name: getattr(ev, f.name) for f in fields(SamplingConfig)}
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "SamplingSettings":
        return SamplingSettings(**{**asdict(self), **changes})

    def steps_for(self, config: Config) -> int:
        """Network evaluations per chain (NFE) on a model of `config`, by the rule of the sampler
        class the name resolves to (all T for DDPM, num_steps for every other shipped sampler)."""
        diffusion = config.diffusion
        return sampler_class(self.sampler, diffusion.objective).function_evaluations(self.num_steps,
                                                                                     diffusion.num_timesteps)


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
    # per-joint radius (N, J) metres of the 90 % band (`Lifter.radii`), and what calibrated it
    # (`Lifter.calibration_card`; "calibrated": False for the raw sampler's own quantile balls)
    radius_90: np.ndarray | None = None
    calibration: dict | None = None


@dataclass
class Lifter:
    """A denoiser with everything sampling needs: noise schedule, config, skeleton, and where the
    weights came from (`checkpoint_card`, copied into every protocol card)."""

    denoiser: torch.nn.Module
    config: Config
    skeleton: Skeleton
    schedule: NoiseSchedule | FlowPath = field(init=False)  # the DDPM schedule, or the flow path
    checkpoint_card: dict[str, Any] = field(default_factory=lambda: {"path": None, "checkpoint": "in-memory"})
    # post-hoc calibrations by 2D source (calibration.json beside the weights; `load` reads it)
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    sampling_seconds: float = field(default=0.0, init=False)
    _samplers: dict = field(default_factory=dict, init=False, repr=False)   # sampler_for's, per setting

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
                                    "selected_on": config.data.val_split if checkpoint == "best" else None},
                   calibrations=_calibrations_beside(path, skeleton))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, checkpoint: str | None = None,
                        device: str | torch.device = "auto") -> "Lifter":
        """A shipped model by name (`diffupose models` lists them; its weights' sha256 is checked
        against its card) or a training run / checkpoint folder.

        checkpoint: a zoo model ships only its final EMA weights (`ema`, the default for it); a
        run defaults to `best` (EMA weights chosen on its val split). device: auto | cpu | cuda.
        The model's provenance (zoo name, weights sha256, package version, path) is in
        `checkpoint_card`, which every card of its outputs copies."""
        if zoo.is_zoo_name(name_or_path):
            name = zoo.resolve_name(str(name_or_path))
            if checkpoint not in (None, "ema"):
                raise ConfigError(f"zoo model {name}: ships only its final EMA weights (checkpoint 'ema'), "
                                  f"not {checkpoint!r}")
            folder = zoo.model_dir(name)
            lifter = cls.load(folder, checkpoint="ema", device=device)
            info = zoo.card(name)
            lifter.checkpoint_card = {"model": name, "path": str(folder), "checkpoint": "ema",
                                      "weights": "final EMA weights (the zoo model's only weights)",
                                      "weights_sha256": info.get("weights_sha256"), "selected_on": None,
                                      "package_version": _package_version()}
            return lifter
        path = Path(name_or_path)
        if not path.exists():
            known = ", ".join(zoo.available()) or "none"
            raise ConfigError(f"{name_or_path}: neither a shipped model ({known}) nor a run or checkpoint folder")
        lifter = cls.load(path, checkpoint=checkpoint or "best", device=device)
        lifter.checkpoint_card = {**lifter.checkpoint_card, "model": None, "package_version": _package_version()}
        return lifter

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
        """A Lifter from what callers hold: a Lifter, a shipped model's name, a run/checkpoint path, a
        `(denoiser, config[, skeleton])` tuple (as checkpoint.load_model returns), or a module."""
        if isinstance(model, Lifter):
            return model
        if isinstance(model, (str, os.PathLike)):
            if zoo.is_zoo_name(model):                   # a shipped model: its final EMA weights, whatever `checkpoint` says
                return cls.from_pretrained(model, device=device)
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

    def sampler_for(self, settings: SamplingSettings):
        """The sampler `settings` names, resolved for this model (ddim means euler for a flow
        model) and built once per (sampler, steps, eta): what `sample_tensor` runs, and what the
        card, the NFE count and the grid check read. Its first build runs `check_sampling_grid`."""
        key = (settings.sampler, int(settings.num_steps), float(settings.eta))
        if key not in self._samplers:
            diffusion = self.config.diffusion
            self._samplers[key] = make_sampler(settings.sampler, self.schedule, num_steps=settings.num_steps,
                                               eta=settings.eta, clip_x0=diffusion.clip_x0,
                                               prediction=diffusion.prediction)
            self.check_sampling_grid(settings)
        return self._samplers[key]

    def sampler_card(self, settings: SamplingSettings) -> dict[str, Any]:
        """What runs for `settings` on this model: the objective (ddpm | flow), the sampler (ddim
        means euler for a flow model), its steps and the network evaluations per chain (NFE)."""
        sampler = self.sampler_for(settings)
        card = {"objective": sampler.objective, "sampler": sampler.name, "num_steps": sampler.nfe, "nfe": sampler.nfe}
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
        settings = settings or self.default_settings()
        sampler = self.sampler_for(settings)
        y = torch.as_tensor(np.asarray(keypoints_2d, dtype=np.float32) if not torch.is_tensor(keypoints_2d)
                            else keypoints_2d).to(self.device)
        extra = {}
        if keypoint_mask is not None:
            extra["keypoint_mask"] = torch.as_tensor(keypoint_mask, dtype=torch.bool, device=self.device)
        if self.config.model.source_condition:
            extra["input_source"] = SOURCE_INDEX[self.input_source(settings)] if source is None else source
        return sample(self.denoiser, self.schedule, y, num_hypotheses=settings.num_hypotheses,
                      sampler=sampler, flip=settings.flip, skeleton=self.skeleton,
                      autocast_dtype=sampling_dtype(settings.precision, self.device, self._prediction()),
                      generator=generator if generator is not None else self.generator(settings.seed),
                      return_trajectory=return_trajectory, noise=noise, **extra)

    def default_settings(self) -> SamplingSettings:
        """The model's own sampling settings (its config's `eval`: the sampler, steps, N, flip and
        aggregate its card measured): what `sample`, `iter_hypotheses` and `predict` use when
        given no settings."""
        return SamplingSettings.from_eval_config(self.config.eval)

    def untrained_times(self, settings: SamplingSettings) -> list[float]:
        """The times `settings` would evaluate the network at that its training never saw: a reflow
        student trained at fixed times only (train.reflow_times, e.g. "1" for Euler-1 or DDIM-1)
        is only good at those. Path times s for a flow student, timesteps t = round(s·(T − 1)) for
        a DDPM one (h36m-det-fast: t = 99 only). Empty for every other model."""
        trained = self._trained_times()
        if not trained:
            return []
        return sorted({round(float(s), 4) for s in self.sampler_for(settings).evaluation_times()
                       if all(abs(float(s) - t) > 1e-6 for t in trained)}, reverse=True)

    def _trained_times(self) -> list[float]:
        """A reflow student's train.reflow_times in its sampler's units: path times s (flow) or
        timesteps round(s·(T − 1)) (DDPM, as training/reflow.py draws them); [] for other models."""
        times = self.config.train.reflow_times
        if not times:
            return []
        trained = [float(x) for x in times.split(",")]
        if self.config.diffusion.objective == "flow":
            return trained
        last = self.config.diffusion.num_timesteps - 1
        return [float(round(t * last)) for t in trained]

    def check_sampling_grid(self, settings: SamplingSettings) -> None:
        """One warning line per sampler setting that evaluates a fixed-time reflow student where it
        was not trained (untrained_times): its poses there are far worse (docs/samplers.md, "Reflow").
        `sampler_for` runs it once per setting."""
        missing = self.untrained_times(settings)
        if missing:
            own = self.config.eval
            sampler = self.sampler_for(settings)
            what = "path times s" if sampler.objective == "flow" else "timesteps t"
            trained = ", ".join(f"{t:g}" for t in self._trained_times())
            log.warning("this model was trained at %s = %s only (train.reflow_times); sampler %s with %d "
                        "evaluations also evaluates it at %s = %s, where its poses are far worse: use its own "
                        "--sampler %s --steps %d", what, trained, settings.sampler, sampler.nfe,
                        what.split()[-1], ", ".join(f"{t:g}" for t in missing), own.sampler, own.num_steps)

    def arithmetic(self, settings: SamplingSettings) -> str:
        """The network's arithmetic `settings.precision` resolves to on this model and device:
        "bf16" or "fp32" (what an output's card records)."""
        dtype = sampling_dtype(settings.precision, self.device, self._prediction())
        return "fp32" if dtype is None else {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))

    def _prediction(self) -> str:
        """What the network's 3D output is, for the precision rule: a flow model's velocity is v."""
        diffusion = self.config.diffusion
        return "v" if diffusion.objective == "flow" else diffusion.prediction

    @staticmethod
    def input_source(settings: SamplingSettings) -> str:
        """The 2D source a source-conditioned model is told: settings.input_source, with `auto`
        (not resolved by an evaluation, which knows its data) meaning `detected` - the safe
        reading of keypoints of unknown origin."""
        return "detected" if settings.input_source == "auto" else settings.input_source

    def sample(self, keypoints_2d, settings: SamplingSettings | None = None, *, keypoint_mask=None,
               generator: torch.Generator | None = None) -> np.ndarray:
        """keypoints_2d (B, J, 2) -> hypotheses (B, H, J, 3) float32 numpy, metres (calibrated as
        `iter_hypotheses`)."""
        settings = settings or self.default_settings()
        hyps = self.sample_tensor(keypoints_2d, settings, keypoint_mask=keypoint_mask,
                                  generator=generator).float().cpu().numpy()
        return self._calibrated_batch(hyps, keypoints_2d, settings)

    def iter_hypotheses(self, keypoints_2d, settings: SamplingSettings | None = None, *, keypoint_mask=None,
                        progress: bool = False, desc: str = "sample", generator: torch.Generator | None = None,
                        as_numpy: bool = True) -> Iterator[tuple[int, int, Any]]:
        """keypoints_2d (N, J, 2) -> yields (start, stop, hypotheses (stop-start, H, J, 3)) per batch
        of settings.batch_size, all drawn from ONE generator seeded with settings.seed (the same
        settings give the same hypotheses), or from `generator` (which the caller may also draw
        from between batches). Hypotheses are float32 numpy, or device tensors with
        `as_numpy=False`; calibrated (`calibration_for`) about each batch's `settings.aggregate`
        of the 2D alone (no intrinsics) unless settings.calibrated is False or the model has no
        calibration. `self.sampling_seconds` accumulates the sampler's wall time (device
        synchronised), for throughput numbers."""
        settings = settings or self.default_settings()
        n = len(keypoints_2d)
        generator = generator if generator is not None else self.generator(settings.seed)
        self.sampling_seconds = 0.0
        bar = tqdm(total=n, desc=desc, unit="frame", disable=not progress)
        for start in range(0, n, settings.batch_size):
            stop = min(start + settings.batch_size, n)
            mask = None if keypoint_mask is None else keypoint_mask[start:stop]
            self._synchronize()
            tic = time.perf_counter()
            hyps = self.sample_tensor(keypoints_2d[start:stop], settings, keypoint_mask=mask, generator=generator)
            self._synchronize()
            self.sampling_seconds += time.perf_counter() - tic
            bar.update(stop - start)
            if self.calibration_for(settings) is not None:
                calibrated = self._calibrated_batch(hyps.float().cpu().numpy(), keypoints_2d[start:stop], settings)
                hyps = calibrated if as_numpy else torch.as_tensor(calibrated, device=hyps.device)
            yield start, stop, (hyps.float().cpu().numpy() if as_numpy and torch.is_tensor(hyps) else hyps)
        bar.close()

    def aggregate(self, hypotheses, method: str = "mean", *, keypoints_2d=None, intrinsics=None):
        """Hypotheses (B, H, J, 3) -> one pose per sample (diffupose.inference.aggregate; ground-truth free)."""
        return aggregate(hypotheses, method, keypoints_2d=keypoints_2d, intrinsics=intrinsics)

    def predict(self, keypoints_2d, settings: SamplingSettings | None = None, *, intrinsics=None, keypoint_mask=None,
                progress: bool = False) -> LiftOutput:
        """Normalised model input -> LiftOutput: keypoints_2d (N, J, 2) in the model's skeleton and
        normalised screen units (a windowed model: windows (N, W, J, 2)) -> every hypothesis, the
        `settings.aggregate` pose and the per-joint spread, batched and seeded as
        iter_hypotheses. The aggregate is taken from the raw hypotheses, which are then calibrated
        about it (`calibrate`), so it is the raw sampler's aggregate either way; `radius_90` is
        the per-joint 90 % radius (`radii`). (Keypoints in a detector's layout, in pixels or from
        a file: `lift` of `diffupose.Lifter`.)"""
        settings = settings or self.default_settings()
        n = len(keypoints_2d)
        hypotheses = np.empty((n, settings.num_hypotheses, self.skeleton.num_joints, 3), dtype=np.float32)
        for start, stop, hyps in self.iter_hypotheses(keypoints_2d, settings.replace(calibrated=False),
                                                      keypoint_mask=keypoint_mask, progress=progress, desc="lift"):
            hypotheses[start:stop] = hyps
        k = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        pred = self.aggregate(hypotheses.astype(np.float64), settings.aggregate,
                              keypoints_2d=centre_frame(np.asarray(keypoints_2d)), intrinsics=k)
        hypotheses = self.calibrate(hypotheses, pred, settings)
        return LiftOutput(hypotheses=hypotheses, aggregate=np.asarray(pred, dtype=np.float32),
                          spread=hypothesis_spread(hypotheses).astype(np.float32), settings=settings,
                          sampling_seconds=self.sampling_seconds, radius_90=self.radii(hypotheses, settings, 0.9),
                          calibration=self.calibration_card(settings))

    # -- calibration (diffupose.inference.calibration) ----------------------------------------

    def calibration_for(self, settings: SamplingSettings, source: str | None = None) -> Calibration | None:
        """The calibration `settings` get: None when settings.calibrated is False, the model has
        none for the input's 2D source, or `settings` sample otherwise than it was fitted at
        (`calibration_mismatch`: another N, sampler, steps, flip or aggregate, where its scales
        and radii do not hold). source: the input's source (default
        `input_source(settings)`, auto = detected); a model without model.source_condition that
        has one calibration only uses it for every input (it was fitted on its own kind of input)."""
        calibration = self.stored_calibration(settings, source)
        if calibration is None or calibration_mismatch(calibration, settings):
            return None
        return calibration

    def stored_calibration(self, settings: SamplingSettings, source: str | None = None) -> Calibration | None:
        """The stored calibration for the input's 2D source (calibration_for without its settings
        check), or None: for code that applies it to hypotheses drawn as it was fitted."""
        if not getattr(settings, "calibrated", True) or not self.calibrations:
            return None
        wanted = source or self.input_source(settings)
        if wanted in self.calibrations:
            return self.calibrations[wanted]
        if not self.config.model.source_condition and len(self.calibrations) == 1:
            return next(iter(self.calibrations.values()))
        return None

    def calibrate(self, hypotheses, aggregate, settings: SamplingSettings, source: str | None = None) -> np.ndarray:
        """Raw hypotheses (B, H, J, 3) -> calibrated about their `aggregate` (B, J, 3), which does
        not change (`Calibration.apply`); returned as they are without a calibration (`calibration_for`)."""
        calibration = self.calibration_for(settings, source)
        return hypotheses if calibration is None else calibration.apply(hypotheses, aggregate)

    def radii(self, hypotheses, settings: SamplingSettings, level: float = 0.9, source: str | None = None) -> np.ndarray:
        """Per-joint radius (N, J) metres of the level-`level` band of hypotheses (N, H, J, 3) that
        `calibrate` returned: the calibration's (`Calibration.radii`), or without one the raw
        hypotheses' own quantile balls around their median (`quantile_bands`; not calibrated)."""
        calibration = self.calibration_for(settings, source)
        if calibration is None:
            return quantile_bands(hypotheses, [level])[1][:, 0].astype(np.float32)
        return calibration.radii(hypotheses, level).astype(np.float32)

    def calibration_card(self, settings: SamplingSettings, source: str | None = None) -> dict[str, Any]:
        """What an output's card says about calibration: {"calibrated": True, source, method,
        fitted_on, held_out} (`Calibration.summary`), or {"calibrated": False, "reason": ...}."""
        calibration = self.calibration_for(settings, source)
        if calibration is not None:
            return {"calibrated": True, **calibration.summary()}
        stored = self.stored_calibration(settings, source)
        if not getattr(settings, "calibrated", True):
            reason = "calibrated=False: the raw sampler's hypotheses"
        elif stored is not None:
            reason = (f"{calibration_mismatch(stored, settings)}: the raw sampler's hypotheses (the calibration holds "
                      f"only at the settings it was fitted at; `diffupose calibrate` fits one for others)")
        elif not self.calibrations:
            reason = "the model has no calibration (fit one with `diffupose calibrate`)"
        else:
            reason = (f"no calibration for {source or self.input_source(settings)} 2D (fitted: "
                      f"{', '.join(sorted(self.calibrations))})")
        return {"calibrated": False, "reason": reason}

    def _calibrated_batch(self, hyps: np.ndarray, keypoints_2d, settings: SamplingSettings) -> np.ndarray:
        """One batch of raw hypotheses calibrated about its `settings.aggregate` of the 2D alone."""
        if self.calibration_for(settings) is None:
            return hyps
        kp = centre_frame(np.asarray(keypoints_2d.cpu() if torch.is_tensor(keypoints_2d) else keypoints_2d))
        centre = self.aggregate(hyps.astype(np.float64), settings.aggregate, keypoints_2d=kp)
        return self.calibrate(hyps, centre, settings)

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# The sampling settings a calibration depends on: its per-joint scales and conformal radii were
# fitted on hypotheses drawn with these, about this aggregate (precision and seed do not matter).
CALIBRATION_SETTINGS = ("num_hypotheses", "sampler", "num_steps", "flip", "eta", "aggregate")


def calibration_mismatch(calibration: Calibration, settings: SamplingSettings) -> str:
    """"" when `settings` draw hypotheses as the calibration's fit did (its `fitted_on` values of
    CALIBRATION_SETTINGS; a value it does not record is not compared), else the difference in
    words, e.g. "fitted at num_hypotheses 10, here 1"."""
    fitted = calibration.fitted_on or {}
    diffs = [f"{key} {fitted[key]}, here {getattr(settings, key)}" for key in CALIBRATION_SETTINGS
             if key in fitted and fitted[key] != getattr(settings, key)]
    return f"fitted at {'; '.join(diffs)}" if diffs else ""


def _calibrations_beside(path, skeleton: Skeleton) -> dict[str, Calibration]:
    """The calibrations in calibration.json at the top of a run or zoo folder (`load`'s path; a
    weight file or checkpoint folder has none); one that does not fit the skeleton is a one-line
    CheckpointError."""
    path = Path(path)
    calibrations = load_calibrations(path) if path.is_dir() else {}
    for source, calibration in calibrations.items():
        if calibration.num_joints != skeleton.num_joints:
            raise CheckpointError(f"{path}: the {source} calibration has {calibration.num_joints} joints, the model's "
                                  f"skeleton {skeleton.name} {skeleton.num_joints}")
    return calibrations
