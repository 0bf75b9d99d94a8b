import numpy as np
import pytest

from diffupose import geometry as C



def _random_quaternions(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_qrot_matches_rotation_matrix():
    rng = np.random.default_rng(0)
    q = _random_quaternions(rng, 50)
    v = rng.normal(size=(50, 3))
    rotated = C.qrot(q, v)
    expected = np.einsum("nij,nj->ni", C.quaternion_to_matrix(q), v)
    np.testing.assert_allclose(rotated, expected, atol=1e-12)
    # A 90 degree rotation about z sends x to y.
    qz = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(C.qrot(qz, [1.0, 0, 0]), [0, 1.0, 0], atol=1e-12)
    # qinverse undoes the rotation; matrices are orthonormal.
    np.testing.assert_allclose(C.qrot(C.qinverse(q), rotated), v, atol=1e-12)
    m = C.quaternion_to_matrix(q)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)


def test_quaternion_from_matrix_round_trip():
    rng = np.random.default_rng(1)
    for q in _random_quaternions(rng, 20):
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(C.quaternion_from_matrix(C.quaternion_to_matrix(q)), q, atol=1e-10)


def test_world_camera_round_trip_and_convention():
    rng = np.random.default_rng(2)
    q = _random_quaternions(rng, 1)[0]
    t = rng.normal(size=3) * 3
    x = rng.normal(size=(7, 17, 3))
    cam = C.world_to_camera(x, q, t)
    np.testing.assert_allclose(C.camera_to_world(cam, q, t), x, atol=1e-12)
    # X_cam = R(q)^T (X - t), checked against qrot(qinverse(q), .)
    np.testing.assert_allclose(cam, C.qrot(C.qinverse(q), x - t), atol=1e-12)
    with pytest.raises(ValueError):
        C.world_to_camera(x[..., :2], q, t)
    with pytest.raises(ValueError):
        C.world_to_camera(x, q[:3], t)


def test_projection_optical_axis_lands_on_centre():
    f, c = (1145.0, 1143.0), (512.5, 515.4)
    k, p = (-0.2, 0.24, -0.003), (-0.001, -0.0014)
    uv = C.project_to_2d(np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 7.0]]), f, c, k, p)
    np.testing.assert_allclose(uv, [c, c], atol=1e-9)
    # Without distortion it is a pinhole: u = f X/Z + c.
    pt = np.array([0.3, -0.2, 5.0])
    np.testing.assert_allclose(C.project_to_2d(pt, f, c), [f[0] * 0.06 + c[0], f[1] * -0.04 + c[1]])
    np.testing.assert_allclose(C.project_pinhole(pt, np.r_[f, c]), C.project_to_2d(pt, f, c))
    # Distortion moves an off-axis point (k1 < 0 pulls it towards the centre).
    d = C.project_to_2d(pt, f, c, k, (0.0, 0.0))
    assert np.linalg.norm(d - c) < np.linalg.norm(C.project_to_2d(pt, f, c) - c)


def test_normalisation_round_trip_and_intrinsics():
    rng = np.random.default_rng(3)
    uv = rng.uniform(0, 1000, size=(10, 17, 2))
    xy = C.normalize_screen_coordinates(uv, 1000, 1002)
    np.testing.assert_allclose(C.image_coordinates(xy, 1000, 1002), uv, atol=1e-9)
    np.testing.assert_allclose(C.normalize_screen_coordinates(np.array([0.0, 0.0]), 1000, 1002), [-1, -1.002])
    np.testing.assert_allclose(C.normalize_screen_coordinates(np.array([1000.0, 1002.0]), 1000, 1002), [1, 1.002])
    # normalised intrinsics reproduce normalised keypoints of a pinhole projection
    f, c = np.array([1100.0, 1090.0]), np.array([490.0, 520.0])
    pts = rng.normal(size=(20, 3)) * 0.5 + [0, 0, 5]
    kn = C.normalize_intrinsics(f, c, 1000, 1002)
    np.testing.assert_allclose(C.project_pinhole(pts, kn),
                               C.normalize_screen_coordinates(C.project_pinhole(pts, np.r_[f, c]), 1000, 1002),
                               atol=1e-12)


def test_packaged_cameras_load():
    h36m = C.load_cameras("h36m")
    assert h36m.camera_ids == ["54138969", "55011271", "58860488", "60457274"]
    assert {"S1", "S5", "S6", "S7", "S8", "S9", "S11"} <= set(h36m.subjects)
    cam = h36m.camera("S1", 0)
    assert cam.intrinsics.res_w == 1000 and cam.intrinsics.res_h == 1002
    assert cam.extrinsics.translation[0] == pytest.approx(1.8411, abs=1e-3)  # mm -> metres
    he = C.load_cameras("humaneva")
    assert he.camera_ids == ["C1", "C2", "C3"] and set(he.subjects) == {"S1", "S2", "S3"}
    assert np.isnan(he.intrinsics[0].normalized).all()
    with pytest.raises(ValueError):
        C.load_cameras("nope")


def test_h36m_s1_hip_projects_inside_image():
    """The standing pelvis of S1 (world ~ (-0.23, 0.07, 0.94) m in S1/Walking 1) seen by camera
    54138969 lands inside its 1000 x 1002 image, in front of the camera."""
    cam = C.load_cameras("h36m").camera("S1", 0)
    hip_world = np.array([-0.233588, 0.0667051, 0.93585795])
    hip_cam = cam.world_to_camera(hip_world)
    assert 3.0 < hip_cam[2] < 8.0
    u, v = cam.project(hip_cam)
    assert 0 < u < 1000 and 0 < v < 1002
