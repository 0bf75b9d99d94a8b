"""Flow matching beside DDPM: the loss, the ODE samplers, the sampler rules and a tiny run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffupose.config import ConfigError, preset
from diffupose.diffusion import (FlowPath, FlowSampler, NoiseSchedule, build_process, diffusion_loss,
                                 flow_matching_loss, function_evaluations, resolve_sampler, run_sampler, sample)
from diffupose.diffusion.flow import flow_interpolate, flow_noise, flow_velocity_target, flow_x0


class _ExactVelocity(torch.nn.Module):
    """For data that is one fixed pose x0*, the exact velocity at (x_s, s) is (x_s - x0*)/s
    = ε - x0*; the 2D head returns the 2D input."""

    def __init__(self, x0: torch.Tensor, T: int) -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.weight = torch.nn.Parameter(torch.zeros(()))  # sample() reads the device from a parameter
        self.T, self.num_joints = T, x0.shape[1]

    def forward(self, x, keypoints_2d, t, keypoint_mask=None):
        s = (t.float() / self.T).view(-1, 1, 1)
        return (x - self.x0) / s, keypoints_2d


class _GaussianVelocity(torch.nn.Module):
    """The exact marginal velocity E[ε - x0 | x_s] when x0 ~ N(μ, σ²) per coordinate:
    -μ + (s - (1 - s) σ²) / var_s · (x - (1 - s) μ), var_s = (1 - s)² σ² + s²."""

    def __init__(self, mu: float, sigma: float, T: int, num_joints: int = 4) -> None:
        super().__init__()
        self.mu, self.sigma, self.T, self.num_joints = mu, sigma, T, num_joints
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, keypoints_2d, t, keypoint_mask=None):
        assert t.dtype == torch.float32, "flow models get continuous time"
        s = (t / self.T).view(-1, 1, 1).double()
        var = (1 - s) ** 2 * self.sigma ** 2 + s ** 2
        v = -self.mu + (s - (1 - s) * self.sigma ** 2) / var * (x.double() - (1 - s) * self.mu)
        return v.float(), keypoints_2d


def test_flow_path_equations():
    x0, eps = torch.randn(5, 4, 3), torch.randn(5, 4, 3)
    s = torch.rand(5)
    xs = flow_interpolate(x0, eps, s)
    v = flow_velocity_target(x0, eps)
    torch.testing.assert_close(flow_x0(xs, s, v), x0)
    torch.testing.assert_close(flow_noise(xs, s, v), eps)
    torch.testing.assert_close(flow_interpolate(x0, eps, torch.zeros(5)), x0)
    torch.testing.assert_close(flow_interpolate(x0, eps, torch.ones(5)), eps)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_flow_loss_is_zero_for_the_exact_velocity(kind):
    torch.manual_seed(0)
    x0 = torch.randn(1, 6, 3).expand(32, 6, 3).contiguous()
    y = torch.randn(32, 6, 2)
    path = FlowPath(100)
    model = _ExactVelocity(x0[:1], 100)
    s = torch.rand(32) * 0.95 + 0.05
    loss, parts = flow_matching_loss(model, path, x0, y, kind=kind, s=s)
    assert float(loss) < 1e-5 and parts["loss_2d"] == 0.0
    # a wrong velocity costs: the loss tells them apart
    wrong = _ExactVelocity(x0[:1] + 0.1, 100)
    assert float(flow_matching_loss(wrong, path, x0, y, kind=kind, s=s)[0]) > 1e-3
    # diffusion_loss hands a FlowPath to the flow loss
    same, _ = diffusion_loss(model, path, x0, y, kind=kind, t=s)
    assert float(same) == pytest.approx(float(loss), abs=1e-7)


def test_logit_normal_time_is_concentrated_in_the_middle():
    g = torch.Generator().manual_seed(0)
    u = FlowPath(100, "uniform").sample_time(20000, "cpu", g)
    ln = FlowPath(100, "logit_normal").sample_time(20000, "cpu", g)
    assert 0 <= float(u.min()) and float(u.max()) <= 1 and 0 < float(ln.min()) and float(ln.max()) < 1
    middle = lambda s: float(((s > 0.25) & (s < 0.75)).float().mean())  # noqa: E731
    assert middle(u) == pytest.approx(0.5, abs=0.02) and middle(ln) > 0.6


@pytest.mark.parametrize("method", ["euler", "heun", "midpoint"])
def test_solvers_match_the_closed_form_gaussian_transport(method):
    """x0 ~ N(μ, σ²): the probability-flow map of the straight path is x_0 = μ + σ x_1."""
    mu, sigma = 0.3, 0.5
    model = _GaussianVelocity(mu, sigma, 100)
    y = torch.zeros(64, 4, 2)
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(64 * 1, 4, 3, generator=torch.Generator().manual_seed(1))
    # first order vs second order (Heun's last interval is an Euler step: a little looser)
    steps, tol = {"euler": (2000, 2e-3), "heun": (100, 3e-3), "midpoint": (100, 1e-3)}[method]
    out = sample(model, FlowPath(100), y, sampler=method, num_steps=steps, generator=g)
    torch.testing.assert_close(out[:, 0], mu + sigma * x1, atol=tol, rtol=0)


def test_second_order_solvers_beat_euler_at_equal_evaluations():
    mu, sigma = 0.3, 0.5
    model = _GaussianVelocity(mu, sigma, 100)
    y = torch.zeros(64, 4, 2)
    x1 = torch.randn(64, 4, 3, generator=torch.Generator().manual_seed(1))
    err = {}
    for method in ("euler", "heun", "midpoint"):
        out = sample(model, FlowPath(100), y, sampler=method, num_steps=6, generator=torch.Generator().manual_seed(1))
        err[method] = float((out[:, 0] - (mu + sigma * x1)).abs().max())
    assert err["midpoint"] < err["euler"] / 3 and err["heun"] < err["euler"], err


def test_solver_grids_count_evaluations():
    calls = []
    for method, nfe in (("euler", 3), ("heun", 2), ("heun", 4), ("heun", 5), ("midpoint", 1), ("midpoint", 2)):
        solver = FlowSampler(method, nfe)
        calls.clear()
        run_sampler(solver, lambda x, s: calls.append(s) or torch.zeros_like(x), torch.zeros(2, 3))
        assert len(calls) == nfe == solver.nfe, (method, nfe)
        assert calls == solver.evaluation_times() and [s for s, _ in solver.pairs()] == solver.timesteps
        iv = solver.intervals()
        assert iv[0][0] == 1.0 and iv[-1][1] == 0.0
        if method == "heun":             # never evaluated at s = 0
            assert 0.0 not in calls and iv[-1][2] == "euler"
        assert all(a > b for a, b, _ in iv)
    with pytest.raises(ConfigError, match="num_steps"):
        FlowSampler("euler", 0)
    with pytest.raises(ConfigError, match="eta"):
        FlowSampler("heun", 2, eta=0.5)


def test_stochastic_euler_keeps_the_marginal_and_eta_zero_is_euler():
    model = _GaussianVelocity(0.3, 0.5, 100)
    y = torch.zeros(4000, 4, 2)
    det = sample(model, FlowPath(100), y, sampler="euler", num_steps=20, generator=torch.Generator().manual_seed(3))
    same = sample(model, FlowPath(100), y, sampler="euler", num_steps=20, eta=0.0,
                  generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(det, same)
    # stochastic steps converge to the data distribution as the steps grow (at 50 steps std 0.47)
    sto = sample(model, FlowPath(100), y, sampler="euler", num_steps=400, eta=0.8,
                 generator=torch.Generator().manual_seed(3))
    assert float(sto.mean()) == pytest.approx(0.3, abs=0.01)
    assert float(sto.std()) == pytest.approx(0.5, abs=0.01)
    assert not torch.allclose(sto, det)


def test_sampler_rules_by_objective():
    assert resolve_sampler("ddim", "flow") == "euler"
    assert resolve_sampler("heun", "flow") == "heun"
    assert resolve_sampler("ddim", "ddpm") == "ddim"
    with pytest.raises(ConfigError, match="heun needs a flow-matching model"):
        resolve_sampler("heun", "ddpm")
    with pytest.raises(ConfigError, match="eval.sampler heun needs a flow-matching"):
        preset("tiny", {"eval.sampler": "heun"})
    with pytest.raises(ConfigError, match="needs a DDPM model"):
        resolve_sampler("ddpm", "flow")
    with pytest.raises(ConfigError, match="unknown sampler"):
        resolve_sampler("rk4", "flow")
    assert function_evaluations("ddpm", 5, 100) == 100 and function_evaluations("heun", 4, 100) == 4
    assert isinstance(build_process(preset("tiny").diffusion), NoiseSchedule)
    assert isinstance(build_process(preset("tiny", {"diffusion.objective": "flow"}).diffusion), FlowPath)
    with pytest.raises(ConfigError, match="objective"):
        preset("tiny", {"diffusion.objective": "score"})


def test_tiny_flow_run_trains_samples_and_names_its_objective(tmp_path, synthetic_npz):
    """Train the tiny preset with objective=flow, then evaluate through the shared path: the
    protocol card names objective, sampler and NFE, and more steps does not break it."""
    from diffupose.evaluation.protocols import evaluate
    from diffupose.config import EvalConfig
    from diffupose.inference import Lifter, SamplingSettings
    from diffupose.training import read_history, train

    cfg = preset("tiny", {"diffusion.objective": "flow", "train.max_steps": 60, "data.path": str(synthetic_npz)})
    run = tmp_path / "run"
    train(cfg, run)
    hist = read_history(run)
    assert all(math.isfinite(r["loss"]) for r in hist) and hist[-1]["loss"] < hist[0]["loss"]
    ev = EvalConfig(num_hypotheses=2, num_steps=2, sampler="heun", flip=True, max_samples=64, checkpoint="ema")
    result = evaluate(run, synthetic_npz, split="val", eval_cfg=ev, progress=False)
    card = result.card
    assert card["objective"] == "flow" and card["sampler"] == "heun" and card["nfe"] == 2
    assert np.isfinite(list(result.per_action["MPJPE"].values())).all()
    lifter = Lifter.load(run, checkpoint="ema")
    y = np.zeros((3, lifter.skeleton.num_joints, 2), np.float32)
    a = lifter.sample(y, SamplingSettings(num_hypotheses=2, sampler="ddim", num_steps=3, seed=5))
    b = lifter.sample(y, SamplingSettings(num_hypotheses=2, sampler="euler", num_steps=3, seed=5))
    np.testing.assert_array_equal(a, b)  # ddim is euler for a flow model
