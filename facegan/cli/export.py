"""facegan-export: the EMA generator alone, as one .safetensors that loads with facegan alone."""

import argparse
import json
import sys

from ..errors import cli_entry


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-export", description=__doc__)
    p.add_argument("source", help="checkpoint directory or run directory (its newest checkpoint)")
    p.add_argument("--out", required=True, help="output file, e.g. generator.safetensors")
    p.add_argument("--fid", type=float, default=None, help="record this FID in the metadata")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing file that is not a facegan export (an export is replaced as is)")
    return p


@cli_entry("facegan-export")
def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..eval.generator_io import export_generator, is_export
    from ..outputs import check_output

    check_output(args.out, args.overwrite, is_export, "a facegan export")
    info = export_generator(args.source, args.out, args.fid)
    print(f"facegan-export: wrote {args.out} from {info['from']}")
    print(f"  architecture: {json.dumps(info['architecture'], sort_keys=True)}")
    print(f"  summary: {json.dumps(info['summary'], sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
