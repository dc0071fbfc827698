"""Latent codes: z for (seed, sample index), truncation in z, and spherical walks between codes."""

from typing import List

import torch

from ..errors import UserError


def latents(n: int, nz: int, seed: int, truncation: float = 1.0, start: int = 0) -> torch.Tensor:
    """(n, nz, 1, 1) float32 codes z ~ N(0, I) for sample indices start .. start+n-1 of `seed`.

    Drawn on the CPU with torch's default CPU generator (Mersenne Twister), in index order, so row i
    is the same whatever n, start or the device the generator later runs on.

    truncation (psi, in (0, 1]): z is scaled by psi toward the mean of its prior (0), the
    truncation trick of StyleGAN (Karras et al. 2019) applied in z, where a DCGAN has no
    mapping network; psi = 1 returns plain samples bit for bit, smaller psi trades variety for
    typicality. Raises ValueError outside (0, 1].
    """
    if not 0 < truncation <= 1:
        raise ValueError(f"truncation {truncation}: must be in (0, 1]")
    if n < 0 or start < 0:
        raise ValueError(f"n {n} and start {start} must not be negative")
    gen = torch.Generator().manual_seed(int(seed))
    # torch's CPU randn fills 16 values at a time and redraws the last 16 when the size is not a
    # multiple of 16, so the last row would depend on n: draw whole blocks and keep the rows wanted.
    size = (start + n) * nz
    z = torch.randn(-(-size // 16) * 16, generator=gen)[:size].reshape(start + n, nz)[start:]
    if truncation != 1.0:
        z = z * truncation
    return z.reshape(n, nz, 1, 1).contiguous()


def parse_psis(text: str) -> List[float]:
    """'1,0.8,0.6' -> [1.0, 0.8, 0.6]; UserError naming --truncation-row unless each is in (0, 1]."""
    try:
        psis = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        psis = []
    if not psis or not all(0 < p <= 1 for p in psis):
        raise UserError(f"--truncation-row {text}: expected a comma list of values in (0, 1], e.g. 1,0.8,0.6,0.4")
    return psis


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from a to b (same shape) at t in [0, 1]: the natural path between
    two draws of a high-dimensional Gaussian, whose norms sit on a thin shell (White 2016, "Sampling
    generative networks"); a straight line would pass through atypically short codes. Nearly
    parallel codes fall back to the straight line."""
    a_flat, b_flat = a.flatten(), b.flatten()
    cos = torch.dot(a_flat / a_flat.norm(), b_flat / b_flat.norm()).clamp(-1, 1)
    omega = torch.acos(cos)
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def walk_latents(keys: torch.Tensor, k: int) -> torch.Tensor:
    """Codes of a walk through keys (K, nz, 1, 1), K >= 2: k codes from each key toward the next
    (t = 0, 1/k, ..., (k-1)/k, by slerp), then the last key itself; ((K - 1) k + 1, nz, 1, 1)."""
    flat = keys.flatten(1)
    z = [slerp(flat[i], flat[i + 1], t / k) for i in range(len(flat) - 1) for t in range(k)] + [flat[-1]]
    return torch.stack(z)[:, :, None, None]
