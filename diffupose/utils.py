"""Small shared helpers: device resolution, JSON-safe values, durations and ETAs, atomic
writes, run provenance, a run's `history.jsonl` (`read_history`) and the progress events of a
running report (`emit`, read by `workbench.progress`)."""
from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["as_numpy", "to_jsonable", "format_duration", "eta_seconds", "resolve_device", "atomic_path", "atomic_write_text", "atomic_savez", "check_output_file",
           "environment_info", "git_commit", "HISTORY_FILE", "read_history", "PROGRESS_ENV", "progress_file", "emit"]


def as_numpy(x, dtype=np.float64) -> np.ndarray:
    """numpy array, torch tensor (any device, detached) or nested list -> numpy array of `dtype`
    (float64 by default; `dtype=None` keeps the input's). The one to-numpy helper of the package."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def to_jsonable(value):
    """numpy / torch scalars and arrays, Paths and tuples -> plain JSON types (NaN and inf ->
    None): the one JSON-safe conversion of results, cards and metrics files."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_duration(seconds: float | None) -> str:
    """Seconds -> `m:ss` or `h:mm:ss` (`?` when unknown): every elapsed time and ETA shown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta_seconds(steps_left: int, steps_per_s: float | None, budget_left_s: float | None = None) -> float | None:
    """Seconds to go: the steps left at `steps_per_s` (None when the rate is unknown or 0),
    capped by the wall-clock budget left (`budget_left_s`; None = no cap, never below 0)."""
    eta = max(steps_left, 0) / steps_per_s if steps_per_s else None
    if budget_left_s is not None:
        budget = max(budget_left_s, 0.0)
        eta = budget if eta is None else min(eta, budget)
    return eta


def resolve_device(name: str = "auto", key: str = "device"):
    """`auto` -> cuda if available else cpu; otherwise the named torch device. One-line
    ConfigError (naming `key`, e.g. train.device) for a name torch does not know or a CUDA device
    on a machine without one."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"{key} {name!r} is not a device name ({' '.join(str(e).split())[:120]})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} {name!r}: no CUDA device is available; use auto or cpu")
    return device


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto `path`,
    on error delete it, so a failed write never leaves a partial file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the usual umask-based mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def check_output_file(path: str | os.PathLike, *, overwrite: bool = False, what: str = "output") -> Path:
    """Check before any work that `path` can be written as a new file: not a directory, its
    folder exists or can be created and is writable, and (unless `overwrite`) no file is there.
    Raises a one-line DataError naming the path; returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: {what} path is a directory; give a file name")
    if path.exists() and not overwrite:
        raise DataError(f"{path}: {what} file exists; pass --overwrite to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise DataError(f"{path}: cannot create the {what} file ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{path}: cannot write the {what} file (folder {existing} is not writable)")
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_savez(path: str | os.PathLike, compress: bool = False, **arrays) -> Path:
    """`np.savez` (`np.savez_compressed` with `compress`) of `arrays` to exactly `path`,
    atomically (`atomic_path`: a failed write leaves no partial file; the file gets the usual
    umask-based mode). Written through a file object, so numpy appends no second ".npz" to a
    name that lacks it. Returns `path` as a Path."""
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return path


def git_commit(cwd: str | os.PathLike | None = None, ignore: Sequence[str | os.PathLike] = ()) -> str:
    """Current git commit (with `-dirty` when the tree has changes to tracked files outside the
    folders `ignore`), or `unknown`."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = git_changed_paths(cwd, ignore)
    return sha + ("-dirty" if changed else "")


def git_changed_paths(cwd: str | os.PathLike | None = None, ignore: Sequence[str | os.PathLike] = ()) -> list[str]:
    """Tracked files with uncommitted changes (paths from the repository root), leaving out those
    under the folders `ignore`; [] outside a git checkout or when git is missing."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        top = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip())
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    skip = []
    for folder in ignore:
        try:
            skip.append(Path(folder).resolve().relative_to(top.resolve()).as_posix().rstrip("/") + "/")
        except ValueError:
            continue
    paths = [line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if len(line) > 3]
    return [p for p in paths if not any(p.startswith(prefix) for prefix in skip)]


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """This CPU as /proc/cpuinfo says: {"model": model name, "flags": set of feature flags};
    empty where the file is absent (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "flags": frozenset()}
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and model is None:
            model = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return {"model": model or platform.processor() or platform.machine(), "flags": frozenset(flags)}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX-BF16; Arm BF16), read
    from /proc/cpuinfo; elsewhere bf16 autocast is emulated and slower than fp32."""
    return bool(cpu_info()["flags"] & {"avx512_bf16", "amx_bf16", "bf16"})


def environment_info() -> dict:
    """Provenance recorded with every run and report: commit, python, library versions, device."""
    import torch

    versions = {}
    for pkg in ("diffupose", "torch", "numpy", "plotly", "seaborn", "papermill", "safetensors", "ipywidgets"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "num_threads": torch.get_num_threads(),
        "cpu": cpu_info()["model"], "cpu_count": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
    }


HISTORY_FILE = "history.jsonl"


def read_history(path: str | os.PathLike) -> list[dict]:
    """Rows of a run's `history.jsonl` (one JSON object per line); `path` is the run directory or
    the file. Safe to call while training runs: a partial or blank line is skipped; no file yet
    gives []."""
    path = Path(path)
    path = path / HISTORY_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


# The report runner (workbench.runner) gives each notebook kernel the path of its progress file
# in this variable; `emit` appends one JSON event per line to it (workbench.progress reads them).
PROGRESS_ENV = "DIFFUPOSE_PROGRESS_FILE"


def progress_file() -> Path | None:
    """The progress file of the report this process runs in (None outside a report)."""
    value = os.environ.get(PROGRESS_ENV, "").strip()
    return Path(value) if value else None


def emit(kind: str, **fields: Any) -> bool:
    """Append one event to the progress file (no-op outside a report). Never raises: progress
    must not break the work it reports on. Returns whether the event was written."""
    path = progress_file()
    if path is None:
        return False
    event = {"kind": kind, "time": time.time(), **fields}
    try:
        line = json.dumps(event, default=str, allow_nan=False)
    except ValueError:  # NaN/inf in a field: write them as strings
        line = json.dumps({k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
                           for k, v in event.items()}, default=str)
    try:
        # one write() of one line with O_APPEND: lines of several writers never interleave
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        return False
    return True
