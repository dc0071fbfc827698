"""Grids of uint8 images (torchvision's make_grid: 2 px white padding), their PIL form and pixel
zoom, and the truncation row (one labelled grid per psi)."""

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
from torchvision.utils import make_grid

from ..io import atomic_path
from .generation import generate
from .labels import conditions_for
from .codes import latents


def grid_uint8(images_uint8: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> (3, H', W') uint8 grid, nrow images a row, 2 px white padding around
    each (a single image: itself, no padding)."""
    return make_grid(images_uint8, nrow=nrow, padding=2, pad_value=255)


def to_pil(image_uint8: torch.Tensor) -> Image.Image:
    """(3, H, W) uint8 -> RGB PIL image."""
    return Image.fromarray(image_uint8.permute(1, 2, 0).contiguous().numpy())


def zoom(images_uint8: torch.Tensor, k: int) -> torch.Tensor:
    """(..., H, W) images with each pixel repeated k x k times (nearest neighbour: no new detail, no
    blur), (..., k H, k W); for looking at 32x32 faces, which viewers show as thumbnails or smooth."""
    if k == 1:
        return images_uint8
    return images_uint8.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


def save_grid(images_uint8: torch.Tensor, path: str, nrow: int = 8) -> torch.Tensor:
    """Write a PNG grid of uint8 (N, 3, H, W) images atomically (a run's own files: no Software
    mark, unlike facegan.outputs); returns the (3, H, W) grid."""
    grid = grid_uint8(images_uint8, nrow)
    with atomic_path(path) as tmp:
        to_pil(grid).save(tmp, format="PNG")
    return grid


def truncation_row(G: nn.Module, psis: Sequence[float], n: int, seed: int, batch_size: int = 256, nrow: int = 0,
                   asked: Optional[Dict[str, int]] = None) -> torch.Tensor:
    """One grid of n images per psi, side by side (8 px apart), each labelled 'psi = ...' in a
    16 px strip above: uint8 (3, H, W). Every grid uses the same seed, so position i of each grid
    is the same code z_i scaled by psi (latents()). A conditional G keeps each position's labels
    across the grids (drawn from its bank, with `asked` fixed)."""
    nrow = nrow or max(1, int(round(n ** 0.5)))
    c = conditions_for(G, n, seed, asked=asked)
    grids = [grid_uint8(generate(G, latents(n, G.nz, seed, psi), batch_size, c), nrow) for psi in psis]
    h, w = grids[0].shape[1:]
    label_h, gap = 16, 8
    canvas = Image.new("RGB", (len(grids) * w + (len(grids) - 1) * gap, h + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (psi, grid) in enumerate(zip(psis, grids)):
        x = i * (w + gap)
        canvas.paste(to_pil(grid), (x, label_h))
        draw.text((x + 2, 2), f"psi = {psi:g}", fill="black")
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1)
