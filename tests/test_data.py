"""Data layer on small files written into tmp_path: prepared format, H36M (plain and VideoPose3D
layouts), HumanEva, prepare_dataset, and every kind of bad input."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from diffupose.geometry.camera import load_cameras
from diffupose.geometry.projection import normalize_screen_coordinates
from diffupose.data import build_dataset, load_prepared, prepare_dataset, save_prepared, summarize
from diffupose.data.h36m import assign_splits, canonical_action, load_h36m
from diffupose.data.humaneva import load_humaneva
from diffupose.data.synthetic import _rest, forward_kinematics, subject_bones
from diffupose.errors import ConfigError, DataError
from diffupose.geometry.skeleton import H36M32_TO_17, H36M17, HUMANEVA15

# ---------------------------------------------------------------------------------------------
# small world-pose sequences and files


def _walk(num_frames: int, seed: int = 0) -> np.ndarray:
    """(F, 17, 3) float32 metres world: a person standing near the H36M capture-area centre."""
    rng = np.random.default_rng(seed)
    angles = _rest(num_frames)
    angles["l_hip_flex"] = 20 * np.sin(np.linspace(0, 2 * np.pi, num_frames))
    yaw = np.full(num_frames, rng.uniform(0, 2 * np.pi))
    root = np.broadcast_to(rng.uniform(-0.3, 0.3, 2), (num_frames, 2))
    return forward_kinematics(angles, subject_bones("S1", rng), yaw, root).astype(np.float32)


def _to_32(poses17: np.ndarray) -> np.ndarray:
    """Embed 17 joints into a 32-joint array; the 15 dropped joints are far away (10 m) so a
    wrong reduction is obvious."""
    out = np.full(poses17.shape[:1] + (32, 3), 10.0, dtype=np.float32)
    out[:, list(H36M32_TO_17)] = poses17
    return out


def _project_h36m(subject: str, poses17: np.ndarray) -> list[np.ndarray]:
    cams = load_cameras("h36m").cameras(subject)
    return [c.project(c.world_to_camera(poses17)).astype(np.float32) for c in cams]


def _write_plain(path, sequences: dict[str, np.ndarray]):
    np.savez_compressed(path, **sequences)
    return path


@pytest.fixture
def vp3d_h36m(tmp_path):
    """Tiny VideoPose3D H36M files: S1 (2 sequences) and S9 (1), 32 joints, pickled; 2D files
    gt (projection) and cpn (projection + 3 px, with 2 extra frames that must be trimmed)."""
    seqs = {"S1": {"Walking 1": _walk(20, 1), "TakingPhoto": _walk(16, 2)}, "S9": {"Walking": _walk(12, 3)}}
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d={s: {a: _to_32(v) for a, v in d.items()} for s, d in seqs.items()})
    gt = {s: {a: _project_h36m(s, v) for a, v in d.items()} for s, d in seqs.items()}
    cpn = {s: {a: [np.concatenate([k + 3.0, k[-2:]]) for k in per] for a, per in d.items()} for s, d in gt.items()}
    np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=gt, metadata={"layout_name": "h36m"})
    np.savez(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=cpn, metadata={"layout_name": "h36m"})
    return tmp_path, seqs, gt


def _load_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_h36m(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# VideoPose3D H36M layout


def test_videopose3d_requires_pickle_opt_in(vp3d_h36m):
    data_dir, _, _ = vp3d_h36m
    with pytest.raises(DataError, match="--allow-pickle") as e:
        load_h36m(data_dir)
    assert "data_3d_h36m.npz" in str(e.value)


def test_videopose3d_h36m_shapes_splits_and_reduction(vp3d_h36m):
    data_dir, seqs, _ = vp3d_h36m
    with pytest.warns(UserWarning, match="unpickling"):
        data = load_h36m(data_dir, allow_pickle=True)
    assert len(data) == (20 + 16 + 12) * 4
    assert data.poses_3d.shape == (len(data), 17, 3) and data.keypoints_2d.shape == (len(data), 17, 2)
    assert data.poses_3d.dtype == np.float32
    assert set(data.action) == {"Walking", "Photo"}
    assert set(data.split[data.subject == "S9"]) == {"test"}
    assert set(data.split[data.subject == "S1"]) == {"train", "val"}  # 2 training sequences -> 1 val
    assert data.splits()["test"] == 12 * 4
    # 32 -> 17 picks the right joints: the camera-frame pose equals the 17-joint source pose.
    cam = load_cameras("h36m").camera("S1", 2)
    m = (data.sequence == "S1/Walking 1") & (data.camera == cam.id)
    expected = cam.world_to_camera(seqs["S1"]["Walking 1"])
    np.testing.assert_allclose(data.poses_3d[m], expected - expected[:, :1], atol=1e-5)
    np.testing.assert_allclose(data.root_position[m], expected[:, 0], atol=1e-5)
    assert np.all(data.poses_3d[:, 0] == 0)
    assert np.all(np.abs(data.poses_3d) < 2.0)  # none of the far-away dropped joints leaked in
    np.testing.assert_array_equal(data.frame[m], np.arange(20))
    assert np.isfinite(data.intrinsics).all()


def test_videopose3d_2d_from_file_is_used_and_trimmed(vp3d_h36m):
    data_dir, seqs, gt = vp3d_h36m
    data = _load_quiet(data_dir, keypoints="cpn_ft_h36m_dbb", allow_pickle=True)
    cam = load_cameras("h36m").camera("S9", 1)
    m = (data.sequence == "S9/Walking") & (data.camera == cam.id)
    expected = normalize_screen_coordinates(gt["S9"]["Walking"][1] + 3.0, 1000, cam.intrinsics.res_h)
    np.testing.assert_allclose(data.keypoints_2d[m], expected, atol=1e-5)
    assert m.sum() == 12  # the two extra 2D frames were trimmed


def test_videopose3d_gt_projection_matches_pinhole_intrinsics(vp3d_h36m):
    """normalised 2D ~ f * X/Z + c with the normalised intrinsics (distortion is small)."""
    data = _load_quiet(vp3d_h36m[0], allow_pickle=True)
    cam_points = data.poses_3d + data.root_position[:, None]
    pinhole = data.intrinsics[:, None, :2] * cam_points[..., :2] / cam_points[..., 2:] + data.intrinsics[:, None, 2:]
    err_px = np.abs(pinhole - data.keypoints_2d).max() * 500
    assert err_px < 15  # distortion of H36M cameras near the centre: a few pixels


def test_videopose3d_short_2d_is_an_error(tmp_path):
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d={"S1": {"Walking": _to_32(_walk(10))}})
    kp = _project_h36m("S1", _walk(10))
    np.savez(tmp_path / "data_2d_h36m_cpn.npz", positions_2d={"S1": {"Walking": [k[:8] for k in kp]}})
    with pytest.raises(DataError, match="8 frames of 2D keypoints but the 3D poses have 10") as e:
        _load_quiet(tmp_path, keypoints="cpn", allow_pickle=True)
    assert "data_2d_h36m_cpn.npz" in str(e.value)


def test_videopose3d_wrong_joint_count(tmp_path):
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d={"S1": {"Walking": _walk(10)}})  # 17, not 32
    with pytest.raises(DataError, match="17 joints, expected 32"):
        _load_quiet(tmp_path, allow_pickle=True)


# ---------------------------------------------------------------------------------------------
# plain H36M layout


def test_plain_layout_splits_and_required_test_split(tmp_path, caplog):
    path = _write_plain(tmp_path / "h36m_3d17_train.npz",
                        {"S1/Walking 1": _walk(10, 1), "S1/Eating 2": _walk(8, 2), "S5/WalkDog": _walk(6, 3)})
    data = load_h36m(tmp_path)
    assert data.splits() == {"train": data.splits()["train"], "val": data.splits()["val"], "test": 0}
    assert data.splits()["val"] > 0 and len(data) == 24 * 4
    assert "test split is empty" in caplog.text
    with pytest.raises(DataError, match="S9, S11") as e:
        load_h36m(tmp_path, require_splits=("test",))
    assert str(path) in str(e.value)
    with pytest.raises(DataError, match="S9") as e:
        load_h36m(tmp_path, subjects=["S9"])
    assert str(path) in str(e.value)


def test_plain_layout_with_test_subject_and_val_subject(tmp_path):
    _write_plain(tmp_path / "h36m_3d17_train.npz", {"S1/Walking 1": _walk(10, 1), "S8/Sitting 1": _walk(8, 2)})
    _write_plain(tmp_path / "h36m_3d17_test.npz", {"S9/Walking 1": _walk(6, 3), "S11/Photo": _walk(4, 4)})
    data = load_h36m(tmp_path, val_subjects=["S8"], require_splits=("train", "val", "test"))
    assert set(data.split[data.subject == "S8"]) == {"val"}
    assert set(data.split[data.subject == "S1"]) == {"train"}
    assert set(data.subject[data.split == "test"]) == {"S9", "S11"}
    assert data.splits() == {"train": 40, "val": 32, "test": 40}
    # stride keeps every 2nd frame with its original index
    strided = load_h36m(tmp_path, stride=2, subjects=["S1"], val_fraction=0.0)
    assert len(strided) == 5 * 4 and set(strided.frame.tolist()) == {0, 2, 4, 6, 8}


def test_plain_layout_with_2d_file_needs_equal_frames(tmp_path):
    seq = _walk(10)
    _write_plain(tmp_path / "h36m_3d17_train.npz", {"S1/WalkingDog 1": seq})
    kp = _project_h36m("S1", seq)
    np.savez(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
             positions_2d={"S1": {"WalkDog 1": [k + 1.0 for k in kp]}})
    data = _load_quiet(tmp_path, keypoints="cpn_ft_h36m_dbb", allow_pickle=True)
    assert set(data.action) == {"WalkDog"} and len(data) == 40
    np.savez(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
             positions_2d={"S1": {"WalkDog 1": [np.concatenate([k, k[:1]]) for k in kp]}})
    with pytest.raises(DataError, match="11 frames of 2D keypoints but the 3D poses have 10"):
        _load_quiet(tmp_path, keypoints="cpn_ft_h36m_dbb", allow_pickle=True)


def test_val_fraction_split_is_whole_sequences_and_seeded():
    keys = [("S1", f"Walking {i}") for i in range(20)] + [("S9", "Walking")]
    a = assign_splits(keys, ("S1",), ("S9",), val_fraction=0.1, seed=3)
    b = assign_splits(list(reversed(keys)), ("S1",), ("S9",), val_fraction=0.1, seed=3)
    c = assign_splits(keys, ("S1",), ("S9",), val_fraction=0.1, seed=4)
    assert a == b and sum(v == "val" for v in a.values()) == 2 and a[("S9", "Walking")] == "test"
    assert a != c


def test_canonical_action_names():
    assert canonical_action("Walking 1") == "Walking"
    assert canonical_action("TakingPhoto") == "Photo"
    assert canonical_action("WalkingDog 2") == "WalkDog"
    assert canonical_action("SittingDown 1") == "SittingDown"
    with pytest.raises(ValueError):
        canonical_action("Dancing")


# ---------------------------------------------------------------------------------------------
# HumanEva


@pytest.fixture
def humaneva_files(tmp_path):
    rng = np.random.default_rng(0)

    def seq(n):  # 15-joint world poses near the capture centre
        base = rng.normal(size=(1, 15, 3)) * 0.3 + [0.0, 0.0, 1.0]
        return (base + rng.normal(size=(n, 1, 3)) * 0.05).astype(np.float32)

    p3 = {"Train/S1": {"Walking 1 chunk0": seq(8), "Walking 1 chunk2": seq(5), "Jog 1 chunk0": seq(6),
                       "Gestures 1 chunk0": seq(4)},
          "Train/S2": {"Box 1 chunk0": seq(7)},
          "Validate/S1": {"Walking 1 chunk0": seq(9)}}
    p2 = {s: {a: [rng.uniform(0, 640, size=(len(v), 15, 2)).astype(np.float32) for _ in range(3)]
              for a, v in d.items()} for s, d in p3.items()}
    np.savez(tmp_path / "data_3d_humaneva15.npz", positions_3d=p3)
    np.savez(tmp_path / "data_2d_humaneva15_gt.npz", positions_2d=p2, metadata={"num_joints": 15})
    return tmp_path, p3, p2


def test_humaneva_splits_and_arrays(humaneva_files):
    data_dir, p3, p2 = humaneva_files
    with pytest.raises(DataError, match="--allow-pickle"):
        load_humaneva(data_dir)
    with pytest.warns(UserWarning, match="unpickling"):
        data = load_humaneva(data_dir, allow_pickle=True)
    assert data.skeleton is HUMANEVA15 and data.dataset == "humaneva"
    assert set(data.action) == {"Walking", "Jog", "Box"}  # Gestures not in the default actions
    assert len(data) == 3 * (8 + 5 + 6 + 7 + 9)
    assert np.isnan(data.intrinsics).all()
    split_of = {s: set(data.split[data.sequence == s]) for s in np.unique(data.sequence)}
    assert split_of == {"Train/S1/Walking 1 chunk0": {"train"}, "Train/S1/Walking 1 chunk2": {"val"},
                        "Train/S1/Jog 1 chunk0": {"train", "val"}, "Train/S2/Box 1 chunk0": {"train", "val"},
                        "Validate/S1/Walking 1 chunk0": {"test"}}
    assert set(data.subject) == {"S1", "S2"}
    m = (data.sequence == "Validate/S1/Walking 1 chunk0") & (data.camera == "C2")
    np.testing.assert_allclose(data.keypoints_2d[m], normalize_screen_coordinates(p2["Validate/S1"]["Walking 1 chunk0"][1], 640, 480), atol=1e-6)
    cam = load_cameras("humaneva").camera("S1", 1)
    x = cam.world_to_camera(p3["Validate/S1"]["Walking 1 chunk0"])
    np.testing.assert_allclose(data.poses_3d[m], x - x[:, :1], atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        by_subject = load_humaneva(data_dir, allow_pickle=True, val_subjects=["S2"], actions=["Walk", "Box"])
        assert set(by_subject.split[by_subject.subject == "S2"]) == {"val"}
        assert set(by_subject.action) == {"Walking", "Box"}
        with pytest.raises(DataError, match="Dancing"):
            load_humaneva(data_dir, allow_pickle=True, actions=["Dancing"])
        with pytest.raises(DataError, match="S7"):
            load_humaneva(data_dir, allow_pickle=True, subjects=["S7"])
        with pytest.raises(DataError, match="unknown keypoints 'cpn'"):
            load_humaneva(data_dir, keypoints="cpn", allow_pickle=True)


# ---------------------------------------------------------------------------------------------
# prepared format


def test_prepared_round_trip_select_and_summary(synthetic_npz, tmp_path):
    data = load_prepared(synthetic_npz)
    assert data.dataset == "synthetic" and data.skeleton is H36M17 and len(data) == 3840
    assert data.splits() == {"train": 2304, "val": 768, "test": 768}
    assert data.meta["prepare"]["num_frames"] == 12
    raw = np.load(synthetic_npz, allow_pickle=False)
    assert raw["poses_3d"].dtype == np.float32 and raw["frame"].dtype == np.int32
    assert raw["subject"].dtype.kind == "U" and raw["skeleton"].shape == ()
    test = data.select(split="test")
    assert len(test) == 768 and set(test.subject) == {"S5"}
    sub = data.select(split=["train", "val"], actions=["Walk"], max_samples=50, seed=1)
    assert len(sub) == 50 and set(sub.action) == {"Walk"}
    first = (sub.sequence == sub.sequence[0]) & (sub.camera == sub.camera[0])
    assert np.all(np.diff(sub.frame[first]) > 0)  # file order kept
    np.testing.assert_array_equal(sub.poses_3d, data.select(split=["train", "val"], actions=["Walk"], max_samples=50, seed=1).poses_3d)
    out = save_prepared(tmp_path / "copy.npz", sub)
    again = load_prepared(out)
    np.testing.assert_array_equal(again.keypoints_2d, sub.keypoints_2d)
    assert again.meta == sub.meta
    summary = summarize(data)
    assert summary["splits"]["train"] == 2304
    assert summary["per_split"]["train"]["subjects"] == {"S1": 768, "S2": 768, "S3": 768}
    assert sum(summary["per_split"]["test"]["actions"].values()) == 768
    json.dumps(summary)


def test_prepare_dataset_writes_atomically(tmp_path):
    _write_plain(tmp_path / "h36m_3d17_train.npz", {"S1/Walking 1": _walk(10, 1), "S5/Eating": _walk(8, 2)})
    out = prepare_dataset("h36m", tmp_path, out=tmp_path / "out" / "h36m.npz", val_subjects=["S5"])
    data = load_prepared(out)
    assert data.splits() == {"train": 40, "val": 32, "test": 0}
    assert data.meta["prepare"]["val_subjects"] == ["S5"]
    # A failing run leaves no output and no temporary file behind.
    bad = tmp_path / "out" / "bad.npz"
    with pytest.raises(DataError):
        prepare_dataset("h36m", tmp_path, out=bad, require_splits=("test",))
    arrays = data.arrays()
    arrays["poses_3d"] = arrays["poses_3d"].copy()
    arrays["poses_3d"][3, 5, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        save_prepared(bad, {**arrays, "skeleton": "h36m17", "dataset": "h36m", "meta": {}})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["h36m.npz"]
    with pytest.raises(ConfigError):
        prepare_dataset("coco", tmp_path, out=bad)
    with pytest.raises(DataError, match="data-dir"):
        build_dataset("h36m")


# ---------------------------------------------------------------------------------------------
# bad input: one DataError naming the file and the problem


def _prepared_arrays(synthetic_npz) -> dict:
    with np.load(synthetic_npz) as z:
        return {k: z[k] for k in z.files}


def test_bad_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found") as e:
        load_prepared(tmp_path / "nope.npz")
    assert "nope.npz" in str(e.value)
    with pytest.raises(DataError, match="data directory not found"):
        load_h36m(tmp_path / "missing_dir")
    with pytest.raises(DataError, match="no H36M data found"):
        load_h36m(tmp_path)


def test_bad_missing_key(tmp_path, synthetic_npz):
    arrays = _prepared_arrays(synthetic_npz)
    del arrays["split"]
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match=r"missing keys \['split'\]") as e:
        load_prepared(tmp_path / "p.npz")
    assert "p.npz" in str(e.value)
    np.savez(tmp_path / "data_3d_h36m.npz", something_else=np.zeros(3))
    with pytest.raises(DataError, match="missing key 'positions_3d'"):
        _load_quiet(tmp_path, allow_pickle=True)


def test_bad_joint_count(tmp_path, synthetic_npz):
    arrays = _prepared_arrays(synthetic_npz)
    arrays["poses_3d"] = arrays["poses_3d"][:, :16]
    arrays["keypoints_2d"] = arrays["keypoints_2d"][:, :16]
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="16 joints but skeleton h36m17 has 17") as e:
        load_prepared(tmp_path / "p.npz")
    assert "p.npz" in str(e.value)
    _write_plain(tmp_path / "h36m_3d17_train.npz", {"S1/Walking": _walk(5)[:, :16]})
    with pytest.raises(DataError, match="16 joints, expected 17"):
        load_h36m(tmp_path)


def test_bad_shapes_disagree(tmp_path, synthetic_npz):
    arrays = _prepared_arrays(synthetic_npz)
    arrays["subject"] = arrays["subject"][:-1]
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="subject has shape"):
        load_prepared(tmp_path / "p.npz")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_bad_non_finite(tmp_path, synthetic_npz, value):
    arrays = _prepared_arrays(synthetic_npz)
    arrays["keypoints_2d"] = arrays["keypoints_2d"].copy()
    arrays["keypoints_2d"][10, 3, 0] = value
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="keypoints_2d contains NaN or inf"):
        load_prepared(tmp_path / "p.npz")
    seq = _walk(5)
    seq[2, 4, 1] = value
    _write_plain(tmp_path / "h36m_3d17_train.npz", {"S1/Walking": seq})
    with pytest.raises(DataError, match="S1/Walking contains NaN or inf") as e:
        load_h36m(tmp_path)
    assert "h36m_3d17_train.npz" in str(e.value)
    np.savez(tmp_path / "data_3d_humaneva15.npz", positions_3d={"Train/S1": {"Walking 1 chunk0": np.full((3, 15, 3), value)}})
    np.savez(tmp_path / "data_2d_humaneva15_gt.npz", positions_2d={})
    with pytest.raises(DataError, match="NaN or inf"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            load_humaneva(tmp_path, allow_pickle=True)


def test_bad_root_not_zero_and_unknown_split(tmp_path, synthetic_npz):
    arrays = _prepared_arrays(synthetic_npz)
    arrays["poses_3d"] = arrays["poses_3d"] + 0.1
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="root-relative"):
        load_prepared(tmp_path / "p.npz")
    arrays = _prepared_arrays(synthetic_npz)
    arrays["split"] = np.where(arrays["split"] == "val", "holdout", arrays["split"])
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="unknown split names"):
        load_prepared(tmp_path / "p.npz")


def test_bad_unknown_names(tmp_path, vp3d_h36m):
    data_dir, _, _ = vp3d_h36m
    with pytest.raises(DataError, match="unknown subjects \\['S42'\\]"):
        _load_quiet(data_dir, allow_pickle=True, subjects=["S42"])
    with pytest.raises(DataError, match="unknown H36M action 'Dancing'") as e:
        _load_quiet(data_dir, allow_pickle=True, actions=["Dancing"])
    assert "data_3d_h36m.npz" in str(e.value)
    with pytest.raises(DataError, match="unknown keypoints 'sh_ft'") as e:
        _load_quiet(data_dir, keypoints="sh_ft", allow_pickle=True)
    assert "data_2d_h36m_sh_ft.npz" in str(e.value) and "cpn_ft_h36m_dbb" in str(e.value)
    (tmp_path / "plain").mkdir()
    _write_plain(tmp_path / "plain" / "h36m_3d17_train.npz", {"S1/Dancing 1": _walk(4)})
    with pytest.raises(DataError, match="S1/Dancing 1"):
        load_h36m(tmp_path / "plain")


def test_bad_truncated_files(tmp_path, synthetic_npz):
    blob = synthetic_npz.read_bytes()
    (tmp_path / "half.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        load_prepared(tmp_path / "half.npz")
    assert "half.npz" in str(e.value)
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match="empty.npz"):
        load_prepared(tmp_path / "empty.npz")
    plain = tmp_path / "plain"
    plain.mkdir()
    _write_plain(plain / "h36m_3d17_train.npz", {"S1/Walking": _walk(200)})
    full = (plain / "h36m_3d17_train.npz").read_bytes()
    (plain / "h36m_3d17_train.npz").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="h36m_3d17_train.npz"):
        load_h36m(plain)
    vp = tmp_path / "vp"
    vp.mkdir()
    np.savez(vp / "data_3d_h36m.npz", positions_3d={"S1": {"Walking": _to_32(_walk(50))}})
    full = (vp / "data_3d_h36m.npz").read_bytes()
    (vp / "data_3d_h36m.npz").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="data_3d_h36m.npz"):
        _load_quiet(vp, allow_pickle=True)


def test_bad_pickled_prepared_file_is_not_unpickled(tmp_path, synthetic_npz):
    arrays = _prepared_arrays(synthetic_npz)
    arrays["meta_json"] = np.array({"evil": 1}, dtype=object)
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(DataError, match="pickled") as e:
        load_prepared(tmp_path / "p.npz")
    assert "p.npz" in str(e.value)
