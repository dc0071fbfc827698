"""Small datasets: how the scores fall as the training set shrinks, and what augmenting D's inputs
gives back (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data").

One pack of faces at 32x32 in shards of 500: facegan's synthetic cartoons (facegan-shard
synthetic:cartoon), or with --data avatars a source facegan did not write (Multiavatar avatars,
bench/render_avatars.py, packed from a PNG folder as a user's collection is):
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
    python bench/small_data.py --data avatars --sizes 1000,10000 --augment none,ada --kimg 400
    python bench/small_data.py --quick                          # the wiring in a minute or two; numbers meaningless

The fine-tuning row: --data nohats trains a source on cartoons without a hat, then --data hats
trains on 1k faces with a hat (which the source never saw) from scratch and from the source:

    python bench/small_data.py --data nohats --sizes 10000 --augment none --kimg 200 --workdir bench/out/hats
    python bench/small_data.py --data hats --sizes 1000 --augment ada --kimg 100
    python bench/small_data.py --data hats --sizes 1000 --augment ada --kimg 100 \
        --set run.init=bench/out/hats/10000-none-seed0 train.freeze_d=2 --out bench/results/small_data-hats-finetune.json

bench/small_data_figure.py pools result files into the README's table and figure.

Writes bench/results/small_data-<cpu|gpu>.json (--out) and prints the Markdown table; rows measured
earlier under the same setup are kept, so one size, augmentation or seed can be re-run alone.
"""

import os
import sys

import torch

from common import ROOT, ensure_synthetic_shards
from runner import SCORES, Job, add_run, default_out, options, parse, pick, run_jobs, shown, start, table

AUGMENTS = {
    "none": ("no augmentation", ["train.augment=none"]),
    "diffaug": ("DiffAugment color,translation,cutout", ["train.augment=color,translation,cutout"]),
    "ada": ("ADA (bgc + cutout, p steered to r_t = 0.6)", ["train.augment=ada"]),
}


def _pack_folder(folder: str, path: str, size: int, val_fraction: float, shard_size: int) -> None:
    import subprocess

    subprocess.run([sys.executable, "-m", "facegan.cli.shard", folder, "--out", path, "--size", str(size),
                    "--val-fraction", str(val_fraction), "--shard-size", str(shard_size), "--overwrite"],
                   check=True, cwd=ROOT)


def ensure_avatar_shards(path: str, images: int, size: int, val_fraction: float, shard_size: int) -> None:
    """Renders `images` Multiavatar faces into bench/out/avatars-png (beside path, shared by every
    size) and packs them with facegan-shard as a user packs a folder; nothing when path already
    holds a dataset."""
    from render_avatars import render_folder

    if os.path.exists(os.path.join(path, "dataset.json")):
        return
    folder = render_folder(os.path.join(os.path.dirname(path.rstrip(os.sep)), "avatars-png"), images)
    _pack_folder(folder, path, size, val_fraction, shard_size)


SPLIT_FACES = 14000  # cartoon faces drawn for the hat split: about 2500 with a hat, 11500 without
HAT_VAL = 0.45  # of the faces with a hat held out: about 1120 val, 1380 train (the row takes 1000)


def split_source(with_hat: bool):
    """A SOURCES entry: the synthetic cartoons with a hat (with_hat) or without one, drawn into
    bench/out/cartoon-hat-png by bench/cartoon_split.py and packed as a folder. The two packs share
    no face, so a generator trained on one has never seen the other."""
    def ensure(path: str, images: int, size: int, val_fraction: float, shard_size: int) -> None:
        from cartoon_split import render_split

        if os.path.exists(os.path.join(path, "dataset.json")):
            return
        root = render_split(os.path.join(os.path.dirname(path.rstrip(os.sep)), "cartoon-hat-png"), SPLIT_FACES)
        folder = os.path.join(root, "with-hat" if with_hat else "without-hat")
        _pack_folder(folder, path, size, HAT_VAL if with_hat else val_fraction, shard_size)

    return ensure


SOURCES = {"cartoon": ensure_synthetic_shards, "avatars": ensure_avatar_shards,
           "hats": split_source(True), "nohats": split_source(False)}
SHARD = 500  # images per shard: every training set is whole shards
QUICK = {"sizes": "32,64", "shard": 32, "ada_kimg": 0.05}  # besides runner.QUICK


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
            logits = getattr(out, "logits", out)  # D's outputs as a named tuple, or the bare logits
            total += torch.sigmoid(logits.float()).sum().item()
            count += batch.shape[0]
        return total / max(count, 1)

    return mean_output(train_spec, "train"), mean_output(pack, "val")


def markdown(result: dict) -> str:
    m = result["machine"]
    rows = sorted(result["rows"].values(), key=lambda r: (r["images"], list(AUGMENTS).index(r["augment"])))
    cells = [[row["images"], row["augment"], f"{row['fid']:.2f}", f"{1000 * row['kid']:.1f}", f"{row['precision']:.3f}",
              f"{row['recall']:.3f}", "-" if row.get("ada_p") is None else f"{row['ada_p']:.3f}",
              f"{row['img_per_s']:.0f}", "-" if row.get("img_s_cost") is None else f"{100 * row['img_s_cost']:.0f}%"]
             for row in rows]
    lines = [f"Budget {result['kimg']} kimg per run, seeds {', '.join(map(str, result['seeds']))}, "
             f"{result['data']}, scores with n = {result['n']} against the val split; {m['device']} "
             f"({m['cpu']}, {m['cores']} cores). img/s cost: throughput lost against no augmentation at that size.", ""]
    return "\n".join(lines + table(["train images", "augmentation", "FID", "KID x 1000", "precision", "recall",
                                     "final p", "img/s", "img/s cost"], cells))


def measure(args):
    """Scores a run, and reads what only this bench asks: D's outputs on its training images and on
    held-out ones, and ADA's final p."""
    def scores(job, G, scorer):
        got = scorer(G, ("fid", "kid", "prdc"))
        size = int(job.row.split("-")[0])
        d_train, d_val = d_outputs(job.run_dir, job.shards, args.shards, min(args.n, size))
        print(f"    D(train) {d_train:.3f}  D(val) {d_val:.3f}", flush=True)
        return dict({k: got[k] for k in SCORES[:4] + ("kid_std",)}, D_train=round(d_train, 4), D_val=round(d_val, 4),
                    ada_p=final_p(job.run_dir))

    return scores


def record(row: dict, job: Job, run: dict) -> dict:
    """A row: its runs' means (runner.add_run), its size and augmentation, and ADA's mean final p."""
    size, aug = job.row.split("-")
    new = dict(add_run(row, job, run), images=int(size), augment=aug)
    ps = [r["ada_p"] for r in new["runs"] if r["ada_p"] is not None]
    return dict(new, ada_p=sum(ps) / len(ps) if ps else None)


def costs(result: dict) -> None:
    """Each row's img/s lost against no augmentation at its size (None for no augmentation itself)."""
    rows = result["rows"]
    for row in rows.values():
        base = rows.get(f"{row['images']}-none")
        row["img_s_cost"] = 1 - row["img_per_s"] / base["img_per_s"] if base and row["augment"] != "none" else None


def main():
    ap = options(__doc__, shards=None, workdir="small_data", out="small_data-<cpu|gpu>.json", kimg=200, images=11200)
    ap.add_argument("--data", choices=sorted(SOURCES), default="cartoon",
                    help="the face source: facegan's synthetic cartoons, Multiavatar avatars (a source facegan "
                         "did not write: bench/render_avatars.py, needs the avatars extra), or the cartoons "
                         "split by label for the fine-tuning row: hats (faces with a hat) and nohats (the rest; "
                         "bench/cartoon_split.py)")
    ap.add_argument("--sizes", default="500,1000,2000,5000,10000", help="training set sizes, multiples of 500 (default %(default)s)")
    ap.add_argument("--augment", default=",".join(AUGMENTS), help=f"comma list of {', '.join(AUGMENTS)} (default all)")
    ap.add_argument("--ada-kimg", type=float, default=100,
                    help="train.ada_kimg of the ADA runs (p can go 0 -> 1 in this many kimg)")
    args = parse(ap, markdown)
    shard = QUICK["shard"] if args.quick else SHARD
    if args.quick:
        args.sizes = QUICK["sizes"] if args.sizes == ap.get_default("sizes") else args.sizes
        args.ada_kimg = QUICK["ada_kimg"] if args.ada_kimg == ap.get_default("ada_kimg") else args.ada_kimg
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error("--sizes takes a comma list of integers")
    augments = pick(ap, args.augment, AUGMENTS, "augmentation")
    args.shards = args.shards or os.path.join(ROOT, "bench", "out", f"{args.data}{args.size}-small"
                                              + ("-quick" if args.quick else ""))

    SOURCES[args.data](args.shards, args.images, args.size, val_fraction=args.val_fraction, shard_size=shard)
    out = args.out or default_out("small_data-<device>.json")
    setup = {"kimg": args.kimg, "ada_kimg": args.ada_kimg, "n": args.n, "config": args.config, "set": args.set,
             "data": f"{shown(args.shards)} ({args.size}x{args.size}, shards of {shard})"}
    result = start("small_data", out, setup, rows="rows")
    jobs = [Job(f"{size}-{aug}", seed, AUGMENTS[aug][0],
                AUGMENTS[aug][1] + ([f"train.ada_kimg={args.ada_kimg}"] if aug == "ada" else []),
                os.path.join(args.workdir, f"{size}-{aug}-seed{seed}"), shards=training_shards(args.shards, size))
            for size in sizes for aug in augments for seed in args.seeds]
    result["seeds"] = sorted({s for row in result["rows"].values() for s in row["seeds"]} | set(args.seeds))
    run_jobs(args, jobs, result, out, measure(args), markdown, record=record, rows="rows", tidy=costs)


if __name__ == "__main__":
    main()
