"""Reflow (train.reflow_from): the sampler's noise -> pose map, the teacher, and a tiny run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffupose.config import ConfigError, preset
from diffupose.diffusion import FlowPath, sample
from diffupose.geometry.skeleton import flip_horizontal, get_skeleton
from diffupose.inference import Lifter, SamplingSettings
from diffupose.training.reflow import ReflowTeacher, load_teacher


class _SourceEcho(torch.nn.Module):
    """A flow 'velocity' that records the source index of every row it is given and returns a
    constant field, so the output says which noise each chain started from."""

    def __init__(self, num_joints: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.num_joints, self.seen = num_joints, []

    def forward(self, x, keypoints_2d, t, source=None):
        self.seen.append(None if source is None else source.clone())
        return torch.ones_like(x), keypoints_2d


def test_given_noise_makes_a_deterministic_sampler_a_function_of_the_noise():
    """With `noise`, euler output = noise - 1 (velocity 1 over s 1 -> 0), whatever the generator;
    a per-input source tensor reaches every chain in chain order; a wrong noise shape is refused."""
    net, path = _SourceEcho(17), FlowPath(100)
    y = torch.zeros((3, 17, 2))
    noise = torch.randn((2 * 3 * 2, 17, 3), generator=torch.Generator().manual_seed(0))   # V=2, B=3, H=2
    skel = get_skeleton("h36m17")
    out_a = sample(net, path, y, num_hypotheses=2, sampler="euler", num_steps=3, flip=True, skeleton=skel,
                   noise=noise, generator=torch.Generator().manual_seed(1), input_source=torch.tensor([0, 1, 1]))
    out_b = sample(net, path, y, num_hypotheses=2, sampler="euler", num_steps=3, flip=True, skeleton=skel,
                   noise=noise, generator=torch.Generator().manual_seed(2), input_source=torch.tensor([0, 1, 1]))
    torch.testing.assert_close(out_a, out_b)
    z = (noise - 1.0).view(2, 3, 2, 17, 3)                      # euler from the given noise, per chain
    torch.testing.assert_close(out_a, (z[0] + flip_horizontal(z[1], skel)) / 2)
    assert net.seen[0].tolist() == [0, 0, 1, 1, 1, 1] * 2          # (view, input, hypothesis) order
    with pytest.raises(ValueError, match="noise must have shape"):
        sample(net, path, y, num_hypotheses=2, sampler="euler", num_steps=1, noise=noise[:5])
    with pytest.raises(ValueError, match="input_source"):
        sample(net, path, y, sampler="euler", num_steps=1, input_source=torch.tensor([0, 1]))


def _tiny_flow(tmp_path, synthetic_npz, name: str, overrides: dict) -> str:
    from diffupose.training import train

    cfg = preset("tiny", {"diffusion.objective": "flow", "data.path": str(synthetic_npz), **overrides})
    train(cfg, tmp_path / name, progress=False)
    return str(tmp_path / name)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, synthetic_npz):
    return _tiny_flow(tmp_path_factory.mktemp("reflow"), synthetic_npz, "teacher",
                      {"train.max_steps": 150, "eval.sampler": "midpoint", "eval.num_steps": 4})


def test_teacher_poses_are_its_sampler_output_for_that_noise(teacher_run, synthetic_npz):
    """ReflowTeacher.poses(ε) is the teacher's own sampler (its eval.sampler / num_steps by
    default) run from ε, returned as an ordinary tensor the student's loss can use."""
    cfg = preset("tiny", {"diffusion.objective": "flow", "data.path": str(synthetic_npz),
                          "train.reflow_from": teacher_run})
    teacher = load_teacher(cfg, get_skeleton("h36m17"), torch.device("cpu"))
    assert teacher.card["sampler"] == "midpoint" and teacher.card["nfe"] == 4
    y = torch.as_tensor(np.load(synthetic_npz)["keypoints_2d"][:8]).float()
    noise = torch.randn((8, 17, 3), generator=torch.Generator().manual_seed(4))
    x0 = teacher.poses(noise, y)
    assert not x0.is_inference() and x0.shape == (8, 17, 3)
    ref = teacher.lifter.sample_tensor(y, SamplingSettings(num_hypotheses=1, sampler="midpoint", num_steps=4,
                                                           flip=False), noise=noise)[:, 0]
    torch.testing.assert_close(x0, ref)
    assert not torch.allclose(teacher.poses(noise + 0.5, y), x0)


def test_reflow_settings_are_checked_before_training(teacher_run, synthetic_npz):
    skel, cpu = get_skeleton("h36m17"), torch.device("cpu")
    with pytest.raises(ConfigError, match="stochastic"):
        load_teacher(preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": teacher_run,
                                     "train.reflow_sampler": "ddpm"}), skel, cpu)
    with pytest.raises(ConfigError, match="keypoint mask"):
        load_teacher(preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": teacher_run,
                                     "train.joint_dropout": 0.2}), skel, cpu)
    with pytest.raises(ConfigError, match="skeleton"):
        load_teacher(preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": teacher_run}),
                     get_skeleton("humaneva15"), cpu)
    assert load_teacher(preset("tiny", {"diffusion.objective": "flow"}), skel, cpu) is None


def test_reflow_brings_few_step_euler_to_the_teacher(tmp_path, teacher_run, synthetic_npz):
    """A student started from the teacher and trained on its paths follows the teacher's
    4-step midpoint map with 1 and 2 Euler steps more closely than the teacher itself does
    (same noise, same inputs) — what reflow is for."""
    from diffupose.training import read_history

    student = _tiny_flow(tmp_path, synthetic_npz, "student",
                         {"train.max_steps": 150, "train.reflow_from": teacher_run, "train.init_from": teacher_run,
                          "train.lr": 1e-3})
    assert all(math.isfinite(r["loss"]) for r in read_history(student))
    t, s = Lifter.load(teacher_run, checkpoint="ema"), Lifter.load(student, checkpoint="ema")
    assert s.config.train.reflow_from == teacher_run
    y = torch.as_tensor(np.load(synthetic_npz)["keypoints_2d"][:256]).float()
    noise = torch.randn((256, 17, 3), generator=torch.Generator().manual_seed(3))

    def run(lifter: Lifter, sampler: str, nfe: int) -> torch.Tensor:
        return lifter.sample_tensor(y, SamplingSettings(num_hypotheses=1, sampler=sampler, num_steps=nfe, flip=False),
                                    noise=noise)[:, 0]

    target = run(t, "midpoint", 4)
    for nfe in (1, 2):
        gap_teacher = float((run(t, "euler", nfe) - target).norm(dim=-1).mean())
        gap_student = float((run(s, "euler", nfe) - target).norm(dim=-1).mean())
        assert gap_student < 0.8 * gap_teacher, (nfe, gap_student, gap_teacher)


def test_reflow_times_pick_the_euler_grid_points(teacher_run, synthetic_npz):
    """train.reflow_times limits the student's path times to the listed points; anything
    outside (0, 1] or not a number is refused when the config is built."""
    for bad in ("0", "1.5", "1,x"):
        with pytest.raises(ConfigError, match="reflow_times"):
            preset("tiny", {"diffusion.objective": "flow", "train.reflow_times": bad})
    cfg = preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": teacher_run, "train.reflow_times": "1,0.5"})
    teacher = load_teacher(cfg, get_skeleton("h36m17"), torch.device("cpu"))
    s = teacher.path_times(1000, torch.Generator().manual_seed(0))
    assert set(s.tolist()) == {1.0, 0.5}
    assert load_teacher(preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": teacher_run}),
                        get_skeleton("h36m17"), torch.device("cpu")).path_times(4, torch.Generator()) is None


def test_reflow_gap_benchmark_pairs_the_noise(tmp_path, teacher_run, synthetic_npz):
    """benchmarks/reflow_gap.py: the teacher's own Euler-2 against an Euler-2 reference is 0 mm
    (same noise, same input), and its Euler-1 is not."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "gap.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "reflow_gap.py"
    subprocess.run([sys.executable, str(script), "--data", str(synthetic_npz), "--teacher", teacher_run,
                    "--teacher-sampler", "euler", "--teacher-steps", "2", "--model", f"t={teacher_run}",
                    "--nfe", "1,2", "--max-samples", "64", "--json", str(out)], check=True, capture_output=True)
    rows = {(r["model"], r["nfe"]): r for r in json.loads(out.read_text())["rows"]}
    assert rows[("t", 2)]["to_teacher"] == 0.0
    assert rows[("t", 1)]["to_teacher"] > 1.0
    assert rows[("t", 2)]["to_gt"] == pytest.approx(rows[("teacher reference", 2)]["to_gt"])


def test_a_fixed_time_student_warns_once_off_its_grid(tmp_path, teacher_run, synthetic_npz, caplog):
    """A student trained at s = 1 only (train.reflow_times=1) is fine at Euler-1 and warns once,
    in one line naming s = 0.5 and its own sampler, when sampled with Euler-2."""
    import logging

    from diffupose.diffusion.flow import FlowSampler

    assert FlowSampler("midpoint", 3).evaluation_times() == [1.0, 0.5, 0.25]
    assert FlowSampler("heun", 3).evaluation_times() == [1.0, 0.5, 0.5]
    student = _tiny_flow(tmp_path, synthetic_npz, "e1", {"train.max_steps": 20, "train.reflow_from": teacher_run,
                                                         "train.reflow_times": "1", "eval.sampler": "euler",
                                                         "eval.num_steps": 1, "train.val_steps": 1})
    lifter = Lifter.load(student, checkpoint="ema")
    y = np.zeros((2, 17, 2), np.float32)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        lifter.sample(y, SamplingSettings(num_hypotheses=1, sampler="euler", num_steps=1))
        assert not caplog.records
        for _ in range(2):
            lifter.sample(y, SamplingSettings(num_hypotheses=1, sampler="euler", num_steps=2))
    assert len(caplog.records) == 1 and "s = 0.5" in caplog.text and "--sampler euler --steps 1" in caplog.text
    assert lifter.untrained_times(SamplingSettings(sampler="midpoint", num_steps=3)) == [0.5, 0.25]
    assert Lifter.load(teacher_run, checkpoint="ema").untrained_times(SamplingSettings(sampler="euler", num_steps=2)) == []


def test_a_ddpm_teacher_runs_ddim_from_the_given_noise(tmp_path, synthetic_npz):
    """A DDPM run is a teacher too: its DDIM (η = 0) from the given noise is the pose; its
    stochastic DDPM sampler is refused."""
    from diffupose.training import train

    train(preset("tiny", {"data.path": str(synthetic_npz), "train.max_steps": 20}), tmp_path / "ddpm", progress=False)
    skel, cpu = get_skeleton("h36m17"), torch.device("cpu")
    cfg = preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": str(tmp_path / "ddpm"),
                          "train.reflow_steps": 3})
    teacher = load_teacher(cfg, skel, cpu)
    assert teacher.card["objective"] == "ddpm" and teacher.card["sampler"] == "ddim" and teacher.card["nfe"] == 3
    y = torch.as_tensor(np.load(synthetic_npz)["keypoints_2d"][:4]).float()
    noise = torch.randn((4, 17, 3), generator=torch.Generator().manual_seed(0))
    ref = teacher.lifter.sample_tensor(y, SamplingSettings(num_hypotheses=1, sampler="ddim", num_steps=3, flip=False,
                                                           seed=99), noise=noise)[:, 0]
    torch.testing.assert_close(teacher.poses(noise, y), ref)
    with pytest.raises(ConfigError, match="stochastic"):
        load_teacher(preset("tiny", {"diffusion.objective": "flow", "train.reflow_from": str(tmp_path / "ddpm"),
                                     "train.reflow_sampler": "ddpm"}), skel, cpu)


def test_a_ddpm_student_learns_ddim_1_from_its_ddpm_teacher(tmp_path, synthetic_npz):
    """The zoo's h36m-det-fast recipe in miniature: a DDPM student (same objective and prediction
    as its teacher), started from the teacher's weights and trained at reflow_times=1 (the
    timestep T - 1 that DDIM-1 takes), follows the teacher's DDIM-4 map with one DDIM step more
    closely than the teacher's own DDIM-1 does (same noise, same inputs)."""
    from diffupose.training import read_history, train

    base = {"data.path": str(synthetic_npz), "diffusion.prediction": "v"}
    teacher = tmp_path / "teacher"
    train(preset("tiny", {**base, "train.max_steps": 200}), teacher, progress=False)
    cfg = preset("tiny", {**base, "train.max_steps": 150, "train.reflow_from": str(teacher),
                          "train.init_from": str(teacher), "train.reflow_times": "1", "train.reflow_steps": 4,
                          "train.lr": 1e-3, "eval.num_steps": 1, "train.val_steps": 1})
    loaded = load_teacher(cfg, get_skeleton("h36m17"), torch.device("cpu"))
    steps = loaded.path_times(64, torch.Generator().manual_seed(0), num_timesteps=cfg.diffusion.num_timesteps)
    assert steps.dtype == torch.int64 and set(steps.tolist()) == {cfg.diffusion.num_timesteps - 1}
    student = tmp_path / "student"
    train(cfg, student, progress=False)
    assert all(math.isfinite(r["loss"]) for r in read_history(student))
    t, s = Lifter.load(teacher, checkpoint="ema"), Lifter.load(student, checkpoint="ema")
    y = torch.as_tensor(np.load(synthetic_npz)["keypoints_2d"][:256]).float()
    noise = torch.randn((256, 17, 3), generator=torch.Generator().manual_seed(3))

    def run(lifter: Lifter, nfe: int) -> torch.Tensor:
        return lifter.sample_tensor(y, SamplingSettings(num_hypotheses=1, sampler="ddim", num_steps=nfe, flip=False),
                                    noise=noise)[:, 0]

    target = run(t, 4)
    gap_teacher = float((run(t, 1) - target).norm(dim=-1).mean())
    gap_student = float((run(s, 1) - target).norm(dim=-1).mean())
    assert gap_student < 0.8 * gap_teacher, (gap_student, gap_teacher)


def test_the_shipped_one_step_student_warns_off_its_step_and_defaults_to_it(caplog):
    """h36m-det-fast (a DDPM student trained at DDIM-1's timestep only) warns once, in one line,
    when sampled with DDIM-5, and sample / predict without settings use its own DDIM-1."""
    import logging

    lifter = Lifter.from_pretrained("h36m-det-fast")
    own = lifter.default_settings()
    assert (own.sampler, own.num_steps) == ("ddim", 1)
    five = own.replace(num_steps=5, num_hypotheses=1, flip=False)
    y = np.zeros((2, 17, 2), np.float32)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="diffupose.lift"):
        lifter.sample(y, own.replace(num_hypotheses=1))
        assert not caplog.records
        lifter.sample(y, five)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "timesteps t = 99 only" in line and "--sampler ddim --steps 1" in line and "\n" not in line
    assert lifter.untrained_times(own) == [] and lifter.untrained_times(five) == [74.0, 50.0, 25.0, 0.0]
    np.testing.assert_allclose(lifter.sample(y), lifter.sample(y, own), atol=0)
