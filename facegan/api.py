"""The whole flow from Python, for a notebook or a script: pack, train, sample, score.

Each function is the command of the same name without a shell: the same defaults, the same
checks (UserError with the line the command would print), the same files on disk. In a Jupyter
notebook, training shows a live progress bar (facegan.progress) beside its status lines.

    import facegan.api as fg
    fg.pack("synthetic:cartoon", "shards/cartoon32", size=32, limit=2000)
    run = fg.train("configs/demo.yaml", "data.shards=shards/cartoon32", "train.total_kimg=20",
                   "run.dir=runs/nb")
    images = fg.sample("runs/nb", n=16, seed=0)          # (16, 3, 32, 32) uint8
    scores = fg.score("runs/nb", ref="shards/cartoon32", n=500)   # {"fid": ..., "kid": ...}
"""

from typing import Optional

import torch


def pack(source: str, out: str, size: int = 64, *, limit: Optional[int] = None, labels: str = "auto",
         seed: int = 0, **options):
    """facegan-shard SOURCE --out OUT --size SIZE: pack images into WebDataset shards and
    dataset.json. options: any field of facegan.data.packer.PackOptions (val_fraction, workers,
    shard_size, crop, image_format, overwrite, ...). Returns the PackResult (counts per split,
    skipped inputs, the notes on what was chosen)."""
    from .data.packer import PackOptions, pack as _pack
    from .data.sources import open_source

    opts = PackOptions(size=size, seed=seed, limit=limit, **options)
    return _pack(open_source(source, seed=seed, limit=limit, labels=labels), out, opts)


def train(config: Optional[str] = None, *overrides: str):
    """python launch/train.py --config CONFIG KEY=VALUE ...: train in this process (one device:
    CUDA, MPS or the CPU; for several GPUs use `accelerate launch`). Overrides are typed as on the
    command line ("train.total_kimg=20"). Returns facegan.train.loop.TrainResult (the newest
    checkpoint, steps, images seen, the networks)."""
    from .config import load_config
    from .eval.report import write_report
    from .train.loop import train as _train

    cfg = load_config(config, list(overrides))
    return _train(cfg, on_finish=write_report)


@torch.no_grad()
def sample(source: str, n: int = 16, seed: int = 0, truncation: float = 1.0, raw: bool = False) -> torch.Tensor:
    """facegan-sample SOURCE --n N --seed S: (n, 3, H, W) uint8 images from a run directory, a
    checkpoint or an export (the EMA generator unless raw). Image i of a seed is the same face
    whatever n (facegan.sampling.latents); a conditional generator's labels are drawn for the same
    seed, as facegan-sample draws them."""
    from .eval.generator_io import load_generator
    from .sampling import sample_images

    G, _ = load_generator(source, raw=raw)
    return sample_images(G, n, seed, truncation)


def score(source: str, ref: str, n: int = 10000, split: str = "val", metrics=("fid", "kid"),
          seed: int = 12345, inception_weights: Optional[str] = None, batch_size: int = 100) -> dict:
    """facegan-eval SOURCE --ref REF: FID and KID (and "prdc": precision, recall, density,
    coverage) of a generator, dataset or image folder against a reference, with the FID Inception
    (offline: the `fid` extra). Returns the figures with n_real, n_fake and the extractor."""
    from accelerate import Accelerator

    from .eval.features import InceptionFeatures
    from .eval.image_sets import open_image_set
    from .eval.metrics import fid_kid

    acc = Accelerator(cpu=not torch.cuda.is_available())
    source_set = open_image_set(source, split, False, acc.device)
    ref_set = open_image_set(ref, split, False, acc.device,
                             resolution=source_set.resolution if source_set.kind == "generator" else None)
    extractor = InceptionFeatures(inception_weights).to(acc.device).eval()
    common = dict(extractor=extractor, device=acc.device, accelerator=acc, batch_size=batch_size, seed=seed)
    result = fid_kid(ref_set.features(n, **common), source_set.features(n, **common), tuple(metrics), seed=seed)
    result.update(extractor=extractor.extractor_id, source=source_set.describe, ref=ref_set.describe)
    return result
