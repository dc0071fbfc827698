"""Exploring a generator: a row of sample grids over truncation psi, and latent walks written as
GIF, MP4 or a PNG strip. facegan-sample is the command; these are the functions behind it."""

import os
from typing import List, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import UserError
from ..io import atomic_path
from ..latents import latents
from ..sampling import conditions_for
from ..train.samples import generate, grid_uint8, save_grid
from .generator_io import slerp

WALK_ENDINGS = (".gif", ".mp4", ".png")


def parse_psis(text: str) -> List[float]:
    """'1,0.8,0.6' -> [1.0, 0.8, 0.6]; UserError naming --truncation-row unless each is in (0, 1]."""
    try:
        psis = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        psis = []
    if not psis or not all(0 < p <= 1 for p in psis):
        raise UserError(f"--truncation-row {text}: expected a comma list of values in (0, 1], e.g. 1,0.8,0.6,0.4")
    return psis


def truncation_row(G, psis: Sequence[float], n: int, seed: int, batch_size: int = 256, nrow: int = 0,
                   asked=None) -> Image.Image:
    """One grid of n images per psi, side by side, each labelled 'psi = ...'. Every grid uses the
    same seed, so position i of each grid is the same code z_i, scaled by psi (facegan.latents).
    Returns an RGB PIL image. A conditional G keeps each position's labels across the grids
    (drawn from its bank, with `asked` fixed)."""
    nrow = nrow or max(1, int(round(n ** 0.5)))
    c = conditions_for(G, n, seed, asked=asked)
    grids = [grid_uint8(generate(G, latents(n, G.nz, seed, psi), batch_size, c), nrow) for psi in psis]
    h, w = grids[0].shape[1:]
    label_h, gap = 16, 8
    canvas = Image.new("RGB", (len(grids) * w + (len(grids) - 1) * gap, h + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (psi, grid) in enumerate(zip(psis, grids)):
        x = i * (w + gap)
        canvas.paste(Image.fromarray(grid.permute(1, 2, 0).numpy()), (x, label_h))
        draw.text((x + 2, 2), f"psi = {psi:g}", fill="black")
    return canvas


def save_image(image: Image.Image, path: str) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG" if path.lower().endswith(".png") else "JPEG")


def walk_frames(G, n_keys: int, seed: int, k: int, truncation: float = 1.0, batch_size: int = 256,
                asked=None) -> torch.Tensor:
    """uint8 (T, 3, H, W) frames of a spherical walk through the codes of sample indices 0..n_keys-1
    of `seed` (at least 2), k frames from each code to the next, ending on the last:
    T = (n_keys - 1) * k + 1. A conditional G walks with one condition held (sample 0's, with
    `asked` fixed), so only the face moves."""
    keys = latents(max(n_keys, 2), G.nz, seed, truncation).flatten(1)
    z = [slerp(keys[i], keys[i + 1], t / k) for i in range(len(keys) - 1) for t in range(k)] + [keys[-1]]
    c = conditions_for(G, 1, seed, asked=asked)
    return generate(G, torch.stack(z)[:, :, None, None], batch_size, None if c is None else c.repeat(len(z), 1))


def write_walk(frames: torch.Tensor, path: str, fps: float = 12.0) -> str:
    """Frames as an animated GIF, an H.264 MP4 (facegan.eval.video) or a PNG strip, by path ending.
    Returns a short description of what was written."""
    ending = os.path.splitext(path)[1].lower()
    if ending not in WALK_ENDINGS:
        raise UserError(f"--out {path}: an interpolation is written as .gif, .mp4 or .png")
    if ending == ".png":
        save_grid(frames, path, nrow=len(frames))
        return f"a strip of {len(frames)} frames"
    hwc = frames.permute(0, 2, 3, 1).numpy()
    if ending == ".mp4":
        from .video import write_mp4

        count, h, w = write_mp4(iter(hwc), path, fps=fps)
        return f"{count} frames of H.264 video ({w}x{h}, {fps:g} fps)"
    pics = [Image.fromarray(np.ascontiguousarray(f)) for f in hwc]
    with atomic_path(path) as tmp:
        pics[0].save(tmp, format="GIF", save_all=True, append_images=pics[1:], duration=round(1000 / fps), loop=0)
    return f"{len(pics)} GIF frames"
