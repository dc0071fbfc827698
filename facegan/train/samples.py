"""The trainer's fixed-noise sample grids: when and where they are written (the images and grids
themselves come from facegan.sampling). A conditional run's grids have one row per condition (a
class, or a label combination of the data)."""

import os

import torch

from ..sampling import generate, grid_conditions, latents, save_grid
from .tracking import log_grid

GRID = 64  # images in each fixed-noise grid (fewer when the data holds fewer)
FAKES_PREFIX = "fakes-kimg"


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
        self.z = latents(GRID, cfg.model.nz, cfg.train.seed)  # the same z on every run with this seed
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
