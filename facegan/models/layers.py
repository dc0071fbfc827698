"""Layers shared by the architectures."""

import torch
from torch import nn

from ..conditions import Condition


class CondBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift come from the condition: y = BN(x) * (1 + W_g c) + W_b c
    (de Vries et al. 2017). W_g, W_b start at 0, so it starts as plain BatchNorm."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)
        self.gain.zero_init = self.bias.zero_init = True  # honoured by the architectures' init

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


def adc_width(cond: Condition) -> int:
    """Output width of ADC-GAN's classifier head: per attribute 4 logits (off, on) x (real, fake),
    or 2K for one class of K (K real classes, then K fake ones)."""
    return 4 * cond.dim if cond.kind == "attributes" else 2 * cond.dim
