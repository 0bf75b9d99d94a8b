"""Checks on the real files in ../shared/data (skipped when absent)."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from conftest import SHARED_DATA, require_file
from diffupose.geometry.projection import image_coordinates
from diffupose.geometry.camera import load_cameras
from diffupose.data.h36m import load_h36m
from diffupose.data.humaneva import load_humaneva
from diffupose.errors import DataError
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

pytestmark = pytest.mark.realdata

H36M_FILE = SHARED_DATA / "h36m" / "h36m_3d17_train.npz"
HUMANEVA_DIR = SHARED_DATA / "humaneva"

# README_h36m_3d.md: frames per subject (50 Hz, all sequences).
H36M_FRAMES = {"S1": 62_094, "S5": 87_054, "S6": 62_466, "S7": 89_808, "S8": 64_678}
# shared/data/README.md: HumanEva frames per camera of each action, summed over the Train
# subjects and chunks.
HUMANEVA_FRAMES = {"Walking": 1529, "Jog": 944, "Box": 874}


@pytest.fixture(scope="module")
def humaneva():
    require_file(HUMANEVA_DIR / "data_3d_humaneva15.npz")
    require_file(HUMANEVA_DIR / "data_2d_humaneva15_gt.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_humaneva(HUMANEVA_DIR, allow_pickle=True)


@pytest.fixture(scope="module")
def h36m_raw():
    require_file(H36M_FILE)
    with np.load(H36M_FILE) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def h36m_s1():
    require_file(H36M_FILE)
    return load_h36m(H36M_FILE.parent, subjects=["S1"])


def test_humaneva_counts_per_action(humaneva):
    for action, frames in HUMANEVA_FRAMES.items():
        assert np.count_nonzero(humaneva.action == action) == 3 * frames, action
    assert set(humaneva.camera) == {"C1", "C2", "C3"}
    assert set(humaneva.subject) == {"S1", "S2", "S3"}
    assert humaneva.splits()["test"] == 0  # Validate/* is not in the shared copy
    assert humaneva.splits()["val"] > 0
    # val = the last chunk of (subject, action) groups with >= 2 chunks, e.g. S3 Walking chunk2
    assert set(humaneva.split[humaneva.sequence == "Train/S3/Walking 1 chunk2"]) == {"val"}
    # a single-chunk cell (S1 Walking) holds out its contiguous last 20 % of frames
    single = humaneva.sequence == "Train/S1/Walking 1 chunk0"
    frames, split = humaneva.frame[single], humaneva.split[single]
    assert set(split) == {"train", "val"}
    assert frames[split == "val"].min() > frames[split == "train"].max()
    assert np.mean(split == "val") == pytest.approx(0.2, abs=0.01)
    # every subject x action cell of Table III has held-out frames
    val = humaneva.split == "val"
    assert {(s, a) for s, a in zip(humaneva.subject[val], humaneva.action[val])} == {
        (s, a) for s in ("S1", "S2", "S3") for a in ("Walking", "Jog", "Box")}


def test_humaneva_root_and_bones(humaneva):
    """Root exactly zero; bone lengths are those of the file's world poses (the camera transform
    is rigid). Note: HumanEva's mocap-derived 15-joint bones are *not* constant to 1 mm in the
    file itself (per-sequence std up to ~21 mm for thorax->shoulder and hip->knee, median ~10
    mm), unlike H36M, so the within-sequence check here uses the data's own bound."""
    assert np.all(humaneva.poses_3d[:, 0] == 0)
    bones = HUMANEVA15.bone_lengths(humaneva.poses_3d)
    with np.load(HUMANEVA_DIR / "data_3d_humaneva15.npz", allow_pickle=True) as z:
        raw = z["positions_3d"].item()
    for seq in np.unique(humaneva.sequence):
        full_subject, name = seq.rsplit("/", 1)
        world = raw[full_subject][name]
        for cam in ("C1", "C2", "C3"):
            m = (humaneva.sequence == seq) & (humaneva.camera == cam)
            np.testing.assert_allclose(bones[m], HUMANEVA15.bone_lengths(world), atol=1e-5)
        assert bones[humaneva.sequence == seq].std(axis=0).max() < 0.025, seq


def test_humaneva_world_to_camera_matches_given_2d(humaneva):
    """Fit a pinhole (fx, fy, cx, cy by least squares) per camera sequence from our camera-frame
    3D and the file's pixel 2D: a correct world->camera transform reproduces the 2D closely."""
    medians = []
    for seq in np.unique(humaneva.sequence):
        for cam in ("C1", "C2", "C3"):
            m = (humaneva.sequence == seq) & (humaneva.camera == cam)
            x = (humaneva.poses_3d[m] + humaneva.root_position[m][:, None]).reshape(-1, 3).astype(np.float64)
            uv = image_coordinates(humaneva.keypoints_2d[m].astype(np.float64), 640, 480).reshape(-1, 2)
            assert (x[:, 2] > 0).all()
            err = np.zeros(len(x))
            for axis in (0, 1):
                a = np.stack([x[:, axis] / x[:, 2], np.ones(len(x))], axis=1)
                coef, *_ = np.linalg.lstsq(a, uv[:, axis], rcond=None)
                assert 500 < coef[0] < 1000  # a sensible focal length in pixels
                err += (a @ coef - uv[:, axis]) ** 2
            medians.append(np.median(np.sqrt(err)))
    assert np.median(medians) < 1.5
    assert np.max(medians) < 5.0


def test_h36m_frame_counts_from_file(h36m_raw):
    assert len(h36m_raw) == 146
    frames = {}
    for key, value in h36m_raw.items():
        frames[key.split("/")[0]] = frames.get(key.split("/")[0], 0) + value.shape[0]
    assert frames == H36M_FRAMES
    assert sum(frames.values()) == 366_100


def test_h36m_prepare_s1(h36m_s1, h36m_raw):
    data = h36m_s1
    assert len(data) == 4 * H36M_FRAMES["S1"]
    assert set(data.camera) == set(load_cameras("h36m").camera_ids)
    assert np.all(data.poses_3d[:, 0] == 0)
    assert set(data.action) <= set(re.sub(r" \d+$", "", k.split("/")[1]) for k in h36m_raw)
    assert len(set(data.action)) == 15
    assert data.splits()["train"] + data.splits()["val"] == len(data) and data.splits()["val"] > 0
    # bone lengths constant within every sequence (< 1 mm)
    bones = H36M17.bone_lengths(data.poses_3d)
    for seq in np.unique(data.sequence):
        assert bones[data.sequence == seq].std(axis=0).max() < 1e-3, seq
    # 2D in view and the subject 2.5-8 m in front of every camera
    assert np.median(np.abs(data.keypoints_2d)) < 0.5
    assert data.root_position[:, 2].min() > 2.0 and data.root_position[:, 2].max() < 9.0


def test_h36m_test_split_missing_is_named(h36m_s1):
    require_file(H36M_FILE)
    with pytest.raises(DataError, match="S9, S11") as e:
        load_h36m(H36M_FILE.parent, subjects=["S1"], require_splits=("test",))
    assert "h36m_3d17_train.npz" in str(e.value)
    with pytest.raises(DataError, match="S9") as e:
        load_h36m(H36M_FILE.parent, subjects=["S9"])
    assert "h36m_3d17_train.npz" in str(e.value)


def test_h36m_user_file_with_s9_gives_test_split(h36m_raw, tmp_path):
    """A user's plain-layout file holding S9 yields the standard test split."""
    walking = h36m_raw["S1/Walking 1"][:200]
    np.savez(tmp_path / "h36m_3d17_user.npz", **{"S1/Walking 1": walking, "S1/Eating": h36m_raw["S1/Eating"][:100],
                                                  "S9/Walking 1": walking[:150]})
    data = load_h36m(tmp_path, require_splits=("train", "test"))
    assert set(data.subject[data.split == "test"]) == {"S9"}
    assert data.splits()["test"] == 150 * 4
    # S9's own cameras are used: same world poses, different camera frame than S1's
    s1 = data.poses_3d[(data.sequence == "S1/Walking 1") & (data.camera == "54138969")][:150]
    s9 = data.poses_3d[(data.sequence == "S9/Walking 1") & (data.camera == "54138969")]
    assert np.abs(s1 - s9).max() > 1e-3


def test_h36m_s1_hips_project_inside_camera_54138969(h36m_raw):
    """Every S1 pelvis, projected with distortion into camera 54138969, lands in its 1000x1002 image."""
    cam = load_cameras("h36m").camera("S1", 0)
    assert cam.id == "54138969"
    hips = np.concatenate([v[:, 0] for k, v in h36m_raw.items() if k.startswith("S1/")])
    uv = cam.project(cam.world_to_camera(hips))
    assert np.all((uv[:, 0] > 0) & (uv[:, 0] < 1000) & (uv[:, 1] > 0) & (uv[:, 1] < 1002))
