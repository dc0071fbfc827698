"""FID and KID over features, through torchmetrics. Reference features are cached beside the
shards as safetensors, keyed by extractor, split, image count and the shards' content (their
sha256s in dataset.json), so they are computed once and never outlive the data they came from."""

import contextlib
import os
import warnings
from typing import Optional

import torch

from ..data.loader import eval_loader
from ..data.shardset import ShardSet
from ..data.manifest import DERIVED_PREFIXES
from ..errors import UserError
from ..progress import progress
from ..io import save_safetensors_atomic
from ..log import get_logger
from ..train.distributed import rank_world
from .features import extractor_id
from .features import Passthrough
from .frechet import fast_form_applies, frechet_distance


def cache_path(shards_dir: str, extractor_id: str, split: str, n: int, content: str) -> str:
    """content: ShardSet.content_digest (see data.manifest.split_digest)."""
    return os.path.join(shards_dir, f"{DERIVED_PREFIXES[0]}{extractor_id}-{split}-{n}-{content[:16]}.safetensors")


def _stale_caches(shards_dir: str, extractor_id: str, split: str, n: int, keep: str) -> list:
    """Caches of the same extractor, split and n computed from other shard contents (or by a
    facegan that did not key them by content)."""
    stem = f"{DERIVED_PREFIXES[0]}{extractor_id}-{split}-{n}"
    try:
        names = os.listdir(shards_dir)
    except OSError:
        return []
    return [os.path.join(shards_dir, f) for f in names
            if (f == stem + ".safetensors" or (f.startswith(stem + "-") and f.endswith(".safetensors")
                                               and f.count("-") == stem.count("-") + 1))
            and os.path.join(shards_dir, f) != keep]


def _load_cache(path: str, content: str):
    """The cached features, or None when the file is damaged or records other content."""
    from safetensors import safe_open
    try:
        with safe_open(path, framework="pt") as f:
            if (f.metadata() or {}).get("content") != content:
                return None
            return f.get_tensor("features")
    except Exception:  # a damaged cache is recomputed, never trusted
        return None


@torch.no_grad()
def extract(extractor, batches, device, accelerator=None, desc="features", merge=None,
            total: int = None) -> torch.Tensor:
    """Features of uint8 batches; with several processes, each rank's share is gathered.

    merge(parts) -> tensor puts the ranks' rows (a list, rank by rank) into sample order
    (merge_blocks); by default they stay rank by rank. total: the images this rank embeds, for the
    progress bar's ETA (facegan.progress: a bar in a terminal, a line every so often in a log)."""
    quiet = accelerator is not None and not accelerator.is_main_process
    feats = []
    with progress(total=total, desc=f"Inception features: {desc}", unit="img", disable=quiet) as bar:
        for b in batches:
            feats.append(extractor(b.to(device)).float())
            bar.update(b.shape[0])
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
                       batch_size: int = 100, accelerator=None, log=None) -> torch.Tensor:
    """Features of the first n reference images, from the cache when present; what it finds there
    is said through log(text) (default: facegan's logger)."""
    log = log or get_logger().info
    ext_id = extractor_id(extractor)
    n = min(n, shards.total) if shards.total else n
    content = shards.content_digest
    path = cache_path(shards_dir, ext_id, split, n, content) if shards_dir and content else None
    if path and os.path.exists(path):
        feats = _load_cache(path, content)
        if feats is not None:
            log(f"reference statistics from cache {path}")
            return feats
    if path and (accelerator is None or accelerator.is_main_process):
        stale = _stale_caches(shards_dir, ext_id, split, n, keep=path)
        if stale:
            log(f"note: cached reference features {os.path.basename(stale[0])} were computed from "
                f"other shard contents; recomputing")
            for f in stale:
                with contextlib.suppress(OSError):
                    os.remove(f)
    rank, world = rank_world(accelerator)
    mine = sum(b - a for a, b in blocks_of(min(n, shards.total or n), batch_size, rank, world))
    feats = extract(extractor, eval_loader(shards, batch_size, rank, world, limit=n), device, accelerator,
                    desc=f"reference {split}", merge=merge_blocks(n, batch_size), total=mine)
    if feats.shape[0] == 0:
        raise UserError(f"the reference {split} split holds no images")
    if path and (accelerator is None or accelerator.is_main_process):
        save_safetensors_atomic(path, {"features": feats.contiguous()},
                                metadata={"extractor": ext_id, "split": split, "n": str(feats.shape[0]),
                                          "content": content})
    return feats


def small_n_warning(n_real: int, n_fake: int, dim: int = 2048):
    """One line when either side has fewer images than the features have dimensions (Inception:
    2048): the covariance estimate is then singular, FID is biased upward and depends on n, so it
    compares only with scores at the same n (Chong and Forsyth 2020, "Effectively Unbiased FID").
    None otherwise."""
    n = min(n_real, n_fake)
    if n >= dim:
        return None
    return (f"warning: n = {n_real} real and {n_fake} generated images, fewer than the {dim} feature "
            f"dimensions: FID is biased upward (its covariance is singular) and KID is noisy; compare only "
            f"with scores computed at the same n")


def fid_kid(real: torch.Tensor, fake: torch.Tensor, metrics=("fid", "kid"), kid_subset: int = 1000,
            seed: int = 0) -> dict:
    """Scores from torchmetrics, fed precomputed (N, D) features through a passthrough extractor
    (FID with fewer images than D on one side: the same formula as a smaller eigenproblem, frechet.py);
    with "prdc" in metrics also precision, recall, density and coverage (k = 5, facegan.eval.prdc).

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
        if fast_form_applies(real.shape[0], fake.shape[0], dim):
            value = frechet_distance(real, fake)  # same value, seconds faster: see frechet.py
        else:
            # The features are already gathered on every rank: torchmetrics must not gather them
            # again (under torch.distributed it would, counting every sample world times).
            fid = FrechetInceptionDistance(feature=Passthrough(dim), sync_on_compute=False)
            fid.update(real.double(), real=True)
            fid.update(fake.double(), real=False)
            value = float(fid.compute())
        # FID is a squared distance: a value a hair below 0 is round-off in the matrix square
        # root (a set against itself), printed as 0, never as -0.000.
        out["fid"] = max(value, 0.0) + 0.0
    if "kid" in metrics:
        subset = min(kid_subset, real.shape[0], fake.shape[0])
        with warnings.catch_warnings():
            # torchmetrics warns that KID keeps every feature in memory: here they are already in
            # memory, precomputed, so the warning tells a user nothing they can act on.
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
            kid = KernelInceptionDistance(feature=Passthrough(dim), subset_size=subset, subsets=100,
                                          sync_on_compute=False)
        kid.update(real.double(), real=True)
        kid.update(fake.double(), real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mean, std = kid.compute()
        out["kid"], out["kid_std"] = float(mean), float(std)
    if "prdc" in metrics:
        from .prdc import K, prdc

        if min(real.shape[0], fake.shape[0]) <= K:
            raise UserError(f"precision/recall/density/coverage need more than {K} real and {K} generated images")
        out.update(prdc(real, fake, K))
    return out
