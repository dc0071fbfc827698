"""Exponential moving average of the generator's weights (what we sample from), and its schedule."""

import copy
import math
from dataclasses import dataclass
from typing import Union

import torch

from ..config.validate import half_life_kimg
from ..errors import UserError


def make_ema(generator: torch.nn.Module) -> torch.nn.Module:
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: torch.nn.Module, generator: torch.nn.Module, beta: float) -> None:
    """ema = beta * ema + (1 - beta) * G for parameters; BatchNorm statistics are copied."""
    ema_params, params = list(ema.parameters()), list(generator.parameters())
    if beta == 0.0:
        torch._foreach_copy_(ema_params, params)
    else:
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), generator.buffers()):
        b_ema.copy_(b)


def ema_beta(ema, batch_size: int, rampup: float = 0.0, images_seen: int = 0) -> float:
    """The per-step EMA decay: from a half-life in kimg, or a beta given directly; 0 turns EMA off.

    ema: train.ema, a beta in (0, 1), a half-life in kimg (>= 1, or a string 'Nkimg'), or 0.
    batch_size: images per step over all ranks. UserError for a malformed or negative ema.
    rampup > 0 caps the half-life at rampup x images_seen (StyleGAN2-ADA's ema_rampup, Karras et
    al. 2020): early in a run the EMA follows G closely, so a short run's samples show what G
    has learned instead of its initial weights. The cap lifts once images_seen passes
    half-life / rampup (200 kimg for a 10 kimg half-life at 0.05)."""
    beta = _base_ema_beta(ema, batch_size)
    if rampup > 0 and 0 < beta < 1:
        half_life_images = batch_size * math.log(0.5) / math.log(beta)
        capped = min(half_life_images, images_seen * rampup)
        beta = 0.5 ** (batch_size / capped) if capped > 0 else 0.0
    return beta


def _base_ema_beta(ema, batch_size: int) -> float:
    if isinstance(ema, str):
        half_life = half_life_kimg(ema)
    elif ema == 0:
        return 0.0
    elif 0 < ema < 1:
        return float(ema)
    elif ema >= 1:
        half_life = float(ema)
    else:
        raise UserError(f"train.ema: must be >= 0, got {ema}")
    return 0.5 ** (batch_size / (half_life * 1000.0))


@dataclass(frozen=True)
class EmaSchedule:
    """train.ema, train.batch_size and train.ema_rampup: the EMA decay of each step, by the images
    seen before it (see ema_beta). batch_size is also the images one training step takes, over
    all ranks. EmaSchedule(0.999, 64) is a constant beta of 0.999."""

    ema: Union[float, str]
    batch_size: int
    rampup: float = 0.0

    def beta(self, images_seen: int) -> float:
        return ema_beta(self.ema, self.batch_size, self.rampup, images_seen)
