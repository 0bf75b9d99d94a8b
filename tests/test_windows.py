"""Windowed models (model.window = W > 1): windows built by index, edge replication, the
temporal encoder computed once per input, flip of a whole window, training inputs, evaluation
and `lift` on tracks (gaps, frame rates, single images)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import diffupose
from diffupose.config import preset
from diffupose.data.keypoint_io import Keypoints
from diffupose.data.prepared import load_prepared
from diffupose.data.windows import (frame_numbers, sample_windows, track_bounds, track_windows, window_index,
                                    window_offsets)
from diffupose.diffusion.samplers import _chain_conditions
from diffupose.errors import ConfigError
from diffupose.evaluation.protocols import evaluate
from diffupose.evaluation.scoring import open_run
from diffupose.geometry.skeleton import H36M17, centre_frame, flip_horizontal
from diffupose.inference.lifter import Lifter, SamplingSettings
from diffupose.lifting.outputs import frame_interval
from diffupose.lifting.pipeline import recentre
from diffupose.model import build_denoiser
from diffupose.model.masking import fill_window_in_time
from diffupose.training.data import load_training_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")
J = H36M17.num_joints


def _lifter(window: int, missing: bool = False, seed: int = 0) -> Lifter:
    torch.manual_seed(seed)
    cfg = preset("tiny", [f"model.window={window}", f"model.missing_joints={str(missing).lower()}"])
    return Lifter.from_model(build_denoiser(cfg.model, H36M17), cfg, H36M17)


def _naive_windows(subject, sequence, camera, frame, window):
    """The window of every sample by walking its own track (the definition, slowly)."""
    n, half, out = len(frame), window // 2, []
    for i in range(n):
        track = [k for k in range(n) if (subject[k], sequence[k], camera[k]) == (subject[i], sequence[i], camera[i])]
        pos = track.index(i)
        out.append([track[min(max(pos + o, 0), len(track) - 1)] for o in range(-half, half + 1)])
    return np.array(out)


def test_window_sizes_are_powers_of_three():
    for w in (1, 3, 9, 27, 81):
        assert preset("tiny", [f"model.window={w}"]).model.window == w
    for w in (0, 2, 5, 8, 12):
        with pytest.raises(ConfigError, match="power of 3"):
            preset("tiny", [f"model.window={w}"])
    with pytest.raises(ConfigError, match="GCN"):
        build_denoiser(preset("tiny", ["model.window=3", "model.denoiser=unet"]).model, H36M17)


def test_windows_by_index_match_a_naive_gather(synthetic_npz):
    data = load_prepared(synthetic_npz)
    rows = np.arange(0, len(data), 7)
    lo, hi = track_bounds(data.subject, data.sequence, data.camera, data.frame)
    got = window_index(lo, hi, rows, 9)
    want = _naive_windows(data.subject, data.sequence, data.camera, data.frame, 9)[rows]
    np.testing.assert_array_equal(got, want)
    # torch on the same bounds gives the same indices
    t = window_index(torch.from_numpy(lo), torch.from_numpy(hi), torch.from_numpy(rows), 9)
    np.testing.assert_array_equal(t.numpy(), want)
    np.testing.assert_array_equal(sample_windows(data, rows, 9), data.keypoints_2d[want])
    np.testing.assert_array_equal(sample_windows(data, rows, 1), data.keypoints_2d[rows])


def test_track_ends_are_edge_replicated_and_gaps_split_tracks():
    subject = np.array(["S1"] * 8)
    sequence = np.array(["a"] * 5 + ["b"] * 3)
    camera = np.array(["c"] * 8)
    frame = np.array([0, 1, 2, 3, 4, 0, 1, 5])          # sequence b jumps from frame 1 to 5: a new track
    lo, hi = track_bounds(subject, sequence, camera, frame)
    np.testing.assert_array_equal(lo, [0, 0, 0, 0, 0, 5, 5, 7])
    np.testing.assert_array_equal(hi, [4, 4, 4, 4, 4, 6, 6, 7])
    idx = window_index(lo, hi, np.arange(8), 3)
    np.testing.assert_array_equal(idx[0], [0, 0, 1])       # first frame repeated
    np.testing.assert_array_equal(idx[4], [3, 4, 4])       # last frame repeated
    np.testing.assert_array_equal(idx[7], [7, 7, 7])       # a one-frame track
    np.testing.assert_array_equal(window_offsets(5), [-2, -1, 0, 1, 2])


def test_encoder_runs_once_per_input_and_view():
    lifter = _lifter(9)
    calls = []
    lifter.denoiser.temporal.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    y = torch.randn(6, 9, J, 2) * 0.2
    hyps = lifter.sample_tensor(y, SamplingSettings(num_hypotheses=4, num_steps=5, flip=True))
    assert hyps.shape == (6, 4, J, 3)
    assert calls == [6, 6]                                # once per view (plain, mirrored), not per step or hypothesis
    calls.clear()
    lifter.sample_tensor(y, SamplingSettings(num_hypotheses=3, num_steps=4, flip=False))
    assert calls == [6]


def test_flip_mirrors_the_whole_window():
    y = torch.randn(2, 3, J, 2)
    mask = torch.rand(2, 3, J) > 0.3
    seen = []

    def encode(window, m):
        seen.append((window.clone(), m.clone()))
        return centre_frame(window), m[:, 1]

    cond, chain_mask = _chain_conditions(y, mask, 2, True, H36M17, encode)
    assert torch.equal(seen[0][0], y) and torch.equal(seen[1][0], flip_horizontal(y, H36M17))
    assert torch.equal(seen[1][1], mask[..., list(H36M17.flip_permutation)])
    assert cond.shape == (2 * 2 * 2, J, 2) and chain_mask.shape == (8, J)
    assert torch.equal(cond[4], flip_horizontal(y, H36M17)[0, 1])


def test_forward_on_window_equals_forward_on_its_encoding():
    lifter = _lifter(9, missing=True)
    net = lifter.denoiser.eval()
    x, y, t = torch.randn(4, J, 3), torch.randn(4, 9, J, 2), torch.randint(0, 100, (4,))
    mask = torch.ones(4, 9, J, dtype=torch.bool)
    mask[:, :, 3] = False
    enc, centre_mask = net.encode_condition(y, mask)
    assert enc.shape == (4, J, 2 + 16) and torch.equal(centre_mask, mask[:, 4])
    a = net(x, y, t, keypoint_mask=mask)[0]
    b = net(x, enc, t, keypoint_mask=centre_mask)[0]
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="window"):
        net(x, torch.randn(4, J, 2), t)


def test_single_frame_model_has_no_encoder_and_unchanged_parameters():
    torch.manual_seed(0)
    plain = build_denoiser(preset("tiny").model, H36M17)
    torch.manual_seed(0)
    w1 = build_denoiser(preset("tiny", ["model.window=1"]).model, H36M17)
    assert w1.temporal is None
    assert plain.state_dict().keys() == w1.state_dict().keys()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, w1.state_dict()[k])


def test_training_inputs_are_windows_centred_on_the_sample(synthetic_npz):
    cfg = preset("tiny", ["model.window=9", f"data.path={synthetic_npz}", "data.max_val_samples=50"])
    data = load_training_data(cfg, torch.device("cpu"))
    idx = torch.tensor([0, 5, 100, len(data.poses_3d) - 1])
    x, source = data.inputs(idx, torch.Generator().manual_seed(0))
    assert x.shape == (4, 9, J, 2) and source is None
    torch.testing.assert_close(centre_frame(x), data.keypoints_2d[idx])
    # the mirrored half of the flip-doubled split has its own (mirrored) tracks
    n = len(data.poses_3d) // 2
    mirrored, _ = data.inputs(idx[:1] + n, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mirrored, flip_horizontal(x[:1], H36M17))
    # the val subsample is the same samples as a single-frame run's, as windows of the full split
    plain = load_training_data(preset("tiny", [f"data.path={synthetic_npz}", "data.max_val_samples=50"]),
                               torch.device("cpu"))
    assert data.val_keypoints_2d.shape == (50, 9, J, 2)
    torch.testing.assert_close(centre_frame(data.val_keypoints_2d), plain.val_keypoints_2d)


def test_evaluation_reads_windows_and_labels_the_frames(synthetic_npz):
    lifter = _lifter(3)
    run = open_run(lifter, synthetic_npz, "test", preset("tiny").eval)
    cond = run.condition_2d
    assert cond.shape == (len(run.data), 3, J, 2)
    np.testing.assert_array_equal(cond[:, 1], run.data.keypoints_2d)
    result = evaluate(lifter, synthetic_npz, split="test", eval_cfg=preset("tiny").eval)
    assert result.card["frames"] == "T = 3 †" and result.card["model"]["window"] == 3


def test_track_windows_resample_and_fill_gaps():
    k = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, J, 2), np.float32)
    w, m = track_windows(k, None, 3)
    assert m is None and w.shape == (10, 3, J, 2)
    np.testing.assert_array_equal(w[:, :, 0, 0], _naive_windows(["s"] * 10, ["a"] * 10, ["c"] * 10, np.arange(10), 3))
    half, _ = track_windows(k, None, 3, rate=0.5)            # a 25 fps track for a 50 fps model
    np.testing.assert_allclose(half[5, :, 0, 0], [4.5, 5.0, 5.5])
    times = np.array([0, 1, 2, 6, 7])                         # frames 3-5 missing: interpolated across the gap
    gap, _ = track_windows(k[times], None, 3, times=times)
    np.testing.assert_allclose(gap[2, :, 0, 0], [1.0, 2.0, 3.0])
    present = np.ones((10, J), bool)
    present[5, 2] = False
    _, m = track_windows(k, present, 3)
    assert not m[5, 1, 2] and m[4, 1, 2] and not m[4, 2, 2]   # missing stays missing at its own frame
    _, m = track_windows(k, present, 3, rate=0.5)
    assert m[5, 0, 2] and not m[5, 1, 2]                     # half-way to a present frame borrows it


def test_frame_numbers_and_bvh_interval():
    assert frame_numbers(np.array(["0", "2", "4"])).tolist() == [0, 2, 4]
    assert frame_numbers(np.array(["b.jpg", "a.jpg"])) is None
    assert frame_numbers(np.array([3, 1, 2])) is None
    assert frame_interval(np.array(["0", "2", "4", "6"])) == 2.0
    assert frame_interval(np.array(["img1", "img2"])) == 1.0


def _track(n: int, frames=None) -> Keypoints:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.1, (1, J, 2)).astype(np.float32)
    xy = base + rng.normal(0, 0.005, (n, J, 2)).astype(np.float32)
    frames = np.arange(n) if frames is None else np.asarray(frames)
    return Keypoints(keypoints=xy, scores=np.ones((n, J), np.float32), present=np.ones((n, J), bool),
                     format="h36m17", source="track", frame=frames.astype(str), person=np.zeros(n, int),
                     pixels=False)


def test_lift_a_track_with_gaps_uses_the_window(caplog):
    lifter = _lifter(3, missing=True)
    kp = _track(12, frames=[0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15])
    kp.present[4, 5] = False
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        result = diffupose.lift(kp, lifter=lifter, num_hypotheses=2, num_steps=2, fps=25.0, progress=False)
    assert result.hypotheses.shape == (12, 2, J, 3) and np.isfinite(result.aggregate).all()
    assert result.card["window"] == {"frames": 3, "mode": "track", "model_fps": 50.0, "input_fps": 25.0, "span_s": 0.04}
    assert result.card["missing_joint_handling"].startswith("masked")
    assert not any("not a frame-ordered track" in r.message for r in caplog.records)


def test_single_image_with_a_windowed_model_gets_the_static_fallback(caplog):
    lifter = _lifter(3)
    kp = _track(1)
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        result = diffupose.lift(kp, lifter=lifter, num_hypotheses=2, num_steps=2, progress=False)
    warnings = [r.message for r in caplog.records if "not a frame-ordered track" in r.message]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "static window" in warnings[0]
    assert result.card["window"]["mode"].startswith("static")
    # the fallback is exactly the model on a window of the frame repeated
    y = np.repeat(result.keypoints_2d[:, None], 3, axis=1)
    settings = SamplingSettings.from_eval_config(lifter.config.eval, num_hypotheses=2, num_steps=2)
    np.testing.assert_allclose(recentre(lifter.sample(y, settings)), result.hypotheses, atol=1e-6)


def test_table_rows_label_windowed_numbers_and_reference_models():
    from types import SimpleNamespace

    from diffupose.evaluation.detection_analysis import table1_rows
    from diffupose.workbench.tables import evaluation_table

    per_action = {"MPJPE": {"Walking": 60.0, "Average": 60.0}, "P-MPJPE": {"Walking": 40.0, "Average": 40.0}}
    single = SimpleNamespace(per_action=per_action, card={"frames": "T = 1", "num_hypotheses": 10})
    video = SimpleNamespace(per_action=per_action, card={"frames": "T = 27 †", "num_hypotheses": 10})
    rows, _, _ = table1_rows({10: video}, "SH detections", "MPJPE", {"h36m-det": single, "h36m-det-video": video})
    labels = [r["method"] for r in rows if r["source"] == "ours"]
    assert labels == ["ours (N=10, T = 27 †) · SH detections", "h36m-det (N=10) · SH detections",
                      "h36m-det-video (N=10, T = 27 †) · SH detections"]
    rows, _, _ = evaluation_table({10: video})
    assert rows[0]["method"] == "ours (N=10, T = 27 †)"


def test_frame_numbers_read_image_and_file_names():
    assert frame_numbers(np.array(["frame_000002.jpg", "frame_000004.jpg", "frame_000010.jpg"])).tolist() == [2, 4, 10]
    assert frame_numbers(np.array(["cam1_0004.jpg", "cam1_0002.jpg"])) is None          # not increasing


def test_a_long_gap_is_a_track_end_not_a_bridge():
    """Frames 0-4 and 100-104: a window in the gap repeats the nearer side (as at a track's end)
    and a joint missing there stays missing instead of borrowing the far side's position."""
    times = np.array([0, 1, 2, 3, 4, 100, 101, 102, 103, 104])
    k = np.where(times < 50, -0.5, 0.5).astype(np.float32)[:, None, None] * np.ones((1, J, 2), np.float32)
    present = np.ones((10, J), bool)
    present[4, 2] = False
    w, m = track_windows(k, present, 7, times=times, max_gap=10)
    np.testing.assert_allclose(w[4, :, 0, 0], -0.5)             # frame 4's window never reaches frame 100
    assert not m[4, 3:, 2].any() and m[4, :3, 2].all()
    np.testing.assert_allclose(w[5, :, 0, 0], 0.5)
    bridged, m = track_windows(k, present, 7, times=times)      # no limit: interpolated across, as before
    assert bridged[4, 4, 0, 0] > -0.5 and m[4, 4:, 2].all()
    short, _ = track_windows(k[:5], None, 3, times=np.array([0, 1, 2, 6, 7]), max_gap=10)
    np.testing.assert_allclose(short[2, :, 0, 0], -0.5)          # a short gap is still interpolated


def test_an_array_with_frame_numbers_lifts_as_its_file_would(caplog):
    lifter = _lifter(9, missing=True)
    kp = _track(8, frames=[0, 2, 4, 6, 8, 10, 12, 14])
    settings = dict(lifter=lifter, num_hypotheses=2, num_steps=2, seed=0, progress=False, format="h36m17")
    from_kp = diffupose.lift(kp, **settings)
    from_array = diffupose.lift(kp.keypoints, frames=[0, 2, 4, 6, 8, 10, 12, 14], **settings)
    np.testing.assert_allclose(from_array.hypotheses, from_kp.hypotheses, atol=1e-6)
    assert from_array.frame.tolist() == kp.frame.tolist()
    numbered = diffupose.lift(kp.keypoints, **settings)                 # 0..7: a window twice as long in time
    assert not np.allclose(numbered.hypotheses, from_kp.hypotheses, atol=1e-4)
    with pytest.raises(ConfigError, match="frames= goes with keypoints given as an array"):
        diffupose.lift(kp, frames=[0, 1, 2, 3, 4, 5, 6, 7], **settings)


def test_a_frame_without_usable_joints_is_left_out_with_one_line(caplog):
    lifter = _lifter(3, missing=True)
    xy = _track(6).keypoints.copy()
    xy[3] = np.nan
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        result = diffupose.lift(xy, lifter=lifter, num_hypotheses=2, num_steps=2, progress=False, format="h36m17")
    assert result.frame.tolist() == ["0", "1", "2", "4", "5"] and result.hypotheses.shape[0] == 5
    (line,) = [r.message for r in caplog.records if "no usable joint" in r.message]
    assert "1 of 6 samples" in line and "frame 3" in line and "\n" not in line
    assert result.card["window"]["mode"] == "track"


@pytest.mark.parametrize("fps", [0, -25, float("nan"), float("inf"), "fast"])
def test_a_bad_frame_rate_is_refused_before_any_work(fps):
    with pytest.raises(ConfigError, match="fps must be a positive frame rate"):
        diffupose.lift(_track(4), lifter=_lifter(3), fps=fps, progress=False)


def test_several_people_in_a_frame_name_the_cause_of_the_static_fallback(caplog):
    kp = _track(4)
    kp = Keypoints(keypoints=np.concatenate([kp.keypoints, kp.keypoints[:1]]), scores=np.ones((5, J)),
                   present=np.ones((5, J), bool), format="h36m17", source="crowd",
                   frame=np.array(["0", "1", "2", "3", "1"]), person=np.array([0, 0, 0, 0, 1]), pixels=False)
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        diffupose.lift(kp, lifter=_lifter(3), num_hypotheses=2, num_steps=2, progress=False)
    (line,) = [r.message for r in caplog.records if "not a frame-ordered track" in r.message]
    assert "1 extra detection in frames that already hold a person" in line and "people='best'" in line


def test_filling_and_smoothing_follow_the_frame_numbers():
    from diffupose.lifting.pipeline import smooth_sequence, track_segments
    from diffupose.model.masking import fill_missing
    xy = np.zeros((4, J, 2))
    xy[:, 3, 0] = [-0.8, -0.8, np.nan, 0.8]
    present = np.isfinite(xy).all(axis=-1)
    filled = fill_missing(xy, present, H36M17, track=True, times=np.array([0, 1, 2, 100]))
    assert filled[2, 3, 0] == pytest.approx(-0.8 + 1.6 / 99)      # by time, not half-way by position
    segments = track_segments(np.array([0, 1, 2, 100, 101, 102.0]), fps=50.0)
    assert segments.tolist() == [0, 0, 0, 1, 1, 1]
    x = np.array([0.0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(smooth_sequence(x, 1.0, segments), x)           # nothing leaks across the gap
    assert smooth_sequence(x, 1.0)[2] > 0


def test_per_frame_masks_are_filled_in_time_before_the_encoder():
    """A joint missing in some frames of its window is interpolated from the others (the model was
    trained with whole-window masks); a mask that is the same in every frame changes nothing."""
    net = _lifter(9, missing=True).denoiser.eval()
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, 9, J, 2, generator=g)
    flicker = torch.rand(6, 9, J, generator=g) > 0.3
    flicker[:, :, 0] = True
    flicker[:, :, 5] = False                                  # missing in the whole window: stays missing
    filled, seen = fill_window_in_time(y, flicker)
    assert not seen[:, :, 5].any() and seen[:, :, 0].all()
    enc, centre = net.encode_condition(y, flicker)
    enc_filled, centre_filled = net.encode_condition(filled, seen)
    assert torch.equal(enc, enc_filled) and torch.equal(centre, centre_filled)
    whole = torch.ones(6, J, dtype=torch.bool)
    whole[:, 3] = False
    a = net.encode_condition(y, whole)
    b = net.encode_condition(y, whole.unsqueeze(1).expand(6, 9, J).clone())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_joint_missing_briefly_in_a_track_is_interpolated_not_masked():
    lifter = _lifter(1, missing=True)
    calls = []
    real_predict = lifter.predict

    def predict(x, settings, **kw):
        calls.append(kw.get("keypoint_mask"))
        return real_predict(x, settings, **kw)

    lifter.predict = predict
    kp = _track(12, frames=[0, 1, 2, 3, 4, 5, 20, 21, 22, 23, 24, 25])
    kp.present[2, 4] = False            # one frame, between frames that have it: interpolated
    kp.present[6, 6] = False            # the first frame after a 0.3 s gap: no frame before it within 0.2 s
    kp.present[11, 16] = False          # the track's last frame: nothing after it
    result = diffupose.lift(kp, lifter=lifter, num_hypotheses=2, num_steps=2, progress=False)
    mask = calls[0]
    assert mask[2, 4] and not mask[6, 6] and not mask[11, 16] and mask.sum() == mask.size - 2
    assert result.card["joints_interpolated_in_time"] == 1 and result.card["missing_joints"] == 3
    np.testing.assert_array_equal(result.present, kp.present)      # the output still says what was detected
    assert "interpolated in time" in result.card["missing_joint_handling"]
    calls.clear()                                                   # missing="mask": the detector's mask as it is
    result = diffupose.lift(kp, lifter=lifter, num_hypotheses=2, num_steps=2, progress=False, missing="mask")
    np.testing.assert_array_equal(calls[0], kp.present)
    assert "joints_interpolated_in_time" not in result.card and "interpolated" not in result.card["missing_joint_handling"]
    unordered = _track(12)                                          # not a track: nothing to interpolate from
    unordered.frame[:] = list("abcdefghijkl")
    unordered.present[2, 4] = False
    calls.clear()
    result = diffupose.lift(unordered, lifter=lifter, num_hypotheses=2, num_steps=2, progress=False)
    assert not calls[0][2, 4] and "interpolated" not in result.card["missing_joint_handling"]
