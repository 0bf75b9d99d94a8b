"""diffupose.geometry: the one home of rotations and camera maths gives the old results, and the
old import names still reach it."""
from __future__ import annotations

import numpy as np
import pytest

from diffupose.evaluation import metrics
from diffupose.inference import aggregate
from diffupose.lifting import bvh
from diffupose import geometry
from diffupose.data import synthetic
from diffupose.geometry import projection, rotations
from diffupose.utils import atomic_savez


def _random_rotations(rng, n):
    q = rng.normal(size=(n, 4))
    return rotations.quaternion_to_matrix(q / np.linalg.norm(q, axis=-1, keepdims=True))


# ----------------------------------------------------------------------------------------------
# Rotations


def test_axis_rotations_are_the_textbook_matrices():
    a = np.array([0.3, -1.2])
    c, s = np.cos(a), np.sin(a)
    np.testing.assert_array_equal(rotations.rotation_x(a)[1], [[1, 0, 0], [0, c[1], -s[1]], [0, s[1], c[1]]])
    np.testing.assert_array_equal(rotations.rotation_y(a)[0], [[c[0], 0, s[0]], [0, 1, 0], [-s[0], 0, c[0]]])
    np.testing.assert_array_equal(rotations.rotation_z(a)[0], [[c[0], -s[0], 0], [s[0], c[0], 0], [0, 0, 1]])
    batch = np.zeros((2, 3, 4))
    assert rotations.axis_rotation("Y", batch).shape == (2, 3, 4, 3, 3)
    with pytest.raises(ValueError, match="axis"):
        rotations.axis_rotation("W", a)


def test_synthetic_and_bvh_share_the_axis_rotations():
    assert synthetic._rx is rotations.rotation_x and synthetic._rz is rotations.rotation_z
    assert bvh.matrix_from_euler is rotations.matrix_from_euler
    assert bvh.euler_zxy_from_matrix is rotations.euler_zxy_from_matrix


def test_euler_zxy_round_trips_including_gimbal_lock():
    rng = np.random.default_rng(0)
    angles = np.c_[rng.uniform(-179, 179, 200), rng.uniform(-89, 89, 200), rng.uniform(-179, 179, 200)]
    m = rotations.matrix_from_euler(angles)
    rz, rx, ry = (np.radians(angles[:, k]) for k in range(3))
    np.testing.assert_allclose(m, rotations.rotation_z(rz) @ rotations.rotation_x(rx) @ rotations.rotation_y(ry),
                               atol=1e-15)
    np.testing.assert_allclose(rotations.euler_zxy_from_matrix(m), angles, atol=1e-9)
    locked = rotations.matrix_from_euler([[30.0, 90.0, 20.0], [-40.0, -90.0, 10.0]])
    back = rotations.euler_zxy_from_matrix(locked)
    assert np.all(back[:, 2] == 0.0)                                  # y carries nothing at the lock
    np.testing.assert_allclose(rotations.matrix_from_euler(back), locked, atol=1e-12)
    # Other channel orders multiply in order.
    np.testing.assert_allclose(rotations.matrix_from_euler([[10.0, 20.0, 30.0]], "XYZ")[0],
                               (rotations.rotation_x(np.radians(10.0)) @ rotations.rotation_y(np.radians(20.0))
                                @ rotations.rotation_z(np.radians(30.0))), atol=1e-15)


def test_kabsch_recovers_a_random_rotation():
    rng = np.random.default_rng(1)
    truth = _random_rotations(rng, 20)
    rest = rng.normal(size=(4, 3))
    actual = np.einsum("fij,kj->fki", truth, rest)                    # actual[f, k] = R[f] @ rest[k]
    np.testing.assert_allclose(rotations.kabsch(rest, actual), truth, atol=1e-12)


def test_svd_fit_never_returns_a_reflection():
    rng = np.random.default_rng(2)
    rest = rng.normal(size=(5, 3))
    mirrored = rest * [1.0, 1.0, -1.0]                                # best orthogonal fit is a reflection
    r = rotations.kabsch(rest, mirrored[None])
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_allclose(r[0] @ r[0].T, np.eye(3), atol=1e-12)


def test_svd_rotation_equals_both_old_forms_bit_for_bit():
    """The SVD fit replaced two hand-written copies: BVH's Kabsch (V diag(1, 1, sign det) U^T)
    and the P-MPJPE fit (flip V's last column and the last singular value where det < 0)."""
    rng = np.random.default_rng(3)
    h = rng.normal(size=(64, 3, 3))
    r, s = rotations.svd_rotation(h)
    # Old BVH form.
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    diag = np.zeros_like(h)
    diag[:, 0, 0] = diag[:, 1, 1] = 1.0
    diag[:, 2, 2] = d
    np.testing.assert_array_equal(r, np.swapaxes(vt, -1, -2) @ diag @ np.swapaxes(u, -1, -2))
    # Old metrics form.
    u, s_old, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    sign = np.where(np.linalg.det(np.matmul(v, u.transpose(0, 2, 1))) < 0, -1.0, 1.0)
    v[:, :, -1] *= sign[:, None]
    s_old[:, -1] *= sign
    np.testing.assert_array_equal(r, np.matmul(v, u.transpose(0, 2, 1)))
    np.testing.assert_array_equal(s, s_old)
    assert (d < 0).any() and (d > 0).any()                            # both branches exercised


def test_procrustes_recovers_a_similarity_and_refuses_reflections():
    rng = np.random.default_rng(4)
    gt = rng.normal(size=(16, 17, 3))
    rot = _random_rotations(rng, 16)
    pred = 1.7 * np.einsum("bij,bkj->bki", rot, gt) + rng.normal(size=(16, 1, 3))
    np.testing.assert_allclose(rotations.procrustes_align(pred, gt), gt, atol=1e-10)
    np.testing.assert_array_equal(metrics.procrustes_align(pred, gt), rotations.procrustes_align(pred, gt))
    np.testing.assert_allclose(metrics.p_mpjpe(pred, gt), 0.0, atol=1e-10)
    mirrored = gt * [1.0, 1.0, -1.0]                                  # a reflection is not a rotation
    assert (metrics.p_mpjpe(mirrored, gt) > 1e-3).all()


def test_quaternions_and_shortest_arc():
    rng = np.random.default_rng(5)
    m = _random_rotations(rng, 10)
    for mi in m:
        np.testing.assert_allclose(rotations.quaternion_to_matrix(rotations.quaternion_from_matrix(mi)), mi,
                                   atol=1e-12)
    a = rng.normal(size=(30, 3))
    b = rng.normal(size=(30, 3))
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    b /= np.linalg.norm(b, axis=-1, keepdims=True)
    b[0] = -a[0]                                                      # opposite vectors: 180 degrees
    r = rotations.shortest_arc(a, b)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", r, a), b, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Projection


def _scene(rng, batch=32, joints=17):
    pose = rng.normal(size=(batch, joints, 3)) * 0.25
    root = np.c_[rng.normal(size=(batch, 2)) * 0.4, rng.uniform(3.0, 6.0, batch)]
    intrinsics = np.c_[rng.uniform(2.0, 2.5, (batch, 2)), rng.normal(size=(batch, 2)) * 0.02]
    distortion = np.c_[rng.normal(size=(batch, 3)) * [0.2, 0.2, 0.01], rng.normal(size=(batch, 2)) * 0.002]
    return pose, root, intrinsics, distortion


def test_batched_projection_equals_the_one_camera_projection():
    rng = np.random.default_rng(6)
    pose, root, k, d = _scene(rng)
    points = pose + root[:, None]
    batched = projection.project_camera(points, k, d)
    for b in range(len(points)):
        one = projection.project_to_2d(points[b], k[b, :2], k[b, 2:], d[b, :3], d[b, 3:])
        np.testing.assert_array_equal(batched[b], one)
    np.testing.assert_allclose(projection.project_perspective(points, k),
                               projection.project_pinhole(points, k[:, None, :]), atol=1e-15)


def test_projection_round_trips_with_undistortion():
    rng = np.random.default_rng(7)
    pose, root, k, d = _scene(rng)
    points = pose + root[:, None]
    distorted = projection.project_camera(points, k, d)
    np.testing.assert_allclose(projection.undistort_points(distorted, k, d, num_iterations=20),
                               projection.project_perspective(points, k), atol=1e-10)
    xy = rng.uniform(-0.3, 0.3, size=(50, 2))
    kr, p = np.array([-0.2, 0.24, -0.003]), np.array([-0.001, -0.0014])
    np.testing.assert_allclose(projection.undistort(projection.distort(xy, kr, p), kr, p, 20), xy, atol=1e-10)


def test_root_placement_is_exact_for_an_exact_pose():
    rng = np.random.default_rng(8)
    pose, root, k, d = _scene(rng)
    pose = pose - pose[:, :1]
    kp = projection.project_camera(pose + root[:, None], k, d)
    np.testing.assert_allclose(projection.estimate_root_translation(pose, kp, k, d), root, atol=1e-6)
    scale, offset = projection.fit_weak_perspective(pose, 0.5 * pose[..., :2] + 0.1)
    np.testing.assert_allclose(scale, 0.5)
    np.testing.assert_allclose(offset, 0.1)


def test_screen_normalisation_round_trips():
    rng = np.random.default_rng(9)
    uv = rng.uniform(0, 1000, size=(20, 2))
    xy = projection.normalize_screen_coordinates(uv, 1000, 1002)
    np.testing.assert_allclose(projection.image_coordinates(xy, 1000, 1002), uv, atol=1e-9)
    f, c = np.array([1145.0, 1144.0]), np.array([512.0, 515.0])
    pts = np.c_[rng.normal(size=(20, 2)), rng.uniform(3, 6, 20)]
    np.testing.assert_allclose(projection.normalize_screen_coordinates(projection.project_pinhole(pts, np.r_[f, c]),
                                                                       1000, 1002),
                               projection.project_pinhole(pts, projection.normalize_intrinsics(f, c, 1000, 1002)),
                               atol=1e-12)


def test_old_names_reach_the_geometry_functions():
    for name in ("project_camera", "project_perspective", "undistort_points", "estimate_root_translation",
                 "fit_weak_perspective", "camera_distortion"):
        assert getattr(aggregate, name) is getattr(geometry, name), name


def test_camera_distortion_lookup():
    cams = geometry.load_cameras("h36m")
    first = cams.intrinsics[0]
    out = geometry.camera_distortion("h36m", [first.id, "nope"])
    np.testing.assert_array_equal(out[0], tuple(first.radial_distortion) + tuple(first.tangential_distortion))
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(geometry.camera_distortion("synthetic", ["cam1"]), 0.0)


def test_rankdata_is_scipys_average_rank():
    x = np.round(np.random.default_rng(10).normal(size=(6, 9)), 1)    # with ties
    from scipy import stats

    np.testing.assert_array_equal(metrics.rankdata(x, axis=1), stats.rankdata(x, axis=1))
    np.testing.assert_array_equal(metrics.rankdata([3, 1, 2, 2]), [4, 1, 2.5, 2.5])


# ----------------------------------------------------------------------------------------------
# atomic_savez


def test_atomic_savez_writes_exactly_the_path(tmp_path):
    a = np.arange(6.0).reshape(2, 3)
    out = atomic_savez(tmp_path / "sub" / "file.bin", x=a, name=np.array("s"))
    assert out == tmp_path / "sub" / "file.bin" and out.is_file()     # no ".npz" appended
    with np.load(out) as z:
        np.testing.assert_array_equal(z["x"], a)
        assert str(z["name"]) == "s"
    small = atomic_savez(tmp_path / "c.npz", compress=True, x=np.zeros(10000))
    plain = atomic_savez(tmp_path / "p.npz", x=np.zeros(10000))
    assert small.stat().st_size < plain.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "p.npz", "sub"]


def test_atomic_savez_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npz"
    atomic_savez(target, x=np.ones(3))

    class Unsavable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        atomic_savez(target, x=Unsavable())
    with np.load(target) as z:                                        # the old file is kept whole
        np.testing.assert_array_equal(z["x"], 1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]
