"""Images from a generator, in batches: plain samples, toggle rows and latent walks. Every tool that
makes images (facegan-sample, FaceGenerator, the app, eval, the trainer's grids) calls these."""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..images import to_uint8
from .labels import conditions_for, toggle_conditions
from .codes import latents, walk_latents


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 256, c: Optional[torch.Tensor] = None) -> torch.Tensor:
    """uint8 (N, 3, H, W) images on the CPU for z (N, nz, 1, 1), in batches of batch_size on G's
    device. A conditional G takes c (N, C) too; without it, c is drawn from its label bank
    (conditions_for, seed 0)."""
    device = next(G.parameters()).device
    if c is None and getattr(G, "condition", None) is not None:
        c = conditions_for(G, len(z), seed=0)

    def one(i):
        zi = z[i:i + batch_size].to(device)
        return G(zi) if c is None else G(zi, c[i:i + batch_size].to(device))

    return torch.cat([to_uint8(one(i)).cpu() for i in range(0, len(z), batch_size)])


def sample_images(G: nn.Module, n: int, seed: int, truncation: float = 1.0, start: int = 0, batch_size: int = 256,
                  asked: Optional[Dict[str, int]] = None) -> torch.Tensor:
    """uint8 (n, 3, H, W): samples start..start+n-1 of `seed` (codes from latents(), scaled by
    truncation psi; a conditional G's labels drawn from its bank with `asked` fixed). What
    facegan-sample, FaceGenerator.sample and the app show for a seed. ValueError for psi outside (0, 1]."""
    c = conditions_for(G, n, seed, start, asked)
    return generate(G, latents(n, G.nz, seed, truncation, start), batch_size, c)


def toggle_images(G: nn.Module, names: Sequence[str], n: int, seed: int, truncation: float = 1.0,
                  batch_size: int = 256, asked: Optional[Dict[str, int]] = None) -> Tuple[torch.Tensor, List[str]]:
    """The same n faces of `seed` (codes and drawn labels, `asked` fixed) once per state of each
    label in names, row after row (toggle_conditions): uint8 (rows * n, 3, H, W) and one caption
    per row. A conditional G only; UserError for a label it does not know."""
    base = conditions_for(G, n, seed, asked=asked)
    parts = [toggle_conditions(G.condition, base, name) for name in names]
    c, captions = torch.cat([p[0] for p in parts]), [cap for p in parts for cap in p[1]]
    z = latents(n, G.nz, seed, truncation).repeat(len(captions), 1, 1, 1)
    return generate(G, z, batch_size, c), captions


def _walk(G: nn.Module, keys: torch.Tensor, k: int, c: Optional[torch.Tensor], batch_size: int) -> torch.Tensor:
    z = walk_latents(keys, k)
    return generate(G, z, batch_size, None if c is None else c.repeat(len(z), 1))


def walk_frames(G: nn.Module, n_keys: int, seed: int, k: int, truncation: float = 1.0, batch_size: int = 256,
                asked: Optional[Dict[str, int]] = None) -> torch.Tensor:
    """uint8 (T, 3, H, W) frames of a spherical walk through the codes of sample indices 0..n_keys-1
    of `seed` (at least 2), k frames from each code to the next, ending on the last:
    T = (n_keys - 1) * k + 1 (facegan-sample --interpolate). A conditional G walks with one
    condition held (sample 0's, with `asked` fixed), so only the face moves."""
    keys = latents(max(n_keys, 2), G.nz, seed, truncation)
    return _walk(G, keys, k, conditions_for(G, 1, seed, asked=asked), batch_size)


def seed_walk(G: nn.Module, seed_a: int, seed_b: int, frames: int, truncation: float = 1.0,
              batch_size: int = 256) -> torch.Tensor:
    """uint8 (frames, 3, H, W): a spherical walk from sample 0 of seed_a to sample 0 of seed_b,
    both ends included (FaceGenerator.interpolate, the app). A conditional G holds seed_a's
    condition. ValueError for frames < 2."""
    if frames < 2:
        raise ValueError(f"frames {frames}: need at least 2")
    keys = torch.cat([latents(1, G.nz, seed_a, truncation), latents(1, G.nz, seed_b, truncation)])
    return _walk(G, keys, frames - 1, conditions_for(G, 1, seed_a), batch_size)
