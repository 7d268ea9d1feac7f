"""The training objective: v-prediction on uniformly drawn timesteps, with caption and motion dropout.

v-prediction as CogVideoX's scheduler defines it (`prediction_type="v_prediction"`): with ᾱ_t the scheduler's
`alphas_cumprod`, the noisy input is √ᾱ_t·x0 + √(1−ᾱ_t)·ε and the target is √ᾱ_t·ε − √(1−ᾱ_t)·x0. Timesteps are
uniform over the scheduler's 1000, as CogVideoX-Fun V1.1's scripts/train.py draws them (`torch.randint`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepInputs:
    """What one micro-batch feeds the transformer, and what its loss compares against."""

    model_input: torch.Tensor  # [B, F', 16 (+17 inpaint channels), h, w]: noisy latents (+ conditioning)
    text: torch.Tensor  # [B, L, D]; the empty prompt's features on caption-dropped rows
    timesteps: torch.Tensor  # long [B]
    motion: torch.Tensor  # [B]; 0 on motion-dropped rows
    target: torch.Tensor  # [B, F', 16, h, w]: the velocity
    noise: torch.Tensor  # [B, F', 16, h, w]
    latents: torch.Tensor  # [B, F', 16, h, w]: x0
    caption_dropped: torch.Tensor  # bool [B]
    motion_dropped: torch.Tensor  # bool [B]


def dropout_masks(batch: int, generator: torch.Generator, caption_dropout: float,
                  motion_dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows trained on the empty prompt (probability `caption_dropout`) and rows trained with M = 0."""
    return (torch.rand(batch, generator=generator) < caption_dropout,
            torch.rand(batch, generator=generator) < motion_dropout)


def noisy_and_target(scheduler, latents: torch.Tensor, noise: torch.Tensor,
                     timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, v) from the scheduler's own `add_noise` and `get_velocity`."""
    return scheduler.add_noise(latents, noise, timesteps), scheduler.get_velocity(latents, noise, timesteps)


def step_inputs(scheduler, latents: torch.Tensor, text: torch.Tensor, conditioning: torch.Tensor | None,
                motion: torch.Tensor, empty_text, generator: torch.Generator, caption_dropout: float,
                motion_dropout: float) -> StepInputs:
    """Draw dropouts, timesteps and noise from `generator` (in that order) and build the model input and target.
    `empty_text(n)` gives the empty prompt's features for n rows."""
    b, device = latents.shape[0], latents.device
    caption_dropped, motion_dropped = dropout_masks(b, generator, caption_dropout, motion_dropout)
    if caption_dropped.any():
        text = text.clone()
        text[caption_dropped.to(text.device)] = empty_text(int(caption_dropped.sum())).to(text)
    motion = motion.clone()
    motion[motion_dropped] = 0.0
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    t_dev = timesteps.to(device)
    noisy, target = noisy_and_target(scheduler, latents, noise, t_dev)
    model_input = noisy if conditioning is None else torch.cat([noisy, conditioning.to(noisy)], dim=2)
    return StepInputs(model_input, text, t_dev, motion.to(device), target, noise, latents, caption_dropped,
                      motion_dropped)
