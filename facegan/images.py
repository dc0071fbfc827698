"""The two conversions between stored images and what the networks see, side by side.

Stored and generated images are uint8 (N, 3, H, W) in [0, 255]; G's output and D's input are
float in [-1, 1] (G ends in tanh, as DCGAN's does).
"""

import torch


def to_unit_range(batch_uint8: torch.Tensor, device, flip: bool,
                  memory_format=torch.contiguous_format) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float in [-1, 1] on the device, with random horizontal flips there."""
    real = batch_uint8.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    real = real.contiguous(memory_format=memory_format)
    if flip:
        mask = torch.rand(real.shape[0], 1, 1, 1, device=device) < 0.5
        real = torch.where(mask, real.flip(3), real)
    return real


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [-1, 1] (clamped) -> uint8 in [0, 255]: the inverse of to_unit_range."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
