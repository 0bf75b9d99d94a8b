"""The Python entry for the main job: `diffupose.Lifter`.

    from diffupose import Lifter
    lifter = Lifter.from_pretrained("h36m-det")                 # a shipped model, or a run folder
    result = lifter.lift(keypoints, layout="coco17", image_size=(1920, 1080))
    result.aggregate, result.hypotheses, result.spread, result.present, result.card
    result.save("out/clip", formats=("npz", "html"))

`Lifter` is the inference engine (`diffupose.inference.lifter.Lifter`: loading, sampling,
`predict` on normalised model input) plus `lift`, which takes keypoints as a user holds them — a
numpy array in a detector's layout, a keypoint file or a `Keypoints` — and runs the same
pipeline as `diffupose lift` (`diffupose.lifting.pipeline.lift`): layout mapping, pixel
normalisation, missing joints, the window of a video model, sampling, root placement, card.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.keypoints import Keypoints
from ..inference.lifter import Lifter as _Engine
from .outputs import LiftResult
from .pipeline import lift as _lift_pipeline

__all__ = ["Lifter"]


class Lifter(_Engine):
    """A trained DiffuPose model that lifts 2D keypoints to 3D hypotheses.

    Build one with `Lifter.from_pretrained(name_or_path)`: a shipped model's name (see
    `diffupose models`, e.g. "h36m-det" for detector keypoints, "h36m" for ground-truth-like
    2D) or a training run folder. Then call `lift`."""

    def lift(self, keypoints: np.ndarray | str | os.PathLike | Keypoints, *, layout: str | None = None,
             image_size: tuple[int, int] | None = None, scores: np.ndarray | None = None,
             focal: float | None = None, hypotheses: int = 10, min_score: float = 0.3, people: str = "all",
             missing: str = "auto", smooth: float = 0.0, fps: float = 50.0, frames: np.ndarray | None = None,
             aggregate: str | None = None, sampler: str | None = None, steps: int | None = None,
             flip: bool | None = None, seed: int | None = None, precision: str = "auto",
             calibrated: bool | None = None, progress: bool = False, **options: Any) -> LiftResult:
        """Lift 2D keypoints to 3D.

        keypoints: a numpy array (F, J, 2) or (F, J, 3) (x, y[, score]) of F frames in the
            layout `layout` names; a keypoint file (COCO results, OpenPose JSON or folder, .npy,
            .json arrays); or a `Keypoints`.
        layout: coco17, coco_wholebody, halpe26, body25, mpii16, h36m17, humaneva15; None =
            detect it (a 17-joint array is refused unless it looks like H36M-17: pass
            layout="coco17" for COCO order).
        image_size: (width, height) in pixels; needed for pixel coordinates.
        scores: (F, J) detector scores for a 2-column array; joints below `min_score` are missing.
        focal: focal length in pixels: places the root in metric camera space
            (`result.camera_space`); without it the output is root-relative.
        hypotheses: how many 3D poses to sample per frame (N).
        people: "all" (every detection is a sample) or "best" (one person per frame: a track).
        missing: "auto" (mask missing joints for models trained with masking, else fill them),
            "mask" or "fill". smooth: Gaussian sigma in frames for the aggregate of a track.
        fps: the input's frame rate (BVH frame time; the spacing of a video model's window).
        frames: (F,) increasing frame numbers of an array's rows (default 0..F-1), for a track
            with missing frames or one given at every other frame (0, 2, 4, ... at `fps`).
        aggregate / sampler / steps / flip / seed: override the model's own sampling settings.
        precision: "auto" (bf16 on CPUs with native bf16 for v / flow models: about 2x faster,
            within 0.1 mm), "bf16" or "fp32".
        calibrated: None (default) applies the model's calibration when it has one: the
            hypotheses are scaled about their aggregate so that `radius_90` holds 90 % of the
            truths at the card's settings (the spread grows with it); False gives the raw sampler.
        options: the remaining `diffupose.lifting.pipeline.lift` options (batch_size, out,
            outputs, overwrite).

        Returns a LiftResult: `hypotheses` (F, N, J, 3) and `aggregate` (F, J, 3) metres,
        camera frame, root joint at 0; `spread` (F, J) metres; `present` (F, J); `camera_space`
        (F, J, 3) with a focal length; `card` (model, weights, settings, coordinates);
        `.save(path, formats=...)`."""
        return _lift_pipeline(keypoints, lifter=self, format=layout, image_size=image_size, scores=scores,
                              focal_length=focal, num_hypotheses=hypotheses, min_score=min_score, people=people,
                              missing=missing, smooth=smooth, fps=fps, frames=frames, aggregate=aggregate,
                              sampler=sampler, num_steps=steps, flip=flip, seed=seed, precision=precision,
                              calibrated=calibrated, progress=progress, **options)
