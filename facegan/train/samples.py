"""Fixed-noise sample grids (torchvision make_grid) during training, and generation helpers.
A conditional run's grids have one row per condition (a class, or a label combination of the data)."""

import os

import torch
from torchvision.utils import make_grid, save_image

from ..images import to_uint8
from ..io import atomic_path
from ..latents import latents
from ..sampling import conditions_for
from .tracking import log_grid

GRID = 64  # images in each fixed-noise grid (fewer when the data holds fewer)
FAKES_PREFIX = "fakes-kimg"


def fixed_noise(n: int, nz: int, seed: int) -> torch.Tensor:
    """The same z on every run with this seed, so grids are comparable over training."""
    return latents(n, nz, seed)


@torch.no_grad()
def generate(generator: torch.nn.Module, z: torch.Tensor, batch_size: int = 256, c: torch.Tensor = None) -> torch.Tensor:
    """uint8 (N, 3, H, W) images on the CPU for z (N, nz, 1, 1), in batches of batch_size. A
    conditional generator takes c (N, C) too; without it, c is drawn from its label bank
    (facegan.sampling.conditions_for, seed 0)."""
    device = next(generator.parameters()).device
    if c is None and getattr(generator, "condition", None) is not None:
        c = conditions_for(generator, len(z), seed=0)

    def one(i):
        zi = z[i:i + batch_size].to(device)
        return generator(zi) if c is None else generator(zi, c[i:i + batch_size].to(device))

    return torch.cat([to_uint8(one(i)).cpu() for i in range(0, len(z), batch_size)])


def grid_conditions(generator: torch.nn.Module, rows: int = 8):
    """(R, C) one condition per grid row for a conditional G (None otherwise): each class (up
    to 16), or the first `rows` distinct label combinations of its bank."""
    cond = getattr(generator, "condition", None)
    if cond is None:
        return None
    if cond.kind == "class":
        return torch.eye(cond.dim)[:16]
    distinct = []
    for row in generator.label_bank.detach().cpu():
        if not any(torch.equal(row, d) for d in distinct):
            distinct.append(row)
        if len(distinct) == rows:
            break
    return torch.stack(distinct)


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
        self._last_step = None  # the step whose grid was written last (one grid per step)
        self.z = fixed_noise(GRID, cfg.model.nz, cfg.train.seed)
        self.c = None
        rows = grid_conditions(G_ema)
        if rows is not None:  # one row per condition, the same 8 codes in every row
            self.z = self.z[:8].repeat(len(rows), 1, 1, 1)
            self.c = rows.repeat_interleave(8, 0)

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

    def write(self, progress):
        """The fixed-noise grid of this moment (main process; path, None elsewhere). Written once
        per step: a run ending on a sample boundary does not draw it twice."""
        if not self.rt.is_main:
            return None
        path = os.path.join(self.dir, f"{FAKES_PREFIX}{progress.images_seen / 1000:010.3f}.png")
        if self._last_step == progress.step and os.path.exists(path):
            return path
        self.G_ema.eval()
        grid = save_grid(generate(self.G_ema, self.z, c=self.c), path)
        log_grid(self.rt.accelerator, grid, progress.step)
        self._last_step = progress.step
        return path

    def newest(self) -> str:
        grids = list_fakes(self.dir)
        return os.path.join(self.dir, grids[-1]) if grids else None
