"""What `lift` produces and its files: `LiftResult` (hypotheses, aggregate, spread, the 90 % radius
per joint, the input as the model saw it, root, card; `.save`), the check that none of it is NaN or inf before anything
is written (`check_finite`), and the files: `.npz` and `.json` (every hypothesis, the aggregate, the spread, the
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.windows import frame_numbers, frame_step
from ..errors import ConfigError, DataError
from ..viz.export import PLOTLY_JS_NAME
from ..viz.lift_viewer import write_lift_viewer
from .bvh import write_bvh

__all__ = ["OUTPUT_FORMATS", "LiftResult", "check_finite", "plan_outputs", "write_outputs"]

log = logging.getLogger("diffupose.lift")     # the name its messages always had

OUTPUT_FORMATS: tuple[str, ...] = ("npz", "json", "bvh", "html")


@dataclass
class LiftResult:
    """Everything `lift` produced. N samples, H hypotheses, J joints of the model's skeleton.

    hypotheses: (N, H, J, 3) metres, root-relative, camera frame; aggregate: (N, J, 3) (smoothed
    when asked); spread: (N, J) metres, mean distance of the hypotheses to their mean;
    keypoints_2d: (N, J, 2) normalised input as the model saw it (missing joints filled);
    keypoint_mask: (N, J) True = present in the input; root_translation: (N, 3) metres or None;
    frame, person: (N,) where each sample came from; card: provenance and settings;
    radius_90: (N, J) metres, the per-joint radius of the 90 % band (calibrated when the model has
    a calibration: card["radius_90"] says which and on what data), or None.
    """

    hypotheses: np.ndarray
    aggregate: np.ndarray
    spread: np.ndarray
    keypoints_2d: np.ndarray
    keypoint_mask: np.ndarray
    root_translation: np.ndarray | None
    frame: np.ndarray
    person: np.ndarray
    skeleton: object
    card: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    radius_90: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.hypotheses.shape[0])

    @property
    def poses_camera(self) -> np.ndarray | None:
        """(N, J, 3) aggregate placed at the estimated root, or None without a focal length."""
        if self.root_translation is None:
            return None
        return self.aggregate + self.root_translation[:, None, :]

    @property
    def present(self) -> np.ndarray:
        """(N, J) bool, True where the joint was in the input (not missing); `keypoint_mask` is the
        same array under its old name (kept for one release)."""
        return self.keypoint_mask

    @property
    def camera_space(self) -> np.ndarray | None:
        """(N, J, 3) metres: the aggregate placed in the camera frame at the estimated root
        (`root_translation`), or None when no focal length was given."""
        return self.poses_camera

    def save(self, path: str | os.PathLike, formats: Sequence[str] = OUTPUT_FORMATS, *, overwrite: bool = False,
             fps: float | None = None, viewer_js: str = "inline") -> dict[str, Path]:
        """Write the result's files: `path` is a stem (or a path ending in a format's suffix),
        `formats` any of npz, json, bvh, html; an existing file needs `overwrite=True`. All or
        nothing (`write_outputs`). fps: the input's frame rate (default: the one the lift used,
        else 50). viewer_js: `inline` (a self-contained page) or `file` (plotly.min.js beside it).
        Returns {format: path} (also kept in `.files`)."""
        fps = fps if fps is not None else float(self.card.get("fps") or 50.0)
        return write_outputs(self, plan_outputs(path, formats, overwrite), fps=fps, viewer_js=viewer_js)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"hypotheses": self.hypotheses.astype(np.float32), "aggregate": self.aggregate.astype(np.float32),
               "spread": self.spread.astype(np.float32), "keypoints_2d": self.keypoints_2d.astype(np.float32),
               "present": self.present.astype(bool), "keypoint_mask": self.keypoint_mask.astype(bool),
               "frame": self.frame.astype(str), "person": self.person.astype(np.int64)}
        if self.root_translation is not None:
            out["root_translation"] = self.root_translation.astype(np.float32)
            out["camera_space"] = self.camera_space.astype(np.float32)
        if self.radius_90 is not None:
            out["radius_90"] = np.asarray(self.radius_90, dtype=np.float32)
        return out


def check_finite(result: LiftResult) -> None:
    """One-line DataError when any output value is NaN or inf (nothing is written then)."""
    arrays = {"hypotheses": result.hypotheses, "aggregate": result.aggregate, "spread": result.spread,
              "keypoints_2d": result.keypoints_2d, "root_translation": result.root_translation,
              "radius_90": result.radius_90}
    for name, a in arrays.items():
        if a is None:
            continue
        bad = ~np.isfinite(np.asarray(a, dtype=np.float64)).reshape(len(a), -1).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{result.card.get('source', 'keypoints')}: the lift of sample {i} (frame "
                            f"{result.frame[i]}) has non-finite {name} ({int(bad.sum())} of {len(a)} samples); "
                            f"check that input's coordinates and --image-size; nothing was written")


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
           "keypoints_2d": r(result.keypoints_2d), "present": result.present.tolist(),
           "keypoint_mask": result.keypoint_mask.tolist(),
           "root_translation": None if result.root_translation is None else r(result.root_translation),
           "camera_space": None if result.root_translation is None else r(result.camera_space),
           "radius_90": None if result.radius_90 is None else r(result.radius_90)}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def write_outputs(result: LiftResult, paths: dict[str, Path], *, fps: float = 50.0, viewer_frames: int = 200,
                  viewer_js: str = "inline") -> dict[str, Path]:
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
                _write_one(fmt, result, tmp, paths[fmt], fps, viewer_frames, viewer_js)
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
    if "html" in written and viewer_js == "file":      # the script the page loads (beside it, or the report's copy above)
        written["plotly_js"] = plotly_js if plotly_js.is_file() else folder.parent / PLOTLY_JS_NAME
    result.files = written
    return written


def frame_interval(frame) -> float:
    """Frame numbers between two consecutive samples of a track (the most common step,
    `data.windows.frame_step`: a track of every other frame has 2), or 1 when the frame ids are
    not increasing numbers. The BVH's frame time is this step over the input's frame rate."""
    times = frame_numbers(frame)
    return float(frame_step(times)) if times is not None else 1.0


def _temporary(target: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    return Path(tmp)


def _write_one(fmt: str, result: LiftResult, tmp: Path, target: Path, fps: float, viewer_frames: int,
               viewer_js: str = "inline") -> None:
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
        write_lift_viewer(result, tmp, max_frames=viewer_frames, plotly_js=viewer_js)
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
