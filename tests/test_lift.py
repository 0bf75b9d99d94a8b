"""`diffupose.lift` and `diffupose lift` end to end on a tiny model: every output file, the
missing-joint handling (mask for masked models, filling + warning otherwise), root placement,
smoothing, output-path checks before any work, and one-line CLI errors."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import diffupose
from diffupose.inference.aggregate import project_perspective
from diffupose.lifting.bvh import bvh_joint_positions, read_bvh
from diffupose.cli import main
from diffupose.config import EvalConfig
from diffupose.data import keypoints as K
from diffupose.errors import ConfigError, DataError
from diffupose.lifting import lift, place_root, plan_outputs, smooth_sequence, write_outputs
from diffupose.geometry.skeleton import H36M17
from diffupose.data.windows import MAX_GAP_S
from diffupose.model.masking import short_gaps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COCO = EXAMPLES / "coco17_S8_walking.json"
OPENPOSE = EXAMPLES / "openpose_S8_directions"
SIZE = (1000, 1002)
TINY_TRAIN = ["--preset", "tiny", "--set", "train.max_steps=12", "--set", "train.val_every=6",
              "--set", "train.checkpoint_every=6", "--set", "data.max_val_samples=64", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_npz) -> Path:
    run = tmp_path_factory.mktemp("lift") / "run"
    assert main(["train", "--data", str(synthetic_npz), "--out", str(run), *TINY_TRAIN]) == 0
    return run


def test_lift_api_writes_every_output(run_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        result = diffupose.lift(COCO, run_dir, image_size=SIZE, num_hypotheses=3, num_steps=2,
                                out=tmp_path / "walk.npz")
    n = 100
    assert result.hypotheses.shape == (n, 3, 17, 3) and result.aggregate.shape == (n, 17, 3)
    assert result.spread.shape == (n, 17) and (result.spread >= 0).all()
    np.testing.assert_allclose(result.aggregate, result.hypotheses.mean(axis=1), atol=1e-5)  # mean, not smoothed
    assert not result.keypoint_mask.all() and result.keypoint_mask.any(axis=1).all()
    assert np.isfinite(result.keypoints_2d).all()
    assert result.card["root_relative"] and "root-relative" in result.card["coordinates"]
    assert result.card["missing_joint_handling"].startswith("filled")
    assert any("trained without missing-joint masking" in r.message for r in caplog.records)
    assert set(result.files) == {"npz", "json", "bvh", "html"}
    with np.load(tmp_path / "walk.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(f["hypotheses"], result.hypotheses)
        assert f["keypoint_mask"].dtype == bool and "root_translation" not in f.files
        assert json.loads(str(f["card_json"]))["format"] == "coco17"
    doc = json.loads((tmp_path / "walk.json").read_text())
    assert np.asarray(doc["hypotheses"]).shape == (n, 3, 17, 3) and doc["joint_names"] == list(H36M17.joint_names)
    assert doc["root_translation"] is None and doc["frame"][:2] == ["0", "2"]
    back = bvh_joint_positions(read_bvh(tmp_path / "walk.bvh"), H36M17)
    assert back.shape == (n, 17, 3)
    assert result.card["bvh"]["max_deviation_mm"] == pytest.approx(np.abs(back - result.aggregate).max() * 1000, abs=0.01)
    page = (tmp_path / "walk.html").read_text()
    assert not (tmp_path / "plotly.min.js").exists()             # self-contained by default
    assert len(page) > 1_000_000 and "plotly-graph-div" in page and not re.search(r'<script[^>]+src=', page)
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page)    # nothing loaded from a CDN


def test_viewer_can_share_one_plotly_file_and_lists_it(run_dir, tmp_path):
    result = lift(COCO, run_dir, image_size=SIZE, num_hypotheses=2, num_steps=2, outputs=("html",),
                  out=tmp_path / "walk", viewer_js="file")
    page = (tmp_path / "walk.html").read_text()
    assert re.search(r'<script[^>]+src="plotly.min.js"', page) and len(page) < 1_000_000
    assert result.files == {"html": tmp_path / "walk.html", "plotly_js": tmp_path / "plotly.min.js"}
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_focal_length_places_the_root_and_smoothing(run_dir, tmp_path):
    result = lift(OPENPOSE, run_dir, image_size=SIZE, focal_length=1145.0, num_hypotheses=2, num_steps=2,
                  smooth=2.0, outputs=("npz",), out=tmp_path / "dir")
    assert result.root_translation.shape == (40, 3) and np.isfinite(result.root_translation).all()
    assert not result.card["root_relative"] and "focal length" in result.card["coordinates"]
    assert "gaussian" in result.card["smoothing"]
    raw = result.hypotheses.mean(axis=1)
    assert np.abs(np.diff(result.aggregate, axis=0)).mean() < np.abs(np.diff(raw, axis=0)).mean()
    assert list(result.files) == ["npz"] and not (tmp_path / "dir.json").exists()


def test_place_root_recovers_a_known_translation_with_missing_joints():
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, size=(4, 17, 3))
    pose[:, 0] = 0
    truth = np.array([[0.2, -0.1, 5.0], [0.0, 0.3, 4.0], [-0.5, 0.0, 6.0], [0.1, 0.1, 3.5]])
    k = np.array([2.29, 2.29, 0.0, 0.002])
    kp = project_perspective(pose + truth[:, None], np.broadcast_to(k, (4, 4)))
    present = np.ones((4, 17), dtype=bool)
    present[1, [3, 5]] = False
    kp[1, [3, 5]] = 99.0                          # garbage where missing: must be ignored
    np.testing.assert_allclose(place_root(pose, kp, present, k), truth, atol=1e-6)


def test_smooth_sequence_is_a_normalised_gaussian():
    ramp = np.linspace(0, 1, 50)[:, None] * np.ones((1, 3))
    out = smooth_sequence(ramp, 2.0)
    np.testing.assert_allclose(out[10:40], ramp[10:40], atol=1e-12)          # linear motion kept inside
    np.testing.assert_allclose(smooth_sequence(np.full((9, 2), 3.0), 1.0), 3.0)
    noise = np.random.default_rng(0).normal(size=(500, 1))
    assert smooth_sequence(noise, 3.0).std() < 0.5 * noise.std()
    assert smooth_sequence(noise, 0.0) is not None and np.array_equal(smooth_sequence(noise, 0.0), noise)


class _RecordingLifter:
    """Duck-typed Lifter for a model trained with missing joints: records what it was given."""

    def __init__(self, masked: bool):
        self.config = SimpleNamespace(model=SimpleNamespace(missing_joints=masked), eval=EvalConfig())
        self.skeleton = H36M17
        self.calls = []

    def sampler_card(self, settings):
        return {"objective": "ddpm", "sampler": settings.sampler, "num_steps": settings.num_steps,
                "nfe": settings.num_steps}

    def predict(self, keypoints_2d, settings, intrinsics=None, keypoint_mask=None, progress=False):
        self.calls.append(dict(keypoints_2d=keypoints_2d, mask=keypoint_mask, settings=settings))
        n = len(keypoints_2d)
        hyps = np.zeros((n, settings.num_hypotheses, 17, 3), dtype=np.float32)
        return SimpleNamespace(hypotheses=hyps, aggregate=hyps.mean(axis=1), spread=np.zeros((n, 17)))


def test_masked_models_get_the_mask_plain_models_get_filled_joints(caplog):
    masked = _RecordingLifter(True)
    result = lift(COCO, lifter=masked, image_size=SIZE, num_hypotheses=4)
    call = masked.calls[0]
    assert call["mask"] is not None and call["mask"].dtype == bool
    # the mask is what was detected, except joints missing briefly inside the track (interpolated in time)
    times = np.array([int(f) for f in result.frame])
    bridged = short_gaps(result.keypoint_mask, times, MAX_GAP_S * 50)
    np.testing.assert_array_equal(call["mask"], result.keypoint_mask | bridged)
    assert 0 < bridged.sum() < (~result.keypoint_mask).sum() == result.card["missing_joints"]
    assert result.card["joints_interpolated_in_time"] == bridged.sum()
    assert np.isfinite(call["keypoints_2d"]).all() and call["settings"].num_hypotheses == 4
    assert result.card["missing_joint_handling"].startswith("masked")
    plain = _RecordingLifter(False)
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        lift(COCO, lifter=plain, image_size=SIZE)
    assert plain.calls[0]["mask"] is None and "filled" in caplog.text
    with pytest.raises(ConfigError, match="needs a model trained with missing joints"):
        lift(COCO, lifter=plain, image_size=SIZE, missing="mask")
    masked.calls.clear()
    result = lift(COCO, lifter=masked, image_size=SIZE, missing="fill")      # fill even for a masked model
    assert masked.calls[0]["mask"] is None and result.card["missing_joint_handling"].startswith("filled")
    # nothing missing: no mask at all (the paper's behaviour), even for a masked model
    h36m = K.read_keypoints(COCO, min_score=0.0)
    masked.calls.clear()
    lift(h36m, lifter=masked, image_size=SIZE)
    assert masked.calls[0]["mask"] is None


def test_outputs_are_checked_before_any_work(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        lift(COCO, tmp_path / "no-such-run", image_size=SIZE, out=tmp_path / "a")   # run never loaded
    assert plan_outputs(tmp_path / "a", overwrite=True)["json"] == tmp_path / "a.json"
    with pytest.raises(ConfigError, match="must end in"):
        plan_outputs(tmp_path / "a.txt")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        plan_outputs(tmp_path / "file" / "sub" / "out.npz")
    with pytest.raises(ConfigError, match="unknown output"):
        plan_outputs(tmp_path / "b", formats=("npz", "csv"))


def test_pixel_input_needs_the_image_size(run_dir):
    with pytest.raises(DataError, match="image size"):
        lift(COCO, run_dir)
    with pytest.raises(ConfigError, match="track"):
        lift(_two_people(), lifter=_RecordingLifter(False), image_size=SIZE, smooth=1.0)


def test_normalised_arrays_need_no_image_size(tmp_path):
    kp = K.read_keypoints(COCO, min_score=0.0)
    xy, _ = K.to_h36m17(kp.keypoints, kp.present, kp.format)
    np.save(tmp_path / "norm.npy", K.normalize_keypoints(xy, SIZE))
    recorder = _RecordingLifter(False)
    result = lift(tmp_path / "norm.npy", lifter=recorder)
    np.testing.assert_allclose(recorder.calls[0]["keypoints_2d"], K.normalize_keypoints(xy, SIZE), atol=1e-6)
    assert result.card["format"] == "h36m17" and result.card["missing_joint_handling"] == "none missing"
    with pytest.raises(DataError, match="already normalised"):
        lift(tmp_path / "norm.npy", lifter=recorder, image_size=SIZE)


def _two_people() -> K.Keypoints:
    kp = K.read_keypoints(COCO)
    kp.frame[1] = kp.frame[0]
    return kp


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_end_to_end_and_one_line_errors(run_dir, tmp_path, capsys):
    rc, out, err = _cli(capsys, "lift", "--run", run_dir, "--keypoints", OPENPOSE, "--image-size", *SIZE,
                        "--hypotheses", 2, "--steps", 2, "--out", tmp_path / "op.json", "--outputs", "json", "bvh")
    assert rc == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["hypotheses_shape"] == [40, 2, 17, 3] and set(info["files"]) == {"json", "bvh"}
    # an existing output is never replaced without --overwrite
    rc, _, err = _cli(capsys, "lift", "--run", run_dir, "--keypoints", OPENPOSE, "--image-size", *SIZE,
                      "--out", tmp_path / "op.json", "--outputs", "json")
    assert rc == 2 and "--overwrite" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 48}]))
    for argv, expected in [
        (["--keypoints", bad, "--image-size", *SIZE], "expected 17 (COCO)"),
        (["--keypoints", COCO], "--image-size"),
        (["--keypoints", COCO, "--focal", 1000], "focal length needs the image size"),
        (["--keypoints", tmp_path / "missing.json", "--image-size", *SIZE], "not found"),
    ]:
        rc, _, err = _cli(capsys, "lift", "--run", run_dir, *argv, "--out", tmp_path / "x")
        assert rc == 2 and len(err.strip().splitlines()) == 1 and expected in err, err


@pytest.mark.parametrize("fmt", K.FORMATS)
def test_every_format_lifts(tmp_path, fmt):
    from test_keypoints import _truth, _write

    path = _write(tmp_path, fmt, _truth(4))
    recorder = _RecordingLifter(False)
    result = lift(path, lifter=recorder, image_size=SIZE, num_hypotheses=2)
    assert result.card["format"] == fmt and result.hypotheses.shape == (4, 2, 17, 3)
    assert result.keypoint_mask.all() and recorder.calls[0]["mask"] is None
    assert np.abs(recorder.calls[0]["keypoints_2d"]).max() < 1.5          # normalised, not pixels


# ----------------------------------------------------------------------------------------------
# Input safety (issue 21): out-of-range values, 17-joint layouts, all-or-nothing outputs


def _face(truth: np.ndarray) -> np.ndarray:
    """COCO-17 pixels from H36M-17 ones, with eyes and ears placed around the nose as a detector
    reports them (from_h36m17 leaves them missing)."""
    coco = K.from_h36m17(truth, "coco17")
    nose, top = truth[:, H36M17.joint_names.index("neck_nose")], truth[:, H36M17.joint_names.index("head")]
    up = top - nose
    side = np.stack([-up[:, 1], up[:, 0]], axis=-1)
    names = K.LAYOUTS["coco17"]
    for name, along, across in (("left_eye", 0.3, 0.25), ("right_eye", 0.3, -0.25), ("left_ear", 0.1, 0.6),
                                ("right_ear", 0.1, -0.6)):
        coco[:, names.index(name)] = nose + along * up + across * side
    return coco


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_out_of_range_coordinates_are_refused_naming_file_sample_and_joint(tmp_path):
    from test_keypoints import _truth

    truth = _truth(4)
    out = tmp_path / "out" / "clip"
    cases = {}
    arr = truth.copy()
    arr[2, 5] = [1e30, 400.0]                                       # the issue's broken export
    np.save(tmp_path / "huge.npy", arr)
    cases["huge.npy"] = ("sample 2 joint 5 (left_knee)", "not an image coordinate")
    (tmp_path / "huge_list.json").write_text(json.dumps(arr.tolist()))
    cases["huge_list.json"] = ("sample 2 joint 5 (left_knee)", "not an image coordinate")
    far = truth.copy()
    far[1, 3] = [20000.0, 400.0]                                    # 20 image widths off: a unit mix-up
    np.save(tmp_path / "far.npy", far)
    cases["far.npy"] = ("sample 1 (frame 1) joint 3 (right_ankle)", "outside the 1000 x 1002 image")
    entries = json.loads(K.coco_results_json(_face(truth), np.full((4, 17), 0.9), [5, 6, 7, 8]))
    entries[3]["keypoints"][3 * 9] = float("inf")                   # written as Infinity, read back as inf
    (tmp_path / "coco.json").write_text(json.dumps(entries))
    cases["coco.json"] = ("entry 3 (image_id 8) joint 9 (left_wrist)", "not an image coordinate")
    (tmp_path / "op").mkdir()
    body = K.from_h36m17(truth, "body25")
    for i in range(4):
        (tmp_path / "op" / f"f_{i}_keypoints.json").write_text(K.openpose_json(body[i:i + 1], np.full((1, 25), 0.9)))
    frame = json.loads((tmp_path / "op" / "f_2_keypoints.json").read_text())
    frame["people"][0]["pose_keypoints_2d"][3 * 4] = -3e7             # RWrist x
    (tmp_path / "op" / "f_2_keypoints.json").write_text(json.dumps(frame))
    cases["op"] = ("frame file f_2_keypoints.json people[0] joint 4 (RWrist)", "not an image coordinate")
    for name, expected in cases.items():
        with pytest.raises(DataError) as e:
            lift(tmp_path / name, lifter=_RecordingLifter(False), image_size=SIZE, out=out)
        msg = str(e.value)
        assert "\n" not in msg and str(tmp_path / name) in msg and all(x in msg for x in expected), msg
        assert not out.parent.exists()
    # a low-scored (missing) joint may hold anything finite; a normalised array is checked too
    ok = np.concatenate([truth, np.full((4, 17, 1), 0.9)], axis=-1)
    ok[0, 16] = [5e7, 5e7, 0.0]
    np.save(tmp_path / "ok.npy", ok)
    assert not lift(tmp_path / "ok.npy", lifter=_RecordingLifter(False), image_size=SIZE).keypoint_mask[0, 16]


def test_cli_refuses_the_issue_21_cases_with_one_line_and_no_file(run_dir, tmp_path, capsys):
    from test_keypoints import _truth

    truth = _truth(6)
    arr = truth.copy()
    arr[:, 5] = 1e30
    np.save(tmp_path / "broken.npy", arr)
    np.save(tmp_path / "coco.npy", _face(truth))                    # COCO order saved as a plain array
    for name, expected in [("broken.npy", "sample 0 joint 5"), ("coco.npy", "looks like COCO-17")]:
        rc, out, err = _cli(capsys, "lift", "--run", run_dir, "--keypoints", tmp_path / name, "--image-size", *SIZE,
                            "--out", tmp_path / "res" / "clip", "--hypotheses", 2, "--steps", 2)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
        assert "Traceback" not in err and not (tmp_path / "res").exists()
    assert "--format coco17" in err
    rc, out, err = _cli(capsys, "lift", "--run", run_dir, "--keypoints", tmp_path / "coco.npy", "--image-size", *SIZE,
                        "--format", "coco17", "--out", tmp_path / "res" / "clip", "--hypotheses", 2, "--steps", 2,
                        "--outputs", "npz", "json")
    assert rc == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["layout"] == "coco17 (given with --format)" and _files(tmp_path / "res") == ["clip.json", "clip.npz"]
    doc = json.loads((tmp_path / "res" / "clip.json").read_text())
    assert doc["card"]["layout"] == info["layout"] and np.isfinite(doc["hypotheses"]).all()


def test_17_joint_arrays_are_read_as_h36m_only_when_the_geometry_says_so(tmp_path):
    from test_keypoints import _truth

    truth = _truth(5, seed=3)
    coco = _face(truth)
    layout, ev = K.guess_layout17(truth, np.ones((5, 17), dtype=bool))
    assert layout == "h36m17" and ev["h36m17"] < 0.1 and ev["coco17"] > 0.4
    layout, ev = K.guess_layout17(coco, np.ones((5, 17), dtype=bool))
    assert layout == "coco17" and ev["coco17"] < 0.1 and ev["h36m17"] > 0.4
    # the layouts' own rules decide, not the joint count: a shuffled H36M array is refused
    np.save(tmp_path / "shuffled.npy", truth[:, np.random.default_rng(0).permutation(17)])
    with pytest.raises(DataError, match="does not look like H36M-17.*--format"):
        K.read_keypoints(tmp_path / "shuffled.npy")
    np.save(tmp_path / "coco.npy", coco)
    with pytest.raises(DataError, match=r"looks like COCO-17.*--format coco17"):
        lift(tmp_path / "coco.npy", lifter=_RecordingLifter(False), image_size=SIZE)
    forced = lift(tmp_path / "coco.npy", lifter=_RecordingLifter(False), image_size=SIZE, format="coco17")
    assert forced.card["format"] == "coco17" and forced.card["layout"].endswith("(given with --format)")
    np.save(tmp_path / "h36m.npy", truth)
    detected = lift(tmp_path / "h36m.npy", lifter=_RecordingLifter(False), image_size=SIZE)
    assert detected.card["layout"].startswith("h36m17 (detected: 17-joint array")
    # JSON arrays go through the same check; COCO results and OpenPose name their layout
    (tmp_path / "coco_list.json").write_text(json.dumps(coco.tolist()))
    with pytest.raises(DataError, match="looks like COCO-17"):
        K.read_keypoints(tmp_path / "coco_list.json")
    assert lift(COCO, lifter=_RecordingLifter(False), image_size=SIZE).card["layout"] == \
        "coco17 (detected: COCO-style results with 17 keypoints per entry)"
    assert lift(OPENPOSE, lifter=_RecordingLifter(False), image_size=SIZE).card["layout"] == \
        "body25 (detected: OpenPose JSON)"


class _BrokenLifter(_RecordingLifter):
    """Returns NaN for one sample, as an overflow inside a model would."""

    def predict(self, keypoints_2d, settings, **kw):
        out = super().predict(keypoints_2d, settings, **kw)
        out.hypotheses[1, 0, 3] = np.nan
        out.aggregate = out.hypotheses.mean(axis=1)
        return out


def test_non_finite_results_are_refused_before_writing(tmp_path):
    with pytest.raises(DataError, match=r"sample 1 \(frame 2\) has non-finite hypotheses.*nothing was written"):
        lift(COCO, lifter=_BrokenLifter(False), image_size=SIZE, out=tmp_path / "out" / "walk")
    assert not (tmp_path / "out").exists()


def test_outputs_are_written_all_or_nothing(tmp_path, monkeypatch):
    import os

    import diffupose.lifting.outputs as viewer

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = lift(COCO, lifter=_RecordingLifter(False), image_size=SIZE, num_hypotheses=2)

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(viewer, "write_lift_viewer", fail)          # html fails after the bvh is staged
    with pytest.raises(OSError, match="No space"):
        write_outputs(result, plan_outputs(folder / "walk"))
    assert _files(folder) == ["notes.txt"]                          # no bvh, no temporaries, no plotly.min.js
    monkeypatch.undo()
    # the last rename fails: the files already put in place are taken back, a replaced one restored
    (folder / "walk.npz").write_bytes(b"the user's old result")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == folder / "walk.json":
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError):
        write_outputs(result, plan_outputs(folder / "walk", ("bvh", "npz", "json"), overwrite=True))
    monkeypatch.undo()
    assert _files(folder) == ["notes.txt", "walk.npz"]
    assert (folder / "walk.npz").read_bytes() == b"the user's old result" and "bvh" not in result.card
    written = write_outputs(result, plan_outputs(folder / "walk", ("bvh", "npz", "json"), overwrite=True))
    assert set(written) == {"bvh", "npz", "json"}
    assert _files(folder) == ["notes.txt", "walk.bvh", "walk.json", "walk.npz"]
    assert (folder / "walk.json").stat().st_mode & 0o777 == (folder / "notes.txt").stat().st_mode & 0o777


def test_trained_on_detections_reads_the_config_and_the_prepared_file(tmp_path):
    from diffupose.lifting import trained_on_detections

    def cfg(mode, path=""):
        return SimpleNamespace(train=SimpleNamespace(input_2d=mode), data=SimpleNamespace(path=str(path)))

    assert trained_on_detections(cfg("gt+noise")) is True and trained_on_detections(cfg("mix")) is True
    assert trained_on_detections(cfg("gt")) is False
    assert trained_on_detections(cfg("file")) is None                         # no prepared file: unknown
    assert trained_on_detections(cfg("file", tmp_path / "gone.npz")) is None
    assert trained_on_detections(SimpleNamespace(model=None)) is None
    for name, meta, expected in [("sh.npz", {"keypoints": "sh"}, True), ("gt.npz", {"keypoints": "gt"}, False),
                                 ("prep.npz", {"prepare": {"keypoints": "gt"}}, False), ("none.npz", {}, None)]:
        np.savez(tmp_path / name, meta_json=np.array(json.dumps(meta)), big=np.zeros(3))
        assert trained_on_detections(cfg("file", tmp_path / name)) is expected, name
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert trained_on_detections(cfg("file", tmp_path / "bad.npz")) is None


def test_gt_only_models_warn_once_on_detector_pixels(tmp_path, caplog, run_dir):
    from diffupose.config import Config, TrainConfig
    from diffupose.inference import Lifter
    from diffupose.lifting import trained_on_detections

    def lifter(mode):
        recorder = _RecordingLifter(False)
        recorder.config = Config(train=TrainConfig(input_2d=mode, max_steps=1))
        return recorder

    def warnings():
        return [r.message for r in caplog.records if "trained on ground-truth 2D only" in r.message]

    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        lift(COCO, lifter=lifter("gt"), image_size=SIZE)
        assert len(warnings()) == 1 and "\n" not in warnings()[0] and "train.input_2d=gt+noise or mix" in warnings()[0]
        caplog.clear()
        lift(COCO, lifter=lifter("mix"), image_size=SIZE)
        kp = K.read_keypoints(COCO, min_score=0.0)
        xy, _ = K.to_h36m17(kp.keypoints, kp.present, kp.format)
        np.save(tmp_path / "norm.npy", K.normalize_keypoints(xy, SIZE))
        lift(tmp_path / "norm.npy", lifter=lifter("gt"))                 # normalised input: not a detector's
        assert warnings() == []
    # the tiny test run trained on the synthetic file's ground-truth 2D ("file" mode, meta says gt)
    assert trained_on_detections(Lifter.load(run_dir).config) is False
