"""The noise schedule of CogVideoX-5B (and DropletVideo), which is not diffusers' default one."""

from __future__ import annotations

from diffusers import CogVideoXDDIMScheduler

COGVIDEOX_5B_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "snr_shift_scale": 1.0,
    "set_alpha_to_one": True,
    "clip_sample": False,
    "steps_offset": 0,
}


def make_scheduler(**overrides) -> CogVideoXDDIMScheduler:
    """DDIM with v-prediction, zero-terminal-SNR betas and trailing spacing."""
    return CogVideoXDDIMScheduler(**{**COGVIDEOX_5B_SCHEDULER, **overrides})
