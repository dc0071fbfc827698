"""Scoring a generator against reference shards: the part shared by facegan-eval and training."""

import os

import torch

from ..data.shardset import resolve_shards
from ..train.samples import generate
from ..train.distributed import rank_world
from .features import extractor_id
from .metrics import extract, fid_kid, reference_features


def generated_features(G, n: int, extractor, device, seed: int = 12345, batch_size: int = 100,
                       accelerator=None) -> torch.Tensor:
    """Features of n generated images, split across ranks, gathered."""
    rank, world = rank_world(accelerator)
    share = len(range(rank, n, world))
    z = torch.randn(share, G.nz, 1, 1, generator=torch.Generator().manual_seed(seed + rank))
    batches = (generate(G, z[i:i + batch_size], batch_size) for i in range(0, share, batch_size))
    return extract(extractor, batches, device, accelerator, desc="generated")


def open_reference(ref: str, split: str, resolution: int):
    """(ShardSet, directory for the cache or None); refuses shards at another resolution."""
    shards = resolve_shards(ref, split, resolution)
    return shards, (ref if os.path.isdir(ref) else None)


def score(G, ref: str, split: str, n: int, extractor, device, metrics=("fid", "kid"), batch_size: int = 100,
          seed: int = 12345, accelerator=None, log=print) -> dict:
    shards, cache_dir = open_reference(ref, split, G.resolution)
    real = reference_features(shards, cache_dir, split, n, extractor, device, batch_size, accelerator, log)
    fake = generated_features(G, n, extractor, device, seed, batch_size, accelerator)
    result = fid_kid(real, fake, metrics)
    result["extractor"] = extractor_id(extractor)
    result["split"] = split
    return result
