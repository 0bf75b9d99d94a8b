"""Missing joints: training and evaluation masks, filling (template and neighbour), pixel noise, and the mask
reaching the denoiser through the loss, the sampler and the training step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffupose.geometry.projection import normalize_screen_coordinates
from diffupose.config import ModelConfig, preset
from diffupose.diffusion import NoiseSchedule, diffusion_loss, sample
from diffupose.data.keypoints import MEAN_POSE_2D_H36M17
from diffupose.errors import ConfigError, DataError
from diffupose.model.masking import (FILL_METHODS, add_pixel_noise, evaluation_mask, fill_missing, fill_window_in_time,
                                     graph_diameter, limbs, short_gaps,
                                     neighbour_fill, pixels_to_normalised, random_joint_mask)
from diffupose.model import build_denoiser
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

J = H36M17.num_joints


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("skeleton", [H36M17, HUMANEVA15])
def test_limbs_are_side_chains(skeleton):
    ls = limbs(skeleton)
    assert len(ls) == 4 and all(len(limb) == 3 for limb in ls)
    for limb in ls:
        assert all(skeleton.parents[limb[i + 1]] == limb[i] for i in range(len(limb) - 1))
        side = set(skeleton.joints_left) if limb[0] in skeleton.joints_left else set(skeleton.joints_right)
        assert set(limb) <= side and skeleton.parents[limb[0]] not in side
    assert {(1, 2, 3), (4, 5, 6), (11, 12, 13), (14, 15, 16)} == set(limbs(H36M17))


def test_random_joint_mask_rates_and_limits():
    gen = torch.Generator().manual_seed(0)
    mask = random_joint_mask(20000, H36M17, joint_prob=0.2, limb_prob=0.1, max_missing=4, generator=gen)
    assert mask.dtype == torch.bool and mask.shape == (20000, J)
    missing = (~mask).sum(1)
    assert mask[:, 0].all()                      # never the root
    assert int(missing.max()) == 4
    complete = float((missing == 0).float().mean())
    assert abs(complete - 0.8 * 0.9) < 0.015     # (1 - joint_prob)(1 - limb_prob)
    # every non-root joint goes missing sometimes
    assert (~mask[:, 1:]).any(0).all()
    none = random_joint_mask(100, H36M17, generator=gen)
    assert none.all()
    again = random_joint_mask(50, H36M17, joint_prob=0.5, limb_prob=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, random_joint_mask(50, H36M17, joint_prob=0.5, limb_prob=0.5,
                                                generator=torch.Generator().manual_seed(3)))


def test_random_limb_masks_are_distal_segments():
    mask = random_joint_mask(5000, H36M17, limb_prob=1.0, max_missing=3, generator=torch.Generator().manual_seed(1))
    segments = {limb[-n:] for limb in limbs(H36M17) for n in (1, 2, 3)}
    for row in (~mask).numpy():
        assert tuple(np.flatnonzero(row)) in segments


@pytest.mark.parametrize("mode", ["random", "limb"])
@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_evaluation_masks(mode, k):
    mask = evaluation_mask(500, H36M17, k, mode, seed=0)
    assert mask.shape == (500, J) and ((~mask).sum(1) == k).all() and mask[:, 0].all()
    assert np.array_equal(mask, evaluation_mask(500, H36M17, k, mode, seed=0))
    if k and mode == "limb":
        for row in ~mask:
            for limb in limbs(H36M17):   # missing joints of a limb are its distal end
                miss = row[list(limb)]
                assert not (miss[:-1] & ~miss[1:]).any()
    if k == 1 and mode == "random":
        assert len(np.unique(np.flatnonzero(~mask) % J)) == J - 1


def test_neighbour_fill_is_the_mean_of_present_neighbours():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, J, 2)).astype(np.float32)
    mask = np.ones((2, J), dtype=bool)
    mask[0, 12] = False                                      # left elbow: shoulder 11 and wrist 13
    mask[1, [12, 13]] = False                                # elbow and wrist: both from the shoulder
    kp_nan = kp.copy()
    kp_nan[~mask] = np.nan
    out = fill_missing(kp_nan, mask, H36M17, method="neighbour")
    assert out.dtype == np.float32
    assert np.allclose(out[0, 12], (kp[0, 11] + kp[0, 13]) / 2)
    assert np.allclose(out[1, 12], kp[1, 11]) and np.allclose(out[1, 13], kp[1, 11])
    assert np.array_equal(out[mask], kp[mask]) and np.isfinite(out).all()
    torch_out = fill_missing(torch.from_numpy(kp_nan), torch.from_numpy(mask), H36M17, method="neighbour")
    assert isinstance(torch_out, torch.Tensor) and np.allclose(torch_out.numpy(), out)
    for method in FILL_METHODS:
        with pytest.raises(DataError, match="sample 0: every joint is missing"):
            fill_missing(kp, np.zeros((2, J), dtype=bool), H36M17, method=method)
    with pytest.raises(ConfigError, match="unknown fill method"):
        fill_missing(kp, mask, H36M17, method="zeros")


def test_template_fill_interpolates_tracks_and_fits_the_mean_pose():
    t = np.arange(5, dtype=float)
    xy = np.broadcast_to(MEAN_POSE_2D_H36M17 * 0.2, (5, J, 2)).copy() + t[:, None, None] * 0.01
    present = np.ones((5, J), dtype=bool)
    present[2, 13] = False
    present[:, 10] = False                                    # never seen: mean pose
    filled = fill_missing(np.where(present[..., None], xy, np.nan), present, H36M17, track=True)
    np.testing.assert_allclose(filled[2, 13], xy[2, 13], atol=1e-12)   # linear motion: exact
    np.testing.assert_allclose(filled[:, 10], xy[:, 10], atol=1e-9)    # the template itself
    mirrored = xy * np.array([-1.0, 1.0])
    filled = fill_missing(np.where(present[..., None], mirrored, np.nan), present, H36M17)
    np.testing.assert_allclose(filled[:, 10], mirrored[:, 10], atol=1e-9)  # seen from behind
    assert np.isfinite(filled).all()
    assert fill_missing(xy.astype(np.float32), present, H36M17).dtype == np.float32


def test_track_fill_interpolates_in_time_first_for_either_method():
    t = np.arange(4, dtype=float)
    xy = np.broadcast_to(MEAN_POSE_2D_H36M17 * 0.2, (4, J, 2)).copy() + t[:, None, None] * 0.01
    present = np.ones((4, J), dtype=bool)
    present[1, 1:] = False                                    # a frame with only the root detected
    present[:, 16] = False                                    # a wrist never seen: spatial fill
    for method in FILL_METHODS:
        filled = fill_missing(np.where(present[..., None], xy, np.nan), present, H36M17, method=method,
                              track=True)
        np.testing.assert_allclose(filled[1, :16], xy[1, :16], atol=1e-12)
        assert np.isfinite(filled).all()
    neighbour = fill_missing(np.where(present[..., None], xy, np.nan), present, H36M17, method="neighbour",
                             track=True)
    np.testing.assert_allclose(neighbour[:, 16], xy[:, 15], atol=1e-12)  # the elbow, its only neighbour
    present[1, 0] = False                                     # nothing detected: no frame to fit
    with pytest.raises(DataError, match="sample 1: every joint is missing"):
        fill_missing(np.where(present[..., None], xy, np.nan), present, H36M17, track=True)


def test_pixel_noise_uses_the_camera_normalisation():
    assert np.isclose(pixels_to_normalised(5.0, 1000, 1002), 0.01)
    uv = np.array([[[300.0, 400.0]]])
    a = normalize_screen_coordinates(uv, 1000, 1002)
    b = normalize_screen_coordinates(uv + [7.0, 0.0], 1000, 1002)
    assert np.isclose(b[0, 0, 0] - a[0, 0, 0], pixels_to_normalised(7.0, 1000, 1002))
    kp = np.zeros((4000, J, 2), dtype=np.float32)
    noisy = add_pixel_noise(kp, 10.0, 1000, 1002, seed=0)
    assert noisy.dtype == np.float32 and abs(noisy.std() - 0.02) < 0.0005
    assert np.array_equal(noisy, add_pixel_noise(kp, 10.0, 1000, 1002, seed=0))
    assert np.array_equal(add_pixel_noise(kp, 0.0, 1000, 1002), kp)


class _Recorder(torch.nn.Module):
    """A stand-in denoiser that records what it is given."""

    num_joints = J

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, x_t, y, t, keypoint_mask=None):
        self.calls.append((y.clone(), None if keypoint_mask is None else keypoint_mask.clone()))
        return x_t * self.scale * 0.1, y * self.scale


def test_loss_and_sampler_pass_the_mask():
    schedule = NoiseSchedule.from_config(preset("tiny").diffusion)
    rec = _Recorder()
    x0, y = torch.randn(3, J, 3) * 0.2, torch.randn(3, J, 2)
    mask = torch.ones(3, J, dtype=torch.bool)
    mask[0, 13] = False                                      # a left wrist
    diffusion_loss(rec, schedule, x0, y, keypoint_mask=mask)
    assert torch.equal(rec.calls[-1][1], mask)
    diffusion_loss(rec, schedule, x0, y)
    assert rec.calls[-1][1] is None

    rec.calls.clear()
    y_nan = y.clone()
    y_nan[0, 13] = float("nan")                               # allowed where missing
    out = sample(rec, schedule, y_nan, num_hypotheses=2, num_steps=2, flip=True, skeleton=H36M17,
                 keypoint_mask=mask, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 2, J, 3) and torch.isfinite(out).all()
    cond, seen = rec.calls[0]
    seen = seen.view(2, 3, 2, J)                              # (view, B, H, J)
    assert torch.equal(seen[0, :, 0], mask)
    assert torch.equal(seen[1, :, 0], mask[:, H36M17.flip_permutation])   # the mirrored view: right wrist
    assert not seen[1, 0, 0, 16] and torch.isfinite(cond).all()
    with pytest.raises(ValueError, match="NaN"):
        sample(rec, schedule, y_nan, num_steps=2)            # NaN without a mask is still an error


def test_training_with_joint_dropout(synthetic_npz, tmp_path):
    from diffupose.model.checkpoint import load_model
    from diffupose.training import train

    over = {"data.path": str(synthetic_npz), "train.max_steps": 6, "train.val_every": 6,
            "train.checkpoint_every": 6, "train.log_every": 3, "train.joint_dropout": 0.3,
            "train.limb_dropout": 0.2}
    with pytest.raises(ConfigError, match="missing_joints"):
        train(preset("tiny", over), tmp_path / "plain", progress=False)
    train(preset("tiny", {**over, "model.missing_joints": True}), tmp_path / "masked", progress=False)
    model, cfg, skeleton = load_model(tmp_path / "masked")
    assert cfg.model.missing_joints and model.missing_joints
    y = torch.zeros(2, J, 2)
    mask = torch.from_numpy(evaluation_mask(2, skeleton, 2, "limb"))
    out = sample(model, NoiseSchedule.from_config(cfg.diffusion), y, num_steps=2, keypoint_mask=mask,
                 generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()


def test_build_denoiser_reads_the_flag():
    assert build_denoiser(ModelConfig(dim=32, num_blocks=1, missing_joints=True), H36M17).missing_joints


def test_robustness_matrix_cells():
    from diffupose.inference import Lifter, SamplingSettings

    from diffupose.evaluation import robustness as rob

    torch.manual_seed(0)
    cfg = preset("tiny")
    lifters = {"plain": Lifter.from_model(build_denoiser(cfg.model, H36M17), cfg, H36M17),
               "masked": Lifter.from_model(build_denoiser(ModelConfig(dim=64, num_blocks=1, missing_joints=True),
                                                          H36M17), cfg, H36M17)}
    rng = np.random.default_rng(0)
    kp = rng.normal(scale=0.2, size=(12, J, 2)).astype(np.float32)
    gt = rng.normal(scale=0.2, size=(12, J, 3)).astype(np.float32)
    settings = SamplingSettings(num_hypotheses=3, num_steps=2, flip=True, batch_size=5)
    rows = rob.robustness_matrix(lifters, kp, gt, np.full(12, 1000), np.full(12, 1002), settings,
                                 missing=(0, 2), noise_px=(0, 5), progress=False)
    assert len(rows) == 2 * (1 + 2) * 2                       # σ x (none + 2 modes) x models
    assert {r["input"] for r in rows if r["model"] == "plain"} == {"neighbour-fill"}
    for r in rows:
        assert (r["mpjpe_missing_joints"] is None) == (r["missing"] == 0)
        assert r["oracle_best_of_h"] <= r["mpjpe_n1"] + 1e-6 and np.isfinite(r["spread_all_joints"])
    # the plain model given no missing joints and no noise sees exactly the clean inputs
    clean = lifters["plain"].predict(kp, settings)
    row = next(r for r in rows if r["model"] == "plain" and r["missing"] == 0 and r["noise_px"] == 0)
    assert np.isclose(row["mpjpe_aggregate"], 1000 * float(np.linalg.norm(clean.aggregate - gt, axis=-1).mean()),
                      rtol=1e-5)
    table = rob.markdown_tables(rows, settings)
    assert "ORACLE" in table and "| masked | 2 limb |" in table
    labels, sigmas, grid = rob.matrix_pivot([r for r in rows if r["model"] == "masked"])
    assert labels == ["none", "2 random", "2 limb"] and sigmas == [0, 5] and grid.shape == (3, 2)
    masked_limb_5 = next(r for r in rows if r["model"] == "masked" and r["mask"] == "limb" and r["noise_px"] == 5)
    assert grid[2, 1] == masked_limb_5["mpjpe_aggregate"]
    _, _, missing_grid = rob.matrix_pivot([r for r in rows if r["model"] == "masked"], "mpjpe_missing_joints")
    assert np.isnan(missing_grid[0]).all() and np.isfinite(missing_grid[1:]).all()


def test_robustness_template_fill_and_bad_fill():
    from diffupose.inference import Lifter, SamplingSettings

    from diffupose.evaluation import robustness as rob

    cfg = preset("tiny")
    lifters = {"plain": Lifter.from_model(build_denoiser(cfg.model, H36M17), cfg, H36M17)}
    rng = np.random.default_rng(1)
    kp = rng.normal(scale=0.2, size=(4, J, 2)).astype(np.float32)
    gt = rng.normal(scale=0.2, size=(4, J, 3)).astype(np.float32)
    settings = SamplingSettings(num_hypotheses=2, num_steps=2, flip=False)
    rows = rob.robustness_matrix(lifters, kp, gt, 1000, 1002, settings, missing=(2,), modes=("limb",),
                                 noise_px=(0,), fill="template", progress=False)
    assert [r["input"] for r in rows] == ["template-fill"] and np.isfinite(rows[0]["mpjpe_aggregate"])
    with pytest.raises(ConfigError, match="fill"):
        rob.robustness_matrix(lifters, kp, gt, 1000, 1002, settings, missing=(2,), fill="zeros", progress=False)


def test_neighbour_fill_reaches_every_joint_and_keeps_present_ones():
    adjacency = torch.from_numpy(H36M17.adjacency())
    assert graph_diameter(adjacency) == 8
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(5, J, 2, generator=g)
    present = torch.rand(5, J, generator=g) > 0.6
    present[:, 0] = True
    nan_in = torch.where(present[..., None], kp, torch.full((), float("nan")))
    out = neighbour_fill(nan_in, present, adjacency, graph_diameter(adjacency))
    assert torch.isfinite(out).all() and torch.equal(out[present], kp[present])
    # the numpy fill_missing(method="neighbour") is the same computation
    ref = fill_missing(nan_in.numpy(), present.numpy(), H36M17, method="neighbour")
    assert np.allclose(out.numpy(), ref, atol=1e-6)
    # a missing joint between two present ones gets their mean
    one = torch.zeros(1, J, dtype=torch.bool) | True
    elbow = H36M17.joint_names.index("RElbow") if "RElbow" in H36M17.joint_names else 15
    one[0, elbow] = False
    filled = neighbour_fill(kp[:1], one, adjacency, 8)
    nbrs = torch.nonzero(adjacency[elbow]).flatten()
    assert torch.allclose(filled[0, elbow], kp[0, nbrs].mean(0))


def test_masked_denoiser_fills_missing_inputs_from_neighbours_and_old_configs_keep_zeros(tmp_path):
    from diffupose.config import Config
    from diffupose.model.denoiser import condition_channels

    model = build_denoiser(ModelConfig(dim=32, num_blocks=1, missing_joints=True), H36M17)
    assert model.missing_fill is not None and len(model.state_dict()) == len(
        build_denoiser(ModelConfig(dim=32, num_blocks=1), H36M17).state_dict())      # nothing new in checkpoints
    kp = torch.rand(2, J, 2)
    mask = torch.ones(2, J, dtype=torch.bool)
    mask[:, 3] = False
    cond = condition_channels(kp, mask, True, torch.float32, model.missing_fill)
    nbrs = torch.nonzero(torch.from_numpy(H36M17.adjacency())[3]).flatten()
    assert torch.allclose(cond[:, 3, :2], kp[:, nbrs].mean(1)) and torch.equal(cond[:, 3, 2], torch.ones(2))
    zero = build_denoiser(ModelConfig(dim=32, num_blocks=1, missing_joints=True, missing_fill="zero"), H36M17)
    assert zero.missing_fill is None
    assert torch.equal(condition_channels(kp, mask, True, torch.float32, zero.missing_fill)[:, 3, :2], torch.zeros(2, 2))
    # a masked run written before model.missing_fill existed is read as "zero"
    old = Config().to_dict()
    old["model"]["missing_joints"] = True
    del old["model"]["missing_fill"]
    assert Config.from_dict(old).model.missing_fill == "zero"
    assert Config().model.missing_fill == "neighbour"


def test_fill_window_in_time_matches_interpolation_per_joint():
    rng = np.random.default_rng(0)
    window = rng.normal(size=(4, 9, 17, 2)).astype(np.float32)
    present = rng.random((4, 9, 17)) > 0.4
    present[0, :, 3] = False                                  # never seen in its window
    present[1, :, 2] = [False, False, True, False, False, False, True, False, False]   # ends held, middle linear
    filled, seen = fill_window_in_time(torch.from_numpy(window), torch.from_numpy(present))
    expected = window.copy()
    for b in range(4):
        for j in range(17):
            have = np.flatnonzero(present[b, :, j])
            if len(have):
                for c in range(2):
                    expected[b, :, j, c] = np.interp(np.arange(9), have, window[b, have, j, c])
    np.testing.assert_allclose(filled.numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(seen.numpy(), np.broadcast_to(present.any(axis=1, keepdims=True), present.shape))
    assert filled[1, 4, 2, 0] == pytest.approx(window[1, 2, 2, 0] + 0.5 * (window[1, 6, 2, 0] - window[1, 2, 2, 0]))
    same = np.broadcast_to(present[:, :1], present.shape).copy()          # one mask for every frame: no change
    filled, seen = fill_window_in_time(torch.from_numpy(window), torch.from_numpy(same))
    assert torch.equal(filled, torch.from_numpy(window)) and torch.equal(seen, torch.from_numpy(same))


def test_short_gaps_are_the_missing_joints_between_close_frames():
    times = np.array([0, 1, 2, 3, 10, 11, 12, 13])
    present = np.ones((8, 3), dtype=bool)
    present[1, 0] = False                      # between t = 0 and 2: a gap of 2
    present[[3, 4], 1] = False                 # between t = 2 and 11: a gap of 9
    present[0, 2] = present[7, 2] = False      # track ends: nothing on one side
    gaps = short_gaps(present, times, max_gap=3)
    assert gaps.sum() == 1 and gaps[1, 0]
    assert short_gaps(present, times, max_gap=9)[[1, 3, 4], [0, 1, 1]].all()
    assert not short_gaps(present, times, max_gap=100)[[0, 7], 2].any()
    with pytest.raises(ValueError, match="short_gaps"):
        short_gaps(present, times[:5], 3)
