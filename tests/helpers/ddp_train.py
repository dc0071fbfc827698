"""Run under `accelerate launch --num_processes 2`: train a few steps, then write this rank's
weight digests and the data it was fed, so the test can compare ranks."""

import hashlib
import json
import sys

from accelerate import PartialState

from facegan.config import load_config
from facegan.data.loader import resolve_shards, train_loader
from facegan.train.loop import train

out_prefix, config_overrides = sys.argv[1], sys.argv[2:]
cfg = load_config(None, config_overrides)
result = train(cfg)
state = PartialState()


def digest(module):
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# The batches the trainer drew on this rank: the same loader call, replayed.
batch = cfg.train.batch_size // state.num_processes
it = iter(train_loader(resolve_shards(cfg.data.shards, "train", cfg.model.resolution), batch,
                       state.process_index, state.num_processes, seed=cfg.train.seed))
seen = [hashlib.sha1(img.numpy().tobytes()).hexdigest() for _ in range(result.step) for img in next(it)]
with open(f"{out_prefix}{state.process_index}.json", "w") as f:
    json.dump({"G": digest(result.G), "D": digest(result.D), "G_ema": digest(result.G_ema),
               "step": result.step, "seen": seen, "world": state.num_processes,
               "ada_p": result.ada.p if result.ada is not None else None}, f)
