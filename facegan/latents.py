"""The latent codes every sampler uses: a function of (seed, sample index), never of the process
count or the batch size, so facegan-sample, facegan-eval on any number of ranks, the Python API
and the app all draw the same face for the same seed and index."""

import torch


def latents(n: int, nz: int, seed: int, truncation: float = 1.0, start: int = 0) -> torch.Tensor:
    """(n, nz, 1, 1) float32 codes z ~ N(0, I) for sample indices start .. start+n-1 of `seed`.

    Drawn on the CPU with torch's Philox-free CPU generator, row by row in index order, so row i
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
    z = torch.randn(start + n, nz, generator=gen)[start:]
    if truncation != 1.0:
        z = z * truncation
    return z.reshape(n, nz, 1, 1).contiguous()
