"""A second face source facegan did not write: Multiavatar's procedural cartoon avatars (PyPI
`multiavatar`, Gie Katon; https://multiavatar.com/license), rendered to PNG with CairoSVG.

Why this library: it is on the package registry (nothing to download at run time), deterministic
(an avatar is the SHA-256 of its name), draws whole faces in a style unlike facegan's synthetic
cartoons (flat vector shapes, 16 characters x 3 colour themes for each of 6 parts: background,
clothes, head, mouth, eyes, top), and renders correctly with CairoSVG. python_avatars (Avataaars)
was tried first and dropped: CairoSVG draws its masked faces cut in half.

The avatars are disc-shaped; the corners outside the disc are filled white, as a photo's
background would be. Images are written as a folder of PNGs, the way a user's own collection
arrives, and packed with facegan-shard like one:

    pip install -e ".[avatars]"
    python bench/render_avatars.py --out bench/out/avatars-png --count 11200
    facegan-shard bench/out/avatars-png --out bench/out/avatars32 --size 32 --val-fraction 0.1

(bench/small_data.py --data avatars does both when the pack is missing.)
"""

import argparse
import io
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def render(name: str, size: int):
    """One avatar as a size x size RGB PIL image (white outside its disc). ImportError without
    the `avatars` extra."""
    import cairosvg
    from multiavatar.multiavatar import multiavatar
    from PIL import Image

    svg = multiavatar(name, None, None)  # (name, without background: no, version: latest)
    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size)
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    out = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    out.alpha_composite(rgba)
    return out.convert("RGB")


def render_folder(out: str, count: int, size: int = 128, prefix: str = "facegan-avatar") -> str:
    """Writes avatars `{prefix}-0` .. `{prefix}-{count-1}` as out/avatar-NNNNNN.png (each file
    written whole, then renamed); a marker file says the folder is complete, so a second call
    returns at once. Returns out."""
    from common import image_folder, save_png

    def write_one(i):
        path = os.path.join(out, f"avatar-{i:06d}.png")
        if not os.path.exists(path):  # an interrupted render resumes
            save_png(render(f"{prefix}-{i}", size), path)

    image_folder(os.path.join(out, f".complete-{count}-{size}"), count, "render_avatars", write_one)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    ap.add_argument("--count", type=int, default=11200, help="how many avatars (default 11200)")
    ap.add_argument("--size", type=int, default=128, help="rendered width and height in pixels (default 128)")
    args = ap.parse_args()
    if args.count < 1 or args.size < 8:
        ap.error("--count must be at least 1 and --size at least 8")
    sys.path.insert(0, ROOT)
    try:
        import cairosvg  # noqa: F401
        import multiavatar  # noqa: F401
    except (ImportError, OSError) as err:  # OSError: cairocffi without the system's libcairo
        raise SystemExit(f"render_avatars: needs the avatars extra (pip install -e \".[avatars]\"): {err}")
    render_folder(args.out, args.count, args.size)
    print(f"render_avatars: {args.count} avatars at {args.size}x{args.size} in {args.out}")


if __name__ == "__main__":
    main()
