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
from diffupose.aggregate import project_perspective
from diffupose.bvh import bvh_joint_positions, read_bvh
from diffupose.cli import main
from diffupose.config import EvalConfig
from diffupose.data import keypoints as K
from diffupose.errors import ConfigError, DataError
from diffupose.lift import lift, place_root, plan_outputs, smooth_sequence
from diffupose.skeleton import H36M17

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
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert re.search(r'<script[^>]+src="plotly.min.js"', page) and "plotly-graph-div" in page
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page) and "cdn.plot.ly" not in page


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

    def lift(self, keypoints_2d, settings, intrinsics=None, keypoint_mask=None, progress=False):
        self.calls.append(dict(keypoints_2d=keypoints_2d, mask=keypoint_mask, settings=settings))
        n = len(keypoints_2d)
        hyps = np.zeros((n, settings.num_hypotheses, 17, 3), dtype=np.float32)
        return SimpleNamespace(hypotheses=hyps, aggregate=hyps.mean(axis=1), spread=np.zeros((n, 17)))


def test_masked_models_get_the_mask_plain_models_get_filled_joints(caplog):
    masked = _RecordingLifter(True)
    result = lift(COCO, lifter=masked, image_size=SIZE, num_hypotheses=4)
    call = masked.calls[0]
    assert call["mask"] is not None and call["mask"].dtype == bool
    np.testing.assert_array_equal(call["mask"], result.keypoint_mask)
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
