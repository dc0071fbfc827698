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
def extract(extractor, batches, device, accelerator=None, desc="features") -> torch.Tensor:
    """Features of uint8 batches; with several processes, each rank's share is gathered."""
    quiet = accelerator is not None and not accelerator.is_main_process
    bar = tqdm(batches, desc=desc, unit="batch", disable=True if quiet else None, file=sys.stderr, leave=False)
    feats = [extractor(b.to(device)).float() for b in bar]
    local = torch.cat(feats) if feats else torch.zeros(0, extractor.num_features, device=device)
    if accelerator is not None and accelerator.num_processes > 1:
        local = _gather_ragged(accelerator, local)
    return local.cpu()


def _gather_ragged(accelerator, t: torch.Tensor) -> torch.Tensor:
    """All-gather rows from ranks that may hold different counts (pad, gather, trim)."""
    counts = accelerator.gather(torch.tensor([t.shape[0]], device=t.device)).tolist()
    padded = accelerator.pad_across_processes(t, dim=0)
    rows = accelerator.gather(padded)
    width = padded.shape[0]
    return torch.cat([rows[r * width: r * width + k] for r, k in enumerate(counts)])


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
                    desc=f"reference {split}")
    if feats.shape[0] == 0:
        raise UserError(f"the reference {split} split holds no images")
    if path and (accelerator is None or accelerator.is_main_process):
        save_safetensors_atomic(path, {"features": feats.contiguous()},
                                metadata={"extractor": ext_id, "split": split, "n": str(feats.shape[0])})
    return feats


def fid_kid(real: torch.Tensor, fake: torch.Tensor, metrics=("fid", "kid"), kid_subset: int = 1000) -> dict:
    """Scores from torchmetrics, fed precomputed features through a passthrough extractor; with
    "prdc" in metrics also precision, recall, density and coverage (k = 5, facegan.eval.prdc)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    out = {"n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    dim = real.shape[1]
    if "fid" in metrics:
        if min(real.shape[0], fake.shape[0]) < 2:
            raise UserError("FID needs at least 2 real and 2 generated images")
        fid = FrechetInceptionDistance(feature=Passthrough(dim))
        fid.update(real.double(), real=True)
        fid.update(fake.double(), real=False)
        out["fid"] = float(fid.compute())
    if "kid" in metrics:
        subset = min(kid_subset, real.shape[0], fake.shape[0])
        kid = KernelInceptionDistance(feature=Passthrough(dim), subset_size=subset, subsets=100)
        kid.update(real.double(), real=True)
        kid.update(fake.double(), real=False)
        mean, std = kid.compute()
        out["kid"], out["kid_std"] = float(mean), float(std)
    if "prdc" in metrics:
        from .prdc import K, prdc

        if min(real.shape[0], fake.shape[0]) <= K:
            raise UserError(f"precision/recall/density/coverage need more than {K} real and {K} generated images")
        out.update(prdc(real, fake, K))
    return out
