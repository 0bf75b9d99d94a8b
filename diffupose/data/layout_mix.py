"""Training inputs in the detector's own joint set: the H36M-17 2D a model sees when a keypoint
file in another layout goes through `diffupose lift`.

`lift` maps a layout to H36M-17 by copying the joints the layout has and deriving the rest
(`data.keypoints.to_h36m17`: pelvis from the hips, thorax from shoulders and hips, spine, head
from nose and thorax, …). A model trained only on true H36M-17 2D never saw a derived thorax or
head, and pays for it on COCO input. For complete keypoints the round trip "write the H36M-17
pose in layout L (`from_h36m17`), read it back (`to_h36m17`)" is linear in the joints, so it is
one 17 x 17 matrix per layout, taken here from the mapping functions themselves (never restated).
`LayoutMix` applies, per training sample, the round trip of a layout drawn uniformly from the
configured list (`train.input_layouts`; `h36m17` is the identity), after any detector noise,
so noise and layout combine as they do for a user's detector.

Limits: the eyes and ears of COCO/Halpe/BODY_25 play no part (the mapping never reads them);
the nose stands for H36M's neck/nose joint, which sits a little below a real nose; a layout's
own detector biases (where an MPII "head top" is) come only from real detections in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .keypoints import FORMATS, from_h36m17, to_h36m17

__all__ = ["roundtrip_matrix", "LayoutMix", "LAYOUT_CHOICES"]

# layouts whose round trip to H36M-17 is defined (coco_wholebody maps as coco17)
LAYOUT_CHOICES = tuple(f for f in FORMATS if f not in ("humaneva15", "coco_wholebody"))


def roundtrip_matrix(layout: str) -> np.ndarray:
    """(17, 17) M with to_h36m17(from_h36m17(x, layout)) = M @ x for complete H36M-17 keypoints."""
    if layout not in LAYOUT_CHOICES:
        raise ConfigError(f"unknown input layout {layout!r}; known: {', '.join(LAYOUT_CHOICES)}")
    if layout == "h36m17":
        return np.eye(17)
    basis = np.repeat(np.eye(17)[:, :, None], 2, axis=2)            # pose k: joint k at (1, 1)
    written = from_h36m17(basis, layout)
    present = np.isfinite(written).all(axis=-1)
    mapped, ok = to_h36m17(written, present, layout)
    if not ok.all():
        raise ConfigError(f"layout {layout}: some H36M-17 joints cannot be derived from it")
    return mapped[:, :, 0].T                                        # [j, k]: weight of input joint k


@dataclass
class LayoutMix:
    """Per-sample layout round trips: matrices (L, 17, 17) and the layout names."""

    matrices: torch.Tensor
    layouts: tuple[str, ...]

    @classmethod
    def build(cls, layouts: Sequence[str], device: torch.device | str = "cpu") -> "LayoutMix":
        layouts = tuple(layouts)
        if not layouts:
            raise ConfigError("train.input_layouts is empty")
        mats = np.stack([roundtrip_matrix(name) for name in layouts]).astype(np.float32)
        return cls(torch.from_numpy(mats).to(device), layouts)

    def apply(self, keypoints_2d: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 17, 2) -> (B, 17, 2): each sample through a uniformly drawn layout's round trip
        (a window (B, W, 17, 2): each sample's frames through the same layout)."""
        idx = torch.randint(0, len(self.layouts), (keypoints_2d.shape[0],), generator=generator,
                            device=keypoints_2d.device)
        matrices = self.matrices[idx].to(keypoints_2d.dtype)
        if keypoints_2d.ndim == 4:                   # a window (B, W, J, 2): one layout for all its frames
            return torch.einsum("bjk,bwkc->bwjc", matrices, keypoints_2d)
        return torch.einsum("bjk,bkc->bjc", matrices, keypoints_2d)
