"""Reflow: train a flow-matching model to follow a teacher's sampler in fewer steps (`train.reflow_from`).

Rectified flow (Liu, Gong and Liu 2023, "Flow straight and fast") trains on the straight line
between a pose and an *independent* noise draw; the learned paths cross, curve, and few-step
Euler sampling cuts the corners (docs/samplers.md: at 2 NFE the uniform-time flow model is about
2 mm behind its own 3-evaluation midpoint sampler). Reflow re-couples them: for each training row, draw noise ε, run the
teacher's deterministic sampler from ε on the row's 2D input to a pose x̂0 = Φ(ε | y), and
train the student's flow-matching loss (diffusion/loss.py) with (x̂0, ε) in place of the data
pose and a fresh draw. The student's target is a straight path from each noise to the pose the
teacher sends it to, which one or two Euler steps can follow.

The teacher is any run or zoo model with a deterministic sampler: a flow model with euler /
heun / midpoint, or a DDPM model with DDIM at η = 0 (both start from N(0, I) noise of the same
shape). It sees the row's own 2D input, keypoint mask and 2D source, as the student does, so
the training input pipeline (train.input_2d, input_layouts, mix_clean) is unchanged. It runs
in eval mode without gradients through `Lifter.sample_tensor`, the one inference path.
Cost per optimiser step: the teacher's NFE forwards on the batch before the student's forward
and backward (about 2x a plain step at 3 NFE). The data pose is not used by the 3D target;
the 2D reconstruction term of eqs. 8-10 still targets the row's 2D input.
`train.reflow_times` restricts the student's path times to the points a fixed Euler grid
evaluates ("1": Euler-1, a one-step distillation in the manner of Luhman and Luhman 2021;
"1,0.5": Euler-2), instead of the path's time draw over [0, 1].
The student may also be a DDPM model (diffusion.objective=ddpm, its own prediction target): its
loss then pairs the teacher's pose with the same noise at a timestep, and reflow_times=1 is the
one step DDIM-1 takes (t = T − 1), so a v-prediction student starts from its teacher's own weights
with the same meaning of every output (the zoo's h36m-det-fast).
"""
from __future__ import annotations

import logging

import torch

from ..config import Config
from ..errors import ConfigError
from ..geometry.skeleton import Skeleton
from ..inference.lifter import Lifter, SamplingSettings
from ..inference.zoo import model_path

__all__ = ["ReflowTeacher", "load_teacher"]

log = logging.getLogger("diffupose.train")


class ReflowTeacher:
    """A frozen model and the deterministic sampler whose noise -> pose map a student learns."""

    def __init__(self, lifter: Lifter, settings: SamplingSettings, source: str, times: str = "") -> None:
        self.lifter, self.settings, self.source = lifter, settings, source
        self.times = torch.tensor([float(x) for x in times.split(",")]) if times else None
        for p in lifter.denoiser.parameters():
            p.requires_grad_(False)

    @property
    def card(self) -> dict:
        """What the run's log records about the teacher."""
        return {"from": self.source, **self.lifter.sampler_card(self.settings)}

    def poses(self, noise: torch.Tensor, keypoints_2d: torch.Tensor, *, keypoint_mask: torch.Tensor | None = None,
              source: torch.Tensor | None = None) -> torch.Tensor:
        """x̂0 = Φ(noise | keypoints_2d): (B, J, 3) poses from noise (B, J, 3), a plain tensor
        (not an inference-mode one) that the student's loss can use."""
        with torch.no_grad():
            out = self.lifter.sample_tensor(keypoints_2d, self.settings, keypoint_mask=keypoint_mask,
                                            noise=noise, source=source)   # ignored unless source-conditioned
        return out[:, 0].clone()

    def path_times(self, n: int, generator: torch.Generator, num_timesteps: int | None = None) -> torch.Tensor | None:
        """Path times s (n,) for the student's loss: drawn from train.reflow_times, or None (the
        path's own draw). For a DDPM student (`num_timesteps` = its T) each s becomes the timestep
        round(s·(T − 1)), int64: s = 1 is the one step DDIM-1 takes (t = T − 1)."""
        if self.times is None:
            return None
        pick = torch.randint(0, len(self.times), (n,), generator=generator, device=generator.device)
        times = self.times.to(generator.device)[pick]
        if num_timesteps is None:
            return times
        return torch.round(times * (num_timesteps - 1)).long()


def load_teacher(cfg: Config, skeleton: Skeleton, device: torch.device) -> ReflowTeacher | None:
    """The teacher `cfg.train.reflow_from` names (a run directory or a zoo model; its final EMA
    weights), checked against the student before any training: the same skeleton, a
    deterministic sampler, a keypoint mask when training hides joints, and a 2D source the
    student can give. None when reflow is off."""
    tc = cfg.train
    if not tc.reflow_from:
        return None
    where = f"train.reflow_from {tc.reflow_from}"
    lifter = Lifter.load(model_path(tc.reflow_from), checkpoint="ema", device=device)
    tcfg = lifter.config
    if lifter.skeleton.name != skeleton.name:
        raise ConfigError(f"{where}: skeleton {lifter.skeleton.name}, the data's is {skeleton.name}")
    sampler = tcfg.eval.sampler if tc.reflow_sampler == "auto" else tc.reflow_sampler
    if sampler == "ddpm":
        raise ConfigError(f"{where}: the ddpm sampler is stochastic (no noise -> pose map); use ddim, euler, heun "
                          "or midpoint (train.reflow_sampler)")
    steps = tc.reflow_steps or tcfg.eval.num_steps
    settings = SamplingSettings(num_hypotheses=1, sampler=sampler, num_steps=steps, eta=0.0, flip=False,
                                batch_size=max(tc.batch_size, 1), seed=tc.seed)
    if (tc.joint_dropout > 0 or tc.limb_dropout > 0) and not tcfg.model.missing_joints:
        raise ConfigError(f"{where}: training hides joints (train.joint_dropout / limb_dropout) but the teacher "
                          "takes no keypoint mask (model.missing_joints); train without them or use a masked teacher")
    if tcfg.model.source_condition and not cfg.model.source_condition:
        raise ConfigError(f"{where}: the teacher is told each row's 2D source (model.source_condition); so must the "
                          "student be: set model.source_condition=true")
    teacher = ReflowTeacher(lifter, settings, str(tc.reflow_from), tc.reflow_times)
    log.info("reflow: teacher %s", teacher.card)
    return teacher
