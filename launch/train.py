"""Train a DCGAN: `accelerate launch launch/train.py --config configs/X.yaml [key=value ...]`
(or plain `python launch/train.py ...` on one device)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facegan.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
