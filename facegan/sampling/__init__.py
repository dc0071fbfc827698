"""Making images from a generator: latent codes and truncation (codes), label requests and the
label bank (labels), generation in batches and latent walks (generation), and grids (grids).

The trainer's sample grids, facegan-sample, the app, the Hub model (FaceGenerator) and eval all
draw through here, so the same (seed, index, truncation, labels) gives the same face everywhere.
"""

from .generation import generate, sample_images, seed_walk, toggle_images, walk_frames
from .grids import grid_uint8, save_grid, to_pil, truncation_row, zoom
from .labels import (apply_request, bank_conditions, conditions_for, grid_conditions, parse_request,
                     toggle_conditions)
from .codes import latents, parse_psis, slerp, walk_latents

__all__ = ["apply_request", "bank_conditions", "conditions_for", "generate", "grid_conditions", "grid_uint8",
           "latents", "parse_psis", "parse_request", "sample_images", "save_grid", "seed_walk", "slerp",
           "to_pil", "toggle_conditions", "toggle_images", "truncation_row", "walk_frames", "walk_latents", "zoom"]
