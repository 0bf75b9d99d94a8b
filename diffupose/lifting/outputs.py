"""The files of a lift: `.npz` and `.json` (every hypothesis, the aggregate, the spread, the
card), `.bvh` of the aggregate sequence (`lifting.bvh`) and the `.html` viewer with
`plotly.min.js` beside it (`diffupose.viz.lift_viewer`).

`plan_outputs` checks the paths before any work (an existing file is never replaced without
`overwrite=True`); `write_outputs` writes all or nothing: temporaries beside the targets, then
renames, undone on failure.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.windows import frame_numbers
from ..errors import ConfigError
from ..viz.curves import PLOTLY_JS_NAME
from ..viz.lift_viewer import write_lift_viewer
from .bvh import write_bvh
from .result import LiftResult, check_finite

__all__ = ["OUTPUT_FORMATS", "plan_outputs", "write_outputs"]

log = logging.getLogger("diffupose.lift")     # the name its messages always had

OUTPUT_FORMATS: tuple[str, ...] = ("npz", "json", "bvh", "html")


def plan_outputs(out: str | os.PathLike, formats: Sequence[str] = OUTPUT_FORMATS, overwrite: bool = False
                 ) -> dict[str, Path]:
    """Output paths by format from `out` (a stem, or a path ending in one of the formats'
    suffixes). Raises ConfigError before any work when a format is unknown, the folder cannot
    be created, or a file exists and `overwrite` is False."""
    out = Path(out)
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown output format(s) {unknown}; known: {', '.join(OUTPUT_FORMATS)}")
    if not formats:
        raise ConfigError("no output format selected")
    stem = out.with_suffix("") if out.suffix.lstrip(".") in OUTPUT_FORMATS else out
    if out.suffix and out.suffix.lstrip(".") not in OUTPUT_FORMATS:
        raise ConfigError(f"{out}: output must end in one of .npz, .json, .bvh, .html (or have no suffix)")
    if stem.exists() and stem.is_dir():
        raise ConfigError(f"{out}: is a directory; give a file name such as {stem / 'lift.npz'}")
    parent = stem.parent
    for p in [parent, *parent.parents]:
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"{out}: {p} is a file, not a folder")
            if not os.access(p, os.W_OK):
                raise ConfigError(f"{out}: folder {p} is not writable")
            break
    paths = {f: stem.with_name(stem.name + "." + f) for f in formats}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists; pass --overwrite (overwrite=True) to replace it")
    return paths


def _to_json(result: LiftResult) -> str:
    def r(a, d=5):
        return np.round(np.asarray(a, dtype=np.float64), d).tolist()

    doc = {"card": result.card, "joint_names": list(result.skeleton.joint_names),
           "frame": result.frame.tolist(), "person": result.person.tolist(),
           "hypotheses": r(result.hypotheses), "aggregate": r(result.aggregate), "spread": r(result.spread),
           "keypoints_2d": r(result.keypoints_2d), "keypoint_mask": result.keypoint_mask.tolist(),
           "root_translation": None if result.root_translation is None else r(result.root_translation)}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def write_outputs(result: LiftResult, paths: dict[str, Path], *, fps: float = 50.0, viewer_frames: int = 200
                  ) -> dict[str, Path]:
    """Write the planned files (see `plan_outputs`) all or nothing; returns {format: path}.

    Every file is first written to a hidden temporary beside its target, then all are renamed
    into place. When anything fails, the temporaries, the files this call put in place (a file
    it replaced is restored), a `plotly.min.js` and folders it created are removed: no partial
    output, and files that were there before are left as they were."""
    check_finite(result)
    if not paths:
        return {}
    folder = next(iter(paths.values())).parent
    new_folders = [p for p in [folder, *folder.parents] if not p.exists()]
    plotly_js = folder / PLOTLY_JS_NAME
    had_plotly_js = plotly_js.exists()
    staged: dict[str, Path] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for fmt in ("bvh", "html", "npz", "json"):          # the BVH's error goes into the card first
            if fmt in paths:
                staged[fmt] = tmp = _temporary(paths[fmt])
                _write_one(fmt, result, tmp, paths[fmt], fps, viewer_frames)
        _commit(staged, paths)
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        if "bvh" in staged:
            result.card.pop("bvh", None)
        if "html" in paths and not had_plotly_js:
            plotly_js.unlink(missing_ok=True)
        for p in new_folders:                                   # deepest first; only if left empty
            try:
                p.rmdir()
            except OSError:
                break
        raise
    written = {fmt: paths[fmt] for fmt in staged}
    result.files = written
    return written


def frame_interval(frame) -> float:
    """Frame numbers between two consecutive samples of a track (the median step: a track of
    every other frame has 2), or 1 when the frame ids are not increasing numbers. The BVH's
    frame time is this step over the input's frame rate."""
    times = frame_numbers(frame)
    return float(np.median(np.diff(times))) if times is not None and len(times) > 1 else 1.0


def _temporary(target: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    return Path(tmp)


def _write_one(fmt: str, result: LiftResult, tmp: Path, target: Path, fps: float, viewer_frames: int) -> None:
    if fmt == "bvh":
        if len(set(result.frame.tolist())) != len(result):
            log.warning("%s: several people per frame; the BVH holds the samples in file order as frames", target)
        step = frame_interval(result.frame)
        error = write_bvh(tmp, result.aggregate, result.skeleton, frame_time=step / fps,
                          root_positions=result.poses_camera[:, 0] if result.root_translation is not None else None)
        result.card["bvh"] = {"units": "centimetres, Y up (x, -y, -z of the camera frame)", "fps": fps / step,
                              "frame_time_s": step / fps,
                              "max_deviation_mm": round(error * 1000, 3),
                              "note": "fixed skeleton at the mean bone lengths; bone directions exact"}
    elif fmt == "html":
        write_lift_viewer(result, tmp, max_frames=viewer_frames)
    elif fmt == "npz":
        with open(tmp, "wb") as fh:
            np.savez(fh, **result.arrays(), skeleton=np.array(result.skeleton.name),
                     card_json=np.array(json.dumps(result.card, default=str)))
    else:
        tmp.write_text(_to_json(result))


def _commit(staged: dict[str, Path], paths: dict[str, Path]) -> None:
    """Rename the staged temporaries onto their targets; on failure undo the renames done so far
    (restoring any file that was replaced) and re-raise."""
    umask = os.umask(0)
    os.umask(umask)
    done: list[tuple[Path, Path | None]] = []
    try:
        for fmt, tmp in staged.items():
            target = paths[fmt]
            os.chmod(tmp, 0o666 & ~umask)                     # mkstemp makes 0600
            backup = None
            if target.exists():
                backup = _temporary(target)
                try:
                    os.replace(target, backup)
                except BaseException:
                    backup.unlink(missing_ok=True)
                    raise
            done.append((target, backup))
            os.replace(tmp, target)
    except BaseException:
        for target, backup in reversed(done):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        raise
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)
