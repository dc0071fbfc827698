"""facegan-sample: images from a trained generator, as a grid, a folder, or an interpolation."""

import argparse
import os
import sys

import torch

from ..errors import UserError, cli_entry
from ..io import lock_outputs
from ..log import get_logger
from ..outputs import (ANIMATION_FORMATS, GRID_FORMATS, VIDEO_FORMATS, check_output, image_format, is_facegan_image,
                       save_animation, save_image, save_video)
from ..sampling import (grid_uint8, parse_psis, parse_request, sample_images, toggle_images, truncation_row,
                        walk_frames, zoom)

log = get_logger("facegan-sample")


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  facegan-sample runs/demo --n 64 --out grid.png
  facegan-sample runs/demo/checkpoints/step-00003907 --n 500 --outdir faces/
  facegan-sample generator.safetensors --interpolate 24 --n 4 --out walk.gif
  facegan-sample generator.safetensors --interpolate 24 --n 4 --out walk.mp4
  facegan-sample runs/demo --n 16 --truncation 0.7 --out typical.png
  facegan-sample runs/demo --n 16 --truncation-row 1,0.8,0.6,0.4 --out row.png
  facegan-sample runs/attr --n 16 --attr glasses=1,hat=0 --out glasses.png
  facegan-sample runs/attr --n 8 --toggle glasses --zoom 3 --out glasses-off-on.png
  facegan-sample runs/hair --n 16 --class mohawk --out mohawk.png

A conditional generator (trained with model.condition) draws the labels of each image as its
training data has them; --attr and --class fix the ones named and leave the rest as drawn.

The format follows the extension: grids .png, .jpg, .webp; --interpolate .gif (an animation),
.mp4 (H.264) or .png/.jpg/.webp (a strip). An existing file is replaced only if facegan wrote it
(a re-run of the same command) or with --overwrite.
""")
    p.add_argument("source", help="checkpoint dir, run dir (newest checkpoint) or exported .safetensors")
    p.add_argument("--n", type=int, default=64, help="images (with --interpolate: seeds to walk through)")
    p.add_argument("--out", help="grid image (.png/.jpg/.webp), or .gif/.mp4/.png for --interpolate")
    p.add_argument("--outdir", help="write one PNG per image here instead of a grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda, cuda:N or mps (default: cuda when present)")
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
    p.add_argument("--attr", metavar="NAME=0|1,...",
                   help="conditional generators: attributes to fix, e.g. eyeglasses=1,wearing_hat=0")
    p.add_argument("--class", dest="klass", metavar="K",
                   help="class-conditional generators: the class, by index or name")
    p.add_argument("--toggle", metavar="NAME[,NAME...]",
                   help="conditional generators: a grid of the same --n faces with attribute NAME off (one row) "
                        "and on (the next); several names: a pair of rows each; the class label: one row per class")
    p.add_argument("--zoom", type=int, default=1, metavar="K",
                   help="write every image K times larger, each pixel a K x K block (nearest neighbour), so that "
                        "32x32 faces can be looked at; the faces are the same (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files facegan did not write")
    return p


def check_device(name: str) -> torch.device:
    """torch.device for --device, or UserError when it is malformed or not on this machine."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device name (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"--device {name}: no CUDA device on this machine; use --device cpu")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name}: facegan-sample runs on cpu, cuda or mps")
    return device


def _outdir_names(args) -> list:
    return [os.path.join(args.outdir, f"{args.seed:04d}-{i:06d}.png") for i in range(args.n)]


def check_outputs(args) -> None:
    """Every output path is judged before any work: a UserError leaves the disk untouched."""
    if not args.out and not args.outdir:
        raise UserError("give --out FILE or --outdir DIR")
    if args.n < 1:
        raise UserError(f"--n {args.n}: must be at least 1")
    if not 1 <= args.zoom <= 16:
        raise UserError(f"--zoom {args.zoom}: must be 1 to 16")
    if args.interpolate < 0:
        raise UserError(f"--interpolate {args.interpolate}: must be at least 1 (0: no interpolation)")
    if args.out and os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: is a directory, expected a file path (or use --outdir)")
    if args.interpolate:
        if not args.out or args.outdir:
            raise UserError("--interpolate writes one file: --out walk.gif (or walk.mp4, or a .png strip), not --outdir")
        image_format(args.out, {**ANIMATION_FORMATS, **VIDEO_FORMATS, **GRID_FORMATS}, "an interpolation")
    elif args.out:
        image_format(args.out, GRID_FORMATS, "a grid")
    if args.out:
        check_output(args.out, args.overwrite, is_facegan_image)
    if args.outdir:
        if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
            raise UserError(f"--outdir {args.outdir}: exists and is not a directory")
        for path in _outdir_names(args):
            check_output(path, args.overwrite, is_facegan_image)


@cli_entry("facegan-sample")
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_outputs(args)
    held = lock_outputs([args.out, args.outdir])  # noqa: F841 (held while writing; released at return)
    if not 0 < args.truncation <= 1:
        raise UserError(f"--truncation {args.truncation}: must be in (0, 1]")
    device = check_device(args.device)
    from ..eval.generator_io import load_generator

    psis = parse_psis(args.truncation_row) if args.truncation_row else None
    g, _ = load_generator(args.source, raw=args.raw, device=device)
    cond = getattr(g, "condition", None)
    asked = parse_request(cond, args.attr, args.klass)
    if args.toggle:
        if cond is None:
            raise UserError("--toggle: this generator is unconditional (trained with model.condition=none)")
        if not args.out or args.outdir or args.interpolate or psis:
            raise UserError("--toggle writes one grid: --out grid.png (not with --outdir, --interpolate or --truncation-row)")
        names = [name for name in args.toggle.split(",") if name.strip()]
        images, captions = toggle_images(g, names, args.n, args.seed, args.truncation, args.batch_size, asked)
        save_image(zoom(grid_uint8(images, nrow=args.n), args.zoom), args.out)
        log.info(f"wrote {len(captions)} rows of the same {args.n} faces "
                 f"({', '.join(captions)}, top to bottom) to {args.out}")
        return 0
    if psis:
        if not args.out:
            raise UserError("--truncation-row writes --out row.png")
        row = truncation_row(g, psis, args.n, args.seed, args.batch_size, args.nrow, asked)
        save_image(zoom(row, args.zoom), args.out)
        log.info(f"wrote {len(psis)} grids of {args.n} images (psi {args.truncation_row}) to {args.out}")
        return 0
    if args.interpolate:
        frames = zoom(walk_frames(g, args.n, args.seed, args.interpolate, args.truncation, args.batch_size, asked),
                      args.zoom)
        ext = os.path.splitext(args.out)[1].lower()
        if ext in VIDEO_FORMATS:
            fps = 12.0
            count, h, w = save_video(frames, args.out, fps)
            written = f"{count} frames of H.264 video ({w}x{h}, {fps:g} fps)"
        elif ext in ANIMATION_FORMATS:
            save_animation(list(frames), args.out)
            written = f"{len(frames)} frames"
        else:
            save_image(grid_uint8(frames, nrow=len(frames)), args.out)
            written = f"a strip of {len(frames)} frames"
        log.info(f"wrote {written} to {args.out}")
        return 0
    images = sample_images(g, args.n, args.seed, args.truncation, batch_size=args.batch_size, asked=asked)
    if asked:
        log.info(f"conditioned on {cond.describe(asked) if cond.kind == 'class' else args.attr}; "
                 f"other labels drawn as in the training data")
    if args.outdir:
        os.makedirs(args.outdir, exist_ok=True)
        from ..progress import progress

        for path, im in progress(list(zip(_outdir_names(args), images)), desc="writing images", unit="img",
                                 disable=len(images) < 200):  # a few images take no time to say
            save_image(zoom(im, args.zoom), path)
        log.info(f"wrote {len(images)} images to {args.outdir}")
    if args.out:
        nrow = args.nrow or max(1, int(round(len(images) ** 0.5)))
        save_image(zoom(grid_uint8(images, nrow=nrow), args.zoom), args.out)
        log.info(f"wrote a grid of {len(images)} image{'s' if len(images) != 1 else ''} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
