"""facegan-shard: pack face images into WebDataset tar shards with a manifest."""

import argparse
import os
import shlex
import sys

from ..data.intake import Limits
from ..data.labels import BINARY, CLASS
from ..data.packer import PackOptions, pack, skip_counts
from ..data.sources import open_source
from ..errors import UserError, cli_entry

EPILOG = """sources:
  DIR                 images found recursively (jpg png webp bmp gif tiff)
  DIR with img_align_celeba/ or img_align_celeba_png/   CelebA (JPEG or PNG release); its
                      official partition gives the splits, the face box the crop
  FILE.zip | FILE.tar[.gz]     an archive of images
  FILE.parquet | DIR of parquet   Hugging Face parquet with an image column
  hf:NAME[:SPLIT]     a Hugging Face dataset through the datasets library
  synthetic:cartoon   built-in procedural cartoon faces (--limit sets the count)

labels (stored in each sample's .json and summed up in dataset.json; --labels none packs none):
  CelebA              the 40 attributes of list_attr_celeba.txt or .csv, when present;
                      images the file does not name are skipped as unlabeled
  DIR --labels folders   the class is the sub-folder of DIR holding the image (ImageFolder);
                      images directly in DIR are skipped as unlabeled
  parquet, hf: --label-columns A,B   those columns: bool (binary), ClassLabel (its classes),
                      integers (binary when 0/1 or -1/1, else one class per value), strings
                      (one class per value); rows with a null there are skipped as unlabeled
  synthetic:cartoon   the attributes each face is drawn with: glasses, hat, beard, moustache,
                      blush (binary), hair (6 styles) and mouth (6 kinds)

examples:
  facegan-shard synthetic:cartoon --out shards/cartoon64 --size 64 --limit 20000
  facegan-shard data/pets --labels folders --out shards/pets64
  facegan-shard data/faces.parquet --label-columns smiling,age_group --out shards/faces64
"""


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-shard", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="what to pack (see sources below)")
    p.add_argument("--out", required=True, help="output directory for shards and dataset.json")
    p.add_argument("--size", type=int, default=64, help="output resolution N (N x N), 8..1024 (default 64)")
    p.add_argument("--crop", choices=["center", "celeba", "none"], default=None,
                   help="square crop before resizing (default: celeba for CelebA, else center)")
    p.add_argument("--format", default="png", choices=["png", "jpg", "webp", "npy"],
                   help="image encoding (default png; npy: raw pixels, fastest to load, ~2x larger)")
    p.add_argument("--quality", type=int, default=95, help="jpg/webp quality (default 95; webp 100 = lossless)")
    p.add_argument("--shard-size", type=int, default=2000, help="images per shard (default 2000)")
    p.add_argument("--val-fraction", type=float, default=0.02,
                   help="held out as the val split when the source has none (default 0.02)")
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes (default: one per usable core; never more)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed, and the synthetic source's seed")
    p.add_argument("--limit", type=int, default=None, help="use at most N inputs (synthetic: how many)")
    p.add_argument("--min-side", type=int, default=0,
                   help="skip images whose short side is under N pixels (default 0: keep all, upscaling small ones)")
    p.add_argument("--max-megapixels", type=float, default=64,
                   help="skip images that would decode to more pixels than this, checked on the header "
                        "before decoding: the decompression-bomb guard (default 64)")
    p.add_argument("--max-file-mb", type=int, default=512, help="skip input files larger than this (default 512)")
    p.add_argument("--dedupe", action="store_true", help="drop images identical after resizing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--labels", choices=["auto", "none", "folders"], default="auto",
                   help="per-image labels to store (see labels below). auto (default): CelebA's attribute "
                        "file when present, the synthetic faces' attributes, parquet/hf: columns named by "
                        "--label-columns; none: no labels; folders: a folder's class sub-folders")
    p.add_argument("--label-columns", default=None, metavar="A,B",
                   help="parquet and hf: sources: the columns to store as labels, comma-separated")
    return p


def describe_labels(fields, source) -> str:
    """'5 fields (binary: glasses, hat; class: hair (6)) from SOURCE', or 'none'."""
    if not fields:
        return "none"
    kinds = []
    binary = [f.name for f in fields if f.kind == BINARY]
    if binary:
        kinds.append("binary: " + ", ".join(binary))
    classes = [f"{f.name} ({len(f.classes)})" for f in fields if f.kind == CLASS]
    if classes:
        kinds.append("class: " + ", ".join(classes))
    n = len(fields)
    return f"{n} field{'s' if n != 1 else ''} ({'; '.join(kinds)}) from {source}"


def print_summary(out, result, manifest_path):
    """The command's output proper (its indented `key: value` lines are read by scripts): printed,
    not logged; the notes said while packing went to stderr."""
    n = sum(result.counts.values())
    rate = result.images_in / result.seconds if result.seconds else 0.0
    splits = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    print(f"facegan-shard: wrote {n} images ({splits}) to {out} in {result.seconds:.1f}s "
          f"({rate:.0f} images/s)")
    # What was chosen for the user, once each (also dataset.json's "notes"; the source's own
    # warnings were printed when packing began).
    for key in ("split", "crop", "upscaled"):
        if key in result.notes:
            print(f"  {key}: {result.notes[key]}")
    print(f"  workers: {result.workers_note}")
    reasons = skip_counts(result.skipped)
    print(f"  skipped: {len(result.skipped)}" + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) + ")" if reasons else ""))
    for s in result.skipped[:5]:
        print(f"    {s['source']}: {s['reason']}")
    if len(result.skipped) > 5:
        print(f"    ... {len(result.skipped) - 5} more listed in {manifest_path}")
    print(f"  duplicates dropped: {result.duplicates}")
    print(f"  labels: {describe_labels(result.label_fields, result.label_source)}")
    print(f"  manifest: {manifest_path}")


@cli_entry("facegan-shard")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    if not 1 <= args.quality <= 100:
        raise UserError(f"--quality {args.quality}: must be in 1..100")
    for flag, value, lowest in (("--min-side", args.min_side, 0), ("--max-megapixels", args.max_megapixels, 1e-6),
                                ("--max-file-mb", args.max_file_mb, 1)):
        if value < lowest:
            raise UserError(f"{flag} {value:g}: must be at least {lowest:g}")
    limits = Limits(max_pixels=int(args.max_megapixels * 1e6), max_bytes=args.max_file_mb << 20,
                    min_side=args.min_side)
    label_columns = None
    if args.label_columns is not None:
        label_columns = [c.strip() for c in args.label_columns.split(",") if c.strip()]
        if not label_columns:
            raise UserError(f"--label-columns {args.label_columns!r}: names no column")
    source = open_source(args.source, seed=args.seed, limit=args.limit, labels=args.labels,
                         label_columns=label_columns)
    opts = PackOptions(size=args.size, crop=args.crop, image_format=args.format, quality=args.quality,
                       shard_size=args.shard_size, val_fraction=args.val_fraction, workers=args.workers,
                       seed=args.seed, limit=args.limit, dedupe=args.dedupe, overwrite=args.overwrite, limits=limits,
                       command=shlex.join(["facegan-shard", *(sys.argv[1:] if argv is None else argv)]))
    result = pack(source, args.out, opts)
    print_summary(args.out, result, os.path.join(args.out, "dataset.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
