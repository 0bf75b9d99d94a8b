"""2D keypoints from detectors: readers, layouts and the mapping to the model's skeleton.

Supported inputs (`format=` names; auto-detected by structure and joint count):

- `coco17`: COCO keypoint results JSON, a list of `{"image_id", "keypoints": [x, y, v] x 17,
  "score"}` (top-down detectors write this); a COCO annotation file (`{"annotations": [...]}`)
  is read the same way;
- `coco_wholebody`: the same structure with 133 triplets; the first 17 (the COCO body) are used;
- `halpe26`: AlphaPose's Halpe-26 results (the same structure with 26 triplets);
- `body25`: OpenPose BODY_25 per-frame JSON (`{"people": [{"pose_keypoints_2d": [x, y, c] x 25}]}`);
  a folder of per-frame files (natural filename order) is one track;
- `mpii16`: MPII-16 arrays; `h36m17` / `humaneva15`: plain arrays in the model's own layout.
  Arrays are `.npy` or `.json` of shape (N, J, 2) or (N, J, 3) (third value = score) or (J, 2|3).
  17 joints is both H36M-17's and COCO-17's count: without `format`, a 17-joint array is read as
  `h36m17` only when its geometry says so (`guess_layout17`), else refused with a one-line error
  naming the layout it looks like and `--format` (pass `format="coco17"` for COCO-ordered arrays).

Values that cannot be image coordinates are refused with a one-line DataError naming the file,
the sample and the joint: any infinite coordinate or score, and any coordinate beyond
`MAX_COORDINATE` (1e6: no image is a million pixels across) of a joint the file claims as
detected (score > 0). Once the image size is known, `check_image_range` also refuses joints
more than `MAX_NORMALISED` (10) normalised units from the image centre, i.e. beyond 4.5 image
widths outside the image (normalised units: the image width spans [-1, 1]).

A keypoint is missing when its score is below `min_score`, its visibility flag is 0, or a
coordinate is NaN (never inf: that is an error, as above). Third values are scores in [0, 1],
or COCO visibility flags {0, 1, 2} (0 = missing); anything else is an error.

Mapping to H36M-17 happens in two stages. First the joints a layout has are copied
(`LAYOUT_TO_H36M`); then every H36M joint still missing is derived from the others by the
rules below, in order (`DERIVED_JOINTS`; a derived joint is missing when any of its sources is).
Weights were fitted by least squares on Human3.6M S1 (a training subject) ground-truth 2D
projections, all four cameras, every 10th frame; the residual is the mean distance of the rule
to the true joint there, in normalised screen units (the mean pelvis-to-thorax length is 0.215).
HumanEva-15 is reached through H36M-17 (`H36M17_TO_HUMANEVA15`).

Derived joints (H36M-17 name = rule; fitted residual):

| joint | rule | residual |
|---|---|---|
| hip (pelvis) | 0.50·left_hip + 0.50·right_hip | 0.0006 |
| thorax | mid_hip + 1.14·(mid_shoulder − mid_hip) | 0.0073 |
| spine | hip + 0.47·(thorax − hip) | 0.0106 |
| neck_nose | thorax + 0.50·(head − thorax) | 0.0190 |
| head (top) | thorax + 1.56·(neck_nose − thorax) | 0.0348 |

(mid_hip = mean of the hips, mid_shoulder = mean of the shoulders.)

Joints each layout provides directly (anything else is derived):

| H36M-17 joint | coco17 | halpe26 | body25 | mpii16 |
|---|---|---|---|---|
| hip | derived | hip | MidHip | pelvis |
| right_hip | right_hip | right_hip | RHip | right_hip |
| right_knee | right_knee | right_knee | RKnee | right_knee |
| right_ankle | right_ankle | right_ankle | RAnkle | right_ankle |
| left_hip | left_hip | left_hip | LHip | left_hip |
| left_knee | left_knee | left_knee | LKnee | left_knee |
| left_ankle | left_ankle | left_ankle | LAnkle | left_ankle |
| spine | derived | derived | derived | derived |
| thorax | derived | derived | derived | thorax |
| neck_nose | nose | nose | Nose | derived |
| head | derived | head | derived | head_top |
| left_shoulder | left_shoulder | left_shoulder | LShoulder | left_shoulder |
| left_elbow | left_elbow | left_elbow | LElbow | left_elbow |
| left_wrist | left_wrist | left_wrist | LWrist | left_wrist |
| right_shoulder | right_shoulder | right_shoulder | RShoulder | right_shoulder |
| right_elbow | right_elbow | right_elbow | RElbow | right_elbow |
| right_wrist | right_wrist | right_wrist | RWrist | right_wrist |

(coco_wholebody maps as coco17.)

When the model was trained without missing-joint masking (`model.missing_joints` false), a
missing joint is filled (`diffupose.model.masking.fill_missing`): linearly interpolated in time from
the frames of the track where it is present, else taken from the mean H36M-17 pose
(`MEAN_POSE_2D_H36M17`, kept with the skeletons in `diffupose.geometry.skeleton`) fitted by scale and translation to the
present joints.

The code: layouts and the mapping in `data.layouts`, reading and writing files in
`data.keypoint_io` (both re-exported here), the shipped examples in `data.keypoint_examples`.
"""
from .keypoint_io import (Keypoints, check_image_range, coco_results_json, detect_format, keypoints_from_array,
                          openpose_json, read_keypoints, synthetic_detections)
from .layouts import (BODY25_NAMES, COCO17_NAMES, DERIVED_JOINTS, FILE_JOINTS, FORMATS, H36M17_TO_HUMANEVA15,
                      HALPE26_NAMES, LAYOUT17_LIMIT, LAYOUT_TO_H36M, LAYOUTS, MAX_COORDINATE, MAX_NORMALISED,
                      MEAN_POSE_2D_H36M17, MPII16_NAMES, derived_joints_table, from_h36m17, guess_layout17,
                      layout17_evidence, layout_table, looks_like_pixels, normalize_keypoints, to_h36m17, to_skeleton)

__all__ = [
    "LAYOUTS", "FORMATS", "LAYOUT_TO_H36M", "DERIVED_JOINTS", "H36M17_TO_HUMANEVA15", "MEAN_POSE_2D_H36M17",
    "Keypoints", "read_keypoints", "keypoints_from_array", "detect_format", "to_h36m17", "to_skeleton",
    "derived_joints_table", "layout_table", "looks_like_pixels", "normalize_keypoints",
    "MAX_COORDINATE", "MAX_NORMALISED", "LAYOUT17_LIMIT", "layout17_evidence", "guess_layout17",
    "check_image_range", "from_h36m17", "coco_results_json", "openpose_json", "synthetic_detections",
    "FILE_JOINTS", "COCO17_NAMES", "HALPE26_NAMES", "BODY25_NAMES", "MPII16_NAMES",
]
