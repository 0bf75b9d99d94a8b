"""Diffusion: noise schedules (eqs. 2, 3, 11), samplers (DDPM, DDIM; one protocol and registry for
every sampler, samplers.py) and the loss (eqs. 8-10); flow matching beside it (flow.py: the
straight path, its loss and ODE samplers)."""
from ..errors import ConfigError
from .flow import FLOW_SAMPLERS, FLOW_TIMES, OBJECTIVES, FlowPath, FlowSampler
from .loss import diffusion_loss, flow_matching_loss
from .samplers import (DDPM_SAMPLERS, SAMPLERS, DDIMSampler, DDPMSampler, check_sampler, function_evaluations,
                       make_sampler, objective_of, resolve_sampler, run_sampler, sample, sampler_class)
from .schedule import (PREDICTIONS, NoiseSchedule, cosine_betas, linear_betas, predict_x0, predict_x0_from_noise,
                       prediction_target, q_posterior_mean_variance, q_sample)


def build_process(diffusion_cfg):
    """The generative process a DiffusionConfig names: a NoiseSchedule (objective ddpm) or a
    FlowPath (objective flow). Training, the Lifter and the samplers take either."""
    objective = getattr(diffusion_cfg, "objective", "ddpm")
    if objective == "flow":
        return FlowPath.from_config(diffusion_cfg)
    if objective != "ddpm":
        raise ConfigError(f"unknown diffusion.objective {objective!r}; known: {list(OBJECTIVES)}")
    return NoiseSchedule.from_config(diffusion_cfg)


__all__ = ["NoiseSchedule", "cosine_betas", "linear_betas", "q_sample", "q_posterior_mean_variance", "predict_x0_from_noise",
           "predict_x0", "prediction_target", "PREDICTIONS", "OBJECTIVES", "build_process",
           "diffusion_loss", "flow_matching_loss", "sample", "SAMPLERS", "DDPM_SAMPLERS", "FLOW_SAMPLERS", "FLOW_TIMES",
           "check_sampler", "resolve_sampler", "sampler_class", "make_sampler", "run_sampler", "function_evaluations",
           "objective_of",
           "DDPMSampler", "DDIMSampler", "FlowPath", "FlowSampler"]
