"""Noise schedules (the schedule is data) and the closed-form forward process.

`NoiseSchedule` holds float64 tensors; per-step coefficients are gathered with `.gather`
(broadcast to the data's shape and cast to its dtype) or read as Python floats with `.at`.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError

__all__ = ["NoiseSchedule", "cosine_betas", "linear_betas", "q_sample", "q_posterior_mean_variance",
           "predict_x0_from_noise", "predict_x0", "prediction_target", "SCHEDULES", "PREDICTIONS"]

SCHEDULES = ("cosine", "linear")


def cosine_betas(num_timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Eq. 11: ᾱ_t = f(t)/f(0), f(t) = cos((t/T + s)/(1 + s) · π/2)²; β_t = 1 - ᾱ_t/ᾱ_{t-1},
    clipped to [0, 0.999]. Returns (T,) float64."""
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64)
    f = torch.cos((steps / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(0.0, 0.999)


def linear_betas(num_timesteps: int) -> torch.Tensor:
    """Linear schedule of DDPM (Ho et al.), 1e-4 .. 0.02 rescaled to T steps. (T,) float64."""
    scale = 1000.0 / num_timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)


class NoiseSchedule:
    """β_t, α_t, ᾱ_t and the derived coefficients of eqs. 2-3, all (T,) float64 tensors.
    Index t runs 0..T-1 (paper step t+1)."""

    objective = "ddpm"   # the process a sampler runs on (diffusion/samplers.py; a FlowPath is "flow")

    def __init__(self, betas: torch.Tensor) -> None:
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ConfigError("noise schedule: betas must be a 1D tensor with values in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat((betas.new_ones(1), self.alphas_cumprod[:-1]))
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.sqrt_recip_alphas_cumprod = (1.0 / self.alphas_cumprod).sqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1.0).sqrt()
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = self.posterior_variance.clamp(min=1e-20).log()
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1.0 - self.alphas_cumprod)
        self._device_cache: dict[str, "NoiseSchedule"] = {}

    _FIELDS = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
               "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
               "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1",
               "posterior_mean_coef2")

    @classmethod
    def from_config(cls, diffusion_cfg) -> "NoiseSchedule":
        """From a DiffusionConfig (num_timesteps, schedule, cosine_s)."""
        T = int(diffusion_cfg.num_timesteps)
        if T < 1:
            raise ConfigError(f"diffusion.num_timesteps must be >= 1, got {T}")
        if diffusion_cfg.schedule == "cosine":
            return cls(cosine_betas(T, diffusion_cfg.cosine_s))
        if diffusion_cfg.schedule == "linear":
            return cls(linear_betas(T))
        raise ConfigError(f"unknown diffusion.schedule {diffusion_cfg.schedule!r}; known: {list(SCHEDULES)}")

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device) -> "NoiseSchedule":
        """The same schedule with its tensors on `device` (cached; float64 kept)."""
        device = torch.device(device)
        if device == self.device:
            return self
        key = str(device)
        if key not in self._device_cache:
            moved = object.__new__(NoiseSchedule)
            for name in self._FIELDS:
                setattr(moved, name, getattr(self, name).to(device))
            moved._device_cache = {str(self.device): self}
            self._device_cache[key] = moved
        return self._device_cache[key]

    def gather(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Coefficient `name` at steps t: (B,) -> (B, 1, ..., 1) matching `like`'s ndim, device, dtype."""
        values = getattr(self.to(t.device), name)[t]
        return values.to(like.dtype).view(t.shape[0], *([1] * (like.ndim - 1)))

    def at(self, name: str, t: int) -> float:
        """Coefficient `name` at one integer step t, as a Python float (no device sync)."""
        return float(self._cpu_values(name)[t])

    def _cpu_values(self, name: str) -> list[float]:
        cache = self.__dict__.setdefault("_float_cache", {})
        if name not in cache:
            cache[name] = getattr(self, name).detach().cpu().tolist()
        return cache[name]


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Eq. 2: x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε.
    x0, noise: (B, J, 3) metres; t: (B,) int64 in [0, T)."""
    return (schedule.gather("sqrt_alphas_cumprod", t, x0) * x0
            + schedule.gather("sqrt_one_minus_alphas_cumprod", t, x0) * noise)


def _coefficient(schedule: NoiseSchedule, name: str, t, like: torch.Tensor):
    """Coefficient `name` at step t: a Python float for one integer step (a sampler step: no
    gather, no device sync), else gathered per row for a (B,) tensor of steps."""
    if isinstance(t, int):
        return schedule.at(name, t)
    return schedule.gather(name, t, like)


def predict_x0_from_noise(schedule: NoiseSchedule, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 2 inverted: x0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t).
    x_t, eps: (B, J, 3); t: one integer step or (B,) int64."""
    return (_coefficient(schedule, "sqrt_recip_alphas_cumprod", t, x_t) * x_t
            - _coefficient(schedule, "sqrt_recipm1_alphas_cumprod", t, x_t) * eps)


def q_posterior_mean_variance(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t):
    """Eq. 3: q(x_{t-1} | x_t, x0) = N(μ̃_t, β̃_t I) with
    μ̃_t = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t) x0 + sqrt(α_t)(1 - ᾱ_{t-1}) / (1 - ᾱ_t) x_t,
    β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t.
    x0, x_t: (B, J, 3); t: one integer step or (B,) int64. Returns (mean (B, J, 3), variance,
    log variance clipped): floats for an integer t, (B, 1, 1) tensors otherwise."""
    mean = (_coefficient(schedule, "posterior_mean_coef1", t, x_t) * x0
            + _coefficient(schedule, "posterior_mean_coef2", t, x_t) * x_t)
    return (mean, _coefficient(schedule, "posterior_variance", t, x_t),
            _coefficient(schedule, "posterior_log_variance_clipped", t, x_t))


# What the denoiser's 3D output means: ε (the paper and the released code), x0 itself, or the
# velocity v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0 (Salimans & Ho, 2022). All three describe the same
# reverse process; they weigh the timesteps differently in the loss and behave differently at
# large t, where x0 recovered from ε divides by sqrt(ᾱ_t) ≈ 0.
PREDICTIONS = ("eps", "x0", "v")


def prediction_target(schedule: NoiseSchedule, prediction: str, x0: torch.Tensor, noise: torch.Tensor,
                      t: torch.Tensor) -> torch.Tensor:
    """The training target of the denoiser's 3D output for x_t = q_sample(x0, t, noise):
    ε, x0, or v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0. x0, noise: (B, J, 3); t: (B,) int64."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        return (_coefficient(schedule, "sqrt_alphas_cumprod", t, x0) * noise
                - _coefficient(schedule, "sqrt_one_minus_alphas_cumprod", t, x0) * x0)
    raise ValueError(f"unknown prediction {prediction!r}; known: {list(PREDICTIONS)}")


def predict_x0(schedule: NoiseSchedule, prediction: str, x_t: torch.Tensor, t, output: torch.Tensor) -> torch.Tensor:
    """x0 from the denoiser's 3D output: eq. 2 inverted for ε (predict_x0_from_noise), the output
    itself for x0, x0 = sqrt(ᾱ_t) x_t - sqrt(1 - ᾱ_t) v for v.
    x_t, output: (B, J, 3); t: one integer step or (B,) int64."""
    if prediction == "eps":
        return predict_x0_from_noise(schedule, x_t, t, output)
    if prediction == "x0":
        return output
    if prediction == "v":
        return (_coefficient(schedule, "sqrt_alphas_cumprod", t, x_t) * x_t
                - _coefficient(schedule, "sqrt_one_minus_alphas_cumprod", t, x_t) * output)
    raise ValueError(f"unknown prediction {prediction!r}; known: {list(PREDICTIONS)}")
