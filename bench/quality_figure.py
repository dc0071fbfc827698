"""The README's side-by-side of quality-table rows: each variant's last fixed-noise grid and the
real images, titled with their FID.

    python bench/quality_figure.py classic lr10-ema10-b32-beta0 --out docs/quality-100kimg.png
"""

import argparse
import glob
import json
import os

from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TITLE, GAP = 20, 14


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="rows of the quality table (their run dirs must exist)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out", "quality"))
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results", "quality-cpu-32.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "quality-100kimg.png"))
    args = ap.parse_args()
    with open(args.results) as f:
        rows = json.load(f)["variants"]
    panels = []
    for name in args.variants:
        grids = sorted(glob.glob(os.path.join(args.workdir, name, "samples", "fakes-*.png")))
        if not grids:
            raise SystemExit(f"quality_figure: no sample grid under {os.path.join(args.workdir, name)}")
        panels.append((f"{name}: FID {rows[name]['fid']:.0f}", Image.open(grids[-1]).convert("RGB")))
    reals = os.path.join(args.workdir, args.variants[0], "samples", "reals.png")
    panels.append(("real (training set)", Image.open(reals).convert("RGB")))
    w = sum(p.width for _, p in panels) + GAP * (len(panels) - 1)
    h = TITLE + max(p.height for _, p in panels)
    canvas = Image.new("RGB", (w, h), "white")
    draw, x = ImageDraw.Draw(canvas), 0
    for title, img in panels:
        draw.text((x + 2, 4), title, fill="black")
        canvas.paste(img, (x, TITLE))
        x += img.width + GAP
    canvas.save(args.out)
    print(f"quality_figure: wrote {args.out} ({w}x{h})")


if __name__ == "__main__":
    main()
