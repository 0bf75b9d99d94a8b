"""HumanEva-I loader: VideoPose3D files -> prepared arrays (15 joints, 3 cameras, 640x480).

Files in `data_dir`: `data_3d_humaneva15.npz` (pickled `positions_3d`, subjects "Train/S1",
"Validate/S1", ..., actions "Walking 1 chunk0", ...; (F, 15, 3) metres world) and
`data_2d_humaneva15_<keypoints>.npz` (pickled `positions_2d`, 3 per-camera (F, 15, 2) pixel
arrays for C1, C2, C3). Extrinsics come from the packaged cameras (keyed by subject without the
split prefix); HumanEva ships no intrinsics, so the `intrinsics` array is NaN and 2D must come
from a 2D file (it cannot be projected).

Output: subject "S1" (split prefix dropped; `sequence` keeps it, e.g.
"Train/S1/Walking 1 chunk0"), action "Walking" / "Jog" / "Box" / "Gestures" / "ThrowCatch".

Splits (whole chunks, never single frames): `Train/*` -> "train", `Validate/*` -> "test" (the
standard protocol evaluates on Validate). Validation: with `val_subjects` (e.g. ["S3"]) those
training subjects' chunks go to "val"; otherwise, for every (subject, action) of the Train split
with two or more chunks, its last chunk (highest chunk number) goes to "val"; a (subject, action)
with a single chunk gives the last 20 % of its frames to "val" (a contiguous block), so every subject x action cell of Table III has held-out data.
Default actions: Walking, Jog, Box (the protocol's Walk, Jog, Box).
"""
from __future__ import annotations

import logging
import os
import re

import numpy as np
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import DataError
from ..geometry.camera import load_cameras
from ..geometry.skeleton import HUMANEVA15
from .h36m import check_required_splits
from .prepared import PreparedData, SequenceRecord, assemble_samples, canonical_actions, require_present
from .videopose3d import match_keypoints_2d, read_positions_2d, read_positions_3d

__all__ = ["HUMANEVA_ACTIONS", "DEFAULT_ACTIONS", "canonical_humaneva_action", "load_humaneva"]

log = logging.getLogger(__name__)

HUMANEVA_ACTIONS = ("Walking", "Jog", "Box", "Gestures", "ThrowCatch")
DEFAULT_ACTIONS = ("Walking", "Jog", "Box")
_ALIASES = {"Walk": "Walking", "Jogging": "Jog", "Boxing": "Box", "Gesture": "Gestures"}
_SEQ = re.compile(r"^(?P<action>[A-Za-z]+)(?:\s+(?P<trial>\d+))?(?:\s+chunk(?P<chunk>\d+))?$")
SPLIT_OF_PREFIX = {"Train": "train", "Validate": "test"}


# Held-out tail of a (subject, action) that has only one chunk: a contiguous block of frames,
# never random frames.
TAIL_FRACTION = 0.2


def canonical_humaneva_action(name: str) -> str:
    """"Walking 1 chunk0" -> "Walking", "Walk" -> "Walking". ValueError when unknown."""
    m = _SEQ.match(name.strip())
    stem = m.group("action") if m else name
    stem = _ALIASES.get(stem, stem)
    if stem not in HUMANEVA_ACTIONS:
        raise ValueError(f"unknown HumanEva action {name!r}; known: {', '.join(HUMANEVA_ACTIONS)}")
    return stem


def _chunk_number(name: str) -> int:
    m = _SEQ.match(name.strip())
    return int(m.group("chunk")) if m and m.group("chunk") else 0


def load_humaneva(data_dir: str | os.PathLike, keypoints: str = "gt", allow_pickle: bool = False,
                  subjects: Sequence[str] | None = None, actions: Sequence[str] | None = DEFAULT_ACTIONS,
                  val_subjects: Sequence[str] | None = None, stride: int = 1, seed: int = 0,
                  noise_px: float = 0.0, require_splits: Iterable[str] = ()) -> PreparedData:
    """Read HumanEva-I (VideoPose3D format) from `data_dir` into a PreparedData.

    subjects: "S1" (both splits) or "Train/S1" style names; None = all. actions: canonical names
    or aliases (None = all five). See the module docstring for the split rules.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    file_3d, file_2d = _find_files(data_dir, keypoints)
    poses = read_positions_3d(file_3d, HUMANEVA15.num_joints, allow_pickle=allow_pickle)
    source = str(file_3d)

    present = sorted(poses)
    _check_subjects(source, present, subjects, val_subjects)
    wanted_actions = canonical_actions(source, actions, canonical_humaneva_action)
    selected = _select_sequences(source, poses, subjects, wanted_actions)
    if not selected:
        raise DataError(f"{source}: no sequences match subjects={subjects} actions={actions}")
    splits = _assign_splits(selected, val_subjects)
    check_required_splits(splits, require_splits, source,
                          {"test": ["Validate/S1", "Validate/S2", "Validate/S3"]},
                          present)

    keypoints_2d = read_positions_2d(file_2d, HUMANEVA15.num_joints, 3, allow_pickle=allow_pickle)
    cameras = load_cameras("humaneva")
    records = []
    for full, short, name, action in selected:
        if short not in cameras.extrinsics:
            raise DataError(f"{source}: no camera extrinsics for subject {short}")
        if full not in keypoints_2d or name not in keypoints_2d[full]:
            raise DataError(f"{file_2d}: no 2D keypoints for sequence {full}/{name}")
        world = poses[(full)][name]
        kp = match_keypoints_2d(file_2d, f"{full}/{name}", world.shape[0], keypoints_2d[full][name])
        split, frame_split = splits[(full, name)], None
        if split == "train+tail":
            split = "train"
            frame_split = np.where(np.arange(world.shape[0]) >= round(world.shape[0] * (1 - TAIL_FRACTION)),
                                   "val", "train")
        records.append(SequenceRecord(subject=short, action=action, sequence=f"{full}/{name}",
                                      poses_world=world, cameras=cameras.cameras(short),
                                      keypoints_px=kp, split=split, frame_split=frame_split))
    arrays = assemble_samples(records, stride=stride, noise_px=noise_px, seed=seed)
    meta = {
        "dataset": "humaneva", "files": [str(file_3d), str(file_2d)], "keypoints": keypoints,
        "stride": stride, "seed": seed, "noise_px": noise_px, "subjects": subjects,
        "actions": sorted(wanted_actions) if wanted_actions else None,
        "val_subjects": list(val_subjects) if val_subjects else None,
        "val_rule": (f"Train subjects {list(val_subjects)}" if val_subjects
                     else "last chunk of every Train (subject, action) with >= 2 chunks; for a "
                          f"single chunk its last {TAIL_FRACTION:.0%} of frames"),
        "val_sequences": sorted({r.sequence for r in records
                                 if r.split == "val" or (r.frame_split is not None and "val" in r.frame_split)}),
        "split_rule": "Train/* -> train, Validate/* -> test",
        "cameras": cameras.camera_ids,
    }
    return PreparedData(**arrays, skeleton=HUMANEVA15, dataset="humaneva", meta=meta)


def _find_files(data_dir: Path, keypoints: str) -> tuple[Path, Path]:
    """The 3D file and the 2D file of `keypoints` (both required: HumanEva has no intrinsics)."""
    file_3d = data_dir / "data_3d_humaneva15.npz"
    file_2d = data_dir / f"data_2d_humaneva15_{keypoints}.npz"
    if not file_3d.is_file():
        raise DataError(f"{file_3d}: file not found")
    if not file_2d.is_file():
        available = sorted(p.name[len("data_2d_humaneva15_"):-4] for p in data_dir.glob("data_2d_humaneva15_*.npz"))
        raise DataError(f"{file_2d}: file not found: unknown keypoints {keypoints!r} (available: {available}); "
                        "HumanEva has no intrinsics, so 2D cannot be projected")
    return file_3d, file_2d


def _check_subjects(source: str, present: Sequence[str], subjects: Sequence[str] | None,
                    val_subjects: Sequence[str] | None) -> None:
    """Subjects are 'Train/S1' / 'Validate/S1'; requested ones ("S1" or "Train/S1") and val
    subjects (Train subjects) must be in the file (one-line DataError)."""
    for full in present:
        prefix = full.split("/", 1)[0]
        if "/" not in full or prefix not in SPLIT_OF_PREFIX:
            raise DataError(f"{source}: subject {full!r} is not of the form 'Train/S1' or 'Validate/S1'")
    if subjects is not None:
        short_names = present + [full.split("/", 1)[1] for full in present]   # "Train/S1" or "S1"
        require_present(source, "subjects", subjects, short_names)
    if val_subjects:
        missing = [s for s in val_subjects if f"Train/{s.split('/')[-1]}" not in present]
        if missing:
            raise DataError(f"{source}: val subjects {', '.join(missing)} are not Train subjects in the file")


def _select_sequences(source: str, poses: dict, subjects: Sequence[str] | None,
                      wanted_actions: set[str] | None) -> list[tuple[str, str, str, str]]:
    """(full subject, short subject, sequence name, canonical action) of the wanted sequences."""
    selected = []
    for full in sorted(poses):
        short = full.split("/", 1)[1]
        if subjects is not None and full not in subjects and short not in subjects:
            continue
        for name in sorted(poses[full], key=lambda n: (_action_or_name(n), _chunk_number(n), n)):
            try:
                action = canonical_humaneva_action(name)
            except ValueError as e:
                raise DataError(f"{source}: sequence {full}/{name}: {e}") from None
            if wanted_actions is None or action in wanted_actions:
                selected.append((full, short, name, action))
    return selected


def _assign_splits(selected, val_subjects: Sequence[str] | None) -> dict[tuple[str, str], str]:
    """Train/* -> train, Validate/* -> test; val: the val subjects, else the last chunk of each
    Train (subject, action) with >= 2 chunks, and for a single chunk its tail ("train+tail")."""
    splits = {}
    val_short = {v.split("/")[-1] for v in val_subjects or ()}
    for full, short, name, _ in selected:
        split = SPLIT_OF_PREFIX[full.split("/", 1)[0]]
        splits[(full, name)] = "val" if split == "train" and short in val_short else split
    if not val_subjects:
        groups: dict[tuple[str, str], list[str]] = {}
        for full, _, name, action in selected:
            if splits[(full, name)] == "train":
                groups.setdefault((full, action), []).append(name)
        for (full, _), names in groups.items():
            if len(names) >= 2:
                splits[(full, max(names, key=_chunk_number))] = "val"
            else:  # a single chunk: its contiguous tail is held out (see TAIL_FRACTION)
                splits[(full, names[0])] = "train+tail"
    return splits


def _action_or_name(name: str) -> str:
    try:
        return canonical_humaneva_action(name)
    except ValueError:
        return name
