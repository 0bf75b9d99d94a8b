"""The shipped example inputs in `examples/` (SYNTHETIC: Human3.6M S8 ground truth through a
real camera, degraded like a detector): `EXAMPLES` and `make_examples`, which reads the plain
H36M poses (`data.h36m`) — kept apart from `data.keypoints`, which `data.h36m` (through
`data.detections`) imports.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..geometry.camera import load_cameras
from ..utils import atomic_write_text
from .h36m import read_plain_h36m
from .keypoint_io import coco_results_json, openpose_json, synthetic_detections
from .layouts import from_h36m17

__all__ = ["EXAMPLES", "make_examples"]


EXAMPLES = (  # (file or folder name, format, H36M S8 sequence, camera index, first frame, frames, stride)
    ("coco17_S8_walking.json", "coco17", "Walking 1", 0, 0, 100, 2),
    ("openpose_S8_directions", "body25", "Directions 1", 1, 0, 40, 2),
)


def make_examples(data_dir: str | os.PathLike, out_dir: str | os.PathLike, *, noise_px: float = 3.0,
                  num_dropped: int = 2, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Regenerate the shipped example inputs (SYNTHETIC, from ground truth, not detector output).

    Human3.6M S8 (a held-out training subject) world poses from `data_dir`
    (h36m_3d17_train.npz) are projected through a real calibrated H36M camera (distortion
    included), degraded by `synthetic_detections` (Gaussian `noise_px`, scores, `num_dropped`
    low-scored joints per frame; seeded) and written as a COCO-17 results file and an OpenPose
    BODY_25 folder (`EXAMPLES`). Returns the written paths.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    source = data_dir / "h36m_3d17_train.npz"
    cameras = load_cameras("h36m")
    poses = read_plain_h36m([source], [("S8", seq) for _, _, seq, *_ in EXAMPLES])
    written = []
    for k, (name, fmt, seq, cam_index, first, count, stride) in enumerate(EXAMPLES):
        target = out_dir / name
        if target.exists() and not overwrite:
            raise DataError(f"{target} exists; pass overwrite=True to regenerate it")
        cam = cameras.camera("S8", cam_index)
        frames = np.arange(first, first + count * stride, stride)
        world = poses[("S8", seq)][frames]
        px = cam.project(cam.world_to_camera(world))
        layout_px = from_h36m17(px, fmt)
        have = np.isfinite(layout_px).all(axis=-1)
        xy, scores = synthetic_detections(np.nan_to_num(layout_px), noise_px=noise_px, num_dropped=0,
                                          seed=seed + k)
        rng = np.random.default_rng(seed + 100 + k)
        for i in range(len(xy)):  # drop joints among those the layout has
            drop = rng.choice(np.flatnonzero(have[i]), size=num_dropped, replace=False)
            scores[i, drop] = rng.uniform(0.02, 0.2, size=num_dropped)
        xy[~have] = np.nan
        scores[~have] = 0.0
        if fmt == "body25":
            target.mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(frames):
                path = target / f"{seq.split()[0].lower()}_{int(f):06d}_keypoints.json"
                atomic_write_text(path, openpose_json(xy[i:i + 1], scores[i:i + 1]) + "\n")
            written.append(target)
        else:
            atomic_write_text(target, coco_results_json(xy, scores, [int(f) for f in frames]) + "\n")
            written.append(target)
    return written
