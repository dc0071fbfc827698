"""Exponential moving average of the generator's weights (what we sample from)."""

import copy

import torch


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
