"""Small datasets: how the scores fall as the training set shrinks, and what augmenting D's inputs
gives back (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data").

One pack of synthetic cartoon faces at 32x32 (facegan-shard synthetic:cartoon) in shards of 500:
the training sets of 500, 1k, 2k, 5k and 10k images are its first 1, 2, 4, 10 and 20 train shards
(nested: each holds the smaller ones), and every run is scored against the same val split (1120
images) with FID, KID, precision and recall (the FID Inception, k = 5). Each set trains from
scratch with D's augmentation off, DiffAugment (color, translation, cutout) and ADA (with
train.ada_kimg=--ada-kimg, 100 by default, so p can find its level within a short budget), all to
the same budget (--kimg) from the same recipe (--config) and seeds. Per row the table gives the
scores, ADA's final p, img/s and the augmentation's cost in img/s against no augmentation at that
size (all trainings of a table run one after another on the same machine).

    python bench/small_data.py                                  # 15 trainings of --kimg each
    python bench/small_data.py --sizes 500,2000 --kimg 300 --seeds 0,1,2
    python bench/small_data.py --quick                          # the wiring in a minute or two; numbers meaningless

Writes bench/results/small_data-<cpu|gpu>.json (--out) and prints the Markdown table.
"""

import argparse
import os
import sys
import time

import torch

from common import RESULTS, ROOT, ensure_synthetic_shards, machine, train_run
from quality import aggregate

AUGMENTS = {
    "none": ("no augmentation", ["train.augment=none"]),
    "diffaug": ("DiffAugment color,translation,cutout", ["train.augment=color,translation,cutout"]),
    "ada": ("ADA (bgc + cutout, p steered to r_t = 0.6)", ["train.augment=ada"]),
}
def ensure_avatar_shards(path: str, images: int, size: int, val_fraction: float, shard_size: int) -> None:
    """Renders `images` Multiavatar faces into a PNG folder beside path and packs it with facegan-shard
    as a user packs a folder; nothing when path already holds a dataset."""
    import subprocess

    from render_avatars import render_folder

    if os.path.exists(os.path.join(path, "dataset.json")):
        return
    folder = render_folder(path.rstrip(os.sep) + "-png", images)
    subprocess.run([sys.executable, "-m", "facegan.cli.shard", folder, "--out", path, "--size", str(size),
                    "--val-fraction", str(val_fraction), "--shard-size", str(shard_size), "--overwrite"],
                   check=True, cwd=ROOT)


SOURCES = {"cartoon": ensure_synthetic_shards, "avatars": ensure_avatar_shards}
SHARD = 500  # images per shard: every training set is whole shards
QUICK = {"sizes": [32, 64], "kimg": 0.064, "n": 16, "images": 160, "shard": 32, "val_fraction": 0.2, "ada_kimg": 0.05,
         "set": ["model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16", "data.workers=0",
                 "log.every_steps=1"]}
SCORES = ("fid", "kid", "precision", "recall")


def training_shards(pack: str, images: int) -> str:
    """data.shards for the first `images` training images of the pack: its first train shards,
    '::'-joined (their counts come from the pack's dataset.json). SystemExit when the pack holds
    fewer or its shards do not add up to exactly that many."""
    from facegan.data.manifest import read_manifest, split_shards

    picked, total = [], 0
    for path, count in split_shards(pack, read_manifest(pack), "train"):
        if total >= images:
            break
        picked.append(path)
        total += count
    if total != images:
        raise SystemExit(f"small_data: {pack} cannot give exactly {images} training images in whole shards "
                         f"(got {total}); pack it with a shard size that divides every --sizes entry")
    return "::".join(picked)


def _shown(path: str) -> str:
    """A path inside the repository relative to it (results name no machine's directories)."""
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else os.path.basename(path)


def final_p(run_dir: str):
    from facegan.train.tracking import read_metrics

    rows = [r for r in read_metrics(os.path.join(run_dir, "metrics.jsonl")) if "ada_p" in r]
    return rows[-1]["ada_p"] if rows else None


@torch.no_grad()
def d_outputs(run_dir: str, train_spec: str, pack: str, n: int = 1000) -> tuple:
    """Mean sigmoid(D(x)) of the run's final D on up to n of its training images and on n held-out
    val images: the overfitting signal of Karras et al. 2020 (Fig. 1b). A D that has memorised its
    training set scores those images far above real images it never saw. D runs in train mode
    (BatchNorm on each batch of 250 reals alone, as it saw reals while training)."""
    from facegan.config import load_config
    from facegan.data.loader import eval_loader
    from facegan.data.shardset import resolve_shards
    from facegan.images import to_unit_range
    from facegan.models import build_models
    from facegan.train import checkpoint as ckpt

    cfg = load_config(os.path.join(run_dir, "config.yaml"))
    _, D = build_models(cfg.model)
    newest = ckpt.list_checkpoints(os.path.join(run_dir, "checkpoints"))[0]
    ckpt.load_network(D, os.path.join(newest, "D.safetensors"))
    D.train()

    def mean_output(spec, split):
        total, count = 0.0, 0
        for batch in eval_loader(resolve_shards(spec, split, cfg.model.resolution), 250, limit=n):
            out = D(to_unit_range(batch, "cpu", flip=False))
            total += torch.sigmoid(out.float()).sum().item()
            count += batch.shape[0]
        return total / max(count, 1)

    return mean_output(train_spec, "train"), mean_output(pack, "val")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Budget {result['kimg']} kimg per run, seeds {', '.join(map(str, result['seeds']))}, "
             f"{result['data']}, scores with n = {result['n']} against the val split; {m['device']} "
             f"({m['cpu']}, {m['cores']} cores). img/s cost: throughput lost against no augmentation at that size.",
             "", "| train images | augmentation | FID | KID x 1000 | precision | recall | final p | img/s "
                 "| img/s cost |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, row in result["rows"].items():
        p = "-" if row.get("ada_p") is None else f"{row['ada_p']:.3f}"
        cost = "-" if row.get("img_s_cost") is None else f"{100 * row['img_s_cost']:.0f}%"
        lines.append(f"| {row['images']} | {row['augment']} | {row['fid']:.2f} | {1000 * row['kid']:.1f} | "
                     f"{row['precision']:.3f} | {row['recall']:.3f} | {p} | {row['img_per_s']:.0f} | {cost} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.yaml", help="the recipe every run starts from")
    ap.add_argument("--data", choices=sorted(SOURCES), default="cartoon",
                    help="the face source: facegan's synthetic cartoons, or Multiavatar avatars (a source facegan "
                         "did not write: bench/render_avatars.py, needs the avatars extra)")
    ap.add_argument("--shards", help="the pack (default bench/out/<data>32-small, made here when missing: 11200 "
                                     "faces, 10%% val, shards of 500)")
    ap.add_argument("--sizes", default="500,1000,2000,5000,10000", help="training set sizes (multiples of 500)")
    ap.add_argument("--augment", default=",".join(AUGMENTS), help=f"comma list of {', '.join(AUGMENTS)}")
    ap.add_argument("--kimg", type=float, default=200, help="training budget of every run")
    ap.add_argument("--ada-kimg", type=float, default=100,
                    help="train.ada_kimg of the ADA runs (p can go 0 -> 1 in this many kimg)")
    ap.add_argument("--n", type=int, default=1000, help="generated images scored (and val images, at most)")
    ap.add_argument("--seeds", default="0", help="comma list of training seeds; rows give the mean over them")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run")
    ap.add_argument("--inception-weights", help="FID Inception weights file (default: facegan's)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", "small_data"))
    ap.add_argument("--out", help="result JSON (default bench/results/small_data-<cpu|gpu>.json)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny pack, sizes 32 and 64 (unless --sizes), tiny model, a few steps: the bench end to end")
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes and --seeds take comma lists of integers")
    augments = [a.strip() for a in args.augment.split(",") if a.strip()]
    unknown = [a for a in augments if a not in AUGMENTS]
    if unknown:
        ap.error(f"--augment: unknown {', '.join(unknown)}; choose from {', '.join(AUGMENTS)}")
    images, shard, val_fraction, extra = 11200, SHARD, 0.1, list(args.set)
    args.shards = args.shards or os.path.join(ROOT, "bench", "out", f"{args.data}32-small")
    if args.quick:
        if args.sizes == ap.get_default("sizes"):
            sizes = QUICK["sizes"]
        args.kimg, args.n, args.ada_kimg = QUICK["kimg"], QUICK["n"], QUICK["ada_kimg"]
        images, shard, val_fraction = QUICK["images"], QUICK["shard"], QUICK["val_fraction"]
        extra = QUICK["set"] + extra
        if args.shards == os.path.join(ROOT, "bench", "out", f"{args.data}32-small"):
            args.shards += "-quick"

    sys.path.insert(0, ROOT)
    import torch

    from facegan.eval.features import InceptionFeatures
    from facegan.eval.generator_io import load_generator
    from facegan.eval.scoring import score
    from facegan.io import write_json_atomic

    SOURCES[args.data](args.shards, images, 32, val_fraction=val_fraction, shard_size=shard)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or os.path.join(RESULTS, f"small_data-{'gpu' if device == 'cuda' else 'cpu'}.json")
    extractor = InceptionFeatures(args.inception_weights, log=print).to(device).eval()
    result = {"benchmark": "small_data", "machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "kimg": args.kimg, "ada_kimg": args.ada_kimg, "n": args.n, "seeds": seeds, "config": args.config,
              "set": extra, "data": f"{_shown(args.shards)} (32x32, shards of {shard})", "rows": {}}
    jobs = [(size, aug, seed) for size in sizes for aug in augments for seed in seeds]
    runs = {}
    for i, (size, aug, seed) in enumerate(jobs, 1):
        what, overrides = AUGMENTS[aug]
        overrides = overrides + ([f"train.ada_kimg={args.ada_kimg}"] if aug == "ada" else [])
        run_dir = os.path.join(args.workdir, f"{size}-{aug}-seed{seed}")
        print(f"[{i}/{len(jobs)}] {size} images, {what}, seed {seed}: training {args.kimg} kimg", flush=True)
        wall, speed = train_run(f"{size}-{aug}", run_dir, args.config, training_shards(args.shards, size), args.kimg,
                                seed, [*overrides, *extra])
        G, _ = load_generator(run_dir, device=device)
        scores = score(G, args.shards, "val", args.n, extractor, device, metrics=("fid", "kid", "prdc"), seed=12345)
        run = {k: scores[k] for k in SCORES + ("kid_std",)}
        d_train, d_val = d_outputs(run_dir, training_shards(args.shards, size), args.shards, min(args.n, size))
        run.update(seed=seed, train_wall_s=round(wall, 1), img_per_s=round(speed, 1), ada_p=final_p(run_dir),
                   D_train=round(d_train, 4), D_val=round(d_val, 4))
        runs.setdefault((size, aug), []).append(run)
        print(f"    FID {run['fid']:.2f}  KID {run['kid']:.5f}  D(train) {d_train:.3f}  D(val) {d_val:.3f}  "
              f"precision {run['precision']:.3f}  "
              f"recall {run['recall']:.3f}  {speed:.0f} img/s" + (f"  p {run['ada_p']:.3f}" if run["ada_p"] is not None
                                                                  else ""), flush=True)
    for (size, aug), rs in runs.items():
        row = {"images": size, "augment": aug, "what": AUGMENTS[aug][0], "runs": rs, **aggregate(rs)}
        ps = [r["ada_p"] for r in rs if r["ada_p"] is not None]
        row["ada_p"] = sum(ps) / len(ps) if ps else None
        base = runs.get((size, "none"))
        row["img_s_cost"] = (1 - row["img_per_s"] / aggregate(base)["img_per_s"]) if base and aug != "none" else None
        result["rows"][f"{size}-{aug}"] = row
    write_json_atomic(out, result)
    print(markdown(result))
    print(f"small_data: wrote {out}")


if __name__ == "__main__":
    main()
