"""Loader throughput: shards -> uint8 batches (facegan, reading tars with WebDataset's tarfile
path) vs torchvision ImageFolder + transforms on the original JPEGs, at the same resolution,
batch size and worker count; and the same loader over the hand-written tar parser it replaced
(bench/handparsed_tar.py), to show what the library path costs. What the trainer consumes is
bench_train.py's loader_over_trainer."""

import argparse
import os
import tempfile
import time

import handparsed_tar
import torch
from common import make_jpeg_folder, report

import facegan.data.loader as facegan_loader

from facegan.data.loader import resolve_shards, train_loader
from facegan.data.packer import PackOptions, pack
from facegan.data.sources import open_source


def images_per_s(it, n_batches):
    t, n = time.perf_counter(), 0
    for _ in range(n_batches):
        batch = next(it)
        n += (batch[0] if isinstance(batch, (list, tuple)) else batch).shape[0]
    return n / (time.perf_counter() - t)


def best_of(contenders, n_batches, rounds, warmup=3):
    """Images/s of each (name, endless iterable): started and warmed up once, then measured in
    turns, `rounds` times each; the best round counts (on a shared machine the slow rounds are
    the other tenants). Idle loaders only prefetch, so they do not slow the one measured."""
    iterators = {}
    for name, iterable in contenders:
        iterators[name] = it = iter(iterable)
        for _ in range(warmup):
            next(it)
    best = {name: 0.0 for name in iterators}
    for _ in range(rounds):
        for name, it in iterators.items():
            best[name] = max(best[name], images_per_s(it, n_batches))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--batches", type=int, default=60, help="batches per measured round")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds per loader; the best counts")
    ap.add_argument("--format", default="png", help="shard image format (png, jpg, npy)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "facegan-bench"))
    args = ap.parse_args()
    src = make_jpeg_folder(os.path.join(args.workdir, f"jpegs-{args.images}"), args.images)
    shards = os.path.join(args.workdir, f"shards-{args.images}-{args.size}-{args.format}")
    if not os.path.exists(os.path.join(shards, "dataset.json")):
        pack(open_source(src), shards, PackOptions(size=args.size, overwrite=True, val_fraction=0.0,
                                                   shard_size=250, image_format=args.format))

    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(args.size), transforms.CenterCrop(args.size),
                             transforms.ToTensor()])
    folder = torch.utils.data.DataLoader(datasets.ImageFolder(src, tf), batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers, drop_last=True, persistent_workers=True)
    repeat = lambda loader: (b for _ in iter(int, 1) for b in loader)  # endless epochs
    shard_set = resolve_shards(shards, "train", args.size)
    ours = train_loader(shard_set, args.batch, workers=args.workers)
    library_reader = facegan_loader.shard_samples
    facegan_loader.shard_samples = handparsed_tar.shard_samples  # workers fork after this: they see it
    try:
        hand = train_loader(shard_set, args.batch, workers=args.workers)
        it_hand = iter(hand)
        next(it_hand)  # its workers are started (forked) while the hand parser is in place
    finally:
        facegan_loader.shard_samples = library_reader
    rates = best_of([("imagefolder", repeat(folder)), ("facegan", ours), ("handparsed", it_hand)],
                    args.batches, args.rounds)
    base, ours, hand = rates["imagefolder"], rates["facegan"], rates["handparsed"]
    report(f"loader-{args.format}", {"images": args.images, "size": args.size, "format": args.format,
                                     "batch": args.batch, "workers": args.workers, "rounds": args.rounds,
                                     "imagefolder_images_per_s": round(base, 1), "facegan_images_per_s": round(ours, 1),
                                     "handparsed_tar_images_per_s": round(hand, 1),
                                     "facegan_over_handparsed": round(ours / hand, 3)},
           "speedup_vs_imagefolder", ours / base)


if __name__ == "__main__":
    main()
