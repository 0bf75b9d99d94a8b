"""The one inference path: evaluate, `diffupose sample`, the explorer and the validation during
training draw the same hypotheses as `Lifter` for the same seed; checkpoint choice and protocol
names; the sample command's input and output checks."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from diffupose.evaluation import metrics
from diffupose.cli import main
from diffupose.config import Config, EvalConfig, apply_overrides, preset
from diffupose.data.prepared import load_prepared
from diffupose.errors import ConfigError
from diffupose.evaluation.protocols import evaluate
from diffupose.workbench.explore import explore_sample
from diffupose.inference import Lifter, SamplingSettings

SETTINGS = SamplingSettings(num_hypotheses=3, sampler="ddim", num_steps=2, flip=True, batch_size=16, seed=5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_npz) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    rc = main(["train", "--data", str(synthetic_npz), "--out", str(run), "--preset", "tiny",
               "--set", "train.max_steps=6", "--set", "train.val_every=3", "--set", "train.checkpoint_every=3",
               "--set", "data.max_val_samples=32", "--no-progress"])
    assert rc == 0
    return run


@pytest.fixture(scope="module")
def lifter(run_dir) -> Lifter:
    return Lifter.load(run_dir, checkpoint="best", device="cpu")


@pytest.fixture(scope="module")
def test_data(synthetic_npz):
    return load_prepared(synthetic_npz).select(split="test", max_samples=40, seed=5)  # as evaluate selects


def _run_cli(*argv) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue().strip()


def test_lifter_is_seeded_and_batch_independent_of_calls(lifter, test_data):
    kp = test_data.keypoints_2d[:8]
    a = lifter.sample(kp, SETTINGS)
    b = lifter.sample(kp, SETTINGS)
    assert a.shape == (8, 3, test_data.skeleton.num_joints, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    c = lifter.sample(kp, SETTINGS.replace(seed=6))
    assert np.abs(a - c).max() > 1e-4
    # iter_hypotheses in one batch == one sample call with the same seed
    (start, stop, hyps), = list(lifter.iter_hypotheses(kp, SETTINGS))
    assert (start, stop) == (0, 8)
    np.testing.assert_array_equal(hyps, a)


def test_evaluate_uses_the_same_hypotheses(lifter, synthetic_npz, test_data):
    ev = EvalConfig(sampler="ddim", num_steps=2, num_hypotheses=3, flip=True, batch_size=16, seed=5,
                    max_samples=40, checkpoint="best")
    result = evaluate(lifter, synthetic_npz, split="test", eval_cfg=ev, device="cpu", progress=False)
    out = lifter.predict(test_data.keypoints_2d, SETTINGS)
    expected = metrics.mpjpe(out.aggregate.astype(np.float64), test_data.poses_3d.astype(np.float64)) * 1000
    np.testing.assert_allclose(result.per_sample["MPJPE"], expected, rtol=1e-5, atol=1e-4)
    assert result.card["checkpoint"]["checkpoint"] == "best" and result.card["num_nan_samples"] == 0


def test_sample_command_uses_the_same_hypotheses(lifter, run_dir, test_data, tmp_path):
    keypoints = tmp_path / "kp.npy"
    np.save(keypoints, test_data.keypoints_2d[:20])
    out = tmp_path / "hyps.npz"
    rc, err = _run_cli("sample", "--run", run_dir, "--keypoints", keypoints, "--out", out, "--hypotheses", 3,
                       "--steps", 2, "--seed", 5, "--flip")
    assert rc == 0, err
    with np.load(out) as f:
        hyps = f["hypotheses"]
        assert f["aggregate"].shape == (20, 17, 3) and f["spread"].shape == (20, 17)
    # the run's eval batch size differs from SETTINGS': one generator across batches, same draws
    # only within a batch, so compare with the run's own batch size
    settings = SETTINGS.replace(batch_size=Config.from_json(run_dir / "config.json").eval.batch_size)
    np.testing.assert_array_equal(hyps, lifter.predict(test_data.keypoints_2d[:20], settings).hypotheses)


def test_explorer_uses_the_same_hypotheses(lifter, test_data):
    result = explore_sample(lifter, test_data, 4, num_hypotheses=3, sampler="ddim", num_steps=2, seed=5, flip=True)
    expected = lifter.sample(test_data.keypoints_2d[4:5], SETTINGS)[0]
    np.testing.assert_array_equal(result.hypotheses, expected)


def test_validation_uses_the_same_hypotheses(lifter, synthetic_npz):
    from diffupose.training import load_training_data, validate

    cfg = apply_overrides(preset("tiny"), [f"data.path={synthetic_npz}", "data.max_val_samples=24",
                                           "train.val_hypotheses=2", "train.val_steps=2"])
    data = load_training_data(cfg, torch.device("cpu"))
    val_mpjpe, _ = validate(lifter.denoiser, lifter.schedule, data, cfg, None)
    gen = torch.Generator().manual_seed(cfg.train.seed + 7919)   # validate's own seeded generator
    settings = SamplingSettings(num_hypotheses=2, sampler=cfg.train.val_sampler, num_steps=2, flip=False)
    hyps = Lifter.from_model(lifter.denoiser, cfg, data.skeleton).sample(data.val_keypoints_2d, settings, generator=gen)
    expected = metrics.mpjpe(hyps.mean(axis=1), data.val_poses_3d.numpy()).mean() * 1000
    assert val_mpjpe == pytest.approx(expected, rel=1e-5)


def test_best_checkpoint_is_refused_on_its_selection_split(run_dir, synthetic_npz):
    ev = EvalConfig(num_hypotheses=1, num_steps=2, max_samples=8, checkpoint="best")
    with pytest.raises(ConfigError, match="chosen on split 'val'"):
        evaluate(run_dir, synthetic_npz, split="val", eval_cfg=ev, device="cpu", progress=False)
    result = evaluate(run_dir, synthetic_npz, split="val", eval_cfg=EvalConfig(**{**ev.__dict__, "checkpoint": "ema"}),
                      device="cpu", progress=False)
    assert result.card["checkpoint_selected_on"].startswith("none")


@pytest.mark.parametrize("checkpoint", ["best", "ema", "model"])
def test_checkpoint_choices_load(run_dir, checkpoint):
    lifter = Lifter.load(run_dir, checkpoint=checkpoint, device="cpu")
    assert lifter.checkpoint_card["checkpoint"] == checkpoint


def test_bad_names_are_one_line_errors(run_dir, synthetic_npz):
    with pytest.raises(ConfigError, match="renamed: use 'gt_free'"):
        evaluate(run_dir, synthetic_npz, eval_cfg=EvalConfig(protocol="default"), device="cpu")
    with pytest.raises(ConfigError, match="unknown checkpoint"):
        Lifter.load(run_dir, checkpoint="which")
    with pytest.raises(ConfigError, match="num_hypotheses"):
        SamplingSettings(num_hypotheses=0)
    rc, err = _run_cli("evaluate", "--run", run_dir, "--data", synthetic_npz, "--protocol", "default")
    assert rc == 2 and len(err.splitlines()) == 1 and "gt_free" in err


# --- sample: input and output checks (one line, before any work) -----------------------------

@pytest.mark.parametrize("content, suffix, message", [
    (np.full((2, 17, 2), 640.0, dtype=np.float32), ".npy", "look like pixels (largest |value| 640); pass the image size (--image-size W H)"),
    (np.zeros((0, 17, 2), dtype=np.float32), ".npy", "no keypoints"),
    ('[{"x": 1, "y": 2}]', ".json", "not a rectangular numeric array of shape (N, J, 2)"),
    ("not json", ".json", "not valid JSON"),
    (np.zeros((2, 17, 3), dtype=np.float32), ".npy", "shape (N, J, 2)"),
])
def test_sample_bad_keypoints(run_dir, tmp_path, content, suffix, message):
    path = tmp_path / f"kp{suffix}"
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    out = tmp_path / "out.npz"
    rc, err = _run_cli("sample", "--run", run_dir, "--keypoints", path, "--out", out)
    assert rc == 2 and len(err.splitlines()) == 1 and message in err and str(path) in err, err
    assert not out.exists()


def test_sample_pixels_with_image_size(run_dir, tmp_path, test_data):
    from diffupose.geometry.projection import image_coordinates

    path = tmp_path / "kp.npy"
    np.save(path, image_coordinates(test_data.keypoints_2d[:3], 1000, 1000).astype(np.float32))
    rc, err = _run_cli("sample", "--run", run_dir, "--keypoints", path, "--out", tmp_path / "a.npz",
                       "--image-size", 0, 0)
    assert rc == 2 and "image size must be positive" in err
    rc, err = _run_cli("sample", "--run", run_dir, "--keypoints", path, "--out", tmp_path / "a.npz",
                       "--image-size", 1000, 1000, "--hypotheses", 1, "--steps", 2)
    assert rc == 0, err
    with np.load(tmp_path / "a.npz") as f:
        np.testing.assert_allclose(f["keypoints_2d"], test_data.keypoints_2d[:3], atol=1e-5)


def test_outputs_are_checked_before_the_work(run_dir, synthetic_npz, tmp_path):
    kp = tmp_path / "kp.npy"
    np.save(kp, np.zeros((1, 17, 2), dtype=np.float32))
    existing = tmp_path / "exists.npz"
    existing.write_bytes(b"mine")
    rc, err = _run_cli("sample", "--run", run_dir, "--keypoints", kp, "--out", existing)
    assert rc == 2 and "exists; pass --overwrite" in err and existing.read_bytes() == b"mine"
    rc, err = _run_cli("sample", "--run", run_dir, "--keypoints", kp, "--out", tmp_path)
    assert rc == 2 and "is a directory" in err
    rc, err = _run_cli("prepare", "--dataset", "synthetic", "--out", tmp_path)
    assert rc == 2 and "is a directory" in err
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        rc, err = _run_cli("evaluate", "--run", run_dir, "--data", synthetic_npz, "--json", locked / "r.json")
        assert rc == 2 and "not writable" in err
    rc, err = _run_cli("evaluate", "--run", run_dir, "--data", synthetic_npz, "--json", existing)
    assert rc == 2 and "exists; pass --overwrite" in err and len(err.splitlines()) == 1


def test_random_bytes_are_not_an_npz(run_dir, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(256))
    rc, err = _run_cli("evaluate", "--run", run_dir, "--data", junk)
    assert rc == 2 and "not an .npz archive" in err and "allow-pickle" not in err
    rc, err = _run_cli("train", "--data", junk, "--out", tmp_path / "r", "--preset", "tiny")
    assert rc == 2 and "allow-pickle" not in err and str(junk) in err
