"""facegan-report: loss curves, a progress GIF, FID over kimg and an HTML page for a run."""

import argparse
import os
import sys

from ..errors import UserError, cli_entry


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-report", description=__doc__)
    p.add_argument("run_dir", help="a training run directory (runs/NAME)")
    return p


@cli_entry("facegan-report")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isfile(os.path.join(args.run_dir, "metrics.jsonl")):
        raise UserError(f"{args.run_dir}: not a run directory (no metrics.jsonl)")
    from ..eval.report import write_report

    out = write_report(args.run_dir)
    for key in ("losses", "fid", "progress", "html"):
        if key in out:
            print(f"facegan-report: {key}: {out[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
