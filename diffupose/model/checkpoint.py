"""Checkpoints in safe formats: safetensors for weights, JSON for the config, and a
`weights_only`-loadable `state.pt` for the optimiser, step and RNG states. Nothing here
ever unpickles code.

Layout of a run directory written by `diffupose.training.train`:

    run_dir/
      config.json  environment.json  history.jsonl
      checkpoint/
        latest/  model.safetensors  ema.safetensors  state.pt  config.json
        best/    (same files; the step with the lowest val MPJPE, held-out *training* data)

Every file is written atomically, and a checkpoint directory is built under a temporary
name and then swapped in, so a crash never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..errors import CheckpointError, ConfigError
from ..geometry.skeleton import Skeleton, get_skeleton
from ..utils import atomic_path, atomic_write_text
from .denoiser import build_denoiser

__all__ = [
    "FORMAT_VERSION", "CHECKPOINT_DIR", "LATEST", "BEST", "WEIGHT_FILES",
    "save_checkpoint", "load_model", "load_training_state", "resolve_checkpoint",
    "read_metadata", "read_training_state", "unwrap", "recover_interrupted_saves", "has_checkpoint",
]

log = logging.getLogger(__name__)

FORMAT = "diffupose-checkpoint"
FORMAT_VERSION = "1"
CHECKPOINT_DIR = "checkpoint"      # under a run directory
LATEST = "latest"
BEST = "best"
WEIGHT_FILES = {"model": "model.safetensors", "ema": "ema.safetensors"}
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain denoiser inside DistributedDataParallel, torch.compile and/or AveragedModel
    (the EMA) wrappers: checkpoints hold plain denoiser state dicts."""
    from torch.optim.swa_utils import AveragedModel

    while True:
        if hasattr(module, "_orig_mod"):          # torch.compile
            module = module._orig_mod
        elif isinstance(module, (torch.nn.parallel.DistributedDataParallel, AveragedModel)):
            module = module.module
        else:
            return module


def _tensors_for_saving(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Own contiguous CPU copies: safetensors refuses tensors that share memory.
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in unwrap(module).state_dict().items()}


def _metadata(config: Config, skeleton: Skeleton, which: str, step: int) -> dict[str, str]:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "weights": which,
        "skeleton": skeleton.name, "num_joints": str(skeleton.num_joints),
        "denoiser": config.model.denoiser, "dim": str(config.model.dim), "step": str(step),
    }


def _swap_in(tmp_dir: Path, final_dir: Path) -> None:
    """Replace `final_dir` by `tmp_dir` (two renames; the old copy is removed afterwards). A
    crash in between leaves `.NAME.old-*/NAME` (and maybe `.NAME.tmp-*`) behind, which
    `recover_interrupted_saves` repairs on the next start."""
    if final_dir.exists():
        old = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}.old-"))
        os.replace(final_dir, old / final_dir.name)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)


def has_checkpoint(ckpt_root: str | os.PathLike) -> bool:
    """Whether `run_dir/checkpoint` holds a `latest` or `best` checkpoint."""
    return any((Path(ckpt_root) / name).is_dir() for name in (LATEST, BEST))


def recover_interrupted_saves(ckpt_root: str | os.PathLike) -> list[str]:
    """Repair what a killed `save_checkpoint` left in `run_dir/checkpoint`: a checkpoint moved
    aside by an interrupted swap (`.best.old-*/best` with no `best`) is moved back; then every
    `.NAME.old-*` and `.NAME.tmp-*` folder is removed. Call before training writes anything
    (a concurrent writer to the same run is not supported). Returns what was done, one line each."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    done = []
    for name in (LATEST, BEST):
        olds = sorted(root.glob(f".{name}.old-*/{name}"), key=lambda p: p.stat().st_mtime)
        if olds and not (root / name).exists():
            os.replace(olds[-1], root / name)
            done.append(f"restored {root / name} from an interrupted save")
    for stale in sorted(root.glob(".*.old-*")) + sorted(root.glob(".*.tmp-*")):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
            done.append(f"removed stale {stale}")
    return done


def save_checkpoint(
    ckpt_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    ema_model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any = None,
    scaler: Any = None,
    step: int,
    epoch: int,
    config: Config,
    skeleton: Skeleton,
    rng_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint directory atomically and return its path.

    `rng_state` / `extra`: tensors, numbers, strings, lists and dicts of those (they go into
    `state.pt`, which must load with `torch.load(weights_only=True)`). `scheduler` (a torch LR
    scheduler) and `scaler` (an AMP GradScaler) are anything with `state_dict()`, or None.
    Weights holding NaN/inf are refused (CheckpointError) and nothing is written.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=ckpt_dir.parent, prefix=f".{ckpt_dir.name}.tmp-"))
    try:
        from safetensors.torch import save_file

        weights = {"model": model, "ema": ema_model if ema_model is not None else model}
        for which, module in weights.items():
            tensors = _tensors_for_saving(module)
            bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
            if bad:
                raise CheckpointError(f"{ckpt_dir}: not saved: the {which} weights hold NaN/inf "
                                      f"(e.g. {bad[0]!r}) at step {step}")
            with atomic_path(tmp_dir / WEIGHT_FILES[which]) as tmp:
                save_file(tensors, str(tmp), metadata=_metadata(config, skeleton, which, step))
        state = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "epoch": int(epoch),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state or {},
            "extra": extra or {},
        }
        with atomic_path(tmp_dir / STATE_FILE) as tmp:
            torch.save(state, tmp)
        atomic_write_text(tmp_dir / CONFIG_FILE, config.to_json())
        _swap_in(tmp_dir, ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return ckpt_dir


def resolve_checkpoint(path: str | os.PathLike, select: str = BEST) -> Path:
    """Find a checkpoint directory from a run directory, its `checkpoint/` folder, a checkpoint
    directory or one of its `.safetensors` files. `select`: `best` (falls back to `latest` when
    the run has no validated checkpoint) or `latest`."""
    path = Path(path)
    if select not in (BEST, LATEST):
        raise CheckpointError(f"{path}: unknown checkpoint selection {select!r}; use 'best' or 'latest'")
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint or run directory not found")
    if (path / CONFIG_FILE).exists() and any((path / f).exists() for f in WEIGHT_FILES.values()):
        return path
    for root in (path / CHECKPOINT_DIR, path):
        for name in ((select, LATEST) if select == BEST else (LATEST,)):
            if (root / name).is_dir():
                return root / name
    raise CheckpointError(f"{path}: no checkpoint found (expected {CHECKPOINT_DIR}/{LATEST} or model/ema .safetensors)")


def read_metadata(file: str | os.PathLike) -> dict[str, str]:
    """The safetensors header metadata of a checkpoint weight file (reads no tensors)."""
    from safetensors import safe_open

    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"{file}: weight file not found")
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{file}: not a readable safetensors file ({_one_line(e)})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a DiffuPose checkpoint (no '{FORMAT}' metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{file}: checkpoint format version {meta.get('format_version')!r}, "
                              f"this code reads {FORMAT_VERSION!r}")
    return meta


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except Exception as e:
        raise CheckpointError(f"{file}: corrupt or truncated safetensors file ({_one_line(e)})") from None


def _load_weights_into(module: torch.nn.Module, file: Path) -> None:
    """Strict load with one-line errors for missing/unexpected keys and shape mismatches."""
    tensors = _read_weights(file)
    target = unwrap(module).state_dict()
    missing = sorted(set(target) - set(tensors))
    unexpected = sorted(set(tensors) - set(target))
    if missing or unexpected:
        raise CheckpointError(f"{file}: does not match the model built from its config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, t in tensors.items():
        if t.shape != target[name].shape:
            raise CheckpointError(f"{file}: tensor {name!r} has shape {tuple(t.shape)} but the model "
                                  f"expects {tuple(target[name].shape)}")
    unwrap(module).load_state_dict(tensors, strict=True)


def _read_config(ckpt_dir: Path) -> Config:
    file = ckpt_dir / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: checkpoint config not found")
    try:
        return Config.from_json(file)
    except ConfigError as e:   # the message starts with the file name
        raise CheckpointError(f"bad checkpoint config: {_one_line(e)}") from None


def load_model(
    path: str | os.PathLike,
    which: str = "ema",
    device: str | torch.device = "cpu",
    *,
    select: str = BEST,
    expect_skeleton: str | Skeleton | None = None,
    expect_dim: int | None = None,
) -> tuple[torch.nn.Module, Config, Skeleton]:
    """Rebuild the denoiser from a checkpoint's config and load its weights (eval mode).

    path: run directory, checkpoint directory or weight file. which: `ema` (what evaluation
    uses) or `model` (raw weights). select: `best` (by val MPJPE; falls back to `latest`) or
    `latest`. `expect_skeleton` / `expect_dim` guard against loading a checkpoint trained on
    another skeleton or width. Raises CheckpointError with one line on any problem.
    """
    if which not in WEIGHT_FILES:
        raise CheckpointError(f"{path}: unknown weights {which!r}; use 'ema' or 'model'")
    path = Path(path)
    ckpt_dir = resolve_checkpoint(path, select)
    file = path if path.is_file() and path.suffix == ".safetensors" else ckpt_dir / WEIGHT_FILES[which]
    meta = read_metadata(file)
    cfg = _read_config(ckpt_dir)
    try:
        skeleton = get_skeleton(meta["skeleton"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{file}: unknown skeleton {meta.get('skeleton')!r} in metadata") from None
    if expect_skeleton is not None:
        want = expect_skeleton.name if isinstance(expect_skeleton, Skeleton) else str(expect_skeleton)
        if skeleton.name != want:
            raise CheckpointError(f"{file}: checkpoint was trained on skeleton {skeleton.name!r}, "
                                  f"expected {want!r}")
    if meta.get("dim") != str(cfg.model.dim) or meta.get("denoiser") != cfg.model.denoiser:
        raise CheckpointError(f"{file}: metadata (denoiser {meta.get('denoiser')}, dim {meta.get('dim')}) "
                              f"disagrees with {ckpt_dir / CONFIG_FILE}")
    if expect_dim is not None and cfg.model.dim != int(expect_dim):
        raise CheckpointError(f"{file}: checkpoint has model dim {cfg.model.dim}, expected {expect_dim}")
    denoiser = build_denoiser(cfg.model, skeleton)
    _load_weights_into(denoiser, file)
    return denoiser.to(device).eval(), cfg, skeleton


def read_training_state(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """The plain contents of a checkpoint's `state.pt` (loaded with weights_only; one-line
    CheckpointError when missing, unreadable or foreign)."""
    file = Path(ckpt_dir) / STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: training state not found")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{file}: unreadable training state ({_one_line(e)})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{file}: not a DiffuPose training state (format {FORMAT_VERSION})")
    return state


def load_training_state(
    ckpt_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    ema_model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any = None,
    scaler: Any = None,
) -> dict[str, Any]:
    """Restore weights, EMA, optimiser, LR scheduler and AMP scaler in place (each optional);
    return `{"step", "epoch", "rng", "extra"}` from `state.pt` (loaded with weights_only)."""
    ckpt_dir = Path(ckpt_dir)
    _load_weights_into(model, ckpt_dir / WEIGHT_FILES["model"])
    if ema_model is not None:
        _load_weights_into(ema_model, ckpt_dir / WEIGHT_FILES["ema"])
    state = read_training_state(ckpt_dir)
    file = ckpt_dir / STATE_FILE
    try:
        if optimizer is not None and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{file}: optimiser state does not fit this model ({_one_line(e)})") from None
    return {"step": state["step"], "epoch": state["epoch"], "rng": state["rng"], "extra": state["extra"]}
