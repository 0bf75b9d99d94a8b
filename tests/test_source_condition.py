"""The 2D-source condition (model.source_condition): one model told whether its 2D input is clean
(projected ground truth) or detected, trained on a mix with clean rows (train.mix_clean)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffupose.config import SOURCE_INDEX, EvalConfig, preset
from diffupose.data.prepared import load_prepared, save_prepared
from diffupose.evaluation.detection_analysis import simulate_detections
from diffupose.evaluation.scoring import open_run
from diffupose.errors import ConfigError
from diffupose.geometry.skeleton import H36M17
from diffupose.inference import Lifter, SamplingSettings
from diffupose.model.denoiser import GCNDenoiser, build_denoiser
from diffupose.data import prepare_dataset
from diffupose.training import load_training_data, train


@pytest.fixture(scope="module")
def detections(tmp_path_factory):
    base = prepare_dataset("synthetic", out=tmp_path_factory.mktemp("d") / "gt.npz", num_frames=12, seed=0)
    return save_prepared(base.parent / "det.npz", simulate_detections(load_prepared(base), seed=1))


def _net(source_condition: bool) -> GCNDenoiser:
    torch.manual_seed(0)
    return GCNDenoiser(H36M17.normalized_adjacency(), dim=32, num_blocks=1, source_condition=source_condition).eval()


def test_config_checks():
    with pytest.raises(ConfigError, match="mix_clean"):
        preset("tiny", {"train.mix_clean": 0.3})                       # only a share of input_2d=mix
    with pytest.raises(ConfigError, match="GCN"):
        build_denoiser(preset("tiny", {"model.denoiser": "unet", "model.source_condition": True}).model, H36M17)
    with pytest.raises(ConfigError, match="input_source"):
        SamplingSettings(input_source="perfect")
    with pytest.raises(ConfigError, match="input_source"):
        EvalConfig(input_source="perfect")


def test_embedding_starts_at_zero_and_then_conditions():
    net, plain = _net(True), _net(False)
    x, y, t = torch.randn(4, 17, 3), torch.randn(4, 17, 2), torch.tensor([0, 5, 50, 99])
    clean = torch.full((4,), SOURCE_INDEX["clean"])
    detected = torch.full((4,), SOURCE_INDEX["detected"])
    with torch.no_grad():
        torch.testing.assert_close(net(x, y, t, source=clean)[0], net(x, y, t, source=detected)[0])
        net.source_embedding.weight.normal_()
        a, b = net(x, y, t, source=clean)[0], net(x, y, t, source=detected)[0]
        assert not torch.allclose(a, b)
        torch.testing.assert_close(net(x, y, t)[0], b)                # no source = detected
    with pytest.raises(ConfigError, match="source_condition"):
        plain(x, y, t, source=clean)
    assert sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in plain.parameters()) == 2 * 16


def test_training_inputs_mark_clean_rows(detections):
    common = {"data.path": str(detections), "train.input_2d": "mix", "train.mix_detected": 0.5}
    cfg = preset("tiny", {**common, "train.mix_clean": 0.4, "model.source_condition": True})
    data = load_training_data(cfg, torch.device("cpu"))
    idx = torch.arange(len(data.poses_3d))
    x, source = data.inputs(idx, torch.Generator().manual_seed(0))
    clean = source == SOURCE_INDEX["clean"]
    torch.testing.assert_close(x[clean], data.keypoints_2d_gt[idx][clean])    # clean rows: exact GT
    assert not torch.isclose(x[~clean], data.keypoints_2d_gt[idx][~clean]).all(dim=(1, 2)).any()
    assert 0.3 < clean.float().mean().item() < 0.5
    assert data.val_source == "detected"
    # mix_clean = 0 draws exactly what the mix drew before the option existed
    old = load_training_data(preset("tiny", common), torch.device("cpu"))
    x0, s0 = old.inputs(idx, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    noisy = old.noise.apply(old.keypoints_2d_gt[idx], g)
    use = torch.rand(len(idx), generator=g) < 0.5
    torch.testing.assert_close(x0, torch.where(use[:, None, None], old.keypoints_2d[idx], noisy))
    assert s0 is None


@pytest.fixture(scope="module")
def src_run(detections, tmp_path_factory):
    cfg = preset("tiny", {"data.path": str(detections), "train.input_2d": "mix", "train.mix_clean": 0.4,
                          "model.source_condition": True, "train.max_steps": 6, "train.val_every": 3,
                          "train.checkpoint_every": 3})
    run_dir = tmp_path_factory.mktemp("src") / "run"
    train(cfg, run_dir, progress=False)
    return run_dir


def _record_sources(lifter: Lifter) -> tuple[list, object]:
    seen: list = []
    hook = lifter.denoiser.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["source"].unique().tolist()),
                                                     with_kwargs=True)
    return seen, hook


def test_trained_model_is_told_its_source(detections, src_run):
    run_dir = src_run
    lifter = Lifter.load(run_dir, checkpoint="ema")
    assert lifter.denoiser.source_embedding.weight.abs().sum() > 0       # the embedding was trained
    y = load_prepared(detections).select(split="val", max_samples=8, seed=0).keypoints_2d
    base = SamplingSettings(num_hypotheses=2, num_steps=2, flip=False, seed=0)
    seen, hook = _record_sources(lifter)
    h = {s: lifter.sample(y, base.replace(input_source=s)) for s in ("auto", "clean", "detected")}
    hook.remove()
    d, c = SOURCE_INDEX["detected"], SOURCE_INDEX["clean"]
    assert seen == [[d], [d], [c], [c], [d], [d]]                         # 2 steps per call; auto = detected
    np.testing.assert_array_equal(h["auto"], h["detected"])
    assert lifter.sampler_card(base)["input_source"] == "detected"
    runs = {mode: open_run(run_dir, detections, "val", EvalConfig(checkpoint="ema", input_2d=mode, max_samples=8))
            for mode in ("file", "gt")}
    assert runs["file"].settings.input_source == "detected" and runs["gt"].settings.input_source == "clean"


def test_robustness_tells_clean_at_zero_noise_and_detected_otherwise(detections, src_run):
    from diffupose.evaluation.robustness import robustness_matrix

    lifter = Lifter.load(src_run, checkpoint="ema")
    data = load_prepared(detections).select(split="val", max_samples=4, seed=0)
    size = np.full(len(data), 1000.0)
    seen, hook = _record_sources(lifter)
    rows = robustness_matrix({"src": lifter}, data.keypoints_2d_gt, data.poses_3d, size, size,
                             SamplingSettings(num_hypotheses=2, num_steps=1, flip=False), missing=(0,),
                             noise_px=(0, 5), progress=False)
    hook.remove()
    assert [r["noise_px"] for r in rows] == [0, 5]
    assert seen == [[SOURCE_INDEX["clean"]], [SOURCE_INDEX["detected"]]]       # one step per cell
