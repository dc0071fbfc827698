"""facegan-train: train a DCGAN from a YAML config with dotted overrides (key=value)."""

import argparse
import os
import sys

from ..errors import cli_entry
from ..log import get_logger

EPILOG = """overrides set any config key, e.g.:
  train.total_kimg=5 train.batch_size=64 model.resolution=32 run.dir=runs/try1 log.wandb=offline

launch on several devices with Accelerate:
  accelerate launch --multi_gpu --num_processes 8 launch/train.py --config configs/celeba64.yaml
"""


def build_parser():
    p = argparse.ArgumentParser(prog="facegan-train", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML recipe (configs/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config (recipe + overrides, checked) as YAML and exit")
    return p


@cli_entry("facegan-train")
def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..config import load_config
    from ..train import losses  # noqa: F401 (the loss table hands its names to config: train.loss accepts them)

    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        import yaml

        from ..config import to_dict

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    from ..train.distributed import explain_collective_error
    from ..train.loop import NonFiniteLoss, train

    try:
        train(cfg, make_evaluator=make_training_evaluator, on_finish=write_report_safely)
    except NonFiniteLoss as err:
        print(f"facegan-train: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:  # a collective failed: another rank died or stalled
        failure = explain_collective_error(err, _rank(), cfg.dist.timeout_s)
        if failure is None:
            raise
        print(f"facegan-train: error: {failure}", file=sys.stderr, flush=True)
        # The process group cannot shut down cleanly with a peer gone: leave now, so the
        # launcher sees the failure at once and can restart the group.
        os._exit(1)
    return 0


def _rank():
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


def make_training_evaluator(cfg, accelerator):
    """FID during training (eval.every_kimg): the eval package's evaluator, handed to the trainer."""
    from ..eval.during_training import TrainingEvaluator

    return TrainingEvaluator(cfg, accelerator)


def write_report_safely(run_dir):
    """The training report (plots, progress GIF, HTML); it must never cost a finished run its
    exit status."""
    from ..eval.report import write_report

    try:
        write_report(run_dir)
    except Exception as err:
        get_logger().warning(f"warning: report not written ({type(err).__name__}: {err})")


if __name__ == "__main__":
    sys.exit(main())
