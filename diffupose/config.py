"""One frozen dataclass tree for every setting; the single source of defaults.

`Config` = data + model + diffusion + train + eval. Presets (`tiny`, `demo`, `paper`,
`humaneva`, `humaneva_cpu`, `h36m_cpu`) are named overrides of the defaults. Every run and
report stores its config as JSON; `--set section.key=value` and notebook parameters map onto it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .diffusion.flow import FLOW_TIMES, OBJECTIVES
from .diffusion.loss import LOSSES
from .diffusion.samplers import check_sampler, resolve_sampler
from .diffusion.schedule import PREDICTIONS, SCHEDULES
from .errors import ConfigError

__all__ = [
    "DataConfig", "ModelConfig", "DiffusionConfig", "TrainConfig", "SamplingConfig", "EvalConfig", "Config",
    "PRESETS", "preset", "apply_overrides", "parse_override", "parse_bool", "coerce_value",
    "LR_SCHEDULES", "AMP_MODES", "COMPILE_MODES", "DENOISERS", "MISSING_FILLS", "window_levels", "PRECISIONS",
]

LR_SCHEDULES = ("constant", "exponential", "cosine")
AMP_MODES = ("auto", "bf16", "fp16", "off")
COMPILE_MODES = ("auto", "on", "off")
COMPILE_AUTO_MIN_STEPS = 2000      # train.compile=auto compiles runs at least this long
DENOISERS = ("gcn", "unet")
MISSING_FILLS = ("neighbour", "zero")
_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def _checked_types(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """`values` with each known field's type checked (ints accepted for floats and converted;
    floats must be finite; a bool is not an int). Raises one-line ConfigErrors."""
    out = dict(values)
    for f in fields(cls):
        if f.name not in values or f.type not in _TYPES:
            continue
        v = values[f.name]
        if not isinstance(v, _TYPES[f.type]) or (f.type != "bool" and isinstance(v, bool)):
            raise ConfigError(f"{section}.{f.name} must be {_TYPE_NAMES[f.type]}, got {v!r} ({type(v).__name__})")
        if f.type == "float":
            v = float(v)
            if not math.isfinite(v):
                raise ConfigError(f"{section}.{f.name} must be a finite number, got {v}")
        out[f.name] = v
    return out


def _validate(obj: Any, section: str, rules: dict[str, tuple[Any, str]]) -> None:
    """Type-check a frozen dataclass in place (ints -> floats), then check `rules`:
    {field: (predicate(value) -> bool, "what it must be")}."""
    values = _checked_types(type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)}, section)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    for name, (ok, rule) in rules.items():
        value = getattr(obj, name)
        if not ok(value):
            raise ConfigError(f"{section}.{name} must be {rule}, got {value!r}")


def _positive(v) -> bool:
    return v > 0


def _time_list(v) -> bool:
    """"" or a comma-separated list of floats in (0, 1] (train.reflow_times)."""
    try:
        return all(0.0 < float(x) <= 1.0 for x in v.split(",")) if v else True
    except ValueError:
        return False


def _non_negative(v) -> bool:
    return v >= 0


def _one_of(choices: tuple[str, ...]) -> tuple[Any, str]:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


INPUT_2D_MODES = ("file", "gt", "gt+noise", "mix")
# The 2D source a source-conditioned model is told (SamplingConfig.input_source); the denoiser's
# embedding index is the position in SOURCE_INDEX
INPUT_SOURCES = ("auto", "clean", "detected")
SOURCE_INDEX = {"clean": 0, "detected": 1}
INPUT_LAYOUTS = ("coco17", "halpe26", "body25", "mpii16", "h36m17")


def window_levels(window: int) -> int:
    """log3(model.window) for a power of 3 (1 -> 0: the single-frame model); anything else is a
    one-line ConfigError. The temporal encoder has one level per factor of 3."""
    levels, w = 0, int(window)
    while w > 1 and w % 3 == 0:
        w //= 3
        levels += 1
    if w != 1 or window < 1:
        raise ConfigError(f"model.window must be 1 (single frame) or a power of 3 (3, 9, 27, 81, 243), got {window}")
    return levels


def _layout_list(value: str) -> bool:
    names = [v.strip() for v in str(value).split(",")]
    return bool(names) and all(n in INPUT_LAYOUTS for n in names)


@dataclass(frozen=True)
class DataConfig:
    path: str = ""                 # prepared .npz (see diffupose.data.prepared)
    train_split: str = "train"
    val_split: str = "val"         # held-out training data: model selection only
    test_split: str = "test"
    flip_augment: bool = True      # train on every frame plain and mirrored
    max_val_samples: int = 4096    # subsample the val split for periodic validation (0 = all)

    def __post_init__(self) -> None:
        _validate(self, "data", {
            "train_split": (bool, "a split name"), "val_split": (bool, "a split name"),
            "max_val_samples": (_non_negative, ">= 0"),
        })


@dataclass(frozen=True)
class ModelConfig:
    denoiser: str = "gcn"          # gcn | unet
    dim: int = 256                 # hidden width d
    num_blocks: int = 4            # residual blocks of two modulated graph convs
    nonlocal_block: bool = True
    released_unused_film: bool = False  # build the third FiLM block the released code never uses
    missing_joints: bool = False   # condition on a keypoint mask (missing-joint support)
    missing_fill: str = "neighbour"  # a missing joint's 2D input: neighbour (mean of present neighbours) | zero
    # Condition on the 2D source (clean = projected ground truth, detected = detector output or
    # detector-like noise): a learned embedding added to the time embedding, so one model can be
    # exact on clean 2D and cautious on detections (GCN only; diffupose.model.denoiser)
    source_condition: bool = False
    # The 2D condition: 1 = one frame (the paper); W > 1 (a power of 3: 3, 9, 27, 81, 243) = a
    # W-frame 2D window centred on the lifted frame, at the training data's frame rate, read by a
    # temporal encoder of width window_dim (GCN only; diffupose.model.temporal)
    window: int = 1
    window_dim: int = 256
    window_fps: float = 50.0       # the training data's frame rate, at which the window's frames are spaced (H36M: 50)

    def __post_init__(self) -> None:
        window_levels(self.window)
        _validate(self, "model", {
            "window_dim": (lambda v: v >= 16, ">= 16"), "window_fps": (_positive, "a positive frame rate"),
            "denoiser": _one_of(DENOISERS), "missing_fill": _one_of(MISSING_FILLS),
            "dim": (lambda v: v >= 32 and v % 16 == 0, "a multiple of 16, at least 32"),
            "num_blocks": (_non_negative, ">= 0"),
        })


@dataclass(frozen=True)
class DiffusionConfig:
    num_timesteps: int = 100
    schedule: str = "cosine"       # cosine | linear
    cosine_s: float = 0.008
    loss: str = "l1"               # l1 (released) | l2
    lambda_2d: float = 0.8         # weight of the 2D reconstruction term (eq. 10)
    joint_weights: bool = True     # per-joint loss weights on every channel
    clip_x0: float = 1.0           # clamp x0 estimate to [-clip, clip] metres (0 = off)
    prediction: str = "eps"        # the 3D output: eps (paper, released) | x0 | v (velocity); DDPM only
    objective: str = "ddpm"        # ddpm (the paper) | flow (conditional flow matching; diffusion/flow.py)
    flow_time: str = "uniform"     # flow training time s: uniform | logit_normal

    def __post_init__(self) -> None:
        _validate(self, "diffusion", {
            "num_timesteps": (_positive, ">= 1"), "schedule": _one_of(SCHEDULES), "loss": _one_of(LOSSES),
            "prediction": _one_of(PREDICTIONS), "objective": _one_of(OBJECTIVES), "flow_time": _one_of(FLOW_TIMES), "lambda_2d": (_non_negative, ">= 0"),
            "clip_x0": (_non_negative, ">= 0 (0 = off)"),
        })


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Length of training: `max_steps` optimiser steps when > 0 (then
    `epochs` is ignored); `max_steps = 0` means "train for `epochs` passes over the
    (flip-doubled) train split", and both 0 is a ConfigError (nothing to train).
    `max_minutes` caps the wall clock of one call on top (checkpoints, then stops)."""

    batch_size: int = 1024
    grad_accum: int = 1
    lr: float = 4e-5
    lr_schedule: str = "constant"  # constant (released) | exponential (paper: x0.995/epoch) | cosine
    lr_decay: float = 0.995        # per-epoch factor for `exponential`
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05     # floor of the cosine schedule, as a fraction of lr
    weight_decay: float = 0.0
    grad_clip: float = 0.0         # 0 = off
    epochs: int = 200              # used only when max_steps = 0
    max_steps: int = 0             # optimiser steps; 0 = train for `epochs` epochs (both 0: error)
    max_minutes: float = 0.0       # wall-clock budget; 0 = none
    ema_decay: float = 0.995
    ema_every: int = 10
    amp: str = "auto"              # auto (bf16 on CUDA and on CPUs with native bf16, else off) | bf16 | fp16 | off
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    compile: str = "auto"          # auto (runs of >= 2,000 steps, where a compiler is available) | on | off
    seed: int = 0
    log_every: int = 50            # optimiser steps between history rows
    val_every: int = 500           # optimiser steps between validations (0 = none)
    checkpoint_every: int = 1000
    val_hypotheses: int = 1
    val_sampler: str = "ddim"
    val_steps: int = 5
    joint_dropout: float = 0.0     # per sample: probability that 1..4 random joints go missing (missing joints)
    limb_dropout: float = 0.0      # per sample: probability that the end of a limb goes missing
    init_from: str = ""            # a run whose final EMA weights start a fresh run (fine-tuning); "" = random init
    # Reflow (training/reflow.py): a run or zoo model whose deterministic sampler maps each batch's
    # noise to the pose a flow-matching run (diffusion.objective=flow) then learns to reach on a
    # straight line, so that it samples in fewer steps (a DDPM student learns the same pairs at
    # the timesteps round(s·(T-1)) of reflow_times: "1" = DDIM-1's one step). "" = off. The teacher's sampler and NFE:
    # reflow_sampler (auto = the teacher's eval.sampler) and reflow_steps (0 = its eval.num_steps).
    # reflow_times: "" = the path's time draw (diffusion.flow_time); or comma-separated path times
    # s in (0, 1] drawn uniformly, e.g. "1" (the one point Euler-1 evaluates) or "1,0.5" (Euler-2's)
    reflow_from: str = ""
    reflow_sampler: str = "auto"
    reflow_steps: int = 0
    reflow_times: str = ""
    # The 2D input of training (files with detections keep the projected GT as keypoints_2d_gt):
    # file = keypoints_2d as prepared | gt = keypoints_2d_gt | gt+noise = GT plus resampled measured
    # detector error (diffupose.data.detector_noise) | mix = per sample, the real detection with
    # probability mix_detected, else GT plus measured detector error; with mix_clean > 0, that
    # share of the samples gets the clean GT instead (for models with model.source_condition)
    input_2d: str = "file"
    mix_detected: float = 0.5
    mix_clean: float = 0.0
    # The measured detector error of a windowed model's gt+noise rows (model.window > 1):
    # constant = one frame's residual added to every frame of the window | measured = the
    # residuals of a random training window, frame by frame (the detector's own jitter, drift and
    # left/right swaps in time; diffupose.data.detector_noise.transplant_errors)
    noise_in_time: str = "constant"
    # Layouts whose lift mapping (copy what the layout has, derive the rest) the 2D input goes
    # through, one drawn per sample (diffupose.data.layout_mix): "h36m17" = the true joints only
    input_layouts: str = "h36m17"

    def __post_init__(self) -> None:
        probability = (lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        _validate(self, "train", {
            "batch_size": (_positive, ">= 1"), "grad_accum": (_positive, ">= 1"),
            "lr": (_positive, "a positive number (try 1e-3 on CPU presets)"),
            "lr_schedule": _one_of(LR_SCHEDULES), "lr_decay": (lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
            "warmup_steps": (_non_negative, ">= 0"), "min_lr_ratio": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
            "weight_decay": (_non_negative, ">= 0"), "grad_clip": (_non_negative, ">= 0 (0 = off)"),
            "epochs": (_non_negative, ">= 0"), "max_steps": (_non_negative, ">= 0 (0 = use train.epochs)"),
            "max_minutes": (_non_negative, ">= 0 (0 = no limit)"),
            "ema_decay": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"), "ema_every": (_positive, ">= 1"),
            "amp": _one_of(AMP_MODES), "compile": _one_of(COMPILE_MODES), "device": (bool, "a device name (auto, cpu, cuda, cuda:N)"),
            "seed": (_non_negative, ">= 0"), "log_every": (_positive, ">= 1"),
            "val_every": (_non_negative, ">= 0 (0 = no validation)"), "checkpoint_every": (_positive, ">= 1"),
            "val_hypotheses": (_positive, ">= 1"),
            "val_steps": (_positive, ">= 1"), "joint_dropout": probability, "limb_dropout": probability,
            "input_2d": _one_of(INPUT_2D_MODES), "mix_detected": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
            "mix_clean": (lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
            "noise_in_time": _one_of(("constant", "measured")),
            "input_layouts": (_layout_list, "a comma-separated list of coco17, halpe26, body25, mpii16, h36m17"),
            "reflow_steps": (_non_negative, ">= 0 (0 = the teacher's eval.num_steps)"),
            "reflow_times": (_time_list, "empty, or comma-separated path times in (0, 1], e.g. 1,0.5"),
        })
        check_sampler(self.val_sampler, "train.val_sampler")
        if self.reflow_sampler != "auto":
            check_sampler(self.reflow_sampler, "train.reflow_sampler")
        if self.mix_clean > 0 and self.input_2d != "mix":
            raise ConfigError(f"train.mix_clean={self.mix_clean} is a share of train.input_2d=mix, but "
                              f"train.input_2d={self.input_2d}")
        if self.max_steps == 0 and self.epochs == 0:
            raise ConfigError("train.max_steps = 0 means 'train for train.epochs epochs', but train.epochs is 0 "
                              "too: set train.max_steps (optimiser steps) or train.epochs")


@dataclass(frozen=True)
class SamplingConfig:
    """How hypotheses are drawn and combined: the fields `EvalConfig` and
    `inference.SamplingSettings` share, defined once here (both inherit them; the settings of
    an evaluation are `SamplingSettings.from_eval_config`)."""

    num_hypotheses: int = 10
    sampler: str = "ddim"          # ddim | ddpm (ddpm always runs all T steps)
    num_steps: int = 5             # DDIM steps
    eta: float = 0.0
    flip: bool = True              # average each hypothesis with its mirrored twin (paper protocol)
    aggregate: str = "mean"        # see diffupose.inference.aggregate.AGGREGATIONS
    batch_size: int = 2048         # 2D inputs per sampler call (each runs H (x2 with flip) chains)
    seed: int = 0
    # The 2D source a model with model.source_condition is told: clean | detected | auto (an
    # evaluation: clean for projected ground truth, detected for detections; elsewhere detected)
    input_source: str = "auto"
    # Apply the model's post-hoc calibration (calibration.json beside its weights, fitted by
    # `diffupose calibrate`) to the hypotheses: False = the raw sampler's (diffupose.inference.calibration)
    calibrated: bool = True
    # The network's arithmetic while sampling (the chains stay fp32): fp32 (default: the same
    # numbers on every machine) | bf16 | auto = bf16 on CPUs with native bf16 and on CUDA devices
    # with bf16, for models that predict v, x0 or a flow velocity (about 2x faster on such a CPU,
    # within 0.1 mm); fp32 for the paper's eps prediction, whose x0 = (x_t - sqrt(1 - a) eps) / sqrt(a)
    # magnifies rounding. `diffupose lift` and `Lifter.lift` use auto.
    precision: str = "fp32"


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class EvalConfig(SamplingConfig):
    """The sampling fields of `SamplingConfig` plus what an evaluation measures on. Names are
    checked when an evaluation starts (`evaluate.check_eval_config`), not here."""

    protocol: str = "gt_free"      # gt_free | official_oracle (uses 3D ground truth!)
    checkpoint: str = "best"       # best (EMA, chosen on val) | ema (latest EMA) | model (latest raw)
    max_samples: int = 0           # 0 = all
    input_2d: str = "file"         # file (keypoints_2d as prepared) | gt (keypoints_2d_gt of a detections file)

    def __post_init__(self) -> None:
        _validate(self, "eval", {"input_2d": _one_of(("file", "gt")), "input_source": _one_of(INPUT_SOURCES),
                                 "precision": _one_of(PRECISIONS)})


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        # the samplers a config names must suit its objective (ddim means euler for flow)
        resolve_sampler(self.train.val_sampler, self.diffusion.objective, "train.val_sampler")
        resolve_sampler(self.eval.sampler, self.diffusion.objective, "eval.sampler")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        kwargs = {}
        for f in fields(cls):
            sub = d.get(f.name, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"config section {f.name!r} must be a mapping, got {sub!r}")
            sub_cls = type(getattr(cls(), f.name))
            if f.name == "train" and isinstance(sub.get("compile"), bool):   # configs written before auto|on|off
                sub = {**sub, "compile": "on" if sub["compile"] else "off"}
            if f.name == "model" and sub.get("missing_joints") and "missing_fill" not in sub:
                sub = {**sub, "missing_fill": "zero"}      # masked models trained before the neighbour fill
            known = {sf.name for sf in fields(sub_cls)}
            unknown = set(sub) - known
            if unknown:
                raise ConfigError(f"unknown key(s) in config section {f.name!r}: {sorted(unknown)}")
            kwargs[f.name] = sub_cls(**_checked_types(sub_cls, sub, f.name))
        extra = set(d) - {f.name for f in fields(cls)}
        if extra:
            raise ConfigError(f"unknown config section(s): {sorted(extra)}")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: str | Path) -> "Config":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config ({e})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: a config must be a JSON object, got {type(d).__name__}")
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def replace(self, **sections: Any) -> "Config":
        return replace(self, **sections)


def parse_bool(value: str, key: str) -> bool:
    """`--set key=yes|no|true|false|1|0|on|off` -> bool; anything else is a ConfigError."""
    low = value.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"--set {key}: expected a boolean, got {value!r}")


def coerce_value(text: Any, current: Any, key: str) -> Any:
    """A `--set key=value` value (a string) -> the type of the setting's `current` value: bool
    (`parse_bool`), int, float, a list or dict as JSON (a list also as `a,b,c`), else the string.
    Non-strings pass unchanged. The one coercion of config overrides and report parameters."""
    if not isinstance(text, str):
        return text
    if isinstance(current, bool):
        return parse_bool(text, key)
    if isinstance(current, (int, float)):
        try:
            return float(text) if isinstance(current, float) else int(text)
        except ValueError:
            raise ConfigError(f"--set {key}: expected a number ({type(current).__name__}), got {text!r}") from None
    if isinstance(current, (list, dict)):
        return _coerce_json(text, current, key)
    return text


def _coerce_json(text: str, current: list | dict, key: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if isinstance(current, list):  # a,b,c
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return [coerce_value(p, current[0], key) if current else _json_or_text(p) for p in parts]
        raise ConfigError(f"--set {key}: expected JSON, got {text!r}") from None
    if not isinstance(value, type(current)):
        raise ConfigError(f"--set {key}: expected a {type(current).__name__}, got {text!r}")
    return value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def apply_overrides(cfg: Config, overrides: dict[str, Any] | list[str] | None) -> Config:
    """Apply `{"train.lr": 1e-3}` or `["train.lr=1e-3"]` overrides; strings are coerced to the
    field's type. Unknown keys raise ConfigError."""
    if not overrides:
        return cfg
    if isinstance(overrides, (list, tuple)):
        overrides = dict(parse_override(o) for o in overrides)
    d = cfg.to_dict()
    for key, value in overrides.items():
        if "." not in key:
            raise ConfigError(f"config key {key!r} must look like section.key (e.g. train.lr)")
        section, name = key.split(".", 1)
        if section not in d or name not in d[section]:
            raise ConfigError(f"unknown config key {key!r}")
        current = d[section][name]
        d[section][name] = coerce_value(value, current, key)
    return Config.from_dict(d)


def _preset_overrides() -> dict[str, dict[str, Any]]:
    """Named presets as override tables (data, not logic: long only because there are eleven)."""
    # The CPU-budget recipe shared by humaneva_cpu, h36m_cpu and h36m_sh_cpu (see below).
    cpu = {
        "model.dim": 128, "model.num_blocks": 4, "train.batch_size": 256, "diffusion.prediction": "v",
        "train.lr": 1e-3, "train.lr_schedule": "cosine", "train.warmup_steps": 200,
        "train.epochs": 0, "train.max_minutes": 45.0,
        "train.ema_decay": 0.999, "train.ema_every": 1,
        "train.val_every": 1000, "train.checkpoint_every": 1000,
    }
    detections = {
        **cpu, "train.max_steps": 6000,
        "train.input_2d": "mix", "train.mix_detected": 0.5, "train.mix_clean": 0.4,
        "model.source_condition": True,
        "train.input_layouts": "h36m17,coco17,halpe26,body25,mpii16",
    }
    masked = {"model.missing_joints": True, "train.joint_dropout": 0.1, "train.limb_dropout": 0.05}
    return {
        "default": {},
        # Tests and the smoke path: seconds on a CPU.
        "tiny": {
            "model.dim": 64, "model.num_blocks": 1,
            "train.batch_size": 64, "train.lr": 3e-3, "train.lr_schedule": "cosine",
            "train.warmup_steps": 10, "train.epochs": 0, "train.max_steps": 200,
            "train.val_every": 30, "train.checkpoint_every": 30, "train.log_every": 10,
            "train.ema_decay": 0.9, "train.ema_every": 1,
            "train.amp": "off",  # fp32: tests give the same numbers on every CPU (bf16 is slower at width 64)
            "eval.num_hypotheses": 2, "eval.batch_size": 512, "eval.max_samples": 256,
            "data.max_val_samples": 256,
        },
        # The README's main job on the synthetic data: a couple of CPU minutes.
        "demo": {
            "model.dim": 96, "model.num_blocks": 2,
            "train.batch_size": 256, "train.lr": 2e-3, "train.lr_schedule": "cosine",
            "train.warmup_steps": 50, "train.epochs": 0, "train.max_steps": 1500,
            "train.val_every": 250, "train.checkpoint_every": 500, "train.log_every": 50,
            "train.ema_decay": 0.99, "train.ema_every": 1,
            "train.amp": "off",  # fp32: the demo's numbers stay the same on every CPU (bf16 gain at width 96: 0.98-2.25x, noise-bound)
            "eval.num_hypotheses": 10, "eval.max_samples": 2000,
        },
        # The paper's H36M settings (GPU): dim 384, batch 1024 x 2, lr 4e-5, ~200 epochs.
        "paper": {
            "model.dim": 384, "train.batch_size": 1024, "train.grad_accum": 2,
            "train.lr": 4e-5, "train.lr_schedule": "constant", "train.epochs": 200,
            "train.val_every": 2000, "train.checkpoint_every": 5000,
        },
        # The paper's HumanEva-I settings (GPU): batch 128, 1000 epochs.
        "humaneva": {
            "model.dim": 384, "train.batch_size": 128, "train.lr": 4e-5,
            "train.lr_schedule": "constant", "train.epochs": 1000,
            "train.val_every": 2000, "train.checkpoint_every": 5000,
        },
        # A GPU-budget H36M run (minutes on one H100/H200): paper dim, large batch, warm-up and
        # cosine decay instead of the released constant 4e-5 (which needs ~300k steps).
        "h36m_gpu": {
            "model.dim": 384, "train.batch_size": 4096, "train.lr": 6e-4,
            "train.lr_schedule": "cosine", "train.warmup_steps": 300, "train.epochs": 0,
            "train.max_steps": 6000, "train.max_minutes": 30.0,
            "train.ema_decay": 0.999, "train.ema_every": 1,
            "train.val_every": 500, "train.checkpoint_every": 1000, "train.log_every": 100,
        },
        # CPU-budget profiles (<= 1 hour on 2 cores): larger lr with warm-up and cosine decay,
        # EMA 0.999 per step, a narrower network (dim 128), and the v parameterisation, which
        # learns much faster than ε at this budget while keeping the hypotheses diverse (x0
        # collapses them); benchmarks/RECIPES.md has the runs. max_steps sets the cosine horizon
        # and is sized to finish inside max_minutes (15-20 steps/s at batch 256 on 2 cores with
        # bf16 + compile: 30,000 steps in 28.5 min); max_minutes is a safety cap that
        # checkpoints and stops.
        "humaneva_cpu": {
            **cpu, "train.max_steps": 32000,
        },
        "h36m_cpu": {
            **cpu, "train.max_steps": 30000,
        },
        # Detection-ready H36M (data prepared with --keypoints sh, which keeps the projected GT
        # beside the detections): the h36m_cpu recipe with, per sample, the real SH detection or
        # the GT plus resampled measured detector error (mix), sent through one detector layout's
        # lift mapping (COCO-17, Halpe-26, BODY_25, MPII-16 or the true joints); 6,000 steps
        # (17 min compiled on a 2-core CPU without AVX-512, alone; ~7 min with bf16); benchmarks/RECIPES.md
        # section 5 and docs/detections.md. 40 % of the rows get the clean GT instead, and the
        # network is told which source each row has (model.source_condition): as accurate on
        # detections, 5-6 mm better on clean 2D (RECIPES 5c, three seeds). The first zoo models for
        # detections (h36m-det before its missing-joint retraining, h36m-det-long, the flow variants) were this preset.
        "h36m_sh_cpu": detections,
        # The same with missing joints, which are normal on real input: 10 % of the rows lose 1-4
        # random joints and 5 % the end of a limb, and the network is told which
        # (model.missing_joints). The zoo model h36m-det is this preset at 40,000 steps.
        "h36m_det_cpu": {**detections, **masked},
        # The same for tracks: the 2D condition is a 27-frame window (spanning 0.52 s at 50 fps) read by a
        # temporal encoder (model.window; diffupose.model.temporal). The zoo model h36m-det-video
        # is this preset at 40,000 steps.
        "h36m_det_video_cpu": {**detections, **masked, "model.window": 27},
    }


PRESETS: tuple[str, ...] = tuple(_preset_overrides())


def preset(name: str = "default", overrides: dict[str, Any] | list[str] | None = None) -> Config:
    """Named preset, then optional overrides."""
    table = _preset_overrides()
    if name not in table:
        raise ConfigError(f"unknown preset {name!r}; known: {sorted(table)}")
    return apply_overrides(apply_overrides(Config(), table[name]), overrides)
