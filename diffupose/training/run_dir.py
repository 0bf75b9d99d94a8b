"""The run directory: whether `out_dir` is started, resumed or refused (`open_run_dir`), its
config, environment and `history.jsonl` (`prepare_run_dir`, `append_history`; `read_history`, the one
reader of it, is `diffupose.utils`'s)
and the run card written at the end of every `train` call (`write_run_card`).

    run_dir/config.json, environment.json   the run's config and where it ran
    run_dir/history.jsonl                    one JSON row per logged step (HISTORY_KEYS)
    run_dir/checkpoint/{latest,best}/        weights and training state (diffupose.model.checkpoint)
    run_dir/run_card.json                    steps, budget, time cap, best val, seed, commit (RUN_CARD_FILE)
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import CheckpointError, ConfigError
from ..model.checkpoint import (BEST, CHECKPOINT_DIR, LATEST, has_checkpoint, read_training_state,
                                recover_interrupted_saves)
from ..utils import HISTORY_FILE, atomic_write_text, environment_info, git_commit, read_history
from .distributed import Dist

__all__ = ["HISTORY_FILE", "HISTORY_KEYS", "RUN_CARD_FILE", "RESUMABLE_CHANGES", "read_history", "open_run_dir",
           "remove_run", "check_resumable", "prepare_run_dir", "append_history", "write_run_card"]

log = logging.getLogger("diffupose.train")

HISTORY_KEYS = ("step", "epoch", "loss", "loss_eps", "loss_2d", "lr", "samples_per_s",
                "val_mpjpe", "val_loss", "time_s")
RUN_CARD_FILE = "run_card.json"
# Config keys a resumed run may change: budget, logging cadence, execution and evaluation
# settings. Anything else differing from the run's config refuses the resume.
RESUMABLE_CHANGES = ("train.max_steps", "train.epochs", "train.max_minutes", "train.log_every",
                     "train.val_every", "train.checkpoint_every", "train.device", "train.amp",
                     "train.compile", "data.path", "eval.")


def open_run_dir(run_dir: Path, cfg: Config, identity: dict, *, resume: bool, overwrite: bool,
                 dist: Dist) -> Path | None:
    """The checkpoint to resume from, or None to start a fresh run; decided before any work.

    Repairs what a killed checkpoint swap left behind, then: no run yet, or `overwrite` ->
    fresh (an existing run's checkpoints and history are removed only with `overwrite`);
    an existing run and not `resume` -> ConfigError; otherwise resume from `latest` (or
    `best` when the run was stopped before its first `latest`) after checking that data
    and config match the run.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: is a file, not a run directory; choose another --out")
    root = run_dir / CHECKPOINT_DIR
    if dist.is_main:
        for line in recover_interrupted_saves(root):
            log.warning("%s", line)
    dist.barrier()
    if not has_checkpoint(root):
        return None
    if overwrite:
        if dist.is_main:
            log.warning("%s: replacing the existing run (overwrite): removing its checkpoints and history", run_dir)
            remove_run(run_dir)
        dist.barrier()
        return None
    ckpt = root / LATEST if (root / LATEST).is_dir() else root / BEST
    step = read_training_state(ckpt)["step"]
    if not resume:
        raise ConfigError(f"{run_dir}: already holds a run (checkpoint at step {step}); pass --overwrite "
                          f"(overwrite=True) to replace it, or resume it (drop --no-resume)")
    check_resumable(run_dir, ckpt, cfg, identity)
    return ckpt


def remove_run(run_dir: Path) -> None:
    """Delete a run's checkpoints, history and run card (the checkpoints renamed aside first, so
    a crash cannot leave a half-deleted checkpoint that looks resumable)."""
    doomed = run_dir / f".{CHECKPOINT_DIR}.removed-{os.getpid()}"
    os.replace(run_dir / CHECKPOINT_DIR, doomed)
    (run_dir / HISTORY_FILE).unlink(missing_ok=True)
    (run_dir / RUN_CARD_FILE).unlink(missing_ok=True)        # the replaced run's card must not describe the new one
    shutil.rmtree(doomed, ignore_errors=True)


def _flatten(cfg: Config) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}


def check_resumable(run_dir: Path, ckpt: Path, cfg: Config, identity: dict) -> None:
    """ConfigError naming what differs when `cfg` or the data file are not those of the run
    (keys in RESUMABLE_CHANGES may differ; a moved but identical data file is accepted)."""
    try:
        stored = Config.from_json(ckpt / "config.json")
    except ConfigError as e:
        raise CheckpointError(f"cannot resume {run_dir}: {e}") from None
    old, new = _flatten(stored), _flatten(cfg)
    differences = [f"{key} is {old.get(key)!r} in the run, {new[key]!r} now" for key in sorted(new)
                   if not key.startswith(RESUMABLE_CHANGES) and old.get(key) != new[key]]
    stored_data = read_training_state(ckpt)["extra"].get("data")
    if stored_data is None:
        log.warning("%s: the run does not record its data file (older version): cannot check that %s is the same",
                    run_dir, identity["path"])
    elif (stored_data.get("size"), stored_data.get("sha256_head_tail")) != (identity["size"], identity["sha256_head_tail"]):
        differences.insert(0, f"data {identity['path']} ({identity['size']} bytes) is not the file the run was "
                              f"trained on ({stored_data.get('path')}, {stored_data.get('size')} bytes)")
    elif stored_data.get("path") != identity["path"]:
        log.info("%s: data file moved from %s (same size and fingerprint)", run_dir, stored_data.get("path"))
    budget = [f"{key} {old.get(key)!r} -> {new[key]!r}" for key in ("train.max_steps", "train.epochs")
              if old.get(key) != new[key]]
    if budget and not differences and cfg.train.lr_schedule == "cosine":
        log.warning("%s: resuming with a new step budget (%s): the %s learning-rate schedule is laid out again over "
                    "the new budget from step %d on, so the run will not equal one trained with that budget from the "
                    "start (environment.json records the change)", run_dir, ", ".join(budget),
                    cfg.train.lr_schedule, read_training_state(ckpt)["step"])
    if differences:
        more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
        raise ConfigError(f"{run_dir}: refusing to resume: {'; '.join(differences[:3])}{more}; resume with the "
                          f"run's data and config, pass --overwrite to start over, or choose another --out")


def prepare_run_dir(run_dir: Path, cfg: Config, resumed_step: int | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    changed = _changed_settings(run_dir, cfg) if resumed_step is not None else {}
    atomic_write_text(run_dir / "config.json", cfg.to_json())
    atomic_write_text(run_dir / "environment.json",
                      json.dumps(run_environment(run_dir, resumed_step, changed), indent=2))
    # Rows logged after the checkpoint we resume from would appear twice: drop them.
    rows = [r for r in read_history(run_dir) if resumed_step is not None and r["step"] <= resumed_step]
    atomic_write_text(run_dir / HISTORY_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def _changed_settings(run_dir: Path, cfg: Config) -> dict[str, list]:
    """{key: [before, now]} of the settings a resume changes (RESUMABLE_CHANGES), against the
    run's config.json; {} when it is unreadable."""
    try:
        old = _flatten(Config.from_json(run_dir / "config.json"))
    except (ConfigError, OSError):
        return {}
    return {key: [old.get(key), value] for key, value in _flatten(cfg).items() if old.get(key) != value}


def run_environment(run_dir: Path, resumed_step: int | None, changed: dict | None = None) -> dict:
    """What environment.json holds: where and with which code the run STARTED (a resume, even one
    with nothing left to train, must not make a model look trained by later code), plus one entry
    per resume in `resumes` (the step it resumed at, that call's environment and the settings it
    changed, `changed`: {key: [before, now]})."""
    env = environment_info()
    path = run_dir / "environment.json"
    if resumed_step is None or not path.is_file():
        return env
    try:
        first = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("%s: unreadable; the resumed run records this call's environment instead", path)
        return env
    entry = {"step": int(resumed_step), **env}
    if changed:
        entry["changed"] = changed
    first["resumes"] = [*first.get("resumes", []), entry]
    return first


def append_history(run_dir: Path, row: dict) -> None:
    with open(run_dir / HISTORY_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


def write_run_card(run_dir: Path, *, steps: int, max_steps: int, stopped_by_time_cap: bool, max_minutes: float,
                   training_seconds: float, best_val_mpjpe: float | None, seed: int) -> Path:
    """`run_dir/run_card.json` (atomic): how far the run got and why it stopped. `max_steps` is
    the step budget (train.max_steps, or epochs x steps per epoch); `training_minutes` counts
    every call of a resumed run; `best_val_mpjpe_mm` is null without validation."""
    card = {"steps": int(steps), "max_steps": int(max_steps), "stopped_by_time_cap": bool(stopped_by_time_cap),
            "max_minutes": float(max_minutes), "training_minutes": round(training_seconds / 60.0, 3),
            "best_val_mpjpe_mm": best_val_mpjpe, "seed": int(seed), "git_commit": git_commit()}
    path = Path(run_dir) / RUN_CARD_FILE
    atomic_write_text(path, json.dumps(card, indent=2) + "\n")
    return path
