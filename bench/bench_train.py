"""Training throughput, steady state, images/s, on whatever device is present:

1. facegan (celeba64 recipe) vs the classic PyTorch DCGAN loop: ImageFolder + transforms on
   JPEGs, fp32, Sigmoid + BCELoss, .item() every step; the same model, batch and device;
2. facegan vs its own bound: the same step on one batch already on the device, no loader,
   no logging;
3. the loader alone (images/s delivered to the device) vs what the trainer consumes.

On a CPU the recipe is scaled down (--ngf, --batch) so the run takes minutes; the JSON says so.
"""

import argparse
import os
import statistics
import tempfile
import time

import torch
from common import make_jpeg_folder, report

from facegan.config import load_config
from facegan.data.loader import resolve_shards, train_loader
from facegan.data.packer import PackOptions, pack
from facegan.data.sources import open_source
from facegan.models import build_models


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Logits(torch.nn.Module):
    """D's real/fake logits alone, whether D returns them bare or in a named tuple (.logits)."""

    def __init__(self, D):
        super().__init__()
        self.D = D

    def forward(self, x):
        out = self.D(x)
        return getattr(out, "logits", out)


def classic_loop(jpegs, cfg, device, steps, warmup, workers):
    """What most people start from (pytorch/examples dcgan), on the same architecture."""
    from torchvision import datasets, transforms

    r = cfg.model.resolution
    tf = transforms.Compose([transforms.Resize(r), transforms.CenterCrop(r), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(jpegs, tf), batch_size=cfg.train.batch_size,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    G, D = build_models(cfg.model)
    D = torch.nn.Sequential(Logits(D), torch.nn.Sigmoid())
    G, D = G.to(device), D.to(device)
    crit = torch.nn.BCELoss()
    oG = torch.optim.Adam(G.parameters(), cfg.train.lr_g, betas=tuple(cfg.train.betas))
    oD = torch.optim.Adam(D.parameters(), cfg.train.lr_d, betas=tuple(cfg.train.betas))
    done, t0 = 0, None
    while done < warmup + steps:
        for real, _ in loader:
            if done == warmup:
                sync(device)
                t0 = time.perf_counter()
            if done == warmup + steps:
                break
            real = real.to(device)
            b = real.shape[0]
            D.zero_grad()
            err_real = crit(D(real).view(-1), torch.ones(b, device=device))
            err_real.backward()
            fake = G(torch.randn(b, cfg.model.nz, 1, 1, device=device))
            err_fake = crit(D(fake.detach()).view(-1), torch.zeros(b, device=device))
            err_fake.backward()
            oD.step()
            G.zero_grad()
            err_g = crit(D(fake).view(-1), torch.ones(b, device=device))
            err_g.backward()
            oG.step()
            _ = (err_real + err_fake).item(), err_g.item()  # the example prints these every step
            done += 1
    sync(device)
    return steps * cfg.train.batch_size / (time.perf_counter() - t0)


def facegan_trainer(cfg, steps, warmup):
    """The real trainer; steady-state img/s from its own status records after warm-up."""
    from facegan.train.loop import train
    from facegan.train.tracking import read_metrics

    cfg.log.every_steps = warmup
    cfg.train.max_steps = warmup + steps
    cfg.train.total_kimg = 1e9
    cfg.train.sample_every_kimg = cfg.train.checkpoint_every_kimg = 1e9
    train(cfg)
    rows = read_metrics(os.path.join(cfg.run.dir, "metrics.jsonl"))[1:]  # the first holds the warm-up
    return statistics.median(r["img_per_s"] for r in rows)


def own_bound(cfg, steps, warmup):
    """The same step on one batch resident on the device: nothing but the model's arithmetic."""
    from accelerate import Accelerator

    from facegan.train.ema import EmaSchedule, make_ema
    from facegan.train.runtime import pick_device, resolve_precision, use_channels_last
    from facegan.train.step import GANStep

    kind = pick_device()
    acc = Accelerator(cpu=kind == "cpu", mixed_precision=resolve_precision(cfg.train.mixed_precision, kind))
    fmt = torch.channels_last if use_channels_last(cfg.train.channels_last, kind) else torch.contiguous_format
    G, D = (m.to(memory_format=fmt) for m in build_models(cfg.model))  # as the trainer does
    fused = {"fused": True} if kind == "cuda" else {}
    oG = torch.optim.Adam(G.parameters(), cfg.train.lr_g, betas=tuple(cfg.train.betas), **fused)
    oD = torch.optim.Adam(D.parameters(), cfg.train.lr_d, betas=tuple(cfg.train.betas), **fused)
    G, D, oG, oD = acc.prepare(G, D, oG, oD)
    step = GANStep(acc, G, D, oG, oD, make_ema(acc.unwrap_model(G)),
                   EmaSchedule(0.999, cfg.train.batch_size), cfg.model.nz)
    r = cfg.model.resolution
    real = (torch.rand(cfg.train.batch_size, 3, r, r, device=acc.device) * 2 - 1).contiguous(memory_format=fmt)
    for _ in range(warmup):
        step(real)
    sync(acc.device)
    t = time.perf_counter()
    for _ in range(steps):
        step(real)
    sync(acc.device)
    return steps * cfg.train.batch_size / (time.perf_counter() - t)


def loader_alone(shards_dir, cfg, device, batches, workers):
    it = iter(train_loader(resolve_shards(shards_dir, "train", cfg.model.resolution), cfg.train.batch_size,
                           workers=workers, pin_memory=device.type == "cuda"))
    for _ in range(3):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        x = next(it).to(device, non_blocking=True)
    sync(device)
    del x
    return batches * cfg.train.batch_size / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "celeba64.yaml"))
    ap.add_argument("--images", type=int, default=0, help="JPEG inputs (default: 3000 on CPU, 20000 on GPU)")
    ap.add_argument("--steps", type=int, default=0, help="measured steps (default: 20 CPU, 200 GPU)")
    ap.add_argument("--warmup", type=int, default=0, help="warm-up steps (default: 5 CPU, 30 GPU)")
    ap.add_argument("--ngf", type=int, default=0, help="override widths (default: 32 on CPU, the recipe on GPU)")
    ap.add_argument("--batch", type=int, default=0, help="override batch (default: 64 on CPU, the recipe on GPU)")
    ap.add_argument("--workers", type=int, default=0, help="loader workers (default: min(8, cores))")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "facegan-bench"))
    args = ap.parse_args(argv)

    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    cfg = load_config(args.config)
    cfg.model.ngf = cfg.model.ndf = args.ngf or (cfg.model.ngf if gpu else 32)
    cfg.train.batch_size = args.batch or (cfg.train.batch_size if gpu else 64)
    steps, warmup = args.steps or (200 if gpu else 20), args.warmup or (30 if gpu else 5)
    workers = args.workers or min(8, os.cpu_count() or 1)
    cfg.data.workers = workers
    n = args.images or (20000 if gpu else 3000)
    r = cfg.model.resolution

    jpegs = make_jpeg_folder(os.path.join(args.workdir, f"jpegs-{n}"), n)
    shards = os.path.join(args.workdir, f"train-shards-{n}-{r}")
    if not os.path.exists(os.path.join(shards, "dataset.json")):
        pack(open_source(jpegs), shards, PackOptions(size=r, overwrite=True, val_fraction=0.0, shard_size=500))
    cfg.data.shards = shards
    cfg.run.dir = tempfile.mkdtemp(prefix="facegan-bench-run-")
    cfg.run.resume = "none"

    classic = classic_loop(jpegs, cfg, device, steps, warmup, workers)
    ours = facegan_trainer(cfg, steps, warmup)
    bound = own_bound(cfg, steps, warmup)
    loader = loader_alone(shards, cfg, device, max(10, steps // 2), workers)
    figures = {"recipe": os.path.basename(args.config), "resolution": r, "ngf": cfg.model.ngf,
               "batch": cfg.train.batch_size, "precision": cfg.train.mixed_precision, "workers": workers,
               "steps": steps, "classic_images_per_s": round(classic, 1), "facegan_images_per_s": round(ours, 1),
               "bound_images_per_s": round(bound, 1), "loader_images_per_s": round(loader, 1),
               "facegan_fraction_of_bound": round(ours / bound, 3),
               "loader_over_trainer": round(loader / ours, 2)}
    return report("train", figures, "speedup_vs_classic_loop", ours / classic)


if __name__ == "__main__":
    main()
