"""The Python API (`diffupose.Lifter`): zoo names and run folders, arrays / files / Keypoints
giving the same result, outputs that match their card (root at 0, camera space at the written
translation, `present`, BVH frame time from the input's fps), and the README's example."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import diffupose
from diffupose import Lifter
from diffupose.cli import main
from diffupose.data.keypoints import read_keypoints
from diffupose.errors import ConfigError, DataError
from diffupose.inference import zoo
from diffupose.lifting.bvh import read_bvh

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
COCO = ROOT / "examples" / "coco17_S8_walking.json"
SIZE = (1000, 1002)
TINY_TRAIN = ["--preset", "tiny", "--set", "train.max_steps=12", "--set", "train.val_every=6",
              "--set", "train.checkpoint_every=6", "--set", "data.max_val_samples=64", "--no-progress"]
FAST = dict(hypotheses=3, steps=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_npz) -> Path:
    run = tmp_path_factory.mktemp("api") / "run"
    assert main(["train", "--data", str(synthetic_npz), "--out", str(run), *TINY_TRAIN]) == 0
    return run


def test_from_pretrained_loads_every_shipped_model_with_its_provenance():
    names = zoo.available()
    assert names, "the package ships models"
    for name in names:
        lifter = Lifter.from_pretrained(name, device="cpu")
        card = lifter.checkpoint_card
        assert isinstance(lifter, Lifter) and card["model"] == name and card["checkpoint"] == "ema"
        assert card["weights_sha256"] == zoo.card(name)["weights_sha256"]
        assert card["package_version"] == diffupose.__version__
    with pytest.raises(ConfigError, match="final EMA"):
        Lifter.from_pretrained(names[0], checkpoint="best")
    with pytest.raises(ConfigError, match="neither a shipped model"):
        Lifter.from_pretrained("no-such-model")


def test_from_pretrained_loads_a_run_folder(run_dir):
    lifter = Lifter.from_pretrained(run_dir, device="cpu")
    assert lifter.checkpoint_card["checkpoint"] == "best" and lifter.checkpoint_card["model"] is None
    assert Lifter.from_pretrained(run_dir, checkpoint="ema").checkpoint_card["checkpoint"] == "ema"


def test_arrays_files_and_keypoints_give_identical_results(run_dir):
    lifter = Lifter.from_pretrained(run_dir)
    from_file = lifter.lift(COCO, image_size=SIZE, **FAST)
    kp = read_keypoints(COCO)
    from_keypoints = lifter.lift(kp, image_size=SIZE, **FAST)
    values = np.concatenate([kp.keypoints, kp.scores[..., None]], axis=-1)
    values[~kp.present] = np.nan
    from_array = lifter.lift(values, layout="coco17", image_size=SIZE, **FAST)
    from_scores = lifter.lift(kp.keypoints, layout="coco17", scores=kp.scores, image_size=SIZE, **FAST)
    for other in (from_keypoints, from_array, from_scores):
        np.testing.assert_array_equal(other.hypotheses, from_file.hypotheses)
        np.testing.assert_array_equal(other.present, from_file.present)
    with pytest.raises(DataError, match="17"):
        lifter.lift(values, image_size=SIZE, **FAST)           # a COCO-ordered 17-joint array needs its layout


def test_every_hypothesis_is_rooted_at_zero_and_camera_space_at_the_translation(run_dir, tmp_path):
    lifter = Lifter.from_pretrained(run_dir)
    result = lifter.lift(COCO, image_size=SIZE, focal=1145.0, **FAST)
    assert np.all(result.hypotheses[:, :, 0] == 0) and np.all(result.aggregate[:, 0] == 0)
    assert "root joint at 0" in result.card["coordinates"]
    np.testing.assert_allclose(result.camera_space[:, 0], result.root_translation)
    files = result.save(tmp_path / "walk", formats=("npz", "json"))
    with np.load(files["npz"], allow_pickle=False) as f:
        np.testing.assert_allclose(f["camera_space"][:, 0], f["root_translation"], atol=1e-6)
        np.testing.assert_array_equal(f["present"], f["keypoint_mask"])
        assert np.all(f["hypotheses"][:, :, 0] == 0)
    doc = json.loads(files["json"].read_text())
    np.testing.assert_allclose(np.asarray(doc["camera_space"])[:, 0], doc["root_translation"], atol=1e-4)
    plain = lifter.lift(COCO, image_size=SIZE, **FAST)
    assert plain.camera_space is None and "camera_space" not in plain.arrays()


def test_card_names_model_weights_and_version():
    result = diffupose.lift(COCO, "h36m-det", image_size=SIZE, num_hypotheses=2, num_steps=2, progress=False)
    card = result.card
    assert card["model"] == "h36m-det" and card["package_version"] == diffupose.__version__
    assert card["checkpoint"]["weights_sha256"] == zoo.card("h36m-det")["weights_sha256"]


@pytest.mark.parametrize("fps,step,frame_time", [(50.0, 2, 0.04), (25.0, 2, 0.08), (30.0, 2, 2 / 30)])
def test_bvh_frame_time_follows_the_input_frame_rate(run_dir, tmp_path, fps, step, frame_time):
    # the example's frame numbers step by 2: every other frame of a video at `fps`
    assert np.all(np.diff(read_keypoints(COCO).frame.astype(int)) == step)
    result = diffupose.lift(COCO, run_dir, image_size=SIZE, num_hypotheses=2, num_steps=2, fps=fps,
                            outputs=("bvh",), out=tmp_path / "walk", progress=False)
    text = (tmp_path / "walk.bvh").read_text()
    written = float(re.search(r"Frame Time:\s*([0-9.eE+-]+)", text).group(1))
    assert written == pytest.approx(frame_time, rel=1e-5)
    assert result.card["bvh"]["fps"] == pytest.approx(fps / step) and result.card["fps"] == fps
    assert read_bvh(tmp_path / "walk.bvh") is not None


def test_cli_lift_prints_a_summary_line_and_json(run_dir, tmp_path, capsys):
    assert main(["lift", "--run", str(run_dir), "--keypoints", str(COCO), "--image-size", "1000", "1002",
                 "--hypotheses", "2", "--steps", "2", "--out", str(tmp_path / "walk"), "--outputs", "npz", "html"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out.strip().splitlines()[-1])
    assert set(doc["files"]) == {"npz", "html"}
    summary = [line for line in err.splitlines() if line.startswith("lifted ")]
    assert summary == [f"lifted 100 frames (2 hypotheses each) -> open {tmp_path / 'walk.html'} "
                       f"(also wrote {tmp_path / 'walk.npz'})"]


def test_readme_python_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = next((b for b in blocks if "Lifter.from_pretrained" in b), None)
    assert example is not None, "README has a Python example with Lifter.from_pretrained"
    namespace: dict = {}
    cwd = Path.cwd()
    try:
        import os
        os.chdir(ROOT)                      # the example's paths are relative to the repository
        exec(compile(example, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    result = namespace["result"]
    assert result.hypotheses.shape[1:] == (10, 17, 3) and np.isfinite(result.aggregate).all()


def test_precision_auto_uses_bf16_only_where_it_is_native_and_safe(monkeypatch):
    import torch

    from diffupose.inference import lifter as lifter_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(lifter_module, "cpu_has_native_bf16", lambda: True)
    assert lifter_module.sampling_dtype("auto", cpu, "v") is torch.bfloat16
    assert lifter_module.sampling_dtype("auto", cpu, "eps") is None          # eps: x0 magnifies rounding
    assert lifter_module.sampling_dtype("fp32", cpu, "v") is None
    assert lifter_module.sampling_dtype("bf16", cpu, "eps") is torch.bfloat16
    monkeypatch.setattr(lifter_module, "cpu_has_native_bf16", lambda: False)
    assert lifter_module.sampling_dtype("auto", cpu, "v") is None             # emulated bf16 is slower


def test_lift_records_its_precision_and_evaluation_stays_fp32(run_dir):
    from diffupose.config import EvalConfig

    result = Lifter.from_pretrained(run_dir).lift(COCO, image_size=SIZE, **FAST)
    assert result.card["sampling"]["precision"] == "auto"
    assert EvalConfig().precision == "fp32"
    fp32 = Lifter.from_pretrained(run_dir).lift(COCO, image_size=SIZE, precision="fp32", **FAST)
    assert fp32.card["sampling"]["precision"] == "fp32"


def test_a_retired_name_resolves_to_its_successor_with_one_notice(caplog):
    retired = [name for name, successor in zoo.RETIRED.items()
               if name not in zoo.available() and successor in zoo.available()]
    if not retired:
        pytest.skip("no retired name whose successor ships")
    name = retired[0]
    with caplog.at_level("WARNING", logger="diffupose.zoo"):
        lifter = Lifter.from_pretrained(name, device="cpu")
    assert lifter.checkpoint_card["model"] == zoo.RETIRED[name]
    notices = [r.message for r in caplog.records if "retired" in r.message]
    assert len(notices) == 1 and name in notices[0] and zoo.RETIRED[name] in notices[0]
