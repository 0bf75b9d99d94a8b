"""Human3.6M loader: plain 17-joint world-pose npz files or VideoPose3D files -> prepared arrays.

Two layouts are read from one data directory:

- plain: `h36m_3d17_*.npz` (e.g. `h36m_3d17_train.npz`), keys `"S1/Walking 1"`, values
  `(F, 17, 3)` float32 metres, world frame; no pickle. 2D = projection of the 3D with the
  calibrated cameras (distortion included, as VideoPose3D does), or, when `keypoints` names an
  existing `data_2d_h36m_<keypoints>.npz` (e.g. `cpn_ft_h36m_dbb`), the detections in that file
  (frame counts must then match exactly).
- VideoPose3D: `data_3d_h36m.npz` (pickled, 32 joints, reduced to 17) plus
  `data_2d_h36m_<keypoints>.npz`; with keypoints "gt" and no such file, 2D = projection. 2D
  longer than the 3D is trimmed (as VideoPose3D does); shorter is an error.

Samples: every `stride`-th frame of every sequence x the 4 cameras.

Splits (whole sequences, never single frames): S1, S5, S6, S7, S8 -> "train"; S9, S11 ->
"test". `val_subjects` (e.g. ["S8"]) moves training subjects to "val"; without them a seeded
`val_fraction` (~10%) of the training sequences is held out as "val".
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DataError
from ..geometry.camera import load_cameras
from ..geometry.skeleton import H36M17
from .detections import DETECTOR_NAMES, detection_files, map_detections, missing_pairs, read_detections
from .prepared import (PreparedData, SequenceRecord, assemble_samples, canonical_actions, open_npz, read_array,
                       require_present)
from .videopose3d import match_keypoints_2d, normalize_sequence_name, read_positions_2d, read_positions_3d

__all__ = ["H36M_ACTIONS", "TRAIN_SUBJECTS", "TEST_SUBJECTS", "canonical_action", "plain_h36m_keys", "read_plain_h36m",
           "assign_splits", "load_h36m", "check_required_splits"]

log = logging.getLogger(__name__)

H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
                "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
                "WalkTogether")
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
PLAIN_GLOB = "h36m_3d17_*.npz"


def canonical_action(name: str) -> str:
    """"Walking 1" -> "Walking", "TakingPhoto 2" -> "Photo", "WalkingDog" -> "WalkDog".
    ValueError for names outside the 15 H36M actions."""
    stem = re.sub(r"\s*\d+$", "", name.strip())
    stem = _ACTION_ALIASES.get(stem, stem)
    if stem not in H36M_ACTIONS:
        raise ValueError(f"unknown H36M action {name!r}; known: {', '.join(H36M_ACTIONS)}")
    return stem


def plain_h36m_keys(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """(subject, sequence name) of every array in plain-layout files (reads no array data)."""
    keys = []
    for path in paths:
        with open_npz(path) as npz:
            for key in npz.files:
                if "/" not in key:
                    raise DataError(f"{path}: key {key!r} is not of the form 'S1/Walking 1'")
                keys.append(tuple(key.split("/", 1)))
    return keys


def read_plain_h36m(paths: Sequence[Path], keys: Iterable[tuple[str, str]] | None = None
                    ) -> dict[tuple[str, str], np.ndarray]:
    """Plain-layout files -> {(subject, sequence name): (F, 17, 3) float32 metres world}.
    keys: read only these (subject, name) pairs (None = all)."""
    wanted = None if keys is None else set(keys)
    out: dict[tuple[str, str], np.ndarray] = {}
    for path in paths:
        with open_npz(path) as npz:
            for key in npz.files:
                if "/" not in key:
                    raise DataError(f"{path}: key {key!r} is not of the form 'S1/Walking 1'")
                subject, name = key.split("/", 1)
                if wanted is not None and (subject, name) not in wanted:
                    continue
                a = read_array(npz, path, key)
                if a.ndim != 3 or a.shape[-1] != 3:
                    raise DataError(f"{path}: {key} has shape {a.shape}, expected (frames, 17, 3)")
                if a.shape[1] != H36M17.num_joints:
                    raise DataError(f"{path}: {key} has {a.shape[1]} joints, expected 17")
                if not np.isfinite(a).all():
                    raise DataError(f"{path}: {key} contains NaN or inf values")
                if (subject, name) in out:
                    raise DataError(f"{path}: sequence {key} also appears in another h36m_3d17 file")
                out[(subject, name)] = a
    return out


def assign_splits(keys: Sequence[tuple[str, str]], train_subjects: Sequence[str], test_subjects: Sequence[str],
                  val_subjects: Sequence[str] | None = None, val_fraction: float = 0.1,
                  seed: int = 0) -> dict[tuple[str, str], str]:
    """Split whole sequences. keys: (subject, sequence) pairs.

    test subjects -> "test"; training subjects -> "train", except `val_subjects` -> "val", or,
    when no val subject is given, a seeded `val_fraction` of the training sequences (at least
    one when there are two or more; chosen from the sorted keys, so the choice depends only on
    the selected sequences and the seed).
    """
    splits = {}
    for k in keys:
        subject = k[0]
        if subject in test_subjects:
            splits[k] = "test"
        elif val_subjects and subject in val_subjects:
            splits[k] = "val"
        elif subject in train_subjects:
            splits[k] = "train"
        else:
            raise DataError(f"subject {subject!r} belongs to no split")
    if not val_subjects and val_fraction > 0:
        train = sorted(k for k, s in splits.items() if s == "train")
        if len(train) >= 2:
            num_val = max(1, int(round(val_fraction * len(train))))
            rng = np.random.default_rng(seed)
            for i in rng.permutation(len(train))[:num_val]:
                splits[train[i]] = "val"
    return splits


def check_required_splits(splits: dict, require_splits: Iterable[str], source: str,
                          expected_subjects: dict[str, Sequence[str]], present: Iterable[str]) -> None:
    """DataError when a required split has no sequence, naming `source` and the subjects it
    lacks; a warning (no error) for an empty test split that nobody required."""
    present = set(present)
    counts = {s: sum(1 for v in splits.values() if v == s) for s in ("train", "val", "test")}
    for split in require_splits:
        if split not in counts:
            raise DataError(f"{source}: unknown split {split!r} in require_splits")
        if counts[split] == 0:
            missing = [s for s in expected_subjects.get(split, ()) if s not in present]
            why = f"subjects {', '.join(missing)} are not in the file" if missing else "no sequence was selected for it"
            raise DataError(f"{source}: required split {split!r} is empty: {why}")
    if counts["test"] == 0 and "test" not in require_splits:
        missing = [s for s in expected_subjects.get("test", ()) if s not in present]
        log.warning("%s: test split is empty (subjects %s not in the file)", source, ", ".join(missing) or "-")


def _find_files(data_dir: Path, keypoints: str) -> tuple[str, list[Path], Path | None]:
    plain = sorted(data_dir.glob(PLAIN_GLOB))
    file_2d = data_dir / f"data_2d_h36m_{keypoints}.npz"
    if plain:
        if keypoints == "gt":
            return "plain", plain, None
        if keypoints != "gt" and detection_files(data_dir, keypoints):
            return "plain+detections", plain, None
        if not file_2d.is_file():
            raise DataError(f"{file_2d}: file not found: unknown keypoints {keypoints!r} "
                            f"(available: {_available_keypoints(data_dir)})")
        return "plain", plain, file_2d
    file_3d = data_dir / "data_3d_h36m.npz"
    if not file_3d.is_file():
        raise DataError(f"{data_dir}: no H36M data found (expected {PLAIN_GLOB} or data_3d_h36m.npz)")
    if file_2d.is_file():
        return "videopose3d", [file_3d], file_2d
    if keypoints != "gt":
        raise DataError(f"{file_2d}: file not found: unknown keypoints {keypoints!r} "
                        f"(available: {_available_keypoints(data_dir)})")
    return "videopose3d", [file_3d], None


def _available_keypoints(data_dir: Path) -> list[str]:
    videopose = {p.name[len("data_2d_h36m_"):-4] for p in data_dir.glob("data_2d_h36m_*.npz")
                 if p.name != "data_2d_h36m_gt.npz"}
    plain = {m.group(1) for p in data_dir.glob("h36m_2d_*_*.npz")
             if (m := re.fullmatch(r"h36m_2d_([A-Za-z0-9_]+?)_[A-Za-z0-9]+\.npz", p.name))}
    return ["gt"] + sorted(videopose | plain)


def load_h36m(data_dir: str | os.PathLike, keypoints: str = "gt", allow_pickle: bool = False,
              subjects: Sequence[str] | None = None, actions: Sequence[str] | None = None,
              val_subjects: Sequence[str] | None = None, val_fraction: float = 0.1, stride: int = 1,
              seed: int = 0, noise_px: float = 0.0, require_splits: Iterable[str] = ()) -> PreparedData:
    """Read Human3.6M from `data_dir` (either layout, see the module docstring) into a
    PreparedData with the standard splits.

    subjects/actions: restrict to these (None = all; action names canonical or aliases);
    a requested subject absent from the file raises DataError naming the file and subjects.
    require_splits: e.g. ("test",) raises DataError when that split ends up empty.
    Steps: find the files, list their sequences, check the requested subjects, select the
    sequences, assign splits, read the poses (and 2D detections), project into the cameras.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    layout, files_3d, file_2d = _find_files(data_dir, keypoints)
    source = ", ".join(str(p) for p in files_3d)
    poses = None
    if layout.startswith("plain"):  # keys first: arrays are read only for the selected sequences
        all_keys = plain_h36m_keys(files_3d)
    else:
        raw = read_positions_3d(files_3d[0], 17, allow_pickle=allow_pickle, reduce_32=True)
        poses = {(s, a): v for s, acts in raw.items() for a, v in acts.items()}
        all_keys = list(poses)
    present = sorted({s for s, _ in all_keys}, key=_subject_order)
    _check_subjects(source, present, subjects, val_subjects)
    selected = _select_sequences(source, all_keys, subjects, actions)
    keys = [(s, n) for s, n, _ in selected]
    splits = assign_splits(keys, TRAIN_SUBJECTS, TEST_SUBJECTS, val_subjects, val_fraction, seed)
    check_required_splits(splits, require_splits, source,
                          {"train": TRAIN_SUBJECTS, "test": TEST_SUBJECTS, "val": val_subjects or TRAIN_SUBJECTS},
                          present)
    if poses is None:
        poses = read_plain_h36m(files_3d, keys)
    keypoints_2d = read_positions_2d(file_2d, 17, 4, allow_pickle=allow_pickle) if file_2d is not None else None
    cameras = load_cameras("h36m")
    for subject, _, _ in selected:
        if subject not in cameras.extrinsics:
            raise DataError(f"{source}: no camera calibration for subject {subject}")
    detections = None
    if layout == "plain+detections":
        detections = _read_detections(data_dir, keypoints, cameras, poses, keys)
    records = _sequence_records(selected, poses, splits, cameras, detections, keypoints_2d, file_2d, layout)
    arrays = assemble_samples(records, stride=stride, noise_px=noise_px, seed=seed, keep_gt=kp_is_detected(layout, file_2d))
    meta = _meta(layout, files_3d, keypoints, file_2d, splits, cameras, detections,
                 stride=stride, seed=seed, noise_px=noise_px, subjects=subjects, actions=actions,
                 val_subjects=val_subjects, val_fraction=val_fraction)
    return PreparedData(**arrays, skeleton=H36M17, dataset="h36m", meta=meta)


def _sequence_records(selected, poses, splits, cameras, detections, keypoints_2d, file_2d, layout
                      ) -> list[SequenceRecord]:
    """One SequenceRecord per selected sequence: its world poses, cameras and 2D (the detections'
    cameras only, when detections are read; a sequence without any is skipped)."""
    records = []
    for subject, name, action in selected:
        world = poses[(subject, name)]
        cams, kp = cameras.cameras(subject), None
        if detections is not None:
            cams = [c for c in cams if (subject, name, c.id) in detections["arrays"]]
            if not cams:
                continue
            kp = [detections["arrays"][(subject, name, c.id)] for c in cams]
        elif keypoints_2d is not None:
            kp = match_keypoints_2d(file_2d, f"{subject}/{name}", world.shape[0],
                                    _lookup_2d(keypoints_2d, file_2d, subject, name),
                                    allow_longer=(layout == "videopose3d"))
        records.append(SequenceRecord(subject=subject, action=action, sequence=f"{subject}/{name}",
                                      poses_world=world, cameras=cams, keypoints_px=kp, split=splits[(subject, name)]))
    return records


def _meta(layout, files_3d, keypoints, file_2d, splits, cameras, detections, *, stride, seed, noise_px, subjects,
          actions, val_subjects, val_fraction) -> dict:
    """The prepared file's meta: files, 2D source, splits and their rule, cameras, missing detections."""
    meta = {
        "dataset": "h36m", "layout": layout, "files_3d": [str(p) for p in files_3d],
        "keypoints": keypoints, "keypoints_source": str(file_2d) if file_2d else "projection (distortion included)",
        "stride": stride, "seed": seed, "noise_px": noise_px, "subjects": subjects, "actions": actions,
        "val_subjects": list(val_subjects) if val_subjects else None,
        "val_rule": (f"subjects {list(val_subjects)}" if val_subjects
                     else f"seeded {val_fraction:.0%} of training sequences (seed {seed})"),
        "val_sequences": sorted(f"{s}/{n}" for (s, n), v in splits.items() if v == "val"),
        "split_subjects": {"train": list(TRAIN_SUBJECTS), "test": list(TEST_SUBJECTS)},
        "cameras": cameras.camera_ids,
        "camera_resolution": {c.id: [c.res_w, c.res_h] for c in cameras.intrinsics},
        "keypoints_2d_name": _source_name(keypoints),
    }
    if detections is not None:
        meta.update({"keypoints_source": ", ".join(str(p) for p in detections["files"]),
                     "detections_layout": detections["layout"],
                     "missing_detections": detections["missing"],
                     "num_missing_detections": len(detections["missing"])})
        if detections["missing"]:
            log.warning("%s: %d sequence/camera pairs have no detections and are skipped: %s%s", meta["keypoints_source"],
                        len(detections["missing"]), ", ".join(detections["missing"][:5]),
                        " ..." if len(detections["missing"]) > 5 else "")
    return meta


def kp_is_detected(layout: str, file_2d: Path | None) -> bool:
    """Whether the prepared 2D is something other than the projection (then the projected
    ground truth is kept beside it as keypoints_2d_gt)."""
    return layout == "plain+detections" or file_2d is not None


def _source_name(keypoints: str) -> str:
    """Human name of a 2D source for cards and tables: GT, SH, CPN, or the keypoints name."""
    if keypoints == "gt":
        return "GT (projected ground truth)"
    if keypoints in DETECTOR_NAMES:
        return f"{keypoints.upper()}: {DETECTOR_NAMES[keypoints]}"
    if keypoints.startswith("cpn"):
        return f"CPN detections ({keypoints})"
    return f"detections ({keypoints})"


def _read_detections(data_dir: Path, keypoints: str, cameras, poses: dict, keys) -> dict:
    """Detections of the selected sequences, mapped to H36M-17 pixels, plus the pairs without any."""
    files = detection_files(data_dir, keypoints)
    res = {c.id: (c.res_w, c.res_h) for c in cameras.intrinsics}
    frames = {k: poses[k].shape[0] for k in keys}
    raw, layout = read_detections(files, keypoints, res, frames)
    arrays = {k: map_detections(v, layout, H36M17) for k, v in raw.items()}
    return {"files": files, "layout": layout, "arrays": arrays,
            "missing": missing_pairs(keys, cameras.camera_ids, raw)}


def _check_subjects(source: str, present: Sequence[str], subjects: Sequence[str] | None,
                    val_subjects: Sequence[str] | None) -> None:
    """Requested and val subjects must be H36M subjects present in the file (one-line DataError)."""
    known = set(TRAIN_SUBJECTS) | set(TEST_SUBJECTS)
    if subjects is not None:
        unknown = [s for s in subjects if s not in known]
        if unknown:
            raise DataError(f"{source}: unknown subjects {unknown}; H36M subjects are {sorted(known, key=_subject_order)}")
        require_present(source, "subjects", subjects, present)
    if val_subjects:
        bad = [s for s in val_subjects if s not in TRAIN_SUBJECTS]
        if bad:
            raise DataError(f"{source}: val subjects {bad} are not training subjects {list(TRAIN_SUBJECTS)}")
        require_present(source, "val subjects", val_subjects, present)
    skipped = [s for s in present if s not in known]
    if skipped:
        log.warning("%s: ignoring subjects outside the H36M protocol: %s", source, skipped)


def _select_sequences(source: str, all_keys, subjects: Sequence[str] | None,
                      actions: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """(subject, sequence name, canonical action) of the wanted sequences, in subject order."""
    wanted_subjects = set(subjects) if subjects is not None else set(TRAIN_SUBJECTS) | set(TEST_SUBJECTS)
    wanted_actions = canonical_actions(source, actions, canonical_action)
    selected: list[tuple[str, str, str]] = []
    for subject, name in sorted(all_keys, key=lambda k: (_subject_order(k[0]), k[1])):
        if subject not in wanted_subjects:
            continue
        try:
            action = canonical_action(name)
        except ValueError as e:
            raise DataError(f"{source}: sequence {subject}/{name}: {e}") from None
        if wanted_actions is None or action in wanted_actions:
            selected.append((subject, name, action))
    if not selected:
        raise DataError(f"{source}: no sequences match subjects={subjects} actions={actions}")
    return selected


def _lookup_2d(keypoints_2d: dict, path: Path, subject: str, name: str) -> list[np.ndarray]:
    if subject not in keypoints_2d:
        raise DataError(f"{path}: no 2D keypoints for subject {subject}")
    per_subject = keypoints_2d[subject]
    if name in per_subject:
        return per_subject[name]
    target = normalize_sequence_name(name, canonical_action)
    for other, value in per_subject.items():
        try:
            if normalize_sequence_name(other, canonical_action) == target:
                return value
        except ValueError:
            continue
    raise DataError(f"{path}: no 2D keypoints for sequence {subject}/{name}")


def _subject_order(subject: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", subject)
    return (int(m.group(1)) if m else 10 ** 6, subject)
