"""The command line end to end: prepare -> train -> evaluate -> sample/describe, on both
Human3.6M input layouts (a slice of the real plain 17-joint file, and synthetic files written
in the VideoPose3D format), plus one-line errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffupose.cli import main
from diffupose.evaluation.reference import H36M_ACTIONS
from diffupose.geometry.skeleton import H36M32_TO_17

from conftest import require_file

TINY_TRAIN = ["--preset", "tiny", "--set", "train.max_steps=12", "--set", "train.val_every=6",
              "--set", "train.checkpoint_every=6", "--set", "data.max_val_samples=64", "--no-progress"]


def _run(capsys, *argv) -> dict | str:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    last = out.out.strip().splitlines()[-1] if out.out.strip() else ""
    try:
        return json.loads(last)
    except json.JSONDecodeError:
        return out.out


def _fail(capsys, *argv) -> str:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _train_and_evaluate(capsys, tmp_path: Path, prepared: Path, split: str) -> dict:
    run = tmp_path / "run"
    out = _run(capsys, "train", "--data", prepared, "--out", run, *TINY_TRAIN)
    assert out["steps"] == 12 and (run / "checkpoint").is_dir()
    result_path = tmp_path / "eval.json"
    text = _run(capsys, "evaluate", "--run", run, "--data", prepared, "--split", split,
                "--json", result_path, "--csv", tmp_path / "eval.csv", "--hypotheses", 2,
                "--steps", 2, "--max-samples", 64, *(("--checkpoint", "ema") if split == "val" else ()))
    assert "MPJPE" in text
    result = json.loads(result_path.read_text())
    assert (tmp_path / "eval.csv").read_text().count("\n") > 10
    return result


@pytest.mark.realdata
def test_h36m_plain_layout_end_to_end(capsys, tmp_path, shared_data):
    src = require_file(shared_data / "h36m" / "h36m_3d17_train.npz")
    data_dir = tmp_path / "h36m"
    data_dir.mkdir()
    with np.load(src) as f:  # a small slice of the real file: 3 actions of S1 and S8, 40 frames
        keys = [k for k in f.files if k.split("/")[0] in ("S1", "S8")
                and k.split("/")[1].split(" ")[0] in ("Walking", "Eating", "Sitting")]
        np.savez(data_dir / "h36m_3d17_train.npz", **{k: f[k][:40] for k in keys})
    prepared = tmp_path / "h36m.npz"
    out = _run(capsys, "prepare", "--dataset", "h36m", "--data-dir", data_dir, "--keypoints", "gt",
               "--val-subjects", "S8", "--stride", 2, "--out", prepared)
    assert out["splits"]["val"] > 0 and out["splits"]["test"] == 0
    with np.load(prepared, allow_pickle=False) as f:
        assert set(f["subject"][f["split"] == "val"]) == {"S8"}
    result = _train_and_evaluate(capsys, tmp_path, prepared, "val")
    mpjpe = result["per_action"]["MPJPE"]
    assert set(mpjpe) == {"Walking", "Eating", "Sitting", "Average"}
    assert mpjpe["Average"] == pytest.approx(np.mean([mpjpe[a] for a in ("Walking", "Eating", "Sitting")]))
    assert result["card"]["split"] == "val" and result["card"]["num_hypotheses"] == 2
    # the test subjects are not in this file: asking for them is an error naming them
    err = _fail(capsys, "evaluate", "--run", tmp_path / "run", "--data", prepared, "--split", "test")
    assert "test" in err


def _videopose3d_files(folder: Path, rng: np.random.Generator) -> None:
    """Tiny VideoPose3D-format H36M files: 32 joints, 4 cameras, pickled dicts; S1 and S9."""
    folder.mkdir()
    positions_3d, positions_2d = {}, {}
    for subject in ("S1", "S9"):
        positions_3d[subject], positions_2d[subject] = {}, {}
        for action in ("Walking", "Directions 1", "Eating"):
            frames = 30
            pose = rng.normal(0, 0.15, size=(frames, 32, 3)).astype(np.float32)
            pose[:, :, 2] += 0.9  # world z up, pelvis ~0.9 m
            positions_3d[subject][action] = pose
            positions_2d[subject][action] = [rng.uniform(100, 900, size=(frames, 17, 2)).astype(np.float32)
                                             for _ in range(4)]
    np.savez(folder / "data_3d_h36m.npz", positions_3d=positions_3d)
    np.savez(folder / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=positions_2d,
             metadata={"layout_name": "h36m", "num_joints": 17,
                       "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]})


def test_videopose3d_layout_end_to_end(capsys, tmp_path):
    folder = tmp_path / "vp3d"
    _videopose3d_files(folder, np.random.default_rng(0))
    prepared = tmp_path / "vp3d.npz"
    err = _fail(capsys, "prepare", "--dataset", "h36m", "--data-dir", folder, "--keypoints",
                "cpn_ft_h36m_dbb", "--out", prepared)
    assert "--allow-pickle" in err and not prepared.exists()
    with pytest.warns(UserWarning, match="unpickling"):
        out = _run(capsys, "prepare", "--dataset", "h36m", "--data-dir", folder, "--keypoints",
                   "cpn_ft_h36m_dbb", "--allow-pickle", "--out", prepared)
    assert out["splits"]["test"] == 3 * 30 * 4  # S9 (3 sequences x 30 frames x 4 cameras) is a test subject
    with np.load(prepared, allow_pickle=False) as f:
        assert set(f["subject"][f["split"] == "test"]) == {"S9"}
        assert f["poses_3d"].shape[1:] == (17, 3)
        assert json.loads(str(f["meta_json"]))["keypoints"] == "cpn_ft_h36m_dbb"
    result = _train_and_evaluate(capsys, tmp_path, prepared, "test")
    assert set(result["per_action"]["MPJPE"]) <= set(H36M_ACTIONS) | {"Average"}
    assert result["card"]["split"] == "test"
    assert len(H36M32_TO_17) == 17


def test_sample_and_describe(capsys, tmp_path, synthetic_npz):
    run = tmp_path / "run"
    _run(capsys, "train", "--data", synthetic_npz, "--out", run, *TINY_TRAIN)
    with np.load(synthetic_npz) as f:
        keypoints = f["keypoints_2d"][:5]
    np.save(tmp_path / "kp.npy", keypoints)
    (tmp_path / "kp.json").write_text(json.dumps(keypoints[0].tolist()))
    out = _run(capsys, "sample", "--run", run, "--keypoints", tmp_path / "kp.npy", "--out",
               tmp_path / "h.npz", "--hypotheses", 3, "--steps", 2)
    assert out["hypotheses_shape"] == [5, 3, 17, 3]
    with np.load(tmp_path / "h.npz", allow_pickle=False) as f:
        assert f["hypotheses"].shape == (5, 3, 17, 3) and f["aggregate"].shape == (5, 17, 3)
        assert np.isfinite(f["hypotheses"]).all()
        card = json.loads(str(f["card"]))
    assert card["git_commit"] and card["versions"]["torch"] and card["date"] and " -> " in card["precision"]
    assert card["calibrated"] is False and card["radius_90"]["calibrated"] is False      # the run has no calibration
    out = _run(capsys, "sample", "--run", run, "--keypoints", tmp_path / "kp.json", "--out",
               tmp_path / "h1.npz", "--hypotheses", 2, "--sampler", "ddpm")
    assert out["hypotheses_shape"] == [1, 2, 17, 3]
    assert "--json and --csv both name" in _fail(capsys, "evaluate", "--run", run, "--data", synthetic_npz,
                                                 "--checkpoint", "ema", "--json", tmp_path / "e.x",
                                                 "--csv", tmp_path / "e.x")
    assert "seed must be >= 0" in _fail(capsys, "evaluate", "--run", run, "--data", synthetic_npz,
                                        "--checkpoint", "ema", "--seed", -1)
    assert "no CUDA device is available" in _fail(capsys, "sample", "--run", run, "--keypoints",
                                                   tmp_path / "kp.npy", "--out", tmp_path / "c.npz",
                                                   "--device", "cuda") or __import__("torch").cuda.is_available()
    assert "is not a device name" in _fail(capsys, "sample", "--run", run, "--keypoints", tmp_path / "kp.npy",
                                           "--out", tmp_path / "c.npz", "--device", "gpu")

    desc = _run(capsys, "describe", "--dim", 256, "--released-unused-film")
    assert desc["parameters"] == 1_453_860 and desc["num_joints"] == 17 and desc["layers"]
    assert _run(capsys, "describe", "--dim", 384)["parameters"] == 3_078_628
    assert 2.7e6 < _run(capsys, "describe", "--denoiser", "unet")["parameters"] < 3.3e6


def test_one_line_errors(capsys, tmp_path, synthetic_npz):
    run = tmp_path / "run"
    _run(capsys, "train", "--data", synthetic_npz, "--out", run, *TINY_TRAIN)
    np.save(tmp_path / "bad_joints.npy", np.zeros((2, 15, 2), np.float32))
    assert "joints" in _fail(capsys, "sample", "--run", run, "--keypoints", tmp_path / "bad_joints.npy",
                             "--out", tmp_path / "x.npz")
    np.save(tmp_path / "nan.npy", np.full((2, 17, 2), np.nan, np.float32))
    assert "NaN" in _fail(capsys, "sample", "--run", run, "--keypoints", tmp_path / "nan.npy",
                          "--out", tmp_path / "x.npz")
    np.save(tmp_path / "shape.npy", np.zeros((2, 17, 3), np.float32))
    assert "shape" in _fail(capsys, "sample", "--run", run, "--keypoints", tmp_path / "shape.npy",
                            "--out", tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    assert "config" in _fail(capsys, "evaluate", "--run", tmp_path / "nope", "--data", synthetic_npz)
    assert "not found" in _fail(capsys, "prepare", "--dataset", "h36m", "--data-dir", tmp_path / "missing",
                                "--out", tmp_path / "y.npz")
    assert "unknown" in _fail(capsys, "train", "--data", synthetic_npz, "--out", tmp_path / "r2",
                              "--set", "train.nonsense=1").lower()
    # a truncated checkpoint (best and latest)
    for ema in run.glob("checkpoint/*/ema.safetensors"):
        ema.write_bytes(ema.read_bytes()[:100])
    np.save(tmp_path / "kp.npy", np.zeros((1, 17, 2), np.float32))
    err = _fail(capsys, "sample", "--run", run, "--keypoints", tmp_path / "kp.npy", "--out", tmp_path / "z.npz")
    assert "safetensors" in err or "corrupt" in err or "truncated" in err
