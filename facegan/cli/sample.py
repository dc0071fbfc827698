"""facegan-sample: images from a trained generator, as a grid, a folder, or an interpolation."""

import argparse
import os
import sys

import torch
from PIL import Image

from ..errors import UserError, cli_entry


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  facegan-sample runs/demo --n 64 --out grid.png
  facegan-sample runs/demo/checkpoints/step-00003907 --n 500 --outdir faces/
  facegan-sample generator.safetensors --interpolate 24 --n 4 --out walk.gif
""")
    p.add_argument("source", help="checkpoint dir, run dir (newest checkpoint) or exported .safetensors")
    p.add_argument("--n", type=int, default=64, help="images (with --interpolate: seeds to walk through)")
    p.add_argument("--out", help="grid image (.png/.jpg), or .gif/.png for --interpolate")
    p.add_argument("--outdir", help="write one PNG per image here instead of a grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--raw", action="store_true", help="the trained generator instead of its EMA")
    p.add_argument("--nrow", type=int, default=0, help="grid columns (default: square)")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help="K frames between consecutive seeds (spherical interpolation)")
    return p


@cli_entry("facegan-sample")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.out and not args.outdir:
        raise UserError("give --out FILE or --outdir DIR")
    if args.n < 1:
        raise UserError(f"--n {args.n}: must be at least 1")
    from ..eval.generator_io import load_generator, slerp
    from ..train.samples import generate, save_grid

    g, info = load_generator(args.source, raw=args.raw, device=args.device)
    nz = info["architecture"]["nz"]
    gen = torch.Generator().manual_seed(args.seed)
    if args.interpolate:
        if not args.out:
            raise UserError("--interpolate writes --out walk.gif (or a .png strip)")
        keys = torch.randn(max(args.n, 2), nz, generator=gen)
        frames = [slerp(keys[i], keys[i + 1], t / args.interpolate)
                  for i in range(len(keys) - 1) for t in range(args.interpolate)] + [keys[-1]]
        images = generate(g, torch.stack(frames)[:, :, None, None], args.batch_size)
        pics = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        if args.out.lower().endswith(".gif"):
            pics[0].save(args.out, save_all=True, append_images=pics[1:], duration=80, loop=0)
        else:
            save_grid(images, args.out, nrow=len(images))
        print(f"facegan-sample: wrote {len(pics)} interpolation frames to {args.out}")
        return 0
    z = torch.randn(args.n, nz, 1, 1, generator=gen)
    images = generate(g, z, args.batch_size)
    if args.outdir:
        os.makedirs(args.outdir, exist_ok=True)
        for i, im in enumerate(images):
            Image.fromarray(im.permute(1, 2, 0).numpy()).save(os.path.join(args.outdir, f"{args.seed:04d}-{i:06d}.png"))
        print(f"facegan-sample: wrote {len(images)} images to {args.outdir}")
    if args.out:
        nrow = args.nrow or max(1, int(round(len(images) ** 0.5)))
        save_grid(images, args.out, nrow=nrow)
        print(f"facegan-sample: wrote a grid of {len(images)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
