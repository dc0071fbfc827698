"""FID and KID over features, through torchmetrics. Reference statistics are cached beside the
shards as safetensors, keyed by extractor, split and image count, so they are computed once."""

import os
import sys
from typing import Optional

import torch
from tqdm import tqdm
from safetensors.torch import load_file

from ..data.loader import ShardSet, eval_loader
from ..errors import UserError
from ..io import save_safetensors_atomic
from .features import Passthrough


def cache_path(shards_dir: str, extractor_id: str, split: str, n: int) -> str:
    return os.path.join(shards_dir, f"fid-ref-{extractor_id}-{split}-{n}.safetensors")


@torch.no_grad()
def extract(extractor, batches, device, accelerator=None, desc="features", merge=None) -> torch.Tensor:
    """Features of uint8 batches; with several processes, each rank's share is gathered.

    merge(parts) -> tensor puts the ranks' rows (a list, rank by rank) into sample order
    (merge_blocks); by default they stay rank by rank."""
    quiet = accelerator is not None and not accelerator.is_main_process
    bar = tqdm(batches, desc=desc, unit="batch", disable=True if quiet else None, file=sys.stderr, leave=False)
    feats = [extractor(b.to(device)).float() for b in bar]
    local = torch.cat(feats) if feats else torch.zeros(0, extractor.num_features, device=device)
    if accelerator is not None and accelerator.num_processes > 1:
        local = (merge or torch.cat)(_gather_ragged(accelerator, local))
    return local.cpu()


def blocks_of(n: int, batch_size: int, rank: int = 0, world: int = 1) -> list:
    """(start, stop) of the batches of samples 0..n-1 that `rank` embeds: batches rank,
    rank + world, ... So every sample sits in the same batch whatever the process count, and the
    features (hence FID and KID) are bit-identical for one process or several."""
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)][rank::world]


def merge_blocks(n: int, batch_size: int):
    """merge(parts) for extract(): rank r's rows are its blocks_of(...), in order; deal them back
    into sample order. Ranks that dropped unreadable samples no longer fit: rows stay rank by rank."""

    def merge(parts: list) -> torch.Tensor:
        world = len(parts)
        spans = [blocks_of(n, batch_size, r, world) for r in range(world)]
        if [p.shape[0] for p in parts] != [sum(b - a for a, b in sp) for sp in spans]:
            return torch.cat(parts)
        rows = {}
        for part, sp in zip(parts, spans):
            rows.update(zip(sp, torch.split(part, [b - a for a, b in sp])))
        return torch.cat([rows[k] for k in sorted(rows)])

    return merge


def _gather_ragged(accelerator, t: torch.Tensor) -> list:
    """All-gather rows from ranks that may hold different counts (pad, gather, trim): one
    tensor per rank."""
    counts = accelerator.gather(torch.tensor([t.shape[0]], device=t.device)).tolist()
    padded = accelerator.pad_across_processes(t, dim=0)
    rows = accelerator.gather(padded)
    width = padded.shape[0]
    return [rows[r * width: r * width + k] for r, k in enumerate(counts)]


def reference_features(shards: ShardSet, shards_dir: Optional[str], split: str, n: int, extractor, device,
                       batch_size: int = 100, accelerator=None, log=print) -> torch.Tensor:
    """Features of the first n reference images, from the cache when present."""
    ext_id = getattr(extractor, "extractor_id", type(extractor).__name__)
    n = min(n, shards.total) if shards.total else n
    path = cache_path(shards_dir, ext_id, split, n) if shards_dir else None
    if path and os.path.exists(path):
        log(f"facegan: reference statistics from cache {path}")
        return load_file(path)["features"]
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    feats = extract(extractor, eval_loader(shards, batch_size, rank, world, limit=n), device, accelerator,
                    desc=f"reference {split}", merge=merge_blocks(n, batch_size))
    if feats.shape[0] == 0:
        raise UserError(f"the reference {split} split holds no images")
    if path and (accelerator is None or accelerator.is_main_process):
        save_safetensors_atomic(path, {"features": feats.contiguous()},
                                metadata={"extractor": ext_id, "split": split, "n": str(feats.shape[0])})
    return feats


def fid_kid(real: torch.Tensor, fake: torch.Tensor, metrics=("fid", "kid"), kid_subset: int = 1000,
            seed: int = 0) -> dict:
    """Scores from torchmetrics, fed precomputed features through a passthrough extractor.

    KID averages over 100 random subsets that torchmetrics draws from torch's global RNG; they
    are drawn here from `seed` (the global RNG is left as it was), so the same features always
    give the same KID."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    out = {"n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    dim = real.shape[1]
    if "fid" in metrics:
        if min(real.shape[0], fake.shape[0]) < 2:
            raise UserError("FID needs at least 2 real and 2 generated images")
        # The features are already gathered on every rank: torchmetrics must not gather them again
        # (under torch.distributed it would, counting every sample world times).
        fid = FrechetInceptionDistance(feature=Passthrough(dim), sync_on_compute=False)
        fid.update(real.double(), real=True)
        fid.update(fake.double(), real=False)
        out["fid"] = float(fid.compute())
    if "kid" in metrics:
        subset = min(kid_subset, real.shape[0], fake.shape[0])
        kid = KernelInceptionDistance(feature=Passthrough(dim), subset_size=subset, subsets=100,
                                      sync_on_compute=False)
        kid.update(real.double(), real=True)
        kid.update(fake.double(), real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mean, std = kid.compute()
        out["kid"], out["kid_std"] = float(mean), float(std)
    return out
