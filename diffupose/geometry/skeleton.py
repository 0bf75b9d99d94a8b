"""Skeletons: joint names, parents, left/right joints, edges and the GCN adjacency.

Skeletons are data (one place, here). `H36M17` is the standard 17-joint Human3.6M layout
(32 -> 17 reduction as VideoPose3D), `HUMANEVA15` the 15-joint HumanEva-I layout;
`H36M17_TO_HUMANEVA15` maps the one onto the other, and `MEAN_POSE_2D_H36M17` is the mean 2D
pose that fills missing joints (`masking.fill_missing`) — data the model floor and the
keypoint layouts (`data.layouts`) both use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Skeleton", "flip_horizontal", "centre_frame", "H36M17", "HUMANEVA15", "H36M32_TO_17", "H36M17_TO_HUMANEVA15",
           "MEAN_POSE_2D_H36M17", "get_skeleton", "SKELETONS"]


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree. `parents[j]` is the parent of joint j (-1 for the root, joint 0)."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    joints_left: tuple[int, ...]
    joints_right: tuple[int, ...]
    loss_weights: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.parents)
        if len(self.joint_names) != n or len(self.loss_weights) != n:
            raise ValueError(f"skeleton {self.name}: names/parents/weights lengths differ")
        if len(self.joints_left) != len(self.joints_right):
            raise ValueError(f"skeleton {self.name}: left/right joint lists differ in length")

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(child, parent) pairs, one per bone."""
        return [(j, p) for j, p in enumerate(self.parents) if p >= 0]

    @property
    def flip_permutation(self) -> list[int]:
        """Index permutation that swaps left and right joints (an involution)."""
        perm = list(range(self.num_joints))
        for a, b in zip(self.joints_left, self.joints_right):
            perm[a], perm[b] = b, a
        return perm

    def adjacency(self) -> np.ndarray:
        """(J, J) binary symmetric skeleton adjacency without self-loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for c, p in self.edges:
            a[c, p] = a[p, c] = 1.0
        return a

    def normalized_adjacency(self) -> np.ndarray:
        """(J, J) adjacency as the released modulated GCN uses it: row-normalised by degree
        (no self-loops), then the diagonal set to 1."""
        a = self.adjacency()
        a = a / a.sum(axis=1, keepdims=True)
        np.fill_diagonal(a, 1.0)
        return a.astype(np.float32)

    def bone_lengths(self, poses: np.ndarray) -> np.ndarray:
        """poses: (..., J, 3) -> (..., J-1) bone lengths in the order of `edges`."""
        child = [c for c, _ in self.edges]
        parent = [p for _, p in self.edges]
        return np.linalg.norm(poses[..., child, :] - poses[..., parent, :], axis=-1)


# Indices of the 17 kept joints in the 32-joint H36M skeleton.
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

H36M17 = Skeleton(
    name="h36m17",
    joint_names=(
        "hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "spine", "thorax", "neck_nose", "head", "left_shoulder", "left_elbow", "left_wrist",
        "right_shoulder", "right_elbow", "right_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    joints_left=(4, 5, 6, 11, 12, 13),
    joints_right=(1, 2, 3, 14, 15, 16),
    # Released per-joint loss weights: hip 1, knee 2, ankle 4, nose 2, elbow 2, wrist 4.
    loss_weights=(1, 1, 2, 4, 1, 2, 4, 1, 1, 2, 1, 1, 2, 4, 1, 2, 4),
)

HUMANEVA15 = Skeleton(
    name="humaneva15",
    joint_names=(
        "pelvis", "thorax", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
        "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle", "right_hip",
        "right_knee", "right_ankle", "head",
    ),
    parents=(-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    joints_left=(2, 3, 4, 8, 9, 10),
    joints_right=(5, 6, 7, 11, 12, 13),
    # Same rule by joint type as H36M (the released HumanEva list is broken): knee/elbow 2,
    # ankle/wrist 4, everything else 1.
    loss_weights=(1, 1, 1, 2, 4, 1, 2, 4, 1, 2, 4, 1, 2, 4, 1),
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (H36M17, HUMANEVA15)}

# HumanEva-15 joint -> H36M-17 joint index (pelvis, thorax, arms, legs, head).
H36M17_TO_HUMANEVA15: tuple[int, ...] = (0, 8, 11, 12, 13, 14, 15, 16, 4, 5, 6, 1, 2, 3, 10)

# Mean H36M-17 2D pose (pelvis at 0, y down, in units of the pelvis-to-thorax length) over Human3.6M S1
# ground-truth projections (4 cameras, every 10th frame; back views mirrored to face the camera);
# used only to fill joints for a model trained without masking.
MEAN_POSE_2D_H36M17 = np.array([
    [0.000, 0.000], [-0.245, -0.018], [-0.157, 0.683], [-0.139, 1.496], [0.245, 0.018], [0.171, 0.696],
    [0.089, 1.523], [-0.023, -0.464], [0.003, -0.971], [-0.010, -1.140], [-0.009, -1.334], [0.258, -0.845],
    [0.428, -0.376], [0.344, -0.214], [-0.261, -0.855], [-0.416, -0.416], [-0.307, -0.392],
], dtype=np.float64)


def get_skeleton(name: str) -> Skeleton:
    """Look a skeleton up by name (`h36m17`, `humaneva15`)."""
    try:
        return SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None


def centre_frame(keypoints_2d):
    """The frame a windowed 2D input is lifted at: (B, W, J, C) -> (B, J, C) (the window's
    centre, index W // 2); a single-frame (B, J, C) input is returned as it is."""
    return keypoints_2d[:, keypoints_2d.shape[1] // 2] if keypoints_2d.ndim == 4 else keypoints_2d


def flip_horizontal(x, skeleton: Skeleton):
    """Mirror poses or keypoints left-right: negate the x coordinate and swap left/right joints.

    x: (..., J, C) numpy array or torch tensor (C = 2 or 3, camera frame or normalised screen
    coordinates centred on the image). An involution: flipping twice returns the input.
    """
    perm = skeleton.flip_permutation
    if x.shape[-2] != skeleton.num_joints:
        raise ValueError(f"flip_horizontal: expected {skeleton.num_joints} joints, got shape {tuple(x.shape)}")
    out = x[..., perm, :]
    out = out.clone() if hasattr(out, "clone") else out.copy()
    out[..., 0] = -out[..., 0]
    return out
