"""facegan-export: the EMA generator alone, as one .safetensors that loads with facegan alone
(--out), and/or as a Hugging Face Hub model folder with a model card and a Gradio app (--hub-dir),
uploaded with --push-to-hub."""

import argparse
import json
import os
import sys

from ..errors import UserError, cli_entry
from ..io import lock_outputs
from ..log import get_logger

log = get_logger("facegan-export")


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  facegan-export runs/demo --out generator.safetensors
  facegan-export runs/demo --hub-dir hub/demo --license mit
  facegan-export runs/demo --push-to-hub me/cartoon-faces --license mit [--private]
  facegan-export runs/demo --hub-dir hub/demo --scores scores.json
(scores.json: written by facegan-eval ... --json scores.json)
""")
    p.add_argument("source", help="run directory (its newest checkpoint), checkpoint directory or exported file")
    p.add_argument("--out", help="output file, e.g. generator.safetensors")
    p.add_argument("--fid", type=float, default=None, help="record this FID in the metadata (and the card)")
    p.add_argument("--hub-dir", help="write a Hugging Face Hub model folder here (weights, config.json, "
                                     "model card README.md, samples.png, app.py, requirements.txt)")
    p.add_argument("--push-to-hub", metavar="USER/REPO", help="upload the Hub folder to this model repo "
                   "(token from `hf auth login` or HF_TOKEN); the folder defaults to ./REPO")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")
    p.add_argument("--license", default="other", help="license id for the card (mit, apache-2.0, cc-by-nc-4.0, "
                                                      "...; default 'other': set it to what your data allows)")
    p.add_argument("--scores", metavar="JSON", help="FID/KID from `facegan-eval ... --json JSON` for the card")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file that is not a facegan export, or an earlier Hub folder facegan wrote")
    return p


@cli_entry("facegan-export")
def main(argv=None):
    args = build_parser().parse_args(argv)
    if not (args.out or args.hub_dir or args.push_to_hub):
        raise UserError("give --out FILE, --hub-dir DIR or --push-to-hub USER/REPO")
    if args.push_to_hub and (args.push_to_hub.count("/") != 1 or not all(args.push_to_hub.split("/"))):
        raise UserError(f"--push-to-hub {args.push_to_hub}: expected USER/REPO")
    held = lock_outputs([args.out, args.hub_dir])  # noqa: F841 (held while writing; released at return)
    if args.out:
        from ..eval.generator_io import export_generator, is_export
        from ..outputs import check_output

        check_output(args.out, args.overwrite, is_export, "a facegan export")
        info = export_generator(args.source, args.out, args.fid)
        log.info(f"wrote {args.out} from {info['from']}\n"
                 f"  architecture: {json.dumps(info['architecture'], sort_keys=True)}\n"
                 f"  summary: {json.dumps(info['summary'], sort_keys=True)}")
    if args.hub_dir or args.push_to_hub:
        from ..share.hub import push_folder, write_hub_dir

        folder = args.hub_dir or args.push_to_hub.split("/")[1]
        out = write_hub_dir(args.source, folder, args.license, args.push_to_hub, args.scores, args.fid,
                            args.overwrite)
        scores = ", ".join(f"{s.metric.upper()} {s.value:.4g}" for s in out["facts"].scores) or "no scores"
        log.info(f"wrote the Hub folder {folder} ({', '.join(sorted(os.listdir(folder)))}; {scores})")
        if args.push_to_hub:
            url = push_folder(folder, args.push_to_hub, args.private)
            log.info(f"pushed {folder} to https://huggingface.co/{args.push_to_hub} ({url})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
