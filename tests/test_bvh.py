"""BVH export: reading the file back through forward kinematics reproduces the joint positions
(within 1 mm when bone lengths are constant), Euler round trips, and malformed files."""
from __future__ import annotations

import numpy as np
import pytest

from diffupose.lifting.bvh import (bvh_joint_positions, bvh_text, euler_zxy_from_matrix, matrix_from_euler, parse_bvh,
                                   read_bvh, write_bvh)
from diffupose.data.keypoints import MEAN_POSE_2D_H36M17
from diffupose.errors import DataError
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

from conftest import require_file


def _random_rotations(n: int, rng) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1).reshape(n, 3, 3)


def _rigid_bone_sequence(skeleton, frames: int = 30, seed: int = 0) -> np.ndarray:
    """(F, J, 3) metres: a rest pose whose bones turn freely (bone lengths constant), root moving."""
    rng = np.random.default_rng(seed)
    rest = np.zeros((skeleton.num_joints, 3))
    if skeleton.name == "h36m17":
        rest[:, :2] = MEAN_POSE_2D_H36M17 * 0.25
        rest[:, 2] = rng.normal(0, 0.05, skeleton.num_joints)
    else:
        rest = rng.normal(0, 0.2, size=(skeleton.num_joints, 3))
    poses = np.zeros((frames, skeleton.num_joints, 3))
    poses[:, 0] = rng.normal(0, 0.3, size=(frames, 3)) + np.array([0, 0, 4.0])
    for c, p in skeleton.edges:  # parents come before children in both skeletons
        turn = _random_rotations(frames, rng)
        poses[:, c] = poses[:, p] + turn @ (rest[c] - rest[p])
    return poses


@pytest.mark.parametrize("skeleton", [H36M17, HUMANEVA15])
def test_bvh_round_trip_within_1mm(tmp_path, skeleton):
    poses = _rigid_bone_sequence(skeleton)
    path = tmp_path / "seq.bvh"
    deviation = write_bvh(path, poses, skeleton, frame_time=0.04)
    bvh = read_bvh(path)
    back = bvh_joint_positions(bvh, skeleton)
    assert back.shape == poses.shape and bvh.frame_time == pytest.approx(0.04)
    err = np.abs(back - poses).max()
    assert err < 1e-3, f"round trip error {err * 1000:.3f} mm"
    assert deviation == pytest.approx(err, abs=1e-9)
    # the fixed skeleton holds the (constant) bone lengths
    offsets = {j.name: np.linalg.norm(j.offset) for j in bvh.joints}
    lengths = skeleton.bone_lengths(poses).mean(axis=0)
    for (c, _), length in zip(skeleton.edges, lengths):
        assert offsets[skeleton.joint_names[c]] == pytest.approx(length * 100, rel=1e-6)


def test_varying_bone_lengths_keep_directions(tmp_path):
    rng = np.random.default_rng(1)
    poses = _rigid_bone_sequence(H36M17, frames=10) + rng.normal(0, 0.01, size=(10, 17, 3))
    text, deviation = bvh_text(poses, H36M17)
    back = bvh_joint_positions(parse_bvh(text), H36M17)
    assert deviation > 1e-3                      # lengths changed: honest about it
    for c, p in H36M17.edges:
        a = poses[:, c] - poses[:, p]
        b = back[:, c] - back[:, p]
        cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        assert cos.min() > 1 - 1e-9


def test_root_positions_place_the_root():
    poses = _rigid_bone_sequence(H36M17, frames=4)
    root = np.array([[0.1, 0.2, 3.0]] * 4)
    text, err = bvh_text(poses, H36M17, root_positions=root)
    back = bvh_joint_positions(parse_bvh(text), H36M17)
    np.testing.assert_allclose(back[:, 0], root, atol=1e-6)
    assert err < 1e-3


def test_euler_round_trip_including_gimbal_lock():
    rng = np.random.default_rng(0)
    m = _random_rotations(500, rng)
    np.testing.assert_allclose(matrix_from_euler(euler_zxy_from_matrix(m)), m, atol=1e-10)
    locked = matrix_from_euler(np.array([[30.0, 90.0, 20.0], [-10.0, -90.0, 5.0]]))
    np.testing.assert_allclose(matrix_from_euler(euler_zxy_from_matrix(locked)), locked, atol=1e-7)


def test_malformed_bvh_is_a_one_line_error(tmp_path):
    for text, expected in [("nothing here", "not a BVH"), ("HIERARCHY\nROOT a\n{\n OFFSET 0 0", "malformed"),
                           (bvh_text(_rigid_bone_sequence(H36M17, 2), H36M17)[0] + " 1.0", "MOTION has")]:
        path = tmp_path / "bad.bvh"
        path.write_text(text)
        with pytest.raises(DataError) as e:
            read_bvh(path)
        assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.realdata
def test_bvh_of_h36m_ground_truth(shared_data):
    from diffupose.geometry.camera import load_cameras
    from diffupose.data.h36m import read_plain_h36m

    src = require_file(shared_data / "h36m" / "h36m_3d17_train.npz")
    world = read_plain_h36m([src], [("S8", "Walking 1")])[("S8", "Walking 1")][:100]
    poses = load_cameras("h36m").camera("S8", 0).world_to_camera(world)
    text, err = bvh_text(poses, H36M17)
    assert err < 1e-3
    np.testing.assert_allclose(bvh_joint_positions(parse_bvh(text), H36M17), poses, atol=1e-3)
