"""What `lift` produces: `LiftResult` (hypotheses, aggregate, spread, input as the model saw it,
root, card) and the check that none of it is NaN or inf before anything is written."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

__all__ = ["LiftResult", "check_finite"]


@dataclass
class LiftResult:
    """Everything `lift` produced. N samples, H hypotheses, J joints of the model's skeleton.

    hypotheses: (N, H, J, 3) metres, root-relative, camera frame; aggregate: (N, J, 3) (smoothed
    when asked); spread: (N, J) metres, mean distance of the hypotheses to their mean;
    keypoints_2d: (N, J, 2) normalised input as the model saw it (missing joints filled);
    keypoint_mask: (N, J) True = present in the input; root_translation: (N, 3) metres or None;
    frame, person: (N,) where each sample came from; card: provenance and settings.
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

    def __len__(self) -> int:
        return int(self.hypotheses.shape[0])

    @property
    def poses_camera(self) -> np.ndarray | None:
        """(N, J, 3) aggregate placed at the estimated root, or None without a focal length."""
        if self.root_translation is None:
            return None
        return self.aggregate + self.root_translation[:, None, :]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"hypotheses": self.hypotheses.astype(np.float32), "aggregate": self.aggregate.astype(np.float32),
               "spread": self.spread.astype(np.float32), "keypoints_2d": self.keypoints_2d.astype(np.float32),
               "keypoint_mask": self.keypoint_mask.astype(bool), "frame": self.frame.astype(str),
               "person": self.person.astype(np.int64)}
        if self.root_translation is not None:
            out["root_translation"] = self.root_translation.astype(np.float32)
        return out


def check_finite(result: LiftResult) -> None:
    """One-line DataError when any output value is NaN or inf (nothing is written then)."""
    arrays = {"hypotheses": result.hypotheses, "aggregate": result.aggregate, "spread": result.spread,
              "keypoints_2d": result.keypoints_2d, "root_translation": result.root_translation}
    for name, a in arrays.items():
        if a is None:
            continue
        bad = ~np.isfinite(np.asarray(a, dtype=np.float64)).reshape(len(a), -1).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{result.card.get('source', 'keypoints')}: the lift of sample {i} (frame "
                            f"{result.frame[i]}) has non-finite {name} ({int(bad.sum())} of {len(a)} samples); "
                            f"check that input's coordinates and --image-size; nothing was written")
