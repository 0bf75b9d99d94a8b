"""Reverse-process samplers, one protocol for all of them (the diffusers shape; the schedule is
data and the network is passed to `sample`):

    sampler.set_timesteps(n)         the times the loop visits, noisiest first (`sampler.timesteps`)
    sampler.pairs()                  (t, t_prev) per step, the last t_prev the clean end
    sampler.model_time(t)            the network's time input at t (the step; s·T on a flow path)
    sampler.step(output, t, t_prev, x, generator, model) -> x at t_prev
    sampler.evaluation_times()       the times the network is evaluated at, in order
    sampler.nfe                      network evaluations per chain

`output` is the network at (x, t); a step that needs more evaluations (Heun, midpoint) calls
`model(z, t')` for each, so `sample` runs ONE loop (`run_sampler`) for every sampler and the
NFE is what the sampler says. A sampler class also carries `name`, the `objective` of the
models it runs on (ddpm | flow), `aliases` (names that mean it on that objective: "ddim", the
default few-step sampler everywhere, is Euler for a flow model; both are the first-order
deterministic solver of their model's ODE), the NFE rule `function_evaluations(num_steps, T)`
and `build(process, num_steps, eta=, clip_x0=, prediction=)`. `SAMPLERS` (name -> class) is the
registry: a class added there is known to the config checks, `SamplingSettings`, the Lifter
(which builds it once per setting), `evaluate` and `lift`. DDPM and DDIM are here, the flow
samplers (Euler, Heun, midpoint) in diffusion/flow.py. `sample` runs all B × H (× 2 with flip)
chains together at each step (on a CPU the network forward is split into chunks of
FORWARD_CHUNK_ROWS rows).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ..errors import ConfigError
from ..geometry.skeleton import Skeleton, flip_horizontal
from .flow import EulerSampler, HeunSampler, MidpointSampler
from .loss import denoiser_extras
from .schedule import PREDICTIONS, NoiseSchedule, predict_x0, q_posterior_mean_variance

__all__ = ["DDPMSampler", "DDIMSampler", "SAMPLERS", "DDPM_SAMPLERS", "check_sampler", "make_sampler", "sample",
           "run_sampler", "sampler_class", "resolve_sampler", "function_evaluations", "objective_of"]

DDPM_SAMPLERS = ("ddpm", "ddim")


def check_sampler(name: str, key: str = "sampler") -> str:
    """`name` if it is one of SAMPLERS, else a one-line ConfigError naming `key`: the one check
    of sampler names (config, sampling settings, `sample`)."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown {key} {name!r}; known: {', '.join(SAMPLERS)}")
    return name


def objective_of(schedule) -> str:
    """The objective of a process: "flow" for a FlowPath, "ddpm" for a NoiseSchedule."""
    return getattr(schedule, "objective", "ddpm")


_NEEDS = {"ddpm": "a DDPM model", "flow": "a flow-matching model (diffusion.objective=flow)"}
_THIS = {"ddpm": "a DDPM model", "flow": "a flow-matching model"}


def sampler_class(name: str, objective: str, key: str = "sampler") -> type:
    """The sampler class that runs `name` for a model of `objective`: its own class, or the one
    of that objective that takes `name` as an alias ("ddim" is euler for a flow model). Anything
    else is a one-line ConfigError naming `key`."""
    cls = SAMPLERS[check_sampler(name, key)]
    if cls.objective == objective:
        return cls
    for other in SAMPLERS.values():
        if other.objective == objective and name in other.aliases:
            return other
    own = [n for n, c in SAMPLERS.items() if c.objective == objective]
    means = [f"{a} means {n} for it" for n, c in SAMPLERS.items() if c.objective == objective for a in c.aliases]
    use = ", ".join(own[:-1]) + " or " + own[-1] if len(own) > 1 else "".join(own)
    raise ConfigError(f"{key} {name} needs {_NEEDS.get(cls.objective, f'a {cls.objective} model')}; this is "
                      f"{_THIS.get(objective, f'a {objective} model')}: use {use}"
                      + (f" ({'; '.join(means)})" if means else ""))


def resolve_sampler(name: str, objective: str, key: str = "sampler") -> str:
    """The name of the sampler that runs `name` for a model of `objective` (`sampler_class`):
    flow models run euler/heun/midpoint and take "ddim" as euler; DDPM models run ddpm/ddim."""
    return sampler_class(name, objective, key).name


def function_evaluations(sampler: str, num_steps: int, num_timesteps: int) -> int:
    """Network evaluations per chain (NFE) by the sampler's own rule: all T for DDPM, num_steps
    for every other shipped sampler (for heun and midpoint num_steps counts evaluations, not
    intervals)."""
    return SAMPLERS[check_sampler(sampler)].function_evaluations(num_steps, num_timesteps)


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class DDPMSampler:
    """Ancestral DDPM (Ho et al.) with the "fixed small" posterior variance β̃_t (eq. 3); x0 is
    recovered from the network's output (eq. 2 inverted for the paper's ε; see
    schedule.predict_x0 for x0 and v) and clamped to [-clip_x0, clip_x0] every step. Always runs
    all T steps."""

    name = "ddpm"
    objective = "ddpm"
    aliases: tuple[str, ...] = ()

    def __init__(self, schedule: NoiseSchedule, clip_x0: float = 1.0, prediction: str = "eps") -> None:
        self.schedule = schedule
        self.clip_x0 = clip_x0
        self.prediction = _checked_prediction(prediction)
        self.set_timesteps()

    @classmethod
    def build(cls, schedule: NoiseSchedule, num_steps: int | None = None, *, eta: float = 0.0,
              clip_x0: float = 1.0, prediction: str = "eps") -> "DDPMSampler":
        """DDPM for `schedule` (always all T steps: num_steps and eta do not apply)."""
        return cls(schedule, clip_x0=clip_x0, prediction=prediction)

    @staticmethod
    def function_evaluations(num_steps: int, num_timesteps: int) -> int:
        """Network evaluations per chain: all T."""
        return int(num_timesteps)

    @property
    def nfe(self) -> int:
        return len(self.timesteps)

    def evaluation_times(self) -> list[int]:
        return list(self.timesteps)

    def model_time(self, t: int) -> int:
        """The network's time input: the integer step itself."""
        return t

    def set_timesteps(self, num_steps: int | None = None) -> list[int]:
        """Timesteps T-1 .. 0: DDPM runs all T of them (`num_steps`, if given, must be T)."""
        T = self.schedule.num_timesteps
        if num_steps is not None and int(num_steps) != T:
            raise ConfigError(f"the DDPM sampler runs all {T} steps, got num_steps={num_steps}; "
                              "use the ddim sampler for fewer")
        self.timesteps = list(range(T - 1, -1, -1))
        return self.timesteps

    def pairs(self) -> list[tuple[int, int]]:
        """(t, t_prev) per step; t_prev = -1 means "to x0"."""
        return [(t, t - 1) for t in self.timesteps]

    def predict_x0(self, output: torch.Tensor, t: int, x_t: torch.Tensor) -> torch.Tensor:
        """x0 from the network's 3D output at one step (schedule.predict_x0), then clamped."""
        x0 = predict_x0(self.schedule, self.prediction, x_t, t, output)
        return x0.clamp(-self.clip_x0, self.clip_x0) if self.clip_x0 > 0 else x0

    def step(self, output: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None, model=None) -> torch.Tensor:
        """x_{t-1} ~ N(μ̃_t(x_t, x̂0), β̃_t I) (eq. 3 with x̂0 from the network's output, ε̂ in the
        paper); no noise at t = 0. output, x_t: (N, J, 3)."""
        x0 = self.predict_x0(output.to(x_t.dtype), t, x_t)
        mean, _, log_variance = q_posterior_mean_variance(self.schedule, x0, x_t, t)
        if t == 0:
            return mean
        return mean + math.exp(0.5 * log_variance) * _noise_like(x_t, generator)


class DDIMSampler(DDPMSampler):
    """DDIM (Song et al.) on any number of evenly spaced steps from T-1 down to 0; `eta` scales
    the noise (0 = deterministic, 1 with all T steps = DDPM). The noise estimate is re-derived
    from the clamped x0 so that clamping is consistent with DDPM."""

    name = "ddim"

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0, clip_x0: float = 1.0, num_steps: int = 5,
                 prediction: str = "eps") -> None:
        self.eta = float(eta)
        self.schedule = schedule
        self.clip_x0 = clip_x0
        self.prediction = _checked_prediction(prediction)
        self.set_timesteps(num_steps)

    @classmethod
    def build(cls, schedule: NoiseSchedule, num_steps: int = 5, *, eta: float = 0.0, clip_x0: float = 1.0,
              prediction: str = "eps") -> "DDIMSampler":
        return cls(schedule, eta=eta, clip_x0=clip_x0, num_steps=num_steps, prediction=prediction)

    @staticmethod
    def function_evaluations(num_steps: int, num_timesteps: int) -> int:
        """Network evaluations per chain: num_steps."""
        return int(num_steps)

    def set_timesteps(self, num_steps: int | None = None) -> list[int]:
        """`num_steps` timesteps evenly spaced over [T-1, 0], both ends included (1 step: T-1)."""
        T = self.schedule.num_timesteps
        n = T if num_steps is None else int(num_steps)
        if not 1 <= n <= T:
            raise ConfigError(f"DDIM num_steps must be in 1..{T}, got {num_steps}")
        if n == 1:
            self.timesteps = [T - 1]
        else:
            self.timesteps = [int(v) for v in np.unique(np.round(np.linspace(T - 1, 0, n)).astype(int))[::-1]]
        return self.timesteps

    def pairs(self) -> list[tuple[int, int]]:
        ts = self.timesteps
        return [(t, ts[i + 1] if i + 1 < len(ts) else -1) for i, t in enumerate(ts)]

    def step(self, output: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None, model=None) -> torch.Tensor:
        """x_{t_prev} = sqrt(ᾱ_prev) x̂0 + sqrt(1 - ᾱ_prev - σ²) ε̂ + σ z,
        σ = η sqrt((1 - ᾱ_prev)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev); x̂0 from the network's output,
        ε̂ re-derived from x̂0. output, x_t: (N, J, 3)."""
        s = self.schedule
        ab_t = s.at("alphas_cumprod", t)
        ab_prev = s.at("alphas_cumprod", t_prev) if t_prev >= 0 else 1.0
        x0 = self.predict_x0(output.to(x_t.dtype), t, x_t)
        eps = (x_t - math.sqrt(ab_t) * x0) / math.sqrt(1.0 - ab_t)
        sigma = self.eta * math.sqrt(max((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev), 0.0))
        x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1.0 - ab_prev - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x_prev = x_prev + sigma * _noise_like(x_t, generator)
        return x_prev


def _checked_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ConfigError(f"unknown diffusion.prediction {prediction!r}; known: {list(PREDICTIONS)}")
    return prediction


# The registry of sampler names (module docstring): name -> class.
SAMPLERS: dict[str, type] = {cls.name: cls for cls in (DDPMSampler, DDIMSampler, EulerSampler, HeunSampler,
                                                       MidpointSampler)}


def make_sampler(name: str, process, *, num_steps: int = 5, eta: float = 0.0, clip_x0: float = 1.0,
                 prediction: str = "eps"):
    """The sampler `name` resolved for the objective of `process` (a NoiseSchedule or a FlowPath,
    `sampler_class`) and built with `num_steps` (network evaluations; DDPM always runs all T),
    `eta`, and for DDPM models `clip_x0` and the network's `prediction`."""
    cls = sampler_class(name, objective_of(process))
    return cls.build(process, num_steps, eta=eta, clip_x0=clip_x0, prediction=prediction)


def run_sampler(sampler, model, x: torch.Tensor, generator: torch.Generator | None = None,
                trajectory: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The one sampling loop, for every sampler: one `sampler.step` per (t, t_prev) of
    `sampler.pairs()`, each given the network's output `model(x, t)` (`model(z, t)`: one
    evaluation at the sampler's time t; a step may call it again). Appends x after each step to
    `trajectory` when given; returns x at the clean end."""
    for t, t_prev in sampler.pairs():
        x = sampler.step(model(x, t), t, t_prev, x, generator, model)
        if trajectory is not None:
            trajectory.append(x)
    return x


def _validate_condition(keypoints_2d, num_joints: int | None, window: int = 1) -> torch.Tensor:
    if not isinstance(keypoints_2d, torch.Tensor):
        keypoints_2d = torch.as_tensor(np.asarray(keypoints_2d))
    if window > 1:
        if keypoints_2d.ndim != 4 or keypoints_2d.shape[1] != window or keypoints_2d.shape[-1] != 2:
            raise ValueError(f"sample: a windowed model (model.window={window}) takes 2D windows (B, {window}, J, 2), "
                             f"got {tuple(keypoints_2d.shape)}")
    elif keypoints_2d.ndim != 3 or keypoints_2d.shape[-1] != 2:
        raise ValueError(f"sample: keypoints_2d must have shape (B, J, 2), got {tuple(keypoints_2d.shape)}")
    if num_joints is not None and keypoints_2d.shape[-2] != num_joints:
        raise ValueError(f"sample: keypoints have {keypoints_2d.shape[-2]} joints but the model expects {num_joints}")
    if keypoints_2d.shape[0] == 0:
        raise ValueError("sample: empty batch of keypoints")
    if not torch.isfinite(keypoints_2d).all():
        raise ValueError("sample: keypoints_2d contain NaN or inf")
    return keypoints_2d


def sample(denoiser, schedule: NoiseSchedule, keypoints_2d, *, num_hypotheses: int = 1, sampler="ddim",
           num_steps: int = 5, eta: float = 0.0, flip: bool = False, skeleton: Skeleton | None = None,
           generator: torch.Generator | None = None, clip_x0: float = 1.0, return_trajectory: bool = False,
           autocast_dtype: torch.dtype | None = None, keypoint_mask=None, prediction: str = "eps",
           input_source: int | torch.Tensor | None = None, noise: torch.Tensor | None = None):
    """Draw `num_hypotheses` 3D poses per 2D input with the reverse process.

    keypoints_2d: (B, J, 2) normalised 2D keypoints, or for a windowed denoiser (model.window = W > 1)
    2D windows (B, W, J, 2) centred on the frames to lift, whose encoding is computed once per
    input and view (`denoiser.encode_condition`) and shared by every step and hypothesis.
    Returns (B, H, J, 3) metres, root-relative, camera
    frame; with `return_trajectory` also the trajectory (S+1, B, H, J, 3) (x_T, then x after
    each of the S steps). With `flip`, the mirrored input runs in the same batch and each
    hypothesis is the average of the plain and the un-flipped mirrored sample (paper protocol).
    All B·H(·2) chains go through the denoiser in one forward per step; the denoiser runs in
    eval mode under inference mode (its training flag is restored afterwards).
    `autocast_dtype` (e.g. torch.bfloat16) runs the network under autocast; the chain stays fp32.
    `keypoint_mask` (B, J) bool, True = present (for windows (B, W, J), or (B, J) for all frames):
    passed to the denoiser (mirrored with the flipped view); missing joints' 2D may be NaN. None = all present.
    `prediction`: what the network's 3D output is ("eps" as in the paper, "x0" or "v";
    config.diffusion.prediction).
    `input_source`: the 2D source index (config.SOURCE_INDEX) every chain gives a
    source-conditioned denoiser (model.source_condition), or a (B,) tensor of one index per
    input; None = the denoiser is not given one.
    `sampler`: a name (SAMPLERS), or a sampler already built for `schedule` (`make_sampler`; then
    num_steps, eta, clip_x0 and prediction are its own).
    `noise`: the chains' starting point (x_T, or x_1 for a flow model), (V·B·H, J, 3) in the
    chain order of `_chain_conditions` (view, input, hypothesis); None = drawn from `generator`.
    With it and a deterministic sampler (ddim at η = 0, euler, heun, midpoint) the output is a
    function of (noise, keypoints): the map that reflow training distils (training/reflow.py).
    """
    if isinstance(sampler, str):
        sampler = make_sampler(sampler, schedule, num_steps=num_steps, eta=eta, clip_x0=clip_x0, prediction=prediction)
    elif sampler.objective != objective_of(schedule):
        raise ConfigError(f"sample: the {sampler.name} sampler runs {sampler.objective} models, not "
                          f"{objective_of(schedule)} ones")
    if num_hypotheses < 1:
        raise ConfigError(f"num_hypotheses must be >= 1, got {num_hypotheses}")
    if flip and skeleton is None:
        raise ConfigError("sample: flip=True needs the skeleton (for the left/right swap)")
    keypoints_2d, keypoint_mask = _apply_keypoint_mask(keypoints_2d, keypoint_mask)
    window = int(getattr(denoiser, "window", 1))
    keypoints_2d = _validate_condition(keypoints_2d, getattr(denoiser, "num_joints", None), window)
    device = next(denoiser.parameters()).device
    B, J, H = keypoints_2d.shape[0], keypoints_2d.shape[-2], num_hypotheses
    was_training = denoiser.training
    denoiser.eval()
    try:
        with torch.inference_mode():
            cond, mask = _chain_conditions(keypoints_2d.to(device=device, dtype=torch.float32), keypoint_mask, H, flip,
                                           skeleton, denoiser.encode_condition if window > 1 else None)
            x = _start_noise(noise, (cond.shape[0], J, 3), generator, device)
            input_source = _chain_sources(input_source, B, H, 2 if flip else 1, device)
            net = _network(denoiser, cond, mask, autocast_dtype, input_source=input_source)
            trajectory = [x] if return_trajectory else None
            x = run_sampler(sampler, lambda z, t: net(z, sampler.model_time(t)), x, generator, trajectory)
            out = _combine_views(x, B, H, flip, skeleton)
            if return_trajectory:
                return out, torch.stack([_combine_views(z, B, H, flip, skeleton) for z in trajectory])
            return out
    finally:
        denoiser.train(was_training)


def _start_noise(noise: torch.Tensor | None, shape: tuple, generator: torch.Generator | None,
                 device: torch.device) -> torch.Tensor:
    """The chains' starting point: `noise` (checked against `shape`) or a fresh N(0, I) draw."""
    if noise is None:
        return torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"sample: noise must have shape {tuple(shape)} (chains, joints, 3), got {tuple(noise.shape)}")
    return noise.to(device=device, dtype=torch.float32)


def _chain_sources(input_source: int | torch.Tensor | None, B: int, H: int, V: int,
                   device: torch.device) -> int | torch.Tensor | None:
    """A per-input source tensor (B,) -> one index per chain (V·B·H,), in chain order; an int or
    None passes through."""
    if not isinstance(input_source, torch.Tensor):
        return input_source
    if tuple(input_source.shape) != (B,):
        raise ValueError(f"sample: input_source must be an int or have shape ({B},), got {tuple(input_source.shape)}")
    return input_source.to(device=device, dtype=torch.long).view(1, B, 1).expand(V, B, H).reshape(-1)


def _apply_keypoint_mask(keypoints_2d, keypoint_mask) -> tuple:
    """-> (keypoints_2d with missing joints zeroed, mask (B, J) bool tensor on its device); unchanged when
    `keypoint_mask` is None."""
    if keypoint_mask is None:
        return keypoints_2d, None
    keypoints_2d = keypoints_2d if isinstance(keypoints_2d, torch.Tensor) else torch.as_tensor(np.asarray(keypoints_2d))
    keypoint_mask = torch.as_tensor(keypoint_mask, dtype=torch.bool, device=keypoints_2d.device)
    if keypoint_mask.ndim == 2 and keypoints_2d.ndim == 4:              # one mask for every frame of a window
        keypoint_mask = keypoint_mask.unsqueeze(1).expand(keypoints_2d.shape[:-1])
    if keypoint_mask.shape != keypoints_2d.shape[:-1]:
        raise ValueError(f"sample: keypoint_mask must have shape {tuple(keypoints_2d.shape[:-1])}, got {tuple(keypoint_mask.shape)}")
    keypoints_2d = torch.where(keypoint_mask.unsqueeze(-1), keypoints_2d, torch.zeros((), dtype=keypoints_2d.dtype, device=keypoints_2d.device))
    return keypoints_2d, keypoint_mask


def _chain_conditions(keypoints_2d: torch.Tensor, keypoint_mask: torch.Tensor | None, num_hypotheses: int, flip: bool,
                      skeleton: Skeleton | None, encode=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The condition of every chain: keypoints_2d (B, J, 2) -> (V·B·H, J, 2), rows ordered (view, B, H), with
    the mirrored view second when `flip`; the mask (B, J) alike -> (V·B·H, J) or None.
    With `encode` (a windowed denoiser's encode_condition), each view's windows (B, W, J, 2) are
    mirrored whole and encoded once, (B, J, C), before being shared by the H chains of each input."""
    B, J = keypoints_2d.shape[0], keypoints_2d.shape[-2]
    views = [keypoints_2d, flip_horizontal(keypoints_2d, skeleton)] if flip else [keypoints_2d]
    m_views = None
    if keypoint_mask is not None:
        m = keypoint_mask.to(keypoints_2d.device)
        m_views = [m, m[..., skeleton.flip_permutation]] if flip else [m]
    if encode is not None:
        encoded = [encode(v, None if m_views is None else m_views[i]) for i, v in enumerate(views)]
        views = [e for e, _ in encoded]
        m_views = None if m_views is None else [c for _, c in encoded]
    C = views[0].shape[-1]
    cond = torch.stack(views).unsqueeze(2).expand(len(views), B, num_hypotheses, J, C).reshape(-1, J, C)
    if m_views is None:
        return cond, None
    return cond, torch.stack(m_views).unsqueeze(2).expand(len(views), B, num_hypotheses, J).reshape(-1, J)


# Rows per denoiser forward on a CPU. One sampler call runs B·H(·2) chains; at N = 10 with flip
# and 2,048 inputs that is 40,960 rows, whose activations (rows x J x dim floats) no longer fit
# the caches: evaluation at N = 10 ran 50 poses/s against 787 at N = 1. In chunks of 256-1,024
# rows it runs 91 (2 cores, dim 128; benchmarks/eval_speed.py). The chain maths stays batched;
# only the network is called chunk by chunk (rows are independent: the same numbers).
# Accelerators want large batches: FORWARD_CHUNK_ROWS_ACCELERATOR.
FORWARD_CHUNK_ROWS = 1024
FORWARD_CHUNK_ROWS_ACCELERATOR = 1 << 20


def _network(denoiser, cond: torch.Tensor, mask: torch.Tensor | None, autocast_dtype: torch.dtype | None,
             chunk_rows: int | None = None, input_source: int | torch.Tensor | None = None):
    """The denoiser's 3D output (fp32) for all chains at one time value, under autocast when
    asked: f(x, t) with t one number (an integer step, or s·T for a flow model), evaluated in
    chunks of `chunk_rows` rows (default: FORWARD_CHUNK_ROWS on a CPU, read at call time).
    The keypoint mask and the 2D source index (one int, or one per chain) go to the denoiser
    only when given."""
    rows, device = cond.shape[0], cond.device
    chunk_rows = int(chunk_rows or (FORWARD_CHUNK_ROWS if device.type == "cpu" else FORWARD_CHUNK_ROWS_ACCELERATOR))
    amp = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())
    t_full: dict = {}
    chunks = [(a, min(a + chunk_rows, rows)) for a in range(0, rows, chunk_rows)]
    source = (input_source if input_source is None or isinstance(input_source, torch.Tensor)
              else torch.full((rows,), int(input_source), dtype=torch.long, device=device))
    extras = [denoiser_extras(None if mask is None else mask[a:b], None if source is None else source[a:b])
              for a, b in chunks]

    def f(x: torch.Tensor, t) -> torch.Tensor:
        if t not in t_full:
            t_full[t] = torch.full((rows,), t, dtype=torch.long if isinstance(t, int) else torch.float32,
                                   device=device)
        outs = []
        with amp:
            for (a, b), extra in zip(chunks, extras):
                output, _ = denoiser(x[a:b], cond[a:b], t_full[t][a:b], **extra)
                outs.append(output.float())
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    return f


def _combine_views(z: torch.Tensor, B: int, H: int, flip: bool, skeleton: Skeleton | None) -> torch.Tensor:
    """Chains (V·B·H, J, 3) -> hypotheses (B, H, J, 3): the plain view, or with `flip` the mean of
    the plain and the un-flipped mirrored view."""
    z = z.view(-1, B, H, z.shape[-2], 3)
    if flip:
        return (z[0] + flip_horizontal(z[1], skeleton)) / 2
    return z[0].clone()
