"""Conditional flow matching with the DiffuPose denoiser (`diffusion.objective = flow`).

Path (rectified flow, Liu et al. 2023; conditional flow matching, Lipman et al. 2023): the
straight line between a pose and Gaussian noise,

    x_s = (1 - s) x0 + s ε,   s ∈ [0, 1]   (s = 0: the pose, s = 1: noise, as DDPM's t runs),

whose velocity u = dx_s/ds = ε - x0 is the regression target of the denoiser's 3D output.
Time: the network sees s·T (T = diffusion.num_timesteps), a continuous value over the same range
as DDPM's integer steps, through the same sinusoidal step embedding — so the denoiser is the
unchanged modulated GCN. Training draws s uniformly on [0, 1] (`diffusion.flow_time = uniform`)
or logit-normally, s = sigmoid(n), n ~ N(0, 1) (`logit_normal`, Esser et al. 2024), which puts
more of the training on the middle of the path.

Sampling integrates dx/ds = v̂(x_s, s) from x_1 ~ N(0, I) at s = 1 down to s = 0 on a uniform
grid with `nfe` network evaluations per chain: Euler (nfe intervals), Heun (trapezoid) or the
midpoint rule (2 evaluations per interval; an odd count left over spends one Euler interval
first, at the noise end, where the path is straightest). Heun's last interval, to s = 0, is an
Euler step: its corrector would need the velocity at s = 0 (so Heun at NFE 2 is Euler at 2). Euler with `eta > 0` is DDIM's η on this path:
x_{s'} = (1 - s') x̂0 + sqrt(s'² - c²) ε̂ + c z with x̂0 = x_s - s v̂, ε̂ = x_s + (1 - s) v̂ and
c = η · s' sqrt(1 - ((1 - s) s' / ((1 - s') s))²) — η = 1 draws from the posterior
q(x_{s'} | x_s, x̂0) of the Gaussian path (ancestral sampling), η = 0 is exactly the Euler step.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import ConfigError

__all__ = ["OBJECTIVES", "FlowPath", "FlowSampler", "EulerSampler", "HeunSampler", "MidpointSampler", "FLOW_SAMPLERS",
           "FLOW_TIMES", "flow_interpolate", "flow_velocity_target", "flow_x0", "flow_noise"]

OBJECTIVES = ("ddpm", "flow")   # diffusion.objective: the paper's DDPM, or flow matching (this module)
FLOW_SAMPLERS = ("euler", "heun", "midpoint")
FLOW_TIMES = ("uniform", "logit_normal")


def flow_interpolate(x0: torch.Tensor, noise: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """x_s = (1 - s) x0 + s ε. x0, noise: (B, J, 3); s: (B,) in [0, 1] (or a float)."""
    s = _broadcast(s, x0)
    return (1.0 - s) * x0 + s * noise


def flow_velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """u = dx_s/ds = ε - x0, the same for every s on the straight path. (B, J, 3)."""
    return noise - x0


def flow_x0(x_s: torch.Tensor, s, velocity: torch.Tensor) -> torch.Tensor:
    """The pose the velocity points to: x̂0 = x_s - s v̂."""
    return x_s - _broadcast(s, x_s) * velocity


def flow_noise(x_s: torch.Tensor, s, velocity: torch.Tensor) -> torch.Tensor:
    """The noise the velocity came from: ε̂ = x_s + (1 - s) v̂."""
    return x_s + (1.0 - _broadcast(s, x_s)) * velocity


def _broadcast(s, like: torch.Tensor):
    if isinstance(s, torch.Tensor) and s.ndim == 1:
        return s.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))
    return s


class FlowPath:
    """The flow-matching counterpart of NoiseSchedule: what the training loss and the samplers
    need to know (T for the network's time scale, how training draws s)."""

    objective = "flow"

    def __init__(self, num_timesteps: int = 100, time_sampling: str = "uniform") -> None:
        if int(num_timesteps) < 1:
            raise ConfigError(f"diffusion.num_timesteps must be >= 1, got {num_timesteps}")
        if time_sampling not in FLOW_TIMES:
            raise ConfigError(f"unknown diffusion.flow_time {time_sampling!r}; known: {list(FLOW_TIMES)}")
        self._T = int(num_timesteps)
        self.time_sampling = time_sampling

    @classmethod
    def from_config(cls, diffusion_cfg) -> "FlowPath":
        return cls(diffusion_cfg.num_timesteps, getattr(diffusion_cfg, "flow_time", "uniform"))

    @property
    def num_timesteps(self) -> int:
        return self._T

    def to(self, device) -> "FlowPath":  # nothing on a device: the path is closed-form
        return self

    def model_time(self, s: torch.Tensor) -> torch.Tensor:
        """The network's time input for path time s: s·T (float)."""
        return s.float() * self._T

    def sample_time(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training times s (n,) in [0, 1] by `time_sampling`."""
        if self.time_sampling == "uniform":
            return torch.rand((n,), device=device, generator=generator)
        return torch.sigmoid(torch.randn((n,), device=device, generator=generator))


class FlowSampler:
    """ODE solver of dx/ds = v̂(x_s, s) from s = 1 to 0 with `nfe` evaluations per chain (module
    docstring), in the one sampler protocol of diffusion/samplers.py: `pairs()` lists the
    intervals (s, s_next), `step` takes the velocity at (x, s) and, on a Heun or midpoint
    interval, asks `model` for one more. `intervals()` lists (s, s_next, method) per interval.
    The registered samplers are its subclasses EulerSampler, HeunSampler and MidpointSampler."""

    objective = "flow"
    aliases: tuple[str, ...] = ()

    def __init__(self, method: str = "euler", nfe: int = 3, eta: float = 0.0,
                 num_timesteps: int | None = None) -> None:
        if method not in FLOW_SAMPLERS:
            raise ConfigError(f"unknown flow sampler {method!r}; known: {', '.join(FLOW_SAMPLERS)}")
        if eta and method != "euler":
            raise ConfigError(f"eta > 0 (stochastic sampling) is implemented for the euler flow sampler, not {method}")
        if not 0.0 <= eta <= 1.0:
            raise ConfigError(f"flow sampling eta must be in [0, 1], got {eta}")
        self.name, self.method, self.eta = method, method, float(eta)
        self.num_timesteps = num_timesteps     # T: the network sees s·T (model_time)
        self.set_timesteps(nfe)

    @classmethod
    def build(cls, path: "FlowPath", num_steps: int, *, eta: float = 0.0, **_) -> "FlowSampler":
        """The registered sampler `cls.name` for `path` with `num_steps` evaluations per chain."""
        return cls(cls.name, num_steps, eta, num_timesteps=path.num_timesteps)

    @staticmethod
    def function_evaluations(num_steps: int, num_timesteps: int) -> int:
        """Network evaluations per chain: num_steps (for heun and midpoint it counts evaluations,
        not intervals)."""
        return int(num_steps)

    def set_timesteps(self, nfe: int) -> list[float]:
        """The interval grid for `nfe` evaluations; returns the intervals' start times s."""
        if int(nfe) < 1:
            raise ConfigError(f"flow samplers need num_steps (network evaluations) >= 1, got {nfe}")
        self.nfe, method = int(nfe), self.method
        if method == "euler":
            kinds = ["euler"] * self.nfe
        elif method == "heun":
            # the last interval, to s = 0, is Euler (as in Karras et al. 2022): Heun's corrector
            # there would evaluate the network at s = 0, where the velocity ε - x0 is unpredictable
            # from x0 alone and the learned field is unreliable (measured: 316 mm at NFE 2 with it)
            kinds = (["euler"] * ((self.nfe - 1) % 2) + ["heun"] * ((self.nfe - 1) // 2) + ["euler"]
                     if self.nfe > 1 else ["euler"])
        else:
            kinds = ["euler"] * (self.nfe % 2) + [method] * (self.nfe // 2)
        edges = [1.0 - i / len(kinds) for i in range(len(kinds) + 1)]
        edges[-1] = 0.0
        self._intervals = [(edges[i], edges[i + 1], k) for i, k in enumerate(kinds)]
        self._kinds = {s: k for s, _, k in self._intervals}
        self.timesteps = [s for s, _, _ in self._intervals]
        return self.timesteps

    def intervals(self) -> list[tuple[float, float, str]]:
        return list(self._intervals)

    def pairs(self) -> list[tuple[float, float]]:
        """(s, s_next) per interval, from s = 1 down to s = 0."""
        return [(s, s_next) for s, s_next, _ in self._intervals]

    def model_time(self, s: float) -> float:
        """The network's time input at path time s: s·T."""
        if self.num_timesteps is None:
            raise ConfigError("this FlowSampler has no num_timesteps (build it with FlowSampler.build(path, ...))")
        return float(s) * self.num_timesteps

    def evaluation_times(self) -> list[float]:
        """The path times s at which sampling evaluates the network, in order (NFE of them)."""
        times = []
        for s, s_next, kind in self._intervals:
            times.append(s)
            if kind == "heun":
                times.append(s_next)
            elif kind == "midpoint":
                times.append(s + 0.5 * (s_next - s))
        return times

    def step(self, output: torch.Tensor, s: float, s_next: float, x: torch.Tensor,
             generator: torch.Generator | None = None,
             model: Callable[[torch.Tensor, float], torch.Tensor] | None = None) -> torch.Tensor:
        """x at s -> x at s_next. `output` is the velocity v̂(x, s); a Heun or midpoint interval
        evaluates `model(z, s')` (one network evaluation at path time s') once more."""
        kind = self._kinds[s]
        h = s_next - s
        v1 = output
        if kind == "heun":
            v2 = model(x + h * v1, s_next)
            return x + h * 0.5 * (v1 + v2)
        if kind == "midpoint":
            v2 = model(x + 0.5 * h * v1, s + 0.5 * h)
            return x + h * v2
        if self.eta > 0 and s_next > 0:
            x0, eps = flow_x0(x, s, v1), flow_noise(x, s, v1)
            ratio = (1.0 - s) * s_next / ((1.0 - s_next) * s)
            c = self.eta * s_next * math.sqrt(max(1.0 - ratio ** 2, 0.0))
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return (1.0 - s_next) * x0 + math.sqrt(max(s_next ** 2 - c ** 2, 0.0)) * eps + c * z
        return x + h * v1


class EulerSampler(FlowSampler):
    """Euler (η > 0: DDIM's η on the path); "ddim" means it for a flow model."""

    name, aliases = "euler", ("ddim",)


class HeunSampler(FlowSampler):
    """Heun (trapezoid), its last interval an Euler step."""

    name = "heun"


class MidpointSampler(FlowSampler):
    """The midpoint rule (an odd evaluation left over spends one Euler interval first)."""

    name = "midpoint"
