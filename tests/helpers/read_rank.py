"""Run under `accelerate launch --num_processes 2`: each rank reads one pass of its loader and
writes the hashes of the images it saw, so the test can check they are disjoint."""

import hashlib
import json
import sys

import torch
from accelerate import Accelerator

from facegan.data.loader import batches_per_pass, resolve_shards, train_loader

shards_dir, out_prefix, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
acc = Accelerator(cpu=True)
shards = resolve_shards(shards_dir, "train", 32)
steps = batches_per_pass(shards, batch, acc.num_processes)
it = iter(train_loader(shards, batch, acc.process_index, acc.num_processes, seed=1, workers=2))
hashes = []
for _ in range(steps):
    b = next(it)
    hashes += [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in b]
counts = acc.gather(torch.tensor([steps]))  # every rank must have taken the same number of batches
acc.wait_for_everyone()
with open(f"{out_prefix}{acc.process_index}.json", "w") as f:
    json.dump({"hashes": hashes, "steps": steps, "all_steps": counts.tolist(), "world": acc.num_processes}, f)
