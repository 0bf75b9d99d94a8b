"""The embedded default dataset: procedural H36M-17 motions seen by four virtual cameras.

No input files. Poses come from forward kinematics of the H36M-17 tree with per-subject bone
lengths (H36M average lengths scaled per subject: five subjects of different height and
proportions), joint angles clipped to anatomical limits, and seven named actions, each a smooth
periodic motion with per-subject / per-repetition variation of amplitude, tempo, phase,
heading and position:

    Walk (walking a circle), Sit (sit down / stand up), Squat, Reach (right arm reaching forward
    and up), Wave (right hand waving above the shoulder), Bend (bend forward, arms hanging),
    Kick (right-leg front kick, arms out for balance).

The feet are kept on the ground (the lowest ankle at ankle height), so sitting and squatting
lower the pelvis. World frame: z up, metres. Four cameras with H36M-like intrinsics (focal
~1145 px, 1000 x 1000 image, no distortion) stand ~4.5 m from the centre at ~1.5 m height at
azimuths 45, 135, 225 and 315 degrees, looking at the subject; 2D = pinhole projection plus
optional Gaussian detector-like noise (`noise_px`).

Depth ambiguity is built in: every Reach repetition has a twin sequence ("Reach <r> mirrored")
whose right elbow and wrist are moved along their camera rays of one reference camera (the
subject faces so that this camera is front-left) onto the other intersection with the bone
sphere around the parent joint: the same 2D in that camera (exactly, bone lengths kept), a
clearly different 3D pose (arm forward vs arm out to the side). `meta["ambiguous_pairs"]` lists
(sequence, twin sequence, camera) triples.

Splits: subjects S1, S2, S3 -> "train", S4 -> "val", S5 -> "test" (recorded in meta).
Deterministic from `seed`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import Camera, CameraExtrinsics, CameraIntrinsics
from ..geometry.rotations import quaternion_from_matrix
from ..geometry.rotations import rotation_x as _rx
from ..geometry.rotations import rotation_y as _ry
from ..geometry.rotations import rotation_z as _rz
from ..geometry.skeleton import H36M17
from .prepared import PreparedData, SequenceRecord, assemble_samples

__all__ = ["SYNTHETIC_ACTIONS", "SYNTHETIC_SUBJECTS", "SYNTHETIC_SPLITS", "BONE_LENGTHS",
           "synthetic_cameras", "subject_bones", "forward_kinematics", "action_angles",
           "mirror_in_depth", "generate_synthetic"]

SYNTHETIC_ACTIONS = ("Walk", "Sit", "Squat", "Reach", "Wave", "Bend", "Kick")
SYNTHETIC_SPLITS = {"S1": "train", "S2": "train", "S3": "train", "S4": "val", "S5": "test"}
SYNTHETIC_SUBJECTS = tuple(SYNTHETIC_SPLITS)
# Overall scale and proportions per subject (height ~1.62-1.86 m): (scale, leg, arm, torso).
_SUBJECT_BUILD = {"S1": (0.97, 1.00, 1.00, 1.00), "S2": (1.05, 1.04, 0.98, 0.97),
                  "S3": (0.92, 0.97, 1.03, 1.02), "S4": (1.00, 0.98, 1.02, 1.01),
                  "S5": (1.07, 1.02, 1.01, 0.98)}
# H36M average bone lengths (metres).
BONE_LENGTHS = {"hip_width": 0.133, "thigh": 0.445, "shin": 0.445, "spine": 0.233, "thorax": 0.257,
                "neck": 0.115, "head": 0.115, "shoulder_width": 0.151, "upper_arm": 0.278,
                "forearm": 0.251}
_ANKLE_HEIGHT = 0.09
_CAMERA_AZIMUTHS = (45.0, 135.0, 225.0, 315.0)
# Joint-angle limits in degrees.
_LIMITS = {"hip_flex": (-30, 125), "hip_abd": (-20, 45), "knee": (0, 150), "sh_flex": (-50, 175),
           "sh_abd": (-10, 170), "sh_rot": (-90, 100), "elbow": (0, 150), "bend": (-25, 90),
           "twist": (-40, 40), "lean": (-25, 25), "neck": (-30, 45)}


def _apply(r, v):
    """r: (F, 3, 3), v: (3,) or (F, 3) -> (F, 3)."""
    v = np.asarray(v, dtype=np.float64)
    return np.einsum("fij,j->fi", r, v) if v.ndim == 1 else np.einsum("fij,fj->fi", r, v)


def synthetic_cameras(radius: float = 4.5, height: float = 1.5, target_height: float = 0.9) -> list[Camera]:
    """Four H36M-like cameras around the origin looking at (0, 0, target_height)."""
    cams = []
    for i, az in enumerate(_CAMERA_AZIMUTHS):
        a = np.deg2rad(az)
        pos = np.array([radius * np.cos(a), radius * np.sin(a), height + 0.1 * (i % 2)])
        z = np.array([0.0, 0.0, target_height]) - pos
        z /= np.linalg.norm(z)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)  # image y points down
        rot = np.stack([x, y, z], axis=1)  # camera-to-world: columns are the camera axes
        intr = CameraIntrinsics(id=f"cam{i + 1}", res_w=1000, res_h=1000,
                                focal_length=(1145.0 + 4 * i, 1144.0 + 4 * i),
                                center=(500.0 + 6 * (i - 1.5), 500.0 - 4 * (i - 1.5)))
        cams.append(Camera(intr, CameraExtrinsics(tuple(quaternion_from_matrix(rot)), tuple(pos))))
    return cams


def subject_bones(subject: str, rng: np.random.Generator) -> dict[str, float]:
    """Bone lengths (metres) of a synthetic subject: H36M averages x build x +-3% jitter."""
    scale, leg, arm, torso = _SUBJECT_BUILD[subject]
    group = {"thigh": leg, "shin": leg, "hip_width": leg, "upper_arm": arm, "forearm": arm,
             "spine": torso, "thorax": torso, "neck": torso, "head": torso, "shoulder_width": arm}
    return {k: v * scale * group[k] * rng.uniform(0.97, 1.03) for k, v in BONE_LENGTHS.items()}


def _clip(name, x):
    lo, hi = _LIMITS[name]
    return np.clip(x, lo, hi)


def forward_kinematics(angles: dict[str, np.ndarray], bones: dict[str, float], yaw: np.ndarray,
                       root_xy: np.ndarray) -> np.ndarray:
    """Joint angles (degrees, per frame) -> (F, 17, 3) metres world poses, feet on the ground.

    Body frame: x forward, y left, z up. Angle names: bend, lean, twist, neck, and per side
    (prefix l_/r_) hip_flex, hip_abd, knee, sh_flex, sh_abd, sh_rot, elbow. Limits applied here.
    """
    num_frames = yaw.shape[0]
    deg = {k: np.deg2rad(_clip(k[2:] if k[:2] in ("l_", "r_") else k, np.broadcast_to(v, (num_frames,))))
           for k, v in angles.items()}
    p = np.zeros((num_frames, 17, 3))
    r_pelvis = _rz(yaw)
    r_spine = r_pelvis @ _rx(deg["lean"] / 2) @ _ry(deg["bend"] / 2) @ _rz(deg["twist"] / 2)
    r_chest = r_pelvis @ _rx(deg["lean"]) @ _ry(deg["bend"]) @ _rz(deg["twist"])
    r_head = r_chest @ _ry(deg["neck"])
    p[:, 7] = _apply(r_spine, [0.0, 0.0, bones["spine"]])
    p[:, 8] = p[:, 7] + _apply(r_chest, [0.0, 0.0, bones["thorax"]])
    p[:, 9] = p[:, 8] + _apply(r_head, bones["neck"] * np.array([0.35, 0.0, 0.94]))
    p[:, 10] = p[:, 9] + _apply(r_head, bones["head"] * np.array([-0.1, 0.0, 0.995]))
    # (hip, knee, ankle, shoulder, elbow, wrist) joint indices and the side's sign (+1 = left = +y).
    for side, (hip, knee, ankle, sho, elb, wri), sign in (
            ("l_", (4, 5, 6, 11, 12, 13), 1.0), ("r_", (1, 2, 3, 14, 15, 16), -1.0)):
        r_thigh = r_pelvis @ _rx(sign * deg[side + "hip_abd"]) @ _ry(-deg[side + "hip_flex"])
        p[:, hip] = _apply(r_pelvis, [0.0, sign * bones["hip_width"], 0.0])
        p[:, knee] = p[:, hip] + _apply(r_thigh, [0.0, 0.0, -bones["thigh"]])
        p[:, ankle] = p[:, knee] + _apply(r_thigh @ _ry(deg[side + "knee"]), [0.0, 0.0, -bones["shin"]])
        r_upper = (r_chest @ _rx(sign * deg[side + "sh_abd"]) @ _ry(-deg[side + "sh_flex"])
                   @ _rz(sign * deg[side + "sh_rot"]))
        p[:, sho] = p[:, 8] + _apply(r_chest, bones["shoulder_width"] * np.array([0.0, sign * 0.985, -0.17]))
        p[:, elb] = p[:, sho] + _apply(r_upper, [0.0, 0.0, -bones["upper_arm"]])
        p[:, wri] = p[:, elb] + _apply(r_upper @ _ry(-deg[side + "elbow"]), [0.0, 0.0, -bones["forearm"]])
    ground = np.minimum(p[:, 3, 2], p[:, 6, 2])
    p[:, :, 2] += (_ANKLE_HEIGHT - ground)[:, None]
    p[:, :, :2] += root_xy[:, None, :]
    return p


def _rest(num_frames: int) -> dict[str, np.ndarray]:
    z = np.zeros(num_frames)
    a = {k: z.copy() for k in ("bend", "lean", "twist", "neck")}
    for s in ("l_", "r_"):
        a.update({s + "hip_flex": z + 3, s + "hip_abd": z + 4, s + "knee": z + 5, s + "sh_flex": z + 8,
                  s + "sh_abd": z + 10, s + "sh_rot": z.copy(), s + "elbow": z + 15})
    return a


def action_angles(action: str, phase: np.ndarray, amp: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Joint angles (degrees) of `action` over `phase` (radians, F frames); `amp` scales the
    motion (per-repetition variation), `rng` adds small per-repetition offsets."""
    a = _rest(phase.shape[0])
    s = np.sin(phase)
    up = (1 - np.cos(phase)) / 2  # 0 -> 1 -> 0 once per cycle, smooth
    jitter = lambda scale: rng.uniform(-scale, scale)  # noqa: E731
    if action == "Walk":
        a["l_hip_flex"] = 25 * amp * s
        a["r_hip_flex"] = -25 * amp * s
        a["l_knee"] = 8 + 35 * amp * np.clip(np.sin(phase - 1.2), 0, None)
        a["r_knee"] = 8 + 35 * amp * np.clip(np.sin(phase - 1.2 + np.pi), 0, None)
        a["l_sh_flex"] = -20 * amp * s
        a["r_sh_flex"] = 20 * amp * s
        a["l_elbow"] = a["r_elbow"] = 20 + 10 * amp * np.abs(s)
        a["bend"] += 6 + jitter(3)
        a["twist"] = 6 * amp * s
    elif action == "Sit":
        a["l_hip_flex"] = a["r_hip_flex"] = 90 * amp * up
        a["l_knee"] = a["r_knee"] = 5 + 90 * amp * up
        a["bend"] = 30 * np.sin(np.pi * up) + 5 * up
        a["l_sh_flex"] = a["r_sh_flex"] = 10 + 30 * up
        a["l_elbow"] = a["r_elbow"] = 20 + 50 * up
        a["l_hip_abd"] = a["r_hip_abd"] = 6 + 6 * up + jitter(3)
    elif action == "Squat":
        a["l_hip_flex"] = a["r_hip_flex"] = 100 * amp * up
        a["l_knee"] = a["r_knee"] = 5 + 115 * amp * up
        a["bend"] = 35 * amp * up
        a["l_sh_flex"] = a["r_sh_flex"] = 10 + 75 * up
        a["l_elbow"] = a["r_elbow"] = 10 + 10 * up
        a["l_hip_abd"] = a["r_hip_abd"] = 10 + 8 * up
    elif action == "Reach":
        a["r_sh_flex"] = 55 + 45 * amp * up + jitter(10)
        a["r_sh_abd"] = 8 + jitter(6)
        a["r_elbow"] = 50 - 45 * up
        a["bend"] = 12 * amp * up
        a["twist"] = -10 * up
        a["l_elbow"] = 20 + jitter(5)
    elif action == "Wave":
        a["r_sh_abd"] = 85 + jitter(10)
        a["r_sh_rot"] = 75 + 25 * np.sin(3 * phase)
        a["r_elbow"] = 80 + 10 * np.sin(3 * phase + 0.5)
        a["lean"] = 4 * np.sin(phase)
        a["neck"] = 5 + jitter(5)
    elif action == "Bend":
        a["bend"] = 80 * amp * up
        a["l_knee"] = a["r_knee"] = 5 + 12 * up
        a["l_sh_flex"] = a["r_sh_flex"] = 80 * amp * up + 5
        a["l_elbow"] = a["r_elbow"] = 10 + jitter(5)
        a["neck"] = 15 * up
    elif action == "Kick":
        a["r_hip_flex"] = 80 * amp * up
        a["r_knee"] = 10 * up + 70 * np.sin(np.pi * up) ** 2
        a["bend"] = -10 * up
        a["l_sh_abd"] = a["r_sh_abd"] = 20 + 25 * up
        a["l_sh_flex"] = 15 * up
        a["r_sh_flex"] = -10 * up
    else:
        raise ValueError(f"unknown synthetic action {action!r}; known: {SYNTHETIC_ACTIONS}")
    return a


def mirror_in_depth(poses_camera: np.ndarray, chain: tuple[int, ...], parent: int) -> np.ndarray:
    """Move each joint of `chain` (parent first, then its descendants in order) along its own
    camera ray to the other intersection of that ray with the bone sphere around its (moved)
    parent. The projection of every joint is unchanged exactly; bone lengths are kept (where
    a ray misses a sphere the closest point on the ray is used).

    poses_camera: (F, J, 3) metres, camera frame -> (F, J, 3)
    """
    out = poses_camera.copy()
    prev_new, prev_old = out[:, parent], poses_camera[:, parent]
    for j in chain:
        old = poses_camera[:, j]
        length = np.linalg.norm(old - prev_old, axis=-1)
        d = old / np.linalg.norm(old, axis=-1, keepdims=True)
        proj = np.einsum("fc,fc->f", d, prev_new)
        disc = np.clip(proj ** 2 - np.einsum("fc,fc->f", prev_new, prev_new) + length ** 2, 0.0, None)
        roots = np.stack([proj - np.sqrt(disc), proj + np.sqrt(disc)], axis=-1)
        dist_old = np.linalg.norm(old, axis=-1)
        pick = np.argmax(np.abs(roots - dist_old[:, None]), axis=-1)  # the other intersection
        out[:, j] = d * np.take_along_axis(roots, pick[:, None], axis=-1)
        prev_new, prev_old = out[:, j], old
    return out


@dataclass
class _Sequence:
    subject: str
    action: str
    name: str
    world: np.ndarray


def generate_synthetic(num_frames: int = 96, num_repetitions: int = 2, noise_px: float = 0.0,
                       seed: int = 0, stride: int = 1, actions=SYNTHETIC_ACTIONS) -> PreparedData:
    """Generate the synthetic dataset (see the module docstring).

    num_frames: frames per sequence; num_repetitions: sequences per (subject, action) (Reach
    gets one mirrored twin per repetition). Samples = 5 subjects x (actions x repetitions +
    reach twins) x num_frames x 4 cameras (default: 5 x 16 x 96 x 4 = 30,720).
    """
    unknown = [a for a in actions if a not in SYNTHETIC_ACTIONS]
    if unknown:
        raise ValueError(f"unknown synthetic actions {unknown}; known: {SYNTHETIC_ACTIONS}")
    rng = np.random.default_rng(seed)
    cameras = synthetic_cameras()
    cam_pos = np.array([c.extrinsics.translation for c in cameras])
    t = np.arange(num_frames) / num_frames
    sequences: list[_Sequence] = []
    pairs = []
    for subject in SYNTHETIC_SUBJECTS:
        bones = subject_bones(subject, rng)
        for action in actions:
            for rep in range(num_repetitions):
                cycles = int(rng.integers(1, 3))
                phase = 2 * np.pi * cycles * t + rng.uniform(0, 2 * np.pi)
                amp = rng.uniform(0.8, 1.15)
                angles = action_angles(action, phase, amp, rng)
                centre = rng.uniform(-0.3, 0.3, size=2)
                if action == "Walk":
                    radius = rng.uniform(0.6, 1.0)
                    psi = 2 * np.pi * t + rng.uniform(0, 2 * np.pi)
                    direction = rng.choice([-1.0, 1.0])
                    psi = direction * psi
                    root_xy = centre + radius * np.stack([np.cos(psi), np.sin(psi)], -1)
                    yaw = psi + direction * np.pi / 2
                else:
                    root_xy = np.broadcast_to(centre, (num_frames, 2)).copy()
                    yaw = np.full(num_frames, rng.uniform(0, 2 * np.pi))
                ref = rep % len(cameras)
                if action == "Reach":
                    # face so that the reference camera is front-left (about 30 degrees off the facing).
                    to_cam = cam_pos[ref, :2] - centre
                    yaw = np.full(num_frames, np.arctan2(to_cam[1], to_cam[0]) - np.deg2rad(30 + rng.uniform(-10, 10)))
                world = forward_kinematics(angles, bones, yaw, root_xy)
                name = f"{action} {rep + 1}"
                sequences.append(_Sequence(subject, action, name, world))
                if action == "Reach":
                    cam = cameras[ref]
                    mirrored = mirror_in_depth(cam.world_to_camera(world), chain=(15, 16), parent=14)
                    sequences.append(_Sequence(subject, action, f"{name} mirrored", cam.camera_to_world(mirrored)))
                    pairs.append([f"{subject}/{name}", f"{subject}/{name} mirrored", cam.id])
    records = [SequenceRecord(subject=s.subject, action=s.action, sequence=f"{s.subject}/{s.name}",
                              poses_world=s.world, cameras=cameras, split=SYNTHETIC_SPLITS[s.subject])
               for s in sequences]
    arrays = assemble_samples(records, stride=stride, noise_px=noise_px, seed=seed + 1)
    meta = {"dataset": "synthetic", "num_frames": num_frames, "num_repetitions": num_repetitions,
            "noise_px": noise_px, "seed": seed, "stride": stride, "actions": list(actions),
            "splits": {s: v for s, v in SYNTHETIC_SPLITS.items()},
            "split_rule": "S1-S3 train, S4 val, S5 test",
            "cameras": [c.id for c in cameras], "ambiguous_pairs": pairs}
    return PreparedData(**arrays, skeleton=H36M17, dataset="synthetic", meta=meta)
