"""Keypoint layouts: every format parses and maps to H36M-17 / HumanEva-15, detection by
structure and joint count, missing joints, one-line errors for malformed files, the derived
joint table in the docstring, and the shipped synthetic examples."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffupose.geometry.projection import normalize_screen_coordinates
from diffupose.data import keypoints as K
from diffupose.data import keypoint_examples
from diffupose.errors import DataError
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

from conftest import require_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
H = {n: i for i, n in enumerate(H36M17.joint_names)}


def _truth(n: int = 3, seed: int = 0) -> np.ndarray:
    """(n, 17, 2) pixel H36M-17 poses: the mean pose, scaled, moved and jittered."""
    rng = np.random.default_rng(seed)
    base = K.MEAN_POSE_2D_H36M17 * 120.0 + np.array([500.0, 420.0])
    return base[None] + rng.normal(0, 3.0, size=(n, 17, 2))


def _scores(xy: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(xy).all(axis=-1), 0.9, 0.0)


def _write(tmp_path: Path, fmt: str, truth: np.ndarray) -> Path:
    xy = K.from_h36m17(truth, fmt)
    s = _scores(xy)
    if fmt in ("coco17", "coco_wholebody", "halpe26"):
        path = tmp_path / f"{fmt}.json"
        path.write_text(K.coco_results_json(xy, s, list(range(len(xy)))))
    elif fmt == "body25":
        path = tmp_path / "op"
        path.mkdir()
        for i in range(len(xy)):
            (path / f"f_{i}_keypoints.json").write_text(K.openpose_json(xy[i:i + 1], s[i:i + 1]))
    else:
        path = tmp_path / f"{fmt}.npy"
        np.save(path, np.concatenate([np.nan_to_num(xy), s[..., None]], axis=-1))
    return path


@pytest.mark.parametrize("fmt", ["coco17", "coco_wholebody", "halpe26", "body25", "mpii16", "h36m17", "humaneva15"])
def test_every_format_parses_detects_and_maps(tmp_path, fmt):
    truth = _truth()
    path = _write(tmp_path, fmt, truth)
    assert K.detect_format(path) == fmt or (fmt == "humaneva15" and K.detect_format(path) == "humaneva15")
    kp = K.read_keypoints(path)
    assert kp.format == fmt and len(kp) == 3 and kp.pixels
    xy, ok = K.to_h36m17(kp.keypoints, kp.present, fmt)
    copied = [H[j] for j in K.LAYOUT_TO_H36M[fmt]]
    np.testing.assert_allclose(xy[:, copied], truth[:, copied], atol=0.06)  # files keep 0.1 px
    if fmt == "humaneva15":  # spine and neck_nose are not in HumanEva; derived from the others
        assert ok[:, [H["spine"], H["neck_nose"]]].all()
    assert ok.all(), f"{fmt}: joints left missing {np.flatnonzero(~ok[0])}"
    torso = np.linalg.norm(truth[:, H["thorax"]] - truth[:, H["hip"]], axis=-1).mean()
    err = np.linalg.norm(xy - truth, axis=-1).max()
    assert err < 0.35 * torso, f"{fmt}: derived joints {err:.1f} px off (torso {torso:.1f} px)"


def test_humaneva_target_goes_through_h36m(tmp_path):
    truth = _truth()
    kp = K.read_keypoints(_write(tmp_path, "coco17", truth))
    xy, ok = K.to_skeleton(kp.keypoints, kp.present, kp.format, HUMANEVA15)
    assert xy.shape == (3, 15, 2) and ok.all()
    np.testing.assert_allclose(xy[:, 2], truth[:, H["left_shoulder"]], atol=0.06)


def test_missing_joints_from_scores_flags_and_nan(tmp_path):
    truth = _truth(2)
    xy = K.from_h36m17(truth, "coco17")
    s = _scores(xy)
    s[0, 5] = 0.1                                      # below min_score
    path = tmp_path / "c.json"
    path.write_text(K.coco_results_json(xy, s, [0, 1]))
    kp = K.read_keypoints(path, min_score=0.3)
    assert not kp.present[0, 5] and kp.present[1, 5] and np.isnan(kp.keypoints[0, 5]).all()
    assert K.read_keypoints(path, min_score=0.05).present[0, 5]
    # COCO visibility flags: v = 0 missing, 1 and 2 present
    entries = json.loads(path.read_text())
    for e in entries:
        e["keypoints"][2::3] = [2] * 17
    entries[1]["keypoints"][3 * 7 + 2] = 0
    entries[1]["keypoints"][3 * 8 + 2] = 1
    path.write_text(json.dumps(entries))
    kp = K.read_keypoints(path)
    assert not kp.present[1, 7] and kp.present[1, 8] and kp.present[0].all()
    # NaN coordinates in an array
    arr = truth.copy()
    arr[1, 3] = np.nan
    np.save(tmp_path / "h.npy", arr)
    kp = K.read_keypoints(tmp_path / "h.npy")
    assert not kp.present[1, 3] and kp.present.sum() == 2 * 17 - 1
    # a missing source joint makes the derived joints that need it missing too
    coco = K.from_h36m17(truth, "coco17")
    present = np.isfinite(coco).all(axis=-1)
    present[0, 11] = False                              # left_hip
    _, ok = K.to_h36m17(np.where(present[..., None], coco, np.nan), present, "coco17")
    assert not ok[0, H["hip"]] and not ok[0, H["spine"]] and not ok[0, H["thorax"]] and ok[1].all()


def test_people_all_and_best(tmp_path):
    truth = _truth(3)
    xy = K.from_h36m17(truth, "coco17")
    s = _scores(xy)
    s[1] *= 0.5
    path = tmp_path / "people.json"
    path.write_text(K.coco_results_json(xy, s, [7, 7, 8]))   # two people in image 7
    kp = K.read_keypoints(path)
    assert len(kp) == 3 and not kp.is_track and kp.person.tolist() == [0, 1, 0]
    best = K.read_keypoints(path, people="best")
    assert len(best) == 2 and best.is_track and best.frame.tolist() == ["7", "8"]
    np.testing.assert_allclose(best.keypoints[0, 0], xy[0, 0], atol=0.06)


def _one_line_error(path, **kw) -> str:
    with pytest.raises(DataError) as e:
        K.read_keypoints(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_malformed_files_give_one_line_errors(tmp_path):
    truth = _truth(2)
    good = json.loads(K.coco_results_json(K.from_h36m17(truth, "coco17"), np.full((2, 17), 0.9), [0, 1]))
    cases = {}
    (tmp_path / "empty.json").write_text("")
    cases["empty.json"] = "empty"
    (tmp_path / "emptylist.json").write_text("[]")
    cases["emptylist.json"] = "no keypoints"
    (tmp_path / "bad.json").write_text("{not json")
    cases["bad.json"] = "not valid JSON"
    wrong = [dict(good[0], keypoints=good[0]["keypoints"][:48])]
    (tmp_path / "count.json").write_text(json.dumps(wrong))
    cases["count.json"] = "expected 17 (COCO)"
    (tmp_path / "nokey.json").write_text(json.dumps([{"image_id": 0, "score": 1.0}]))
    cases["nokey.json"] = "no 'keypoints' key"
    out_of_range = [dict(good[0], keypoints=[v if (i % 3) != 2 else 1.7 for i, v in enumerate(good[0]["keypoints"])])]
    (tmp_path / "range.json").write_text(json.dumps(out_of_range))
    cases["range.json"] = "out of range"
    negative = [dict(good[0], keypoints=[v if i != 2 else -0.5 for i, v in enumerate(good[0]["keypoints"])])]
    (tmp_path / "negative.json").write_text(json.dumps(negative))
    cases["negative.json"] = "out of range"
    gone = [dict(good[0], keypoints=[v if (i % 3) != 2 else 0.05 for i, v in enumerate(good[0]["keypoints"])])]
    (tmp_path / "gone.json").write_text(json.dumps(gone))
    cases["gone.json"] = "every keypoint is missing"
    (tmp_path / "op.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 54}]}))
    cases["op.json"] = "expected 75"
    (tmp_path / "op2.json").write_text(json.dumps({"people": [{"face_keypoints_2d": []}]}))
    cases["op2.json"] = "no 'pose_keypoints_2d' key"
    np.save(tmp_path / "j14.npy", np.zeros((3, 14, 2)))
    cases["j14.npy"] = "expected (N, J, 2)"
    (tmp_path / "empty.npy").write_bytes(b"")
    cases["empty.npy"] = "empty"
    (tmp_path / "x.csv").write_text("1,2")
    cases["x.csv"] = "expected a .json or .npy"
    cases["absent.json"] = "not found"
    for name, expected in cases.items():
        msg = _one_line_error(tmp_path / name)
        assert expected in msg, f"{name}: {msg}"
    (tmp_path / "opdir").mkdir()
    assert "no OpenPose" in _one_line_error(tmp_path / "opdir")
    # a forced format that does not fit the file
    np.save(tmp_path / "h17.npy", truth)
    assert "expected 16 for mpii16" in _one_line_error(tmp_path / "h17.npy", format="mpii16")
    assert "unknown keypoint format" in _one_line_error(tmp_path / "h17.npy", format="coco18")


def test_format_override_reads_coco_ordered_arrays(tmp_path):
    truth = _truth(2)
    coco = np.nan_to_num(K.from_h36m17(truth, "coco17"))
    np.save(tmp_path / "coco.npy", coco)
    assert K.detect_format(tmp_path / "coco.npy") == "h36m17"     # 17 joints: H36M unless told
    kp = K.read_keypoints(tmp_path / "coco.npy", format="coco17")
    xy, _ = K.to_h36m17(kp.keypoints, kp.present, kp.format)
    np.testing.assert_allclose(xy[:, H["left_wrist"]], truth[:, H["left_wrist"]])


def test_pixels_need_the_image_size_and_use_the_camera_normalisation():
    truth = _truth(2)
    with pytest.raises(DataError, match="image size"):
        K.normalize_keypoints(truth, None, "x.json")
    np.testing.assert_allclose(K.normalize_keypoints(truth, (1000, 1002)), normalize_screen_coordinates(truth, 1000, 1002))
    small = normalize_screen_coordinates(truth, 1000, 1002)
    assert K.normalize_keypoints(small, None) is not None


def test_derived_joint_table_is_in_the_docstring_and_consistent():
    assert K.derived_joints_table() in K.__doc__
    assert K.layout_table() in K.__doc__
    h36m = set(H36M17.joint_names)
    for joint, terms, residual in K.DERIVED_JOINTS:
        assert joint in h36m and all(s in h36m for s, _ in terms)
        assert sum(w for _, w in terms) == pytest.approx(1.0)     # affine: translation-invariant
        assert 0 < residual < 0.05
    for fmt, mapping in K.LAYOUT_TO_H36M.items():
        assert set(mapping) <= h36m and set(mapping.values()) <= set(K.LAYOUTS[fmt])


def test_examples_are_small_and_labelled():
    files = [p for p in EXAMPLES.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300_000
    readme = (EXAMPLES / "README.md").read_text()
    assert "synthetic" in readme.lower() and "ground truth" in readme.lower()
    for name, fmt, *_ in keypoint_examples.EXAMPLES:
        kp = K.read_keypoints(EXAMPLES / name)
        assert kp.format == fmt and kp.is_track and (~kp.present).any()


@pytest.mark.realdata
def test_examples_regenerate_identically(tmp_path, shared_data):
    require_file(shared_data / "h36m" / "h36m_3d17_train.npz")
    keypoint_examples.make_examples(shared_data / "h36m", tmp_path)
    for name, *_ in keypoint_examples.EXAMPLES:
        ours, shipped = tmp_path / name, EXAMPLES / name
        pairs = ([(ours, shipped)] if ours.is_file()
                 else [(p, shipped / p.name) for p in sorted(ours.iterdir())])
        assert len(pairs) == len(list(shipped.iterdir()) if shipped.is_dir() else [shipped])
        for a, b in pairs:
            assert a.read_bytes() == b.read_bytes(), f"{b} differs from a fresh make_examples"


def test_openpose_folder_frames_come_from_the_file_names(tmp_path):
    """OpenPose names each file by its frame: skipped frames stay gaps in the track, and a folder
    whose names carry no increasing number falls back to the file positions."""
    truth = _truth(3)
    xy = K.from_h36m17(truth, "body25")
    s = _scores(xy)
    folder = tmp_path / "op"
    folder.mkdir()
    for i, frame in enumerate([0, 2, 6]):
        (folder / f"clip_{frame:012d}_keypoints.json").write_text(K.openpose_json(xy[i:i + 1], s[i:i + 1]))
    assert K.read_keypoints(folder).frame.tolist() == ["0", "2", "6"]
    other = tmp_path / "named"
    other.mkdir()
    for i, name in enumerate(["left", "middle", "right"]):
        (other / f"{name}.json").write_text(K.openpose_json(xy[i:i + 1], s[i:i + 1]))
    assert K.read_keypoints(other).frame.tolist() == ["0", "1", "2"]


def test_array_frames_are_checked_and_kept():
    xy = _truth(3)
    kp = K.keypoints_from_array(xy, "h36m17", frames=[0, 2, 4])
    assert kp.frame.tolist() == ["0", "2", "4"]
    for bad, words in [([0, 2], "frames of shape (2,) for 3 rows"), ([0, 2, 2], "strictly increasing"),
                       ([0, 1.5, 3], "whole frame numbers")]:
        with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
            K.keypoints_from_array(xy, "h36m17", frames=bad)
