"""Fixed-noise sample grids (torchvision make_grid) and image conversion helpers."""

import os

import torch
from torchvision.utils import make_grid, save_image

from ..io import atomic_path


def fixed_noise(n: int, nz: int, seed: int) -> torch.Tensor:
    """The same z on every run with this seed, so grids are comparable over training."""
    return torch.randn(n, nz, 1, 1, generator=torch.Generator().manual_seed(seed))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (N, 3, H, W) -> uint8 in [0, 255]."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def generate(generator: torch.nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Generated images as uint8 on the CPU, in batches."""
    device = next(generator.parameters()).device
    out = [to_uint8(generator(z[i:i + batch_size].to(device))).cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out)


def grid_uint8(images_uint8: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """(3, H, W) uint8 grid."""
    return make_grid(images_uint8, nrow=nrow, padding=2, pad_value=255)


def save_grid(images_uint8: torch.Tensor, path: str, nrow: int = 8) -> torch.Tensor:
    grid = grid_uint8(images_uint8, nrow)
    with atomic_path(path) as tmp:
        save_image(grid.float() / 255.0, tmp, format="PNG")
    return grid
