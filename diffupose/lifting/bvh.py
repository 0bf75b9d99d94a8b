"""BVH export of a pose sequence, and a small BVH reader with forward kinematics.

`write_bvh(path, poses, skeleton)` turns (F, J, 3) joint positions (metres, camera frame:
x right, y down, z forward) into a BVH animation:

- the fixed skeleton (the rest pose) has every bone at its mean length over the sequence,
  pointing the way it points in the mean pose;
- a joint with several children (the pelvis, the thorax) gets its rotation from a least-squares
  fit of all child bones (Kabsch), and one zero-length "branch" joint per child carries the rest,
  so every bone direction is reproduced exactly; a joint with one child gets the shortest-arc
  rotation onto that bone (its twist is not observable from positions and is left at zero);
- BVH axes are Y up: (x, -y, -z) of the camera frame, in centimetres by default (`scale`);
- rotation channels `Zrotation Xrotation Yrotation` (R = Rz Rx Ry), degrees.

Reading the file back with `read_bvh` and `forward_kinematics` gives the joint positions; when
the input's bone lengths are constant (ground-truth mocap), they equal the input to float
precision. For predicted poses, whose bone lengths vary, the BVH holds the same bone directions
at the mean lengths; `write_bvh` returns the largest deviation so callers can report it.

The rotations (axis matrices, Euler angles, shortest arc, Kabsch) live in
`diffupose.geometry.rotations`; `matrix_from_euler` and `euler_zxy_from_matrix` are re-exported
here under their old names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..geometry.rotations import axis_rotation, euler_zxy_from_matrix, kabsch, matrix_from_euler, shortest_arc
from ..geometry.skeleton import Skeleton
from ..utils import atomic_write_text

__all__ = ["BvhJoint", "Bvh", "write_bvh", "bvh_text", "read_bvh", "parse_bvh", "forward_kinematics",
           "bvh_joint_positions", "euler_zxy_from_matrix", "matrix_from_euler"]

_AXES = np.array([1.0, -1.0, -1.0])  # camera frame (y down, z forward) <-> BVH frame (y up)
_ROT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str]
    end_site: np.ndarray | None = None


@dataclass
class Bvh:
    """A parsed BVH file: joints in file order, motion (F, C) in channel order, frame time (s)."""

    joints: list[BvhJoint]
    motion: np.ndarray
    frame_time: float
    meta: dict = field(default_factory=dict)

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(name)


# ----------------------------------------------------------------------------------------------
# Writing


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def _build(poses: np.ndarray, skeleton: Skeleton, scale: float):
    """Joints (name, parent, offset) of the BVH hierarchy and their global rotations (F, 3, 3)."""
    p = poses * _AXES * scale                              # (F, J, 3) BVH frame
    children = {j: [c for c, par in skeleton.edges if par == j] for j in range(skeleton.num_joints)}
    bones = {c: p[:, c] - p[:, par] for c, par in skeleton.edges}           # (F, 3)
    lengths = {c: float(np.linalg.norm(v, axis=-1).mean()) for c, v in bones.items()}
    rest_dir = {c: _unit(_unit(v).mean(axis=0)) for c, v in bones.items()}
    rest = {c: rest_dir[c] * lengths[c] for c in bones}
    joints: list[tuple[str, int, np.ndarray]] = []
    rotations: list[np.ndarray] = []
    frames = p.shape[0]

    def add(j: int, parent_bvh: int, offset: np.ndarray, parent_global: np.ndarray | None) -> None:
        name = skeleton.joint_names[j]
        kids = children[j]
        if not kids:
            joints.append((name, parent_bvh, offset))
            rotations.append(parent_global if parent_global is not None else np.broadcast_to(np.eye(3), (frames, 3, 3)))
            return
        if len(kids) == 1:
            g = shortest_arc(np.broadcast_to(rest_dir[kids[0]], (frames, 3)), _unit(bones[kids[0]]))
        else:
            g = kabsch(np.stack([rest[c] for c in kids]), np.stack([bones[c] for c in kids], axis=1))
        me = len(joints)
        joints.append((name, parent_bvh, offset))
        rotations.append(g)
        if len(kids) == 1:
            add(kids[0], me, rest[kids[0]], g)
            return
        for c in kids:  # a zero-length branch joint per child turns g onto that child's bone exactly
            corr = shortest_arc(np.broadcast_to(rest_dir[c], (frames, 3)),
                                _unit(np.einsum("fji,fj->fi", g, _unit(bones[c]))))
            branch = len(joints)
            joints.append((f"{name}_to_{skeleton.joint_names[c]}", me, np.zeros(3)))
            rotations.append(g @ corr)
            add(c, branch, rest[c], g @ corr)

    add(0, -1, np.zeros(3), None)
    return joints, rotations, p[:, 0]


def bvh_text(poses, skeleton: Skeleton, frame_time: float = 1.0 / 50, scale: float = 100.0,
             root_positions=None) -> tuple[str, float]:
    """(F, J, 3) metres camera frame -> (BVH text, largest |FK - input| in metres).

    root_positions: (F, 3) metres camera frame added to the root (default: the poses' own root).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_joints, 3):
        raise ValueError(f"bvh: expected poses ({skeleton.num_joints} joints) of shape (F, J, 3), got {poses.shape}")
    if not np.isfinite(poses).all():
        raise ValueError("bvh: poses contain NaN or inf")
    if root_positions is not None:
        poses = poses - poses[:, :1] + np.asarray(root_positions, dtype=np.float64)[:, None]
    joints, rotations, root = _build(poses, skeleton, scale)
    lines = ["HIERARCHY"]
    kids = {i: [k for k, j in enumerate(joints) if j[1] == i] for i in range(len(joints))}

    def emit(i: int, depth: int) -> None:
        name, parent, offset = joints[i]
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        chans = ("Xposition", "Yposition", "Zposition") + _ROT_CHANNELS if parent < 0 else _ROT_CHANNELS
        lines.append(f"{pad}  CHANNELS {len(chans)} {' '.join(chans)}")
        if not kids[i]:
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET 0.000000 0.000000 0.000000")
            lines.append(f"{pad}  }}")
        for k in kids[i]:
            emit(k, depth + 1)
        lines.append(f"{pad}}}")

    emit(0, 0)
    frames = poses.shape[0]
    columns = [root]
    order = []

    def collect(i: int) -> None:
        order.append(i)
        for k in kids[i]:
            collect(k)

    collect(0)
    for i in order:
        parent = joints[i][1]
        g = rotations[i]
        local = g if parent < 0 else np.swapaxes(rotations[parent], -1, -2) @ g
        columns.append(euler_zxy_from_matrix(local))
    motion = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time:.6f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    text = "\n".join(lines) + "\n"
    back = bvh_joint_positions(parse_bvh(text), skeleton, scale=scale)
    error = float(np.abs(back - poses).max()) if frames else 0.0
    return text, error


def write_bvh(path: str | os.PathLike, poses, skeleton: Skeleton, frame_time: float = 1.0 / 50,
              scale: float = 100.0, root_positions=None) -> float:
    """Write `poses` (F, J, 3) metres camera frame as BVH (atomically); returns the largest
    deviation in metres of the file's forward kinematics from the input (0 up to float
    precision when bone lengths are constant)."""
    text, error = bvh_text(poses, skeleton, frame_time=frame_time, scale=scale, root_positions=root_positions)
    atomic_write_text(path, text)
    return error


# ----------------------------------------------------------------------------------------------
# Reading


def parse_bvh(text: str, source: str = "bvh") -> Bvh:
    """Parse BVH text (HIERARCHY with ROOT/JOINT/End Site, OFFSET, CHANNELS; MOTION)."""
    tokens = text.split()
    joints: list[BvhJoint] = []
    stack: list[int] = []
    i = 0
    pending_end = False
    try:
        if tokens[0] != "HIERARCHY":
            raise DataError(f"{source}: not a BVH file (no HIERARCHY)")
        i = 1
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                joints.append(BvhJoint(tokens[i + 1], stack[-1] if stack else -1, np.zeros(3), []))
                i += 2
                if tokens[i] != "{":
                    raise DataError(f"{source}: expected '{{' after {tok}")
                stack.append(len(joints) - 1)
                i += 1
            elif tok == "End":
                pending_end = True
                i += 3  # End Site {
            elif tok == "OFFSET":
                off = np.array([float(t) for t in tokens[i + 1:i + 4]])
                if pending_end:
                    joints[stack[-1]].end_site = off
                else:
                    joints[stack[-1]].offset = off
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                joints[stack[-1]].channels = tokens[i + 2:i + 2 + n]
                i += 2 + n
            elif tok == "}":
                if pending_end:
                    pending_end = False
                else:
                    stack.pop()
                i += 1
            else:
                raise DataError(f"{source}: unexpected token {tok!r} in HIERARCHY")
        frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.array([float(t) for t in tokens[i + 6:]], dtype=np.float64)
    except (IndexError, ValueError) as e:
        raise DataError(f"{source}: malformed BVH ({e})") from None
    num_channels = sum(len(j.channels) for j in joints)
    if values.size != frames * num_channels:
        raise DataError(f"{source}: MOTION has {values.size} values, expected {frames} x {num_channels}")
    return Bvh(joints, values.reshape(frames, num_channels), frame_time)


def read_bvh(path: str | os.PathLike) -> Bvh:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return parse_bvh(path.read_text(), str(path))


def forward_kinematics(bvh: Bvh) -> np.ndarray:
    """Global joint positions (F, K, 3) in the file's units and axes, joints in file order."""
    frames = bvh.motion.shape[0]
    pos = np.zeros((frames, len(bvh.joints), 3))
    rot = np.zeros((frames, len(bvh.joints), 3, 3))
    col = 0
    for k, j in enumerate(bvh.joints):
        values = bvh.motion[:, col:col + len(j.channels)]
        col += len(j.channels)
        translation = np.zeros((frames, 3))
        local = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
        for c, name in enumerate(j.channels):
            axis = name[0].upper()
            if name.endswith("position"):
                translation[:, "XYZ".index(axis)] = values[:, c]
            else:
                local = local @ axis_rotation(axis, np.radians(values[:, c]))
        if j.parent < 0:
            pos[:, k] = j.offset + translation
            rot[:, k] = local
        else:
            pos[:, k] = pos[:, j.parent] + np.einsum("fij,j->fi", rot[:, j.parent], j.offset) + translation
            rot[:, k] = rot[:, j.parent] @ local
    return pos


def bvh_joint_positions(bvh: Bvh, skeleton: Skeleton, scale: float = 100.0) -> np.ndarray:
    """Positions (F, J, 3) of `skeleton`'s joints, metres, camera frame (undoing `write_bvh`'s
    axes and scale); branch joints are skipped."""
    pos = forward_kinematics(bvh)
    index = [bvh.index(n) for n in skeleton.joint_names]
    return pos[:, index] / scale * _AXES
