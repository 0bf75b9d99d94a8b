"""Detected 2D: reading and checking detection files, the mapping shared with `lift`, the
prepared round trip, the measured detector-noise augmentation, training inputs and the card."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffupose.config import preset
from diffupose.data import prepare_dataset
from diffupose.data.detections import map_detections, read_detections
from diffupose.data.detector_noise import DetectorNoise, error_summary, measure_residuals, transplant_errors
from diffupose.data.windows import window_index
from diffupose.data.keypoints import Keypoints
from diffupose.data.prepared import load_prepared, save_prepared
from diffupose.evaluation.detection_analysis import analyse_detections, simulate_detections, table1_rows
from diffupose.errors import ConfigError, DataError
from diffupose.inference import SamplingSettings
from diffupose.lifting import prepare_keypoints
from diffupose.geometry.skeleton import H36M17
from diffupose.training import load_training_data, train

from conftest import require_file

CAMERAS = {"54138969": (1000, 1002), "55011271": (1000, 1000)}


def _write(tmp_path, arrays: dict, name="h36m_2d_sh_train.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _det(frames=5, joints=16, dtype=np.int16, seed=0):
    return np.random.default_rng(seed).integers(200, 800, size=(frames, joints, 2)).astype(dtype)


def test_read_detections_maps_and_keeps_layout(tmp_path):
    path = _write(tmp_path, {"S1/Walking 1/54138969": _det(), "S9/Walking/54138969": _det(3)})
    out, layout = read_detections([path], "sh", CAMERAS, {("S1", "Walking 1"): 5})
    assert layout == "mpii16"
    assert list(out) == [("S1", "Walking 1", "54138969")]   # unselected sequences are not read
    assert out[("S1", "Walking 1", "54138969")].dtype == np.float64


@pytest.mark.parametrize("arrays, frames, message", [
    ({"S1/Walking 1/54138969": _det(frames=4)}, 5, "has 4 frames but the 3D sequence S1/Walking 1 has 5"),
    ({"S1/Walking 1/54138969": _det(joints=15)}, 5, "has 15 joints, expected 16"),
    ({"S1/Walking 1/99999999": _det()}, 5, "camera '99999999' is not one of the cameras"),
    ({"S1/Walking 1/54138969": np.full((5, 16, 2), np.nan)}, 5, "NaN or inf pixels"),
    ({"S1/Walking 1/54138969": np.full((5, 16, 2), np.inf)}, 5, "NaN or inf pixels"),
    ({"S1/Walking 1/54138969": np.full((5, 16, 2), 32767, dtype=np.int16)}, 5, "at the limit of int16"),
    ({"S1/Walking 1/54138969": np.full((5, 16, 2), 1e7, dtype=np.float32)}, 5, "far outside the 1000 x 1002 image"),
    ({"S1/Walking 1": _det()}, 5, "is not of the form"),
])
def test_bad_detection_files_are_one_line_errors(tmp_path, arrays, frames, message):
    path = _write(tmp_path, arrays)
    with pytest.raises(DataError) as e:
        read_detections([path], "sh", CAMERAS, {("S1", "Walking 1"): frames})
    text = str(e.value)
    assert message in text and str(path) in text and "\n" not in text


def test_mapping_is_the_one_lift_uses():
    """The same MPII-16 pixel array gives the same normalised H36M-17 input through prepare's
    path (map, then normalise per camera) and through lift's prepare_keypoints."""
    from diffupose.geometry.projection import normalize_screen_coordinates

    xy = _det(frames=7).astype(np.float64)
    ours = normalize_screen_coordinates(map_detections(xy, "mpii16", H36M17), 1000, 1002)
    kp = Keypoints(keypoints=xy, scores=np.ones(xy.shape[:2]), present=np.ones(xy.shape[:2], bool), format="mpii16",
                   source="test", frame=np.arange(7), person=np.zeros(7, int))
    theirs, present, _ = prepare_keypoints(kp, H36M17, image_size=(1000, 1002))
    assert present.all()
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A synthetic prepared file with simulated detections and the GT kept beside them."""
    base = prepare_dataset("synthetic", out=tmp_path_factory.mktemp("d") / "gt.npz", num_frames=12, seed=0)
    data = simulate_detections(load_prepared(base), seed=1)
    return save_prepared(base.parent / "det.npz", data)


def test_prepared_detections_round_trip(simulated):
    data = load_prepared(simulated)
    assert data.keypoints_2d_gt is not None and data.keypoints_2d_gt.shape == data.keypoints_2d.shape
    assert not np.allclose(data.keypoints_2d, data.keypoints_2d_gt)
    sub = data.select(split="val", max_samples=10, seed=0)
    assert sub.keypoints_2d_gt.shape == (10, 17, 2)
    again = save_prepared(simulated.parent / "again.npz", sub)
    np.testing.assert_array_equal(load_prepared(again).keypoints_2d_gt, sub.keypoints_2d_gt)
    assert "simulated" in load_prepared(again).meta["keypoints_2d_name"]


def test_residuals_find_swaps_and_noise_reproduces_them():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(200, 17, 2)).astype(np.float32)
    gt[:, H36M17.joints_left, 0] += 3.0                      # left and right far apart
    noise = rng.normal(scale=0.01, size=gt.shape).astype(np.float32)
    det = gt + noise
    det[:5] = gt[:5][:, H36M17.flip_permutation] + noise[:5]  # five swapped frames
    residual, swapped = measure_residuals(det, gt, H36M17)
    assert swapped.sum() == 5 and swapped[:5].all()
    np.testing.assert_allclose(residual, noise, atol=1e-6)    # swapped frames measured against the swap
    bank = DetectorNoise.measure(det, gt, H36M17, mirrored=False)
    assert bank.swap_rate == pytest.approx(5 / 200)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4000, 17, 2)
    out = bank.apply(x, g) - x
    assert out.std().item() == pytest.approx(0.01, rel=0.1)    # the measured residuals, not more
    always = DetectorNoise(torch.zeros(1, 17, 2), 1.0, torch.as_tensor(H36M17.flip_permutation))
    y = torch.randn(3, 17, 2)
    torch.testing.assert_close(always.apply(y, g), y[:, H36M17.flip_permutation])


def test_transplanted_errors_keep_each_source_frames_residual_and_swap():
    rng = np.random.default_rng(1)
    perm = torch.as_tensor(H36M17.flip_permutation)
    gt = torch.from_numpy(rng.normal(size=(3, 5, 17, 2)).astype(np.float32))
    gt[..., H36M17.joints_left, 0] += 3.0                     # left and right far apart
    residual = torch.from_numpy(rng.normal(scale=0.01, size=gt.shape).astype(np.float32))
    det = gt + residual
    det[1, 2] = gt[1, 2][perm] + residual[1, 2]              # one swapped source frame
    target = torch.from_numpy(rng.normal(size=gt.shape).astype(np.float32))
    out = transplant_errors(target, det, gt, perm)
    expected = target + residual
    expected[1, 2] = target[1, 2][perm] + residual[1, 2]     # the swap moves with its frame, in time
    torch.testing.assert_close(out, expected)
    # the numpy measurement and the torch transplant apply one rule
    measured, swapped = measure_residuals(det.reshape(-1, 17, 2).numpy(), gt.reshape(-1, 17, 2).numpy(), H36M17)
    assert swapped.sum() == 1 and swapped.reshape(3, 5)[1, 2]
    np.testing.assert_allclose((out - torch.where(torch.from_numpy(swapped.reshape(3, 5, 1, 1)), target[..., perm, :],
                                                  target)).reshape(-1, 17, 2).numpy(), measured, atol=1e-6)


def test_measured_noise_in_time_follows_real_windows(simulated):
    common = {"data.path": str(simulated), "train.input_2d": "gt+noise", "model.window": 3}
    data = load_training_data(preset("tiny", {**common, "train.noise_in_time": "measured"}), torch.device("cpu"))
    idx = torch.arange(0, 40, 3)
    x, _ = data.inputs(idx, torch.Generator().manual_seed(0))
    windows = window_index(data.track_lo, data.track_hi, idx, 3)
    error = x - data.keypoints_2d_gt[windows]                   # (B, 3, J, 2)
    measured, swapped = measure_residuals(data.keypoints_2d.numpy(), data.keypoints_2d_gt.numpy(), H36M17)
    real = torch.from_numpy(measured)
    perm = torch.as_tensor(H36M17.flip_permutation)
    # every frame carries some training frame's measured residual, frame by frame (not one for all)
    for b in range(len(idx)):
        for w in range(3):
            target = data.keypoints_2d_gt[windows[b, w]]
            hit = torch.isclose(real, error[b, w], atol=1e-5).all(dim=(1, 2)) & torch.from_numpy(~swapped)
            hit_swapped = torch.isclose(real, x[b, w] - target[perm], atol=1e-5).all(dim=(1, 2)) & torch.from_numpy(swapped)
            assert (hit | hit_swapped).any()
    assert not torch.allclose(error[:, 0], error[:, 2])
    constant = load_training_data(preset("tiny", common), torch.device("cpu"))
    y, _ = constant.inputs(idx, torch.Generator().manual_seed(0))
    e = y - constant.keypoints_2d_gt[windows]
    torch.testing.assert_close(e[:, 0], e[:, 2])                # the default: one residual for the window
    with pytest.raises(ConfigError, match="noise_in_time=measured"):
        load_training_data(preset("tiny", {"data.path": str(simulated), "train.input_2d": "gt+noise",
                                           "train.noise_in_time": "measured"}), torch.device("cpu"))


def test_error_summary_in_pixels():
    gt = np.zeros((10, 17, 2))
    det = gt.copy()
    det[:, :, 0] = 0.02        # 0.02 normalised units = 10 px at half-width 500
    s = error_summary(det, gt, H36M17, 500.0)
    assert s["median_px"] == pytest.approx(10.0) and s["per_joint"]["head"]["mean_px"] == pytest.approx(10.0)


@pytest.mark.parametrize("mode", ["gt", "gt+noise", "mix"])
def test_training_inputs(simulated, mode):
    cfg = preset("tiny", {"data.path": str(simulated), "train.input_2d": mode, "train.mix_detected": 0.5})
    data = load_training_data(cfg, torch.device("cpu"))
    idx = torch.arange(64)
    g = torch.Generator().manual_seed(0)
    x, source = data.inputs(idx, g)
    assert source is None                 # not a source-conditioned model
    file_kp = torch.from_numpy(load_prepared(simulated).select(split="train").keypoints_2d[:64])
    if mode == "gt":
        assert not torch.allclose(x, file_kp)
        assert data.noise is None
    else:
        assert data.noise is not None and data.noise.residuals.shape[0] > 0
        same_as_detection = torch.isclose(x, data.keypoints_2d[idx]).all(dim=(1, 2))
        if mode == "mix":
            assert 0 < int(same_as_detection.sum()) < 64
        else:
            assert int(same_as_detection.sum()) == 0


def test_input_2d_needs_gt_beside(synthetic_npz):
    cfg = preset("tiny", {"data.path": str(synthetic_npz), "train.input_2d": "gt+noise"})
    with pytest.raises(DataError, match="keypoints_2d_gt"):
        load_training_data(cfg, torch.device("cpu"))
    from diffupose.evaluation.protocols import with_input_2d

    with pytest.raises(DataError, match="eval.input_2d=gt needs keypoints_2d_gt"):
        with_input_2d(load_prepared(synthetic_npz), "gt", synthetic_npz)


@pytest.fixture(scope="module")
def _tiny_run(simulated, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = preset("tiny", {"data.path": str(simulated), "train.input_2d": "mix", "train.max_steps": 20,
                          "train.val_every": 10, "train.checkpoint_every": 10})
    train(cfg, out, progress=False)
    return out


def test_card_names_the_2d_source_and_table1_says_the_protocol(_tiny_run, simulated):
    settings = SamplingSettings(num_hypotheses=2, num_steps=2, seed=0)
    analysis = analyse_detections(_tiny_run, simulated, "test", settings, hypothesis_counts=(1, 2),
                                  checkpoint="ema", max_samples=64, device="cpu")
    det_card, gt_card = analysis["results"][2].card, analysis["gt_input"].card
    assert "simulated" in det_card["keypoints_2d_name"]
    assert gt_card["keypoints_2d_name"].startswith("GT")
    assert analysis["summary"]["mpjpe_detections_n2"] != analysis["summary"]["mpjpe_gt_input_n2"]
    assert sum(b["samples"] for b in analysis["bins"]) == 64
    assert [r["joint"] for r in analysis["per_joint"]] == list(H36M17.joint_names)
    rows, columns, caption = table1_rows(analysis["results"], "simulated detections")
    assert "Not the paper's protocol" in caption
    assert [r["method"] for r in rows][:2] == ["ours (N=1) · simulated detections", "ours (N=2) · simulated detections"]
    assert any(r["source"] == "paper" and "CPN" in r["method"] for r in rows)
    json.dumps(analysis["summary"])


def test_real_sh_detections_prepare(shared_data, tmp_path):
    """The real SH file: one subject's detections map, normalise and keep the GT beside them;
    the measured error is what ../shared/data/README.md states (median ~9-10 px)."""
    require_file(shared_data / "h36m" / "h36m_2d_sh_train.npz")
    out = prepare_dataset("h36m", data_dir=shared_data / "h36m", keypoints="sh", val_subjects=["S8"],
                          actions=["Walking"], stride=25, out=tmp_path / "sh.npz")
    data = load_prepared(out)
    assert data.keypoints_2d_gt is not None
    assert data.meta["detections_layout"] == "mpii16" and data.meta["num_missing_detections"] == 0
    assert data.meta["keypoints_2d_name"].startswith("SH")
    from diffupose.evaluation.detection_analysis import keypoint_errors_px

    median = float(np.median(keypoint_errors_px(data)))
    assert 5.0 < median < 15.0


def test_robustness_matrix_starts_from_gt_and_adds_real_detections(_tiny_run, simulated):
    from diffupose.evaluation.robustness import markdown_tables, matrix_pivot, run_robustness

    settings = SamplingSettings(num_hypotheses=2, num_steps=2, seed=0)
    rows, card = run_robustness({"det": str(_tiny_run)}, simulated, "test", settings, max_samples=32, missing=(0,),
                                modes=("random",), noise_px=(0,), device="cpu", progress=False)
    assert [r["mask"] for r in rows] == ["none", "detections"]
    clean, det = rows
    assert clean["mpjpe_aggregate"] != det["mpjpe_aggregate"]
    assert "simulated" in card["real_detections_row"]
    labels, _, grid = matrix_pivot(rows)
    assert labels == ["none", "real detections"] and np.isfinite(grid).all()
    assert "| det | real detections |" in markdown_tables(rows, settings)


def test_layout_round_trips_are_the_lift_mapping(simulated):
    """train.input_layouts: each layout's matrix reproduces from_h36m17 -> to_h36m17 exactly, and
    training inputs go through one of them per sample."""
    from diffupose.data.keypoints import from_h36m17, to_h36m17
    from diffupose.data.layout_mix import LAYOUT_CHOICES, roundtrip_matrix

    x = np.random.default_rng(0).normal(size=(6, 17, 2))
    for layout in LAYOUT_CHOICES:
        written = from_h36m17(x, layout)
        ref, ok = to_h36m17(written, np.isfinite(written).all(axis=-1), layout)
        np.testing.assert_allclose(np.einsum("jk,bkc->bjc", roundtrip_matrix(layout), x), ref, atol=1e-12)
    coco = roundtrip_matrix("coco17")
    assert not np.allclose(coco, np.eye(17)) and np.allclose(coco.sum(axis=1), 1.0)   # affine: derived joints
    cfg = preset("tiny", {"data.path": str(simulated), "train.input_layouts": "h36m17,coco17"})
    data = load_training_data(cfg, torch.device("cpu"))
    assert data.layouts is not None and data.layouts.layouts == ("h36m17", "coco17")
    idx = torch.arange(200)
    out, _ = data.inputs(idx, torch.Generator().manual_seed(0))
    unchanged = torch.isclose(out, data.keypoints_2d[idx]).all(dim=(1, 2))
    assert 0 < int(unchanged.sum()) < 200                       # some samples went through COCO-17
    with pytest.raises(Exception, match="input_layouts"):
        preset("tiny", {"train.input_layouts": "coco17,nonsense"})


def test_gt_files_are_named_gt_in_cards(synthetic_npz):
    """A file with no recorded 2D source (synthetic data) is ground truth, never 'detections'."""
    from diffupose.evaluation.scoring import _source_label

    assert _source_label(load_prepared(synthetic_npz).meta).startswith("GT")
    assert _source_label({"keypoints": "cpn_ft_h36m_dbb"}) == "detections (cpn_ft_h36m_dbb)"


def test_worst_decile_and_the_hard_validation_table(_tiny_run, simulated, benchmark_script, capsys, tmp_path):
    """The worst 10 % of detections (by the sample's mean 2D error) get their own MPJPE, the mean
    of the per-sample errors at or above the 90th percentile; benchmarks/hard_val.py prints it
    beside the per-action and 2D-error-binned rows and refuses a test split."""
    from diffupose.evaluation.detection_analysis import keypoint_errors_px
    from diffupose.inference import Lifter

    ev = Lifter.load(_tiny_run, checkpoint="ema").config.eval        # the model's own sampler, as the script uses
    settings = SamplingSettings(num_hypotheses=2, sampler=ev.sampler, num_steps=ev.num_steps, flip=True,
                                aggregate="mean", seed=0)
    analysis = analyse_detections(_tiny_run, simulated, "val", settings, hypothesis_counts=(2,), max_samples=64,
                                  device="cpu")
    err2d = keypoint_errors_px(load_prepared(simulated).select(split="val", max_samples=64, seed=0)).mean(axis=1)
    worst = err2d >= np.quantile(err2d, 0.9)
    per_sample = np.asarray(analysis["results"][2].per_sample["MPJPE"])
    assert analysis["summary"]["mpjpe_detections_n2_worst_decile"] == pytest.approx(per_sample[worst].mean())
    assert analysis["summary"]["mpjpe_detections_n2_worst_decile"] != pytest.approx(per_sample.mean())
    bench = benchmark_script("hard_val")
    out = tmp_path / "hard.json"
    bench.main(["--models", str(_tiny_run), "--data", str(simulated), "--hypotheses", "2", "--max-samples", "64",
                "--json", str(out)])
    text = capsys.readouterr().out
    assert "worst 10 % of detections" in text and "Per action" in text and "By the sample's 2D error" in text
    record = json.loads(out.read_text())
    assert record["models"][str(_tiny_run)]["summary"]["mpjpe_detections_n2_worst_decile"] == pytest.approx(
        per_sample[worst].mean())
    with pytest.raises(SystemExit):
        bench.main(["--models", str(_tiny_run), "--data", str(simulated), "--split", "test"])
