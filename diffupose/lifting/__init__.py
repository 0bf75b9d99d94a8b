"""In-the-wild lifting: a detector's keypoint file -> 3D hypotheses, aggregate, spread and files.

- `pipeline`: `lift` (read, check, map to the model's skeleton, normalise, sample through the
  shared `Lifter`, smooth, place the root, write) and its steps (`lift_keypoints`,
  `prepare_keypoints`, the missing-joint and layout decisions, the card);
- `outputs`: `LiftResult`, what a lift produced, and its files (`plan_outputs` before any work,
  `write_outputs` all or nothing; `LiftResult.save`);
- `bvh`: writing and reading BVH animations of the aggregate sequence.

- `api`: `Lifter`, the Python entry (`Lifter.from_pretrained(name_or_path).lift(keypoints, ...)`).

`diffupose.lift` is the `lift` function and `diffupose.Lifter` the class (the package exports both).
"""
from .outputs import OUTPUT_FORMATS, LiftResult, check_finite, plan_outputs, write_outputs
from .api import Lifter
from .pipeline import (GT_ONLY_WARNING, MISSING_MODES, as_keypoints, check_input, layout_covered, lift, lift_keypoints,
                       model_layouts, place_root, prepare_keypoints, smooth_sequence, trained_on_detections)

__all__ = ["Lifter", "lift", "as_keypoints", "lift_keypoints", "LiftResult", "OUTPUT_FORMATS", "MISSING_MODES", "plan_outputs",
           "write_outputs", "check_finite", "check_input", "prepare_keypoints", "smooth_sequence", "place_root",
           "trained_on_detections", "model_layouts", "layout_covered", "GT_ONLY_WARNING"]
