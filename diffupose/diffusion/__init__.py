"""Diffusion: noise schedules (eqs. 2, 3, 11), samplers (DDPM, DDIM) and the loss (eqs. 8-10)."""
from .loss import diffusion_loss
from .samplers import SAMPLERS, DDIMSampler, DDPMSampler, check_sampler, sample
from .schedule import (PREDICTIONS, NoiseSchedule, cosine_betas, linear_betas, predict_x0, predict_x0_from_noise,
                       prediction_target, q_posterior_mean_variance, q_sample)

__all__ = ["NoiseSchedule", "cosine_betas", "linear_betas", "q_sample", "q_posterior_mean_variance", "predict_x0_from_noise",
           "predict_x0", "prediction_target", "PREDICTIONS",
           "diffusion_loss", "sample", "SAMPLERS", "check_sampler", "DDPMSampler", "DDIMSampler"]
