"""Do D's augmentations leak into G's samples? ADA (Karras et al. 2020, Sec. 2.2) is safe while p
stays below about 0.8 for its geometric transforms: past it, G can profit from drawing rotated or
upside-down faces, because D sees them among the augmented reals. This check counts them.

A small classifier (an MLP on 16x16 pixels) of a face's orientation (upright, turned 90, 180 or 270 degrees; mirror images
count with their turn, as x-flips are ordinary face data) is fitted on real training images shown
in all eight symmetries of the square, checked on held-out real images, and applied to the
generator's samples. A generator that leaks rotations has a clearly lower upright share than the
held-out reals. The per-image colour statistics (mean luma and saturation, averaged over
the images, with their spread) show tinted or luma-flipped output the same way.

    python bench/leak_check.py bench/out/small_data/1000-ada-seed0 --shards bench/out/cartoon32-small
"""

import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIENTATIONS = ("upright", "rot90", "upside-down", "rot270")  # each with its mirror image


def rotations(x: torch.Tensor) -> tuple:
    """x (N, C, H, W) in the four quarter turns, each with and without an x-flip (the dihedral group
    of the square): (8N, C, H, W) images and (8N,) labels, the index into ORIENTATIONS."""
    views, labels = [], []
    for k in range(4):
        r = torch.rot90(x, k, (-2, -1))
        views += [r, r.flip(-1)]
        labels += [torch.full((2 * len(x),), k)]
    return torch.cat(views), torch.cat(labels)


def _features(x: torch.Tensor) -> torch.Tensor:
    """16x16 pixels, standardised per image."""
    x = torch.nn.functional.interpolate(x.float(), size=16, mode="area").flatten(1)
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp_min(1e-6)


def orientation_classifier(reals: torch.Tensor, steps: int = 300, seed: int = 0):
    """A small MLP classifier (one hidden layer of 256) of ORIENTATIONS, fitted on reals (N, C, H, W) shown in all eight
    symmetries (Adam, weight decay). Returns predict(images) -> (N,) ORIENTATIONS indices."""
    x, y = rotations(reals)
    f = _features(x)
    torch.manual_seed(seed)  # the MLP's initial weights
    model = torch.nn.Sequential(torch.nn.Linear(f.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, len(ORIENTATIONS)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(f), y).backward()
        opt.step()
    return lambda images: model(_features(images)).argmax(1)


def colour_stats(images: torch.Tensor) -> dict:
    """Mean and spread over images of each image's mean luma and saturation; images (N, 3, H, W) in
    [-1, 1]. Luma: BT.601 weights on [0, 1] values; saturation: max - min channel."""
    x = (images.float() + 1) / 2
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).flatten(1).mean(1)
    sat = (x.amax(1) - x.amin(1)).flatten(1).mean(1)
    return {"luma": round(luma.mean().item(), 4), "luma_std": round(luma.std().item(), 4),
            "saturation": round(sat.mean().item(), 4), "saturation_std": round(sat.std().item(), 4)}


def leak_report(fakes: torch.Tensor, reals_held: torch.Tensor, predict) -> dict:
    """Orientation shares and colour statistics of fakes and of held-out reals, both (N, 3, H, W) in
    [-1, 1]; predict is orientation_classifier's, fitted on other reals. `upright`: the fraction
    classified upright (x-flips count as upright); `orientations`: counts per ORIENTATIONS entry;
    the held-out reals also give the classifier's accuracy on all eight symmetries."""
    out = {}
    with torch.no_grad():
        x, y = rotations(reals_held)
        accuracy = (predict(x) == y).float().mean().item()
        for name, images in (("fakes", fakes), ("reals", reals_held)):
            idx = predict(images)
            counts = torch.bincount(idx, minlength=len(ORIENTATIONS))
            out[name] = {"n": len(images), "upright": round((idx == 0).float().mean().item(), 4),
                         "orientations": dict(zip(ORIENTATIONS, counts.tolist())), **colour_stats(images)}
    out["reals"]["classifier_accuracy"] = round(accuracy, 4)
    return out


@torch.no_grad()
def check_run(run_dir: str, shards: str, n: int = 1000, seed: int = 2024) -> dict:
    """leak_report of a run's EMA generator (n samples); the classifier is fitted on n training
    images of the pack and checked on n val images."""
    sys.path.insert(0, ROOT)
    from facegan.data.loader import eval_loader
    from facegan.data.shardset import resolve_shards
    from facegan.eval.generator_io import load_generator
    from facegan.images import to_unit_range
    from facegan.sampling import conditions_for, latents

    G, _ = load_generator(run_dir)
    G.eval()
    z = latents(n, G.nz, seed)
    c = conditions_for(G, n, seed)
    fakes = torch.cat([G(z[i:i + 250]) if c is None else G(z[i:i + 250], c[i:i + 250]) for i in range(0, n, 250)])
    def reals(split):
        return torch.cat([to_unit_range(b, "cpu", flip=False) for b in
                          eval_loader(resolve_shards(shards, split, G.resolution), 250, limit=n)])

    with torch.enable_grad():
        predict = orientation_classifier(reals("train"))
    return leak_report(fakes.clamp(-1, 1), reals("val"), predict)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories (their newest checkpoint's EMA generator)")
    ap.add_argument("--shards", required=True, help="the pack whose val split gives the real images")
    ap.add_argument("--n", type=int, default=1000, help="samples and real images (default 1000)")
    args = ap.parse_args()
    for run in args.runs:
        r = check_run(run, args.shards, args.n)
        f, g = r["fakes"], r["reals"]
        print(f"{run}: upright {100 * f['upright']:.1f}% of samples (held-out reals {100 * g['upright']:.1f}%, "
              f"classifier accuracy on their 8 symmetries {100 * g['classifier_accuracy']:.1f}%); "
              f"luma {f['luma']:.3f}+-{f['luma_std']:.3f} (reals {g['luma']:.3f}+-{g['luma_std']:.3f}); "
              f"saturation {f['saturation']:.3f}+-{f['saturation_std']:.3f} "
              f"(reals {g['saturation']:.3f}+-{g['saturation_std']:.3f})")
        print(f"  orientations of samples: {f['orientations']}")


if __name__ == "__main__":
    main()
