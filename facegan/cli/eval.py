"""facegan-eval: FID and KID of a trained generator against reference shards.

FID/KID come from torchmetrics with torch-fidelity's Inception-v3 (the numbers match the
standard TensorFlow implementation). Reference features are cached beside the shards.
Run under `accelerate launch --num_processes N` to split the work across processes.
"""

import argparse
import json
import sys

import torch

from ..errors import UserError, cli_entry


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="checkpoint dir, run dir (newest checkpoint) or exported .safetensors")
    p.add_argument("--ref", required=True, help="reference dataset directory (facegan shards) or shard URLs")
    p.add_argument("--split", default="val", help="reference split (default val)")
    p.add_argument("--n", type=int, default=10000, help="images on each side (default 10000)")
    p.add_argument("--metrics", default="fid,kid", help="comma list of fid, kid")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=12345, help="seed of the generated images")
    p.add_argument("--raw", action="store_true", help="score the trained generator instead of its EMA")
    p.add_argument("--inception-weights", help="path to the Inception weights (default: the library cache)")
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
    from ..eval.generator_io import load_generator
    from ..eval.scoring import score

    acc = Accelerator(cpu=not torch.cuda.is_available())
    G, info = load_generator(args.source, raw=args.raw, device=acc.device)
    from ..eval.scoring import open_reference

    open_reference(args.ref, args.split, G.resolution)  # fail fast on a resolution mismatch
    extractor = InceptionFeatures(args.inception_weights).to(acc.device).eval()
    result = score(G, args.ref, args.split, args.n, extractor, acc.device, metrics, args.batch_size,
                   args.seed, acc, log=acc.print)
    result["source"] = info["source"]
    if acc.is_main_process:
        parts = [f"FID {result['fid']:.3f}"] if "fid" in result else []
        if "kid" in result:
            parts.append(f"KID {result['kid']:.5f} ± {result['kid_std']:.5f}")
        print(f"facegan-eval: {', '.join(parts)}  (n_real {result['n_real']}, n_fake {result['n_fake']}, "
              f"extractor {result['extractor']}, ref {args.ref}:{args.split})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
