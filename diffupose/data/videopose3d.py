"""Readers for VideoPose3D-format npz files (Human3.6M and HumanEva).

- 3D: `data_3d_<dataset>.npz`, key `positions_3d`, a pickled dict
  `{subject: {action: (F, J, 3) metres, world frame}}` (H36M: J = 32, reduced to 17 here).
- 2D: `data_2d_<dataset>_<keypoints>.npz`, key `positions_2d`, a pickled dict
  `{subject: {action: [per camera (F, J2, 2) pixels]}}`, plus `metadata`.

These files are pickles, and unpickling runs code from the file: nothing here unpickles unless
the caller passes `allow_pickle=True` (the CLI's `--allow-pickle`), and then it warns.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..geometry.skeleton import H36M32_TO_17
from .prepared import open_npz, read_array

__all__ = ["load_pickled_dict", "read_positions_3d", "read_positions_2d", "reduce_h36m32_to_17",
           "match_keypoints_2d", "normalize_sequence_name"]


def load_pickled_dict(path: str | os.PathLike, key: str, allow_pickle: bool = False) -> dict:
    """The pickled dict stored under `key` of a VideoPose3D npz.

    Without `allow_pickle` raises DataError asking for --allow-pickle; with it, warns that the
    file is being unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not allow_pickle:
        raise DataError(f"{path}: VideoPose3D files store pickled dicts and are not unpickled by "
                        "default; pass --allow-pickle (allow_pickle=True) if you trust this file")
    warnings.warn(f"unpickling {path} (key {key!r}): only do this for files you trust", stacklevel=3)
    with open_npz(path, allow_pickle=True) as npz:
        value = read_array(npz, path, key, allow_pickle=True)
    try:
        value = value.item() if value.dtype == object else value
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise DataError(f"{path}: key {key!r} is not a pickled dict of subjects")
    return value


def _check_array(path, where: str, a, num_joints: int | None, channels: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[-1] != channels:
        raise DataError(f"{path}: {where} has shape {a.shape}, expected (frames, joints, {channels})")
    if num_joints is not None and a.shape[1] != num_joints:
        raise DataError(f"{path}: {where} has {a.shape[1]} joints, expected {num_joints}")
    if a.dtype.kind not in "fiu":
        raise DataError(f"{path}: {where} has non-numeric dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise DataError(f"{path}: {where} contains NaN or inf values")
    return a


def reduce_h36m32_to_17(poses: np.ndarray) -> np.ndarray:
    """poses: (..., 32, C) H36M-32 joints -> (..., 17, C) with `H36M32_TO_17`."""
    if poses.shape[-2] != 32:
        raise ValueError(f"reduce_h36m32_to_17: expected 32 joints, got shape {poses.shape}")
    return poses[..., list(H36M32_TO_17), :]


def read_positions_3d(path: str | os.PathLike, num_joints: int, allow_pickle: bool = False,
                      reduce_32: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """`positions_3d` of a VideoPose3D 3D file as `{subject: {action: (F, J, 3) metres world}}`.

    With `reduce_32`, 32-joint H36M poses are reduced to 17 joints (then `num_joints` = 17).
    Wrong joint counts and non-finite values raise DataError naming the file and sequence.
    """
    raw = load_pickled_dict(path, "positions_3d", allow_pickle)
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in raw.items():
        if not isinstance(actions, dict):
            raise DataError(f"{path}: positions_3d[{subject!r}] is not a dict of actions")
        out[str(subject)] = {}
        for action, a in actions.items():
            where = f"positions_3d[{subject!r}][{action!r}]"
            a = _check_array(path, where, a, None, 3)
            if reduce_32:
                if a.shape[1] != 32:
                    raise DataError(f"{path}: {where} has {a.shape[1]} joints, expected 32 (H36M)")
                a = reduce_h36m32_to_17(a)
            elif a.shape[1] != num_joints:
                raise DataError(f"{path}: {where} has {a.shape[1]} joints, expected {num_joints}")
            out[str(subject)][str(action)] = a
    return out


def read_positions_2d(path: str | os.PathLike, num_joints: int, num_cameras: int,
                      allow_pickle: bool = False) -> dict[str, dict[str, list[np.ndarray]]]:
    """`positions_2d` of a VideoPose3D 2D file: `{subject: {action: [num_cameras x (F, J, 2) px]}}`."""
    raw = load_pickled_dict(path, "positions_2d", allow_pickle)
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in raw.items():
        if not isinstance(actions, dict):
            raise DataError(f"{path}: positions_2d[{subject!r}] is not a dict of actions")
        out[str(subject)] = {}
        for action, per_camera in actions.items():
            where = f"positions_2d[{subject!r}][{action!r}]"
            if not isinstance(per_camera, (list, tuple)) or len(per_camera) != num_cameras:
                n = len(per_camera) if isinstance(per_camera, (list, tuple)) else type(per_camera).__name__
                raise DataError(f"{path}: {where} should be a list of {num_cameras} per-camera arrays, got {n}")
            out[str(subject)][str(action)] = [
                _check_array(path, f"{where}[{i}]", a, num_joints, 2) for i, a in enumerate(per_camera)]
    return out


def match_keypoints_2d(path, sequence: str, num_frames: int, per_camera: list[np.ndarray],
                       allow_longer: bool = True) -> list[np.ndarray]:
    """Per-camera 2D arrays cut to the 3D length `num_frames`.

    VideoPose3D trims 2D that is longer than the 3D (detections for a few extra video frames);
    with `allow_longer=False` the counts must be equal. Shorter 2D is always an error.
    """
    out = []
    for i, a in enumerate(per_camera):
        if a.shape[0] < num_frames or (not allow_longer and a.shape[0] != num_frames):
            raise DataError(f"{path}: {sequence} camera {i} has {a.shape[0]} frames of 2D keypoints "
                            f"but the 3D poses have {num_frames}")
        out.append(a[:num_frames])
    return out


_TRIAL = re.compile(r"^(.*?)(?:\s+(\d+))?$")


def normalize_sequence_name(name: str, canonical) -> tuple[str, str]:
    """("TakingPhoto 1", canonical_fn) -> ("Photo", "1"): a key for matching sequences whose
    files spell the action differently; `canonical` maps the action stem to its canonical name."""
    m = _TRIAL.match(name.strip())
    stem, trial = m.group(1), m.group(2) or ""
    return canonical(stem), trial
