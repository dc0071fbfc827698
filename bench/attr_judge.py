"""The attribute judge of bench/conditional.py: a small classifier trained on the real training
images of a labeled pack (cached beside the shards, keyed by their content, the attribute list and
its seed) that reads which attributes a generated face shows. Another seed, or the `degrade`
augmentation (blurred and noised images too), trains another judge of the same samples."""

import os
import time


def labeled_images(shards_dir, split, condition):
    """uint8 (N, 3, H, W) images and their (N, C) +-1 attribute vectors of one split."""
    import torch

    from facegan.data.bad_data import BadDataBudget
    from facegan.data.decode import decoded_batch
    from facegan.data.loader import decode_sample, keys_for, read_shard
    from facegan.data.shardset import resolve_shards

    shards = resolve_shards(shards_dir, split)
    budget = BadDataBudget(1.0)  # every bad sample allowed: the classifier reads what is there
    pairs = []
    for url in shards.urls:
        for s in read_shard(url, budget, shards.count_of(url), keep=keys_for(condition)):
            got = decode_sample(s, shards.resolution, budget, condition)
            if got is not None:
                pairs.append(got)
    return decoded_batch([p[0] for p in pairs]).contiguous(), torch.tensor([p[1] for p in pairs])


def classifier(n_out):
    from torch import nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(True),
                nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(True), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, n_out))


def as_input(images_uint8):
    return images_uint8.float() / 127.5 - 1


def degrade(xb, gen):
    """A batch of [-1, 1] images, each blurred (Gaussian, sigma 0 to 1.2 px) and noised (sigma 0 to
    0.08) by its own random amount: generated faces are softer and noisier than the renders, and a
    judge that never saw either reads a soft glasses frame as no glasses (the `degrade` judge)."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    levels = torch.randint(0, 4, (len(xb),), generator=gen)
    out = xb.clone()
    for level, sigma in enumerate((0.0, 0.5, 0.8, 1.2)):
        rows = levels == level
        if sigma and rows.any():
            out[rows] = TF.gaussian_blur(xb[rows], kernel_size=5, sigma=sigma)
    noise = torch.randn(xb.shape, generator=gen) * torch.rand(len(xb), 1, 1, 1, generator=gen) * 0.08
    return (out + noise).clamp(-1, 1)


def judge_name(seed, aug):
    """How results name a classifier: its seed, with a d in front for a degrade judge."""
    return f"d{seed}" if aug == "degrade" else str(seed)


def train_classifier(args, condition, digest):
    """(classifier, {attribute: val accuracy}, (N, C) +-1 val labels); the classifier is trained once
    per data content, attribute list and --classifier-seed, and cached beside the shards."""
    import torch
    from safetensors.torch import load_file, save_file

    names = condition.names
    tag = (f"-s{args.classifier_seed}" if args.classifier_seed else "") + (
        f"-{args.classifier_aug}" if args.classifier_aug != "flip" else "")
    path = os.path.join(args.shards, f"attr-classifier-{digest[:16]}-{'-'.join(names)}{tag}.safetensors")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.classifier_seed)  # the cache is keyed by data and this seed, not by --seed
        net = classifier(len(names))
    val_x, val_y = labeled_images(args.shards, "val", condition)
    if os.path.exists(path):
        net.load_state_dict(load_file(path))
        print(f"classifier: cached {path}")
    else:
        x, y = labeled_images(args.shards, "train", condition)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(args.classifier_seed)
        t0 = time.perf_counter()
        for epoch in range(args.classifier_epochs):
            net.train()
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x) - 127, 128):
                idx = perm[i:i + 128]
                xb = as_input(x[idx])
                flip = torch.rand(len(idx), generator=gen) < 0.5  # the GANs train with flips too
                xb[flip] = xb[flip].flip(3)
                if args.classifier_aug == "degrade":
                    xb = degrade(xb, gen)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb), (y[idx] > 0).float())
                opt.zero_grad()
                loss.backward()
                opt.step()
            print(f"classifier: epoch {epoch + 1}/{args.classifier_epochs}, loss {loss.item():.4f}, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        save_file(net.state_dict(), path)
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(as_input(val_x[i:i + 500])) for i in range(0, len(val_x), 500)]) > 0
    acc = ((pred == (val_y > 0)).float().mean(0)).tolist()
    return net, dict(zip(names, acc)), val_y


def classify(net, images):
    """(N, C) bool: the classifier's reading of uint8 images."""
    import torch

    with torch.no_grad():
        return torch.cat([net(as_input(images[i:i + 500])) for i in range(0, len(images), 500)]) > 0
