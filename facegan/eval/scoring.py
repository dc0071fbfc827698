"""Scoring a generator against reference shards: the part shared by facegan-eval and training."""

import os

import torch

from ..data.shardset import resolve_shards
from ..sampling import conditions_for, generate, latents
from ..train.distributed import rank_world
from .features import extractor_id
from .metrics import blocks_of, extract, fid_kid, merge_blocks, reference_features


def generated_features(G, n: int, extractor, device, seed: int = 12345, batch_size: int = 100,
                       accelerator=None) -> torch.Tensor:
    """(n, features) float32 features of generated images 0..n-1 of `seed`, in that order.

    Sample i's code is facegan.sampling.latents(n, nz, seed)[i] whatever the process count: the
    images are cut into batches and rank r takes batches r, r + world, ... (blocks_of), so each
    image is generated and embedded in the same batch as on one process, and the gathered rows
    are put back in sample order: one process or several give the same features, hence the same
    FID and KID."""
    rank, world = rank_world(accelerator)
    z = latents(n, G.nz, seed)
    c = conditions_for(G, n, seed)  # a conditional G: labels drawn as the data has them (its bank)
    batches = (generate(G, z[a:b], batch_size, None if c is None else c[a:b])
               for a, b in blocks_of(n, batch_size, rank, world))
    mine = sum(b - a for a, b in blocks_of(n, batch_size, rank, world))
    return extract(extractor, batches, device, accelerator, desc="generated", merge=merge_blocks(n, batch_size),
                   total=mine)


def open_reference(ref: str, split: str, resolution: int):
    """(ShardSet, directory for the cache or None); refuses shards at another resolution."""
    shards = resolve_shards(ref, split, resolution)
    return shards, (ref if os.path.isdir(ref) else None)


def score(G, ref: str, split: str, n: int, extractor, device, metrics=("fid", "kid"), batch_size: int = 100,
          seed: int = 12345, accelerator=None, log=None) -> dict:
    shards, cache_dir = open_reference(ref, split, G.resolution)
    real = reference_features(shards, cache_dir, split, n, extractor, device, batch_size, accelerator, log)
    fake = generated_features(G, n, extractor, device, seed, batch_size, accelerator)
    result = fid_kid(real, fake, metrics, seed=seed)
    result["extractor"] = extractor_id(extractor)
    result["split"] = split
    return result
