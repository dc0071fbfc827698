"""Packing throughput: facegan-shard against a plain single-process loop over the same JPEGs.

The baseline is what a notebook does: open -> RGB -> centre crop -> resize -> PNG encode -> tar,
one image after another. Both sides run as fresh processes (start-up and imports included), on
CelebA-size inputs (178x218 JPEGs, quality 90), interleaved round by round so that whatever else
the machine does weighs on every side alike; each side's best round counts. Two ratios:
facegan-shard (default workers) over the plain loop, and two workers over one.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import ROOT, report

# The plain loop, run with `python -c` so its start is a bare interpreter importing PIL.
BASELINE = r"""
import io, os, sys, tarfile
from PIL import Image

src, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
print(len(paths))
"""


def make_celeba_size_jpegs(root: str, n: int) -> str:
    """n JPEGs (quality 90) of 178x218 synthetic faces with a little noise: about the bytes and
    decode cost of CelebA's aligned images. Made once per count."""
    import numpy as np
    from PIL import Image

    from facegan.data.synthetic import cartoon_face

    marker = os.path.join(root, f".complete-{n}")
    if os.path.exists(marker):
        return root
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = os.path.join(root, f"{i // 1000:03d}")
        os.makedirs(sub, exist_ok=True)
        face = np.asarray(cartoon_face(i, seed=7).resize((178, 218)), dtype=np.int16)
        noisy = np.clip(face + rng.normal(0, 6, face.shape).astype(np.int16), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(os.path.join(sub, f"{i:06d}.jpg"), quality=90)
    open(marker, "w").close()
    return root


def timed(cmd) -> tuple:
    """(wall seconds, CPU seconds of the command and every process it started): the CPU time
    shows what a side costs even when other work on the machine stretches its wall time."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
               FACEGAN_PROGRESS="off")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each side's best counts")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "facegan-bench"))
    args = ap.parse_args()
    src = make_celeba_size_jpegs(os.path.join(args.workdir, f"celeba-size-{args.images}"), args.images)
    out = os.path.join(args.workdir, "packed")

    def shard(*extra):
        return [sys.executable, "-m", "facegan.cli.shard", src, "--out", out, "--size", str(args.size),
                "--overwrite", *extra]

    sides = {"plain_loop": [sys.executable, "-c", BASELINE, src, os.path.join(args.workdir, "baseline.tar"),
                            str(args.size)],
             "facegan": shard(), "facegan_1_worker": shard("--workers", "1"),
             "facegan_2_workers": shard("--workers", "2")}
    best = {name: (float("inf"), 0.0) for name in sides}
    for _ in range(args.rounds):
        for name, cmd in sides.items():
            best[name] = min(best[name], timed(cmd))
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    best, cpu = {name: wall for name, (wall, _) in best.items()}, {name: c for name, (_, c) in best.items()}
    figures = {"images": args.images, "size": args.size, "cores": os.cpu_count(), "rounds": args.rounds,
               "load_average_after": round(load, 2),
               **{f"{name}_s": round(s, 2) for name, s in best.items()},
               **{f"{name}_cpu_s": round(c, 2) for name, c in cpu.items()},
               "two_workers_over_one": round(best["facegan_1_worker"] / best["facegan_2_workers"], 3)}
    report("pack", figures, "speedup_vs_single_process_loop", best["plain_loop"] / best["facegan"])


if __name__ == "__main__":
    main()
