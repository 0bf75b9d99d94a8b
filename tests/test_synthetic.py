import time

import numpy as np
import pytest

from diffupose.geometry.projection import image_coordinates
from diffupose.data.synthetic import SYNTHETIC_ACTIONS, generate_synthetic, mirror_in_depth
from diffupose.geometry.skeleton import H36M17

PX = 2.0 / 1000  # one pixel in normalised units (1000 px wide images)


@pytest.fixture(scope="module")
def default_data():
    start = time.perf_counter()
    data = generate_synthetic()
    return data, time.perf_counter() - start


def test_default_size_speed_and_splits(default_data):
    data, seconds = default_data
    assert 20_000 <= len(data) <= 40_000
    assert seconds < 5.0
    assert data.splits() == {"train": 18432, "val": 6144, "test": 6144}
    assert {s: set(data.split[data.subject == s]) for s in np.unique(data.subject)} == {
        "S1": {"train"}, "S2": {"train"}, "S3": {"train"}, "S4": {"val"}, "S5": {"test"}}
    assert set(data.action) == set(SYNTHETIC_ACTIONS) and len(SYNTHETIC_ACTIONS) >= 5
    assert len(np.unique(data.camera)) == 4
    assert data.meta["split_rule"] == "S1-S3 train, S4 val, S5 test"
    assert np.all(data.poses_3d[:, 0] == 0)


def test_deterministic_from_seed():
    a = generate_synthetic(num_frames=8, num_repetitions=1, seed=5)
    b = generate_synthetic(num_frames=8, num_repetitions=1, seed=5)
    c = generate_synthetic(num_frames=8, num_repetitions=1, seed=6)
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)
    assert np.abs(a.poses_3d - c.poses_3d).max() > 0.05
    assert len(a) == 5 * 8 * 8 * 4  # 7 actions + 1 reach twin, 8 frames, 4 cameras


def test_geometry_is_plausible(default_data):
    data, _ = default_data
    # in view, 3-7 m in front of the cameras
    assert np.abs(data.keypoints_2d).max() < 1.0
    depth = data.root_position[:, 2]
    assert depth.min() > 2.5 and depth.max() < 7.5
    # 2D is the pinhole projection with the stored intrinsics
    cam_points = data.poses_3d.astype(np.float64) + data.root_position[:, None]
    proj = data.intrinsics[:, None, :2] * cam_points[..., :2] / cam_points[..., 2:] + data.intrinsics[:, None, 2:]
    assert np.abs(proj - data.keypoints_2d).max() < 0.01 * PX
    # bone lengths constant within every sequence, different between subjects
    bones = H36M17.bone_lengths(data.poses_3d)
    for seq in np.unique(data.sequence):
        assert bones[data.sequence == seq].std(axis=0).max() < 1e-4
    thigh = {s: bones[data.subject == s, 1].mean() for s in np.unique(data.subject)}
    assert thigh["S5"] - thigh["S3"] > 0.04
    assert all(0.38 < t < 0.52 for t in thigh.values())
    # standing height (head above ankle) between 1.4 and 2.0 m somewhere in every Walk sequence
    walk = data.select(actions=["Walk"])
    height = np.linalg.norm(walk.poses_3d[:, 10] - (walk.poses_3d[:, 3] + walk.poses_3d[:, 6]) / 2, axis=-1)
    assert 1.3 < np.median(height) < 2.0


def test_motions_are_smooth_and_periodic(default_data):
    data, _ = default_data
    for seq in np.unique(data.sequence)[::5]:
        m = (data.sequence == seq) & (data.camera == "cam1")
        poses = data.poses_3d[m] + data.root_position[m][:, None]
        step = np.linalg.norm(np.diff(poses, axis=0), axis=-1).max()
        wrap = np.linalg.norm(poses[0] - poses[-1], axis=-1).max()
        assert step < 0.15, seq
        assert wrap < 0.2, seq  # the last frame leads back to the first


def test_actions_differ(default_data):
    data, _ = default_data
    # mean joint-to-joint distance matrices: invariant to the heading and the camera
    def distances(poses):
        return np.linalg.norm(poses[:, :, None] - poses[:, None], axis=-1).mean(axis=0)

    means = {a: distances(data.poses_3d[data.action == a][::4]) for a in SYNTHETIC_ACTIONS}
    for a in SYNTHETIC_ACTIONS:
        for b in SYNTHETIC_ACTIONS:
            if a < b:
                assert np.abs(means[a] - means[b]).mean() > 0.01, (a, b)


def test_depth_ambiguous_pairs(default_data):
    """Reach twins: equal 2D in the reference camera, clearly different 3D."""
    data, _ = default_data
    pairs = data.meta["ambiguous_pairs"]
    assert len(pairs) == 10
    found = 0
    for seq_a, seq_b, cam in pairs:
        ma = (data.sequence == seq_a) & (data.camera == cam)
        mb = (data.sequence == seq_b) & (data.camera == cam)
        d2 = np.abs(data.keypoints_2d[ma] - data.keypoints_2d[mb]).max(axis=(1, 2))
        d3 = np.linalg.norm(data.poses_3d[ma] - data.poses_3d[mb], axis=-1).mean(axis=-1)
        assert d2.max() < 0.1 * PX
        found += int(np.sum((d2 < 2 * PX) & (d3 > 0.05)))
        # elsewhere the twins are told apart by the other cameras
        other = (data.sequence == seq_a) & (data.camera != cam)
        other_b = (data.sequence == seq_b) & (data.camera != cam)
        assert np.abs(data.keypoints_2d[other] - data.keypoints_2d[other_b]).max() > 10 * PX
    assert found > 100


def test_ambiguity_found_by_search_without_meta(default_data):
    """A blind nearest-neighbour search in 2D over one camera's Reach samples finds pairs with
    < 2 px difference and > 50 mm MPJPE."""
    data, _ = default_data
    reach = data.select(actions=["Reach"], subjects=["S1"])
    hits = 0
    for cam in np.unique(reach.camera):
        m = reach.camera == cam
        kp = reach.keypoints_2d[m].reshape(m.sum(), -1).astype(np.float64)
        poses = reach.poses_3d[m]
        d2 = np.abs(kp[:, None] - kp[None]).max(-1)
        np.fill_diagonal(d2, np.inf)
        i, j = np.nonzero(d2 < 2 * PX)
        if len(i):
            mpjpe = np.linalg.norm(poses[i] - poses[j], axis=-1).mean(-1)
            hits += int(np.sum(mpjpe > 0.05))
    assert hits > 0


def test_mirror_in_depth_keeps_projection_and_bones():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(30, 17, 3)) * 0.3 + [0.2, -0.1, 4.5]
    out = mirror_in_depth(poses, chain=(15, 16), parent=14)
    np.testing.assert_allclose(out[..., :2] / out[..., 2:], poses[..., :2] / poses[..., 2:], atol=1e-12)
    np.testing.assert_array_equal(out[:, :15], poses[:, :15])
    before = np.linalg.norm(poses[:, 15] - poses[:, 14], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(out[:, 15] - out[:, 14], axis=-1), before, atol=1e-9)
    assert np.abs(out[:, 15] - poses[:, 15]).max() > 0.05


def test_noise_px():
    clean = generate_synthetic(num_frames=8, num_repetitions=1, seed=1)
    noisy = generate_synthetic(num_frames=8, num_repetitions=1, seed=1, noise_px=3.0)
    np.testing.assert_array_equal(clean.poses_3d, noisy.poses_3d)
    diff_px = image_coordinates(noisy.keypoints_2d, 1000, 1000) - image_coordinates(clean.keypoints_2d, 1000, 1000)
    assert 2.7 < diff_px.std() < 3.3


def test_synthetic_fixture_is_small(synthetic_npz):
    from diffupose.data import load_prepared

    data = load_prepared(synthetic_npz)
    assert 2000 <= len(data) <= 4000
    assert all(n > 0 for n in data.splits().values())
