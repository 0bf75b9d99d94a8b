"""Diffusion tests: schedules (eq. 11), forward process (eq. 2), posterior (eq. 3), samplers,
loss (eqs. 8-10)."""
import math

import pytest
import torch
from torch import nn

from diffupose.config import DiffusionConfig, ModelConfig
from diffupose.diffusion import (PREDICTIONS, SAMPLERS, DDIMSampler, DDPMSampler, NoiseSchedule, cosine_betas,
                                 diffusion_loss, linear_betas, predict_x0, prediction_target,
                                 q_posterior_mean_variance, q_sample, sample)
from diffupose.errors import ConfigError
from diffupose.model import build_denoiser
from diffupose.geometry.skeleton import H36M17, flip_horizontal

J = H36M17.num_joints


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule.from_config(DiffusionConfig())


class GaussianEps(nn.Module):
    """Exact ε-predictor for x0 ~ N(mu, std²) per coordinate: E[ε | x_t] = b (x_t - a mu)/(a² std² + b²)."""

    def __init__(self, schedule, mu=0.3, std=0.1):
        super().__init__()
        self.ab = schedule.alphas_cumprod.float()
        self.mu, self.std = mu, std
        self.dummy = nn.Parameter(torch.zeros(1))
        self.num_joints = J

    def forward(self, x_t, y, t):
        ab = self.ab[t].view(-1, 1, 1)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return b * (x_t - a * self.mu) / (a * a * self.std ** 2 + b * b), y


class FromTarget(nn.Module):
    """ε such that x̂0 = f(y) exactly: ε = (x_t - sqrt(ᾱ) f(y)) / sqrt(1 - ᾱ)."""

    def __init__(self, schedule, f):
        super().__init__()
        self.ab = schedule.alphas_cumprod.float()
        self.f = f
        self.dummy = nn.Parameter(torch.zeros(1))
        self.num_joints = J

    def forward(self, x_t, y, t):
        ab = self.ab[t].view(-1, 1, 1)
        return (x_t - ab.sqrt() * self.f(y)) / (1 - ab).sqrt(), y


def test_cosine_schedule_values(schedule):
    b, ab = schedule.betas, schedule.alphas_cumprod
    assert b.dtype == torch.float64 and b.shape == (100,)
    assert math.isclose(b[0].item(), 6.3e-4, rel_tol=0.02)
    assert b[-1].item() == pytest.approx(0.999)
    assert math.isclose(ab[-1].item(), 2.4e-7, rel_tol=0.05)
    assert torch.all(ab[1:] < ab[:-1]) and torch.all(b <= 0.999) and torch.all(b > 0)
    assert torch.allclose(cosine_betas(100), b)


def test_linear_schedule():
    s = NoiseSchedule.from_config(DiffusionConfig(schedule="linear"))
    assert s.betas[0].item() == pytest.approx(1e-3) and s.betas[-1].item() == pytest.approx(0.2)
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])
    assert torch.allclose(linear_betas(100), s.betas)
    with pytest.raises(ConfigError):
        NoiseSchedule.from_config(DiffusionConfig(schedule="sigmoid"))


def test_q_sample_statistics(schedule):
    g = torch.Generator().manual_seed(0)
    n = 20000
    x0 = torch.full((n, J, 3), 0.5)
    t = torch.full((n,), 30, dtype=torch.long)
    x_t = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=g))
    ab = schedule.alphas_cumprod[30].item()
    assert x_t.mean().item() == pytest.approx(math.sqrt(ab) * 0.5, abs=0.01)
    assert x_t.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_posterior_matches_eq3(schedule):
    x0, x_t = torch.randn(4, J, 3), torch.randn(4, J, 3)
    t = torch.tensor([0, 1, 50, 99])
    mean, var, logvar = q_posterior_mean_variance(schedule, x0, x_t, t)
    # one integer step (what the samplers use) gives the same as the per-row gather
    for i, ti in enumerate(t.tolist()):
        mean_i, var_i, _ = q_posterior_mean_variance(schedule, x0[i:i + 1], x_t[i:i + 1], ti)
        torch.testing.assert_close(mean_i, mean[i:i + 1])
        assert isinstance(var_i, float) and var_i == pytest.approx(var[i].item())
    for i, ti in enumerate(t.tolist()):
        ab, ab_prev = schedule.alphas_cumprod[ti].item(), (schedule.alphas_cumprod[ti - 1].item() if ti else 1.0)
        beta = schedule.betas[ti].item()
        expect = math.sqrt(ab_prev) * beta / (1 - ab) * x0[i] + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * x_t[i]
        assert torch.allclose(mean[i], expect, atol=1e-5)
        assert var[i].item() == pytest.approx((1 - ab_prev) / (1 - ab) * beta, rel=1e-6, abs=1e-12)
    assert var[0].item() == 0.0 and torch.isfinite(logvar).all()


def test_ddim_timesteps(schedule):
    s = DDIMSampler(schedule)
    assert s.set_timesteps(5) == [99, 74, 50, 25, 0]
    assert s.set_timesteps(1) == [99]
    assert s.set_timesteps(100) == list(range(99, -1, -1))
    assert s.pairs()[-1] == (0, -1)
    with pytest.raises(ConfigError):
        s.set_timesteps(101)
    assert DDPMSampler(schedule).set_timesteps(100) == list(range(99, -1, -1))
    with pytest.raises(ConfigError, match="runs all 100 steps"):   # not silently ignored
        DDPMSampler(schedule).set_timesteps(5)


def test_ddim_eta1_full_steps_equals_ddpm(schedule):
    model = GaussianEps(schedule)
    y = torch.zeros(8, J, 2)
    a = sample(model, schedule, y, num_hypotheses=4, sampler="ddpm", generator=torch.Generator().manual_seed(3))
    b = sample(model, schedule, y, num_hypotheses=4, sampler="ddim", num_steps=100, eta=1.0,
               generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", 1000, 0.0), ("ddim", 1000, 1.0), ("ddim", 500, 0.0)])
def test_samplers_recover_gaussian_target(sampler, steps, eta):
    # T = 1000 so that the discretisation error is small: with T = 100 the fixed-small variance
    # and coarse DDIM steps shrink a narrow target's spread (std 0.088 instead of 0.1).
    schedule = NoiseSchedule.from_config(DiffusionConfig(num_timesteps=1000))
    model = GaussianEps(schedule, mu=0.3, std=0.1)
    out = sample(model, schedule, torch.zeros(100, J, 2), num_hypotheses=4, sampler=sampler, num_steps=steps,
                 eta=eta, generator=torch.Generator().manual_seed(0))
    assert out.mean().item() == pytest.approx(0.3, abs=0.005)
    assert out.std().item() == pytest.approx(0.1, rel=0.04)


def test_ddim_eta0_deterministic_and_seeded(schedule):
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1), H36M17)
    y = torch.randn(3, J, 2)
    a = sample(model, schedule, y, num_hypotheses=2, generator=torch.Generator().manual_seed(1))
    b = sample(model, schedule, y, num_hypotheses=2, generator=torch.Generator().manual_seed(1))
    c = sample(model, schedule, y, num_hypotheses=2, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 2, J, 3)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.abs().max() <= 1.0 + 1e-6  # clamped x0, final DDIM step returns x0
    assert model.training  # training flag restored


def test_flip_with_equivariant_target(schedule):
    def equivariant(y):  # (x, y, x^2) commutes with mirroring
        return torch.cat((y, y[..., :1] ** 2), dim=-1)

    def not_equivariant(y):
        return torch.cat((y, y[..., :1]), dim=-1)

    y = torch.rand(4, J, 2) * 0.8 - 0.4
    g = torch.Generator().manual_seed(0)
    plain = sample(FromTarget(schedule, equivariant), schedule, y, num_hypotheses=3, generator=g)
    flipped = sample(FromTarget(schedule, equivariant), schedule, y, num_hypotheses=3, flip=True,
                     skeleton=H36M17, generator=g)
    assert torch.allclose(plain, flipped, atol=1e-5)
    assert torch.allclose(plain[:, 0], equivariant(y), atol=1e-5)
    out = sample(FromTarget(schedule, not_equivariant), schedule, y, num_hypotheses=2, flip=True,
                 skeleton=H36M17, generator=g)
    expect = (not_equivariant(y) + flip_horizontal(not_equivariant(flip_horizontal(y, H36M17)), H36M17)) / 2
    assert torch.allclose(out[:, 1], expect, atol=1e-5)


def _counting_model(schedule, calls: list) -> nn.Module:
    """GaussianEps that appends the row count of every forward to `calls`."""
    base = GaussianEps(schedule)

    class Spy(GaussianEps):
        def forward(self, x_t, y, t):
            calls.append(x_t.shape[0])
            return base(x_t, y, t)

    return Spy(schedule)


def test_one_batched_forward_per_step(schedule):
    calls = []
    sample(_counting_model(schedule, calls), schedule, torch.zeros(3, J, 2), num_hypotheses=5, num_steps=4, flip=True, skeleton=H36M17)
    assert calls == [3 * 5 * 2] * 4


def test_forward_chunks_give_the_same_hypotheses(schedule, monkeypatch):
    """On a CPU the network runs in chunks of FORWARD_CHUNK_ROWS rows: the same numbers as one
    forward (rows are independent), only the forward calls split."""
    from diffupose.diffusion import samplers

    calls = []
    y = torch.randn(3, J, 2)
    kw = dict(num_hypotheses=5, num_steps=3, flip=True, skeleton=H36M17, eta=0.5)
    whole = sample(_counting_model(schedule, calls), schedule, y, generator=torch.Generator().manual_seed(0), **kw)
    monkeypatch.setattr(samplers, "FORWARD_CHUNK_ROWS", 7)
    calls.clear()
    chunked = sample(_counting_model(schedule, calls), schedule, y, generator=torch.Generator().manual_seed(0), **kw)
    assert calls == [7, 7, 7, 7, 2] * 3
    torch.testing.assert_close(chunked, whole)


def test_trajectory_shape(schedule):
    model = GaussianEps(schedule)
    out, traj = sample(model, schedule, torch.zeros(2, J, 2), num_hypotheses=3, num_steps=5, return_trajectory=True)
    assert traj.shape == (6, 2, 3, J, 3)
    assert torch.equal(traj[-1], out)
    _, traj = sample(model, schedule, torch.zeros(2, J, 2), sampler="ddpm", return_trajectory=True)
    assert traj.shape[0] == 101


def test_sample_validates_inputs(schedule):
    model = GaussianEps(schedule)
    with pytest.raises(ConfigError, match="sampler"):
        sample(model, schedule, torch.zeros(2, J, 2), sampler="euler")
    with pytest.raises(ValueError, match="joints"):
        sample(model, schedule, torch.zeros(2, 15, 2))
    with pytest.raises(ValueError, match="shape"):
        sample(model, schedule, torch.zeros(2, J, 3))
    bad = torch.zeros(2, J, 2)
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sample(model, schedule, bad)
    with pytest.raises(ConfigError, match="skeleton"):
        sample(model, schedule, torch.zeros(2, J, 2), flip=True)
    assert tuple(SAMPLERS) == ("ddpm", "ddim", "euler", "heun", "midpoint")


class _TwiceDDIM(DDIMSampler):
    """A sampler added as ONE class (test only): DDIM that evaluates the network a second time per
    step through `model` (as Heun does) and averages the two - DDIM's numbers at twice the NFE."""

    name = "ddim-twice"

    @staticmethod
    def function_evaluations(num_steps, num_timesteps):
        return 2 * int(num_steps)

    @property
    def nfe(self):
        return 2 * len(self.timesteps)

    def evaluation_times(self):
        return [t for t in self.timesteps for _ in range(2)]

    def step(self, output, t, t_prev, x_t, generator=None, model=None):
        return super().step(0.5 * (output + model(x_t, t)), t, t_prev, x_t, generator)


def test_a_sampler_added_as_one_class_works_everywhere(monkeypatch, synthetic_npz):
    """Registered in SAMPLERS and nowhere else, it runs in the Lifter, `evaluate` and `lift`, and
    the card and the NFE count are its own (the network runs as often as the card says)."""
    import numpy as np

    from diffupose.config import EvalConfig, preset
    from diffupose.diffusion import function_evaluations
    from diffupose.evaluation import evaluate
    from diffupose.inference import Lifter, SamplingSettings
    from diffupose.lifting import lift

    monkeypatch.setitem(SAMPLERS, "ddim-twice", _TwiceDDIM)
    torch.manual_seed(0)
    cfg = preset("tiny")
    lifter = Lifter.from_model(build_denoiser(cfg.model, H36M17), cfg, H36M17)
    calls = []
    lifter.denoiser.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    twice = SamplingSettings(num_hypotheses=2, sampler="ddim-twice", num_steps=3, seed=1)
    assert function_evaluations("ddim-twice", 3, 100) == 6 and twice.steps_for(cfg) == 6
    assert lifter.sampler_card(twice) == {"objective": "ddpm", "sampler": "ddim-twice", "num_steps": 6, "nfe": 6}
    y = np.random.default_rng(0).normal(scale=0.2, size=(4, J, 2)).astype(np.float32)
    calls.clear()
    hyps = lifter.sample(y, twice)
    assert calls == [4 * 2 * 2] * 6          # inputs x hypotheses x 2 views (flip), six evaluations
    np.testing.assert_array_equal(hyps, lifter.sample(y, twice.replace(sampler="ddim")))
    ev = EvalConfig(num_hypotheses=2, sampler="ddim-twice", num_steps=3, max_samples=16, checkpoint="ema")
    card = evaluate(lifter, synthetic_npz, split="val", eval_cfg=ev, progress=False).card
    assert (card["sampler"], card["nfe"]) == ("ddim-twice", 6)
    result = lift(y, lifter=lifter, format="h36m17", sampler="ddim-twice", num_steps=3, num_hypotheses=2,
                  progress=False)
    assert (result.card["sampling"]["sampler"], result.card["sampling"]["nfe"]) == ("ddim-twice", 6)
    with pytest.raises(ConfigError, match="ddim-twice needs a DDPM model"):
        Lifter.from_model(lifter.denoiser, preset("tiny", {"diffusion.objective": "flow"}), H36M17).sampler_card(twice)


class Oracle(nn.Module):
    """Returns the noise it is told about (plus an optional per-joint error) and y."""

    def __init__(self, noise, joint=None):
        super().__init__()
        self.noise, self.joint = noise, joint

    def forward(self, x_t, y, t):
        eps = self.noise.clone()
        if self.joint is not None:
            eps[:, self.joint] += 1.0
        return eps, y


def test_loss_zero_for_exact_prediction_and_weights_matter(schedule):
    g = torch.Generator().manual_seed(0)
    x0, y = torch.randn(6, J, 3) * 0.2, torch.randn(6, J, 2)
    noise, t = torch.randn(6, J, 3, generator=g), torch.randint(0, 100, (6,), generator=g)
    w = torch.tensor(H36M17.loss_weights, dtype=torch.float32)
    loss, parts = diffusion_loss(Oracle(noise), schedule, x0, y, joint_weights=w, t=t, noise=noise)
    assert loss.item() == 0.0 and parts["loss"] == 0.0
    # error of 1 on the 3 noise channels of joint 3 (weight 4): loss = 4 * 3 / (J * 5)
    loss_w, parts = diffusion_loss(Oracle(noise, joint=3), schedule, x0, y, joint_weights=w, t=t, noise=noise)
    loss_u, _ = diffusion_loss(Oracle(noise, joint=3), schedule, x0, y, joint_weights=None, t=t, noise=noise)
    assert loss_w.item() == pytest.approx(4 * 3 / (J * 5))
    assert loss_u.item() == pytest.approx(3 / (J * 5))
    assert parts["loss_eps"] + parts["loss_2d"] == pytest.approx(parts["loss"])
    l2, _ = diffusion_loss(Oracle(noise, joint=3), schedule, x0, y, kind="l2", t=t, noise=noise)
    assert l2.item() == pytest.approx(3 / (J * 5))
    with pytest.raises(ConfigError):
        diffusion_loss(Oracle(noise), schedule, x0, y, kind="huber", t=t, noise=noise)


def test_loss_lambda_scales_2d_term(schedule):
    noise = torch.zeros(2, J, 3)

    class Off2D(nn.Module):
        def forward(self, x_t, y, t):
            return noise, y + 1.0

    x0, y = torch.zeros(2, J, 3), torch.zeros(2, J, 2)
    t = torch.zeros(2, dtype=torch.long)
    loss, parts = diffusion_loss(Off2D(), schedule, x0, y, lambda_2d=0.8, t=t, noise=noise)
    assert loss.item() == pytest.approx(0.8 * 2 / 5) and parts["loss_eps"] == 0.0


def test_loss_backward_through_denoiser(schedule):
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1), H36M17)
    g = torch.Generator().manual_seed(0)
    loss, parts = diffusion_loss(model, schedule, torch.randn(16, J, 3) * 0.2, torch.randn(16, J, 2),
                                 joint_weights=torch.tensor(H36M17.loss_weights), generator=g)
    loss.backward()
    assert math.isfinite(parts["loss"]) and model.output_conv.W.grad is not None


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_prediction_target_and_x0_recovery_are_inverse(schedule, prediction):
    g = torch.Generator().manual_seed(4)
    x0, noise = torch.randn(8, J, 3, generator=g) * 0.2, torch.randn(8, J, 3, generator=g)
    t = torch.tensor([0, 1, 10, 40, 70, 90, 98, 99])
    x_t = q_sample(schedule, x0, t, noise)
    target = prediction_target(schedule, prediction, x0, noise, t)
    tol = 5e-2 if prediction == "eps" else 1e-5  # ε -> x0 divides by sqrt(ᾱ_99) ≈ 5e-4 at the last step
    assert torch.allclose(predict_x0(schedule, prediction, x_t, t, target)[:-1], x0[:-1], atol=1e-4)
    assert torch.allclose(predict_x0(schedule, prediction, x_t, t, target), x0, atol=tol)
    # one integer step gives the same x0 as the gathered (B,) form
    assert torch.allclose(predict_x0(schedule, prediction, x_t[3:4], 40, target[3:4]), x0[3:4], atol=1e-5)
    with pytest.raises(ValueError, match="prediction"):
        predict_x0(schedule, "score", x_t, t, target)


class TargetPredictor(nn.Module):
    """Outputs the exact `prediction` target for a known x0 = f(y): ε, x0 or v given x_t."""

    def __init__(self, schedule, f, prediction):
        super().__init__()
        self.schedule, self.f, self.prediction = schedule, f, prediction
        self.dummy = nn.Parameter(torch.zeros(1))
        self.num_joints = J

    def forward(self, x_t, y, t):
        x0 = self.f(y)
        ab = self.schedule.alphas_cumprod.float()[t].view(-1, 1, 1)
        noise = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return prediction_target(self.schedule, self.prediction, x0, noise, t).float(), y


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("ddpm", 100)])
def test_samplers_follow_the_parameterisation(schedule, prediction, sampler, steps):
    def f(y):
        return torch.cat((y, y[..., :1] * y[..., 1:]), dim=-1)

    y = torch.rand(3, J, 2) * 0.6 - 0.3
    out = sample(TargetPredictor(schedule, f, prediction), schedule, y, num_hypotheses=2, sampler=sampler,
                 num_steps=steps, prediction=prediction, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, f(y)[:, None].expand_as(out), atol=1e-4)
    if prediction != "eps":  # read as ε, an x0 / v output gives another pose (one step from x_T)
        kwargs = dict(num_hypotheses=2, num_steps=1, generator=torch.Generator().manual_seed(0))
        right = sample(TargetPredictor(schedule, f, prediction), schedule, y, prediction=prediction, **kwargs)
        wrong = sample(TargetPredictor(schedule, f, prediction), schedule, y, prediction="eps", **kwargs)
        assert torch.allclose(right, f(y)[:, None].expand_as(right), atol=1e-4)
        assert not torch.allclose(wrong, right, atol=1e-2)
    with pytest.raises(ConfigError, match="prediction"):
        sample(TargetPredictor(schedule, f, prediction), schedule, y, prediction="score")


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_loss_targets_the_parameterisation(schedule, prediction):
    g = torch.Generator().manual_seed(0)
    x0, y = torch.randn(6, J, 3, generator=g) * 0.2, torch.randn(6, J, 2, generator=g)
    noise, t = torch.randn(6, J, 3, generator=g), torch.randint(0, 100, (6,), generator=g)
    exact = Oracle(prediction_target(schedule, prediction, x0, noise, t))
    loss, _ = diffusion_loss(exact, schedule, x0, y, t=t, noise=noise, prediction=prediction)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    as_eps, _ = diffusion_loss(exact, schedule, x0, y, t=t, noise=noise)  # the same output scored as ε
    assert as_eps.item() > 0.05
