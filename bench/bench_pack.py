"""Packing throughput: facegan-shard (parallel) vs a plain single-process loop on the same JPEGs.

The baseline is what a notebook does: open -> RGB -> centre crop -> resize -> PNG encode -> tar,
one image after another.
"""

import argparse
import io
import os
import shutil
import tarfile
import tempfile
import time

from common import make_jpeg_folder, report

from facegan.data.packer import PackOptions, pack
from facegan.data.sources import open_source


def baseline(src: str, out: str, size: int) -> int:
    from PIL import Image

    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith(".jpg"))
    with tarfile.open(out, "w") as tf:
        for i, p in enumerate(paths):
            img = Image.open(p).convert("RGB")
            w, h = img.size
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            img = img.resize((size, size), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            info = tarfile.TarInfo(f"{i:08d}.png")
            info.size = buf.tell()
            buf.seek(0)
            tf.addfile(info, buf)
    return len(paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "facegan-bench"))
    args = ap.parse_args()
    src = make_jpeg_folder(os.path.join(args.workdir, f"jpegs-{args.images}"), args.images)
    out = os.path.join(args.workdir, "packed")

    t = time.perf_counter()
    n = baseline(src, os.path.join(args.workdir, "baseline.tar"), args.size)
    base = n / (time.perf_counter() - t)

    t = time.perf_counter()
    pack(open_source(src), out, PackOptions(size=args.size, overwrite=True, val_fraction=0.0))
    ours = n / (time.perf_counter() - t)
    shutil.rmtree(out, ignore_errors=True)
    report("pack", {"images": n, "size": args.size, "workers": os.cpu_count(),
                    "baseline_images_per_s": round(base, 1), "facegan_images_per_s": round(ours, 1)},
           "speedup_vs_single_process_loop", ours / base)


if __name__ == "__main__":
    main()
