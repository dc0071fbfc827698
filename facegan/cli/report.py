"""facegan-report: loss curves, a progress GIF (and MP4), FID over kimg and an HTML page for a run.

A training writes its report itself when it ends; while it runs, its run directory is locked
and this command says who holds it."""

import argparse
import os
import sys

from ..errors import UserError, cli_entry
from ..log import get_logger

log = get_logger("facegan-report")


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-report", description=__doc__)
    p.add_argument("run_dir", help="a training run directory (runs/NAME)")
    p.add_argument("--mp4", action=argparse.BooleanOptionalAction, default=None,
                   help="also write progress.mp4, H.264 (default: when imageio-ffmpeg is installed)")
    return p


@cli_entry("facegan-report")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isfile(os.path.join(args.run_dir, "metrics.jsonl")):
        raise UserError(f"{args.run_dir}: not a run directory (no metrics.jsonl)")
    from ..eval.report import write_report
    from ..io import DirLock

    if args.mp4:
        from ..eval.video import HINT, available

        if not available():
            raise UserError(f"--mp4 needs imageio-ffmpeg; {HINT}")
    with DirLock(args.run_dir, "run directory"):  # not while a training writes into it
        out = write_report(args.run_dir, args.mp4)
    for key in ("losses", "fid", "ada", "progress", "progress_mp4", "html"):
        if key in out:
            log.info(f"{key}: {out[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
