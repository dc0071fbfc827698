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
  facegan-sample generator.safetensors --interpolate 24 --n 4 --out walk.gif   (or walk.mp4: H.264)
  facegan-sample runs/demo --n 16 --truncation 0.7 --out typical.png
  facegan-sample runs/demo --n 16 --truncation-row 1,0.8,0.6,0.4 --out row.png
""")
    p.add_argument("source", help="checkpoint dir, run dir (newest checkpoint) or exported .safetensors")
    p.add_argument("--n", type=int, default=64, help="images (with --interpolate: seeds to walk through)")
    p.add_argument("--out", help="grid image (.png/.jpg), or .gif/.mp4/.png for --interpolate")
    p.add_argument("--outdir", help="write one PNG per image here instead of a grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--raw", action="store_true", help="the trained generator instead of its EMA")
    p.add_argument("--nrow", type=int, default=0, help="grid columns (default: square)")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help="K frames between consecutive seeds (spherical interpolation)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="truncation in z: each code z ~ N(0, I) is scaled by PSI in (0, 1] toward 0, the mean "
                        "of its prior (StyleGAN's truncation trick applied in z: a DCGAN has no mapping "
                        "network). Smaller PSI: more typical faces, less variety; 1 (default): plain sampling")
    p.add_argument("--truncation-row", metavar="PSI,PSI,...",
                   help="write one grid of --n images per PSI, side by side, same seeds (e.g. 1,0.8,0.6,0.4)")
    return p


@cli_entry("facegan-sample")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.out and not args.outdir:
        raise UserError("give --out FILE or --outdir DIR")
    if args.n < 1:
        raise UserError(f"--n {args.n}: must be at least 1")
    if not 0 < args.truncation <= 1:
        raise UserError(f"--truncation {args.truncation}: must be in (0, 1]")
    from ..eval import explore
    from ..eval.generator_io import load_generator
    from ..latents import latents
    from ..train.samples import generate, save_grid

    psis = explore.parse_psis(args.truncation_row) if args.truncation_row else None
    g, info = load_generator(args.source, raw=args.raw, device=args.device)
    nz = info["architecture"]["nz"]
    if psis:
        if not args.out:
            raise UserError("--truncation-row writes --out row.png")
        explore.save_image(explore.truncation_row(g, psis, args.n, args.seed, args.batch_size, args.nrow), args.out)
        print(f"facegan-sample: wrote {len(psis)} grids of {args.n} images (psi {args.truncation_row}) to {args.out}")
        return 0
    if args.interpolate:
        if not args.out:
            raise UserError("--interpolate writes --out walk.gif (or walk.mp4, or a .png strip)")
        frames = explore.walk_frames(g, args.n, args.seed, args.interpolate, args.truncation, args.batch_size)
        print(f"facegan-sample: wrote {explore.write_walk(frames, args.out)} to {args.out}")
        return 0
    images = generate(g, latents(args.n, nz, args.seed, args.truncation), args.batch_size)
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
