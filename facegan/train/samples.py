"""Fixed-noise sample grids (torchvision make_grid) during training, and generation helpers."""

import os

import torch
from torchvision.utils import make_grid, save_image

from ..images import to_uint8
from ..io import atomic_path
from ..latents import latents
from .tracking import log_grid

GRID = 64  # images in each fixed-noise grid (fewer when the data holds fewer)
FAKES_PREFIX = "fakes-kimg"


def fixed_noise(n: int, nz: int, seed: int) -> torch.Tensor:
    """The same z on every run with this seed, so grids are comparable over training."""
    return latents(n, nz, seed)


@torch.no_grad()
def generate(generator: torch.nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """uint8 (N, 3, H, W) images on the CPU for z (N, nz, 1, 1), in batches of batch_size."""
    device = next(generator.parameters()).device
    out = [to_uint8(generator(z[i:i + batch_size].to(device))).cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out)


def grid_uint8(images_uint8: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """(3, H, W) uint8 grid."""
    return make_grid(images_uint8, nrow=nrow, padding=2, pad_value=255)


def save_grid(images_uint8: torch.Tensor, path: str, nrow: int = 8) -> torch.Tensor:
    """Write a PNG grid of uint8 (N, 3, H, W) images atomically; returns the (3, H, W) grid."""
    grid = grid_uint8(images_uint8, nrow)
    with atomic_path(path) as tmp:
        save_image(grid.float() / 255.0, tmp, format="PNG")
    return grid


def list_fakes(samples_dir: str) -> list:
    """The fixed-noise grids of a run, oldest first (names sort by kimg)."""
    if not os.path.isdir(samples_dir):
        return []
    return sorted(f for f in os.listdir(samples_dir) if f.startswith(FAKES_PREFIX) and f.endswith(".png"))


class SampleWriter:
    """The run's fixed-noise grids from the EMA generator (main process only), and its trackers' copy."""

    def __init__(self, rt, cfg, G_ema):
        self.rt, self.G_ema = rt, G_ema
        self.dir = os.path.join(cfg.run.dir, "samples")
        self.seed = cfg.train.seed
        self.z = fixed_noise(GRID, cfg.model.nz, cfg.train.seed)

    def write_reals(self, shards) -> None:
        """A grid of the first training images (as many as the data holds, up to GRID)."""
        if not self.rt.is_main:
            return
        from ..data.loader import eval_loader

        with torch.random.fork_rng(devices=[]):  # must not shift the training RNG stream
            # The first GRID images (fewer in a small dataset); bad ones are skipped here and
            # judged by the training stream.
            reals = next(iter(eval_loader(shards, GRID, limit=GRID, max_bad_fraction=1.0)), None)
        if reals is not None:
            save_grid(reals[:GRID], os.path.join(self.dir, "reals.png"))

    def write(self, progress) -> None:
        if not self.rt.is_main:
            return
        self.G_ema.eval()
        grid = save_grid(generate(self.G_ema, self.z),
                         os.path.join(self.dir, f"{FAKES_PREFIX}{progress.images_seen / 1000:010.3f}.png"))
        log_grid(self.rt.accelerator, grid, progress.step)

    def newest(self) -> str:
        grids = list_fakes(self.dir)
        return os.path.join(self.dir, grids[-1]) if grids else None
