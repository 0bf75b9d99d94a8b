"""Report profiles as data: which dataset, preset and sizes each notebook runs with.

A profile is a flat mapping of notebook parameters (the names declared in the notebooks'
`parameters` cells) plus an optional per-notebook table for values that differ between
notebooks. `resolve_parameters` fills in the paths of one report directory, applies
`--set key=value` overrides and returns the parameters of each notebook: a key a notebook does
not declare is not passed to it. A key of the form `section.key` (`train.lr`, `model.dim`) is a
config override and lands in the `overrides` dict parameter of the training notebook.

Paths: the profiles' own `data_dir` values are relative to the repository root; a `data_dir`
(or other path) given with `--set` is relative to the current directory. No profile reads
pickled files: `allow_pickle` is off everywhere and only `diffupose report --allow-pickle` (or
`--set allow_pickle=true`) turns it on. `hypothesis_counts` is the list of numbers of hypotheses
N that 03_evaluate sweeps; `num_hypotheses` is the single N of 05_hypotheses. `checkpoint:
auto` evaluates the `best` weights on a split other than the one that chose them (`val`) and
the final EMA weights (`ema`) on `val` itself.

Profiles
- `tiny`: synthetic data, seconds per notebook; the notebook tests run it.
- `demo`: synthetic data, the whole report in under 10 minutes on a 2-core CPU (training ~3-4
  minutes with the `demo` preset).
- `humaneva`: HumanEva-I from `../shared/data/humaneva` (relative to the repository root), CPU
  preset `humaneva_cpu`; evaluated on `test` (Validate/S1..S3) when the user's file has it,
  else on the held-out `val` chunks. The VideoPose3D HumanEva files are pickled: run it with
  `--allow-pickle` for files you trust.
- `h36m`: Human3.6M 17-joint ground truth 2D from `../shared/data/h36m`, S8 held out, preset
  `h36m_cpu`; evaluated on `test` (S9, S11) when present, else on `val` (S8).
- `h36m_sh`: Human3.6M with the real Stacked Hourglass detections (`h36m_2d_sh_*.npz`, the
  projected ground truth kept beside them), S8 held out, detection-ready preset `h36m_det_cpu`
  (missing-joint masking); notebook 10 fills the paper's Table I layout from the detections.
  `--set preset=h36m_det_video_cpu` trains the windowed model instead (a 27-frame 2D window;
  its rows say T = 27 †).
- `paper`: the paper's GPU settings (full presets, DDPM and DDIM sweeps, full ablations).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..config import coerce_value
from ..errors import ConfigError

__all__ = [
    "PROFILES", "NOTEBOOKS", "CONFIG_SECTIONS", "repo_root", "get_profile", "profile_names",
    "parse_set", "resolve_parameters", "check_inputs", "PATH_KEYS",
]

NOTEBOOKS: tuple[str, ...] = (
    "01_data_prep", "02_train", "03_evaluate", "04_affinity", "05_hypotheses", "06_paper_figures",
    "07_in_the_wild", "08_uncertainty", "09_robustness", "10_detections", "11_samplers",
)
CONFIG_SECTIONS = ("data", "model", "diffusion", "train", "eval")

# Paths relative to the report directory; `resolve_parameters` makes them absolute.
_REPORT_PATHS = {
    "out_dir": ".",
    "data_path": "data/prepared.npz",
    "run_dir": "run",
    "ablation_dir": "ablations",
}

_COMMON: dict[str, Any] = {
    "seed": 0,
    "device": "auto",
    "resume": True,
    "overrides": {},
    "split": "auto",          # test when the prepared data has it, else val (notebooks say which)
    "sampler": "ddim",
    "num_steps": 5,
    "aggregate": "mean",
    "flip": True,
    "protocol": "gt_free",
    "checkpoint": "auto",     # best on a split other than val (which chose it), final EMA weights on val
    # The live ipywidgets explorer stores ~5 MB of widget state per figure in the executed
    # notebook and cannot run in a static HTML page; reports show the static gallery instead.
    # Open notebooks/05_hypotheses.ipynb in JupyterLab for the sliders.
    "live_explorer": False,
    # Reports do not build the live explorer at all (a static page cannot run it; executing its
    # Output widgets headless under nbclient stalled twice in 4 tiny reports on a loaded 2-core
    # box): the page shows one line saying how to get it, and the static gallery.
    "build_explorer": False,
    # 07_in_the_wild: a keypoint file lifted like a user's detector output (relative to the
    # repository root; the shipped example is synthetic from H36M S8 ground truth).
    "keypoints_path": "examples/coco17_S8_walking.json",
    "model": "h36m-det",      # 07_in_the_wild lifts with this shipped zoo model ("" = the report's run)
    "max_frames": 0, "viewer_frames": 100,
    # 08_uncertainty: H hypotheses sampled once and cached; N = its prefixes.
    "cache_hypotheses": 50, "hypothesis_prefixes": [1, 5, 10, 20, 50], "uncertainty_max_samples": 2000,
    # 09_robustness: missing 2D joints x pixel noise on a seeded subset; compare_runs adds other
    # trained runs (e.g. one trained with model.missing_joints=true) beside the report's.
    "compare_runs": [], "robustness_max_samples": 300, "robustness_missing": [0, 1, 2, 4],
    "robustness_modes": ["random", "limb"], "robustness_noise_px": [0, 2, 5, 10, 20], "robustness_fill": "neighbour",
    # 10_detections: the run on the split's detections (simulated ones when the data has none)
    # and on its ground-truth 2D, on a seeded subset.
    "detection_max_samples": 2000, "detection_hypotheses": [1, 10],
    # 11_samplers: accuracy, spread and calibration against NFE on val; flow_twin trains a
    # flow-matching twin of the run at the same budget (doubles the training: off by default).
    "curve_nfe": [1, 2, 3, 5, 10], "curve_etas": [0.0, 1.0], "curve_hypotheses": 10, "curve_max_samples": 2000,
    "flow_twin": False,
}

PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {
        "description": "synthetic data, seconds per notebook (tests)",
        "params": {
            **_COMMON,
            "dataset": "synthetic", "data_dir": "", "keypoints": "gt", "allow_pickle": False,
            "val_subjects": [], "stride": 2, "num_frames": 24,
            "preset": "tiny",
            "overrides": {"train.max_steps": 40, "train.val_every": 20, "train.log_every": 10},
            "hypothesis_counts": [1, 2, 4], "max_samples": 96, "num_examples": 2, "num_hypotheses": 4,
            "detection_max_samples": 96, "detection_hypotheses": [1, 2],
            "curve_nfe": [1, 2], "curve_etas": [0.0, 1.0], "curve_hypotheses": 2, "curve_max_samples": 32,
            "flow_twin": True,
            "speed_steps": [2, 5], "speed_hypotheses": [1, 2], "speed_ddpm": False,
            "speed_max_samples": 32,
            "ablation_steps": 30, "ablation_dims": [32, 48], "ablation_hypotheses": [1, 2],
            "ablation_batch_size": 32, "ablation_max_samples": 32, "ablation_preset": "tiny",
            "ablations_to_run": ["schedule", "dim", "denoiser"],
            "max_frames": 12, "viewer_frames": 4,
            "cache_hypotheses": 8, "hypothesis_prefixes": [1, 2, 4, 8], "uncertainty_max_samples": 48,
            "robustness_max_samples": 16, "robustness_missing": [0, 2], "robustness_noise_px": [0, 5],
        },
        "notebooks": {},
    },
    "demo": {
        "description": "synthetic data, whole report in < 10 min on a 2-core CPU",
        "params": {
            **_COMMON,
            "dataset": "synthetic", "data_dir": "", "keypoints": "gt", "allow_pickle": False,
            "val_subjects": [], "stride": 1, "num_frames": 0,
            "preset": "demo",
            "overrides": {"train.max_minutes": 3.5},
            "hypothesis_counts": [1, 2, 5, 10, 20], "max_samples": 1000, "num_examples": 4, "num_hypotheses": 10,
            "speed_steps": [2, 5, 10, 20], "speed_hypotheses": [1, 10], "speed_ddpm": True,
            "speed_max_samples": 500,
            "ablation_steps": 300, "ablation_dims": [32, 64, 96], "ablation_hypotheses": [1, 5],
            "ablation_batch_size": 128, "ablation_max_samples": 500, "ablation_preset": "demo",
            "ablations_to_run": ["schedule", "dim", "denoiser"],
            "uncertainty_max_samples": 500,
        },
        "notebooks": {},
    },
    "humaneva": {
        "description": "HumanEva-I (../shared/data/humaneva), CPU preset humaneva_cpu",
        "params": {
            **_COMMON,
            "dataset": "humaneva", "data_dir": "../shared/data/humaneva", "keypoints": "gt",
            "allow_pickle": False,   # the files are pickled: opt in with `report --allow-pickle`
            "val_subjects": [], "stride": 1, "num_frames": 0,
            "preset": "humaneva_cpu",
            "hypothesis_counts": [1, 5, 10, 30], "max_samples": 0, "num_examples": 4, "num_hypotheses": 10,
            "speed_steps": [2, 5, 10, 20], "speed_hypotheses": [1, 10], "speed_ddpm": True,
            "speed_max_samples": 300,
            "ablation_steps": 1000, "ablation_dims": [128, 256, 384], "ablation_hypotheses": [1, 5, 10],
            "ablation_batch_size": 128, "ablation_max_samples": 2000, "ablation_preset": "humaneva_cpu",
            # CPU budget: the ablations need extra trainings; enable with
            # --set ablations_to_run=schedule,dim,denoiser
            "ablations_to_run": [],
        },
        "notebooks": {},
    },
    "h36m": {
        "description": "Human3.6M GT 2D (../shared/data/h36m), S8 held out, CPU preset h36m_cpu",
        "params": {
            **_COMMON,
            "dataset": "h36m", "data_dir": "../shared/data/h36m", "keypoints": "gt",
            "allow_pickle": False, "val_subjects": ["S8"], "stride": 1, "num_frames": 0,
            "preset": "h36m_cpu",
            "hypothesis_counts": [1, 5, 10, 20], "max_samples": 10000, "num_examples": 4, "num_hypotheses": 10,
            "speed_steps": [2, 5, 10, 20], "speed_hypotheses": [1, 10], "speed_ddpm": True,
            "speed_max_samples": 300,
            "ablation_steps": 1000, "ablation_dims": [128, 256, 384], "ablation_hypotheses": [1, 5, 10],
            "ablation_batch_size": 256, "ablation_max_samples": 2000, "ablation_preset": "h36m_cpu",
            # CPU budget: the ablations need extra trainings; enable with
            # --set ablations_to_run=schedule,dim,denoiser
            "ablations_to_run": [],
        },
        "notebooks": {},
    },
    "h36m_sh": {
        "description": "Human3.6M with real Stacked Hourglass 2D detections (../shared/data/h36m), S8 held out, "
                       "CPU preset h36m_det_cpu (detection-ready, missing-joint masking)",
        "params": {
            **_COMMON,
            "dataset": "h36m", "data_dir": "../shared/data/h36m", "keypoints": "sh",
            "allow_pickle": False, "val_subjects": ["S8"], "stride": 1, "num_frames": 0,
            "preset": "h36m_det_cpu",
            "hypothesis_counts": [1, 10], "max_samples": 10000, "num_examples": 4, "num_hypotheses": 10,
            "speed_steps": [2, 5, 10], "speed_hypotheses": [1, 10], "speed_ddpm": False,
            "speed_max_samples": 300,
            "ablation_steps": 1000, "ablation_dims": [128, 256], "ablation_hypotheses": [1, 10],
            "ablation_batch_size": 256, "ablation_max_samples": 2000, "ablation_preset": "h36m_det_cpu",
            "ablations_to_run": [],
            "cache_hypotheses": 20, "hypothesis_prefixes": [1, 5, 10, 20], "uncertainty_max_samples": 1000,
            "detection_max_samples": 10000, "detection_hypotheses": [1, 10],
            # the shipped single-frame and windowed models as rows of the Table I page (N = 10, same samples)
            "reference_models": ["h36m-det", "h36m-det-video"],
        },
        "notebooks": {},
    },
    "paper": {
        "description": "the paper's GPU settings: full presets, DDPM and DDIM sweeps, full ablations",
        "params": {
            **_COMMON,
            "dataset": "h36m", "data_dir": "../shared/data/h36m", "keypoints": "gt",
            "allow_pickle": False, "val_subjects": ["S8"], "stride": 1, "num_frames": 0,
            "preset": "paper",
            "hypothesis_counts": [1, 5, 10, 20, 50], "max_samples": 0, "num_examples": 6, "num_hypotheses": 20,
            "speed_steps": [2, 5, 10, 20], "speed_hypotheses": [1, 10], "speed_ddpm": True,
            "speed_max_samples": 0,
            "ablation_steps": 20000, "ablation_dims": [128, 256, 384], "ablation_hypotheses": [1, 5, 10],
            "ablation_batch_size": 1024, "ablation_max_samples": 0, "ablation_preset": "paper",
            "ablations_to_run": ["schedule", "dim", "denoiser"],
            "uncertainty_max_samples": 0,
        },
        "notebooks": {},
    },
}


PATH_KEYS = ("data_dir", "data_path", "run_dir", "out_dir", "ablation_dir", "keypoints_path")
PATH_LIST_KEYS = ("compare_runs",)
# Path parameters whose profile values are relative to the repository root.
_REPO_RELATIVE = ("data_dir", "keypoints_path")


def check_inputs(params: dict[str, Any], notebooks) -> None:
    """Before a report starts: the dataset folder that 01_data_prep reads exists (ConfigError
    naming the absolute path it looked at and where relative paths are taken from)."""
    if "01_data_prep" not in list(notebooks) or params.get("dataset") == "synthetic":
        return
    data_dir = params.get("data_dir")
    if not data_dir:
        raise ConfigError(f"dataset {params.get('dataset')!r} needs a data folder: pass --set data_dir=PATH")
    path = Path(data_dir)
    if not path.is_dir():
        raise ConfigError(f"data_dir {path}: no such folder (a relative --set data_dir is taken from the "
                          f"current directory {Path.cwd()}; the profiles' own from the repository {repo_root()})")


def repo_root() -> Path:
    """The repository root (the folder holding `diffupose/` and `notebooks/`)."""
    return Path(__file__).resolve().parents[2]     # diffupose/workbench/profiles.py


def profile_names() -> tuple[str, ...]:
    return tuple(PROFILES)


def get_profile(name: str) -> dict[str, Any]:
    """A deep copy of one profile; unknown names raise ConfigError."""
    if name not in PROFILES:
        raise ConfigError(f"unknown report profile {name!r}; known: {', '.join(PROFILES)}")
    return copy.deepcopy(PROFILES[name])


def parse_set(items: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """`["data_dir=/x", "train.lr=1e-3"]` (CLI `--set`) or a dict -> dict of raw values."""
    if not items:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def resolve_parameters(profile: str, report_dir: str | Path,
                       overrides: list[str] | dict[str, Any] | None = None,
                       notebooks: tuple[str, ...] | list[str] = NOTEBOOKS) -> dict[str, dict[str, Any]]:
    """Parameters of each notebook for one report.

    profile: a name in PROFILES. report_dir: where the report is written (paths such as
    `data_path`, `run_dir`, `out_dir` default to places inside it). overrides: `--set` items;
    `section.key` items (config keys like `train.lr`) are merged into the `overrides` parameter,
    other keys must be profile parameters (or one of the report paths). A relative path given
    with `--set` (`data_dir`, `data_path`, `run_dir`, ...) is taken from the current directory;
    the profile's own relative `data_dir` from the repository root. Returns {notebook:
    {parameter: value}} with every profile parameter; the runner passes each notebook only the
    names it declares.
    """
    spec = get_profile(profile)
    params: dict[str, Any] = dict(spec["params"])
    report_dir = Path(report_dir).resolve()
    for key, rel in _REPORT_PATHS.items():
        params[key] = str(report_dir / rel)
    params["profile"] = profile

    config_overrides = dict(params.get("overrides") or {})
    for key, value in parse_set(overrides).items():
        section = key.split(".", 1)[0]
        if "." in key and section in CONFIG_SECTIONS:
            config_overrides[key] = value       # typed by apply_overrides in the notebook
            continue
        if key not in params:
            known = ", ".join(sorted(k for k in params if k not in ("profile",)))
            raise ConfigError(f"--set {key}: not a parameter of profile {profile!r} "
                              f"(nor a config key like train.lr); known: {known}")
        params[key] = coerce_value(value, params[key], key)
        if key in PATH_KEYS and params[key]:
            params[key] = str(Path(params[key]).expanduser().resolve())   # relative: from the current directory
        if key in PATH_LIST_KEYS:
            params[key] = [str(Path(v).expanduser().resolve()) for v in params[key]]
    params["overrides"] = config_overrides
    for key in _REPO_RELATIVE:
        if params.get(key) and not Path(params[key]).is_absolute():
            params[key] = str((repo_root() / params[key]).resolve())

    out = {}
    for name in notebooks:
        nb_params = dict(params)
        nb_params.update(copy.deepcopy(spec.get("notebooks", {}).get(name, {})))
        out[name] = nb_params
    return out
