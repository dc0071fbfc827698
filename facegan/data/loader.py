"""The WebDataset stream that feeds training and evaluation.

Training: each (rank, dataloader worker) slot reads its own shards (or, with fewer shards than
slots, its own residue of samples in every shard), in passes. A pass visits the slot's shards in
a seeded order and shuffles within each shard (the packer already shuffled globally, so shards
are i.i.d. slices). The stream never ends, so no rank waits on another; the trainer takes one
batch per step. Its position is a batch index: a resumed run starts at the batch it stopped at
and sees exactly the batches an uninterrupted run would have seen.

Evaluation: the val split once, in manifest order, each rank taking every world-th batch.
"""

import atexit
import functools
import json
import multiprocessing
import os
import random
import signal
import warnings
from typing import Optional

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import UserError
from .shardset import ShardSet, resolve_shards  # noqa: F401 (resolve_shards: part of this API)
from .bad_data import BadData, BadDataBudget, Counts, reason_of
from .decode import decode_hwc, decoded_batch, image_size
from .shard_reader import STALL_S, shard_samples

# torch warns, at every iter(), when loader workers outnumber the cores; the trainer says that once
# in its own words (train/preflight.py), so the warning would only repeat it, less clearly.
warnings.filterwarnings("ignore", message=r"This DataLoader will create \d+ worker processes in total")

IMAGE_KEYS = ("png", "jpg", "jpeg", "webp", "npy", "bmp")
MAX_PIXELS = 4096 * 4096  # for samples of unknown resolution (bare URLs without model.resolution)


def read_shard(url: str, budget: BadDataBudget, expected: Optional[int] = None, residue: int = 0,
               modulus: int = 1, stall_s: float = STALL_S, keep=IMAGE_KEYS) -> list:
    """This reader's raw samples of one shard (those at positions residue, residue + modulus,
    ...). What the shard fails to deliver is counted as bad: the shortfall against the manifest's
    count when it is known, else one per problem; a shard that gives nothing at all counts as
    the samples it held (the manifest's count, or the mean of the readable shards: BadDataBudget)."""
    problems: list = []
    samples = shard_samples(url, problems, stall_s, keep=keep)
    mine = [s for i, s in enumerate(samples) if i % modulus == residue]
    if expected is not None:
        expected = len(range(residue, expected, modulus))
    if not mine and problems:  # the whole shard is gone: count what it held, not one sample
        reason = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        budget.shard_empty(url, reason, expected)
        return mine
    if expected is None:
        budget.shard_read(len(mine))
    lost = expected - len(mine) if expected is not None else len(problems)
    if problems or lost > 0:
        reason = problems[0] if problems else f"shard ended after {len(mine)} of {expected} samples"
        if len(problems) > 1:
            reason += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        budget.failed(url, reason, max(lost, 0))
    return mine


class TooLittleData(BadData):
    """A reader's whole pass gave less than one batch (shard URLs whose counts are unknown up
    front): one line, exit status 2, from a loader worker too (see BadData)."""


def _image_bytes(sample):
    for k in IMAGE_KEYS:
        if k in sample:
            return sample[k]
    raise ValueError(f"no image in sample (keys: {sorted(k for k in sample if not k.startswith('__'))})")


def keys_for(condition) -> tuple:
    """The sample files a reader needs: the image, and its .json when labels are wanted."""
    return IMAGE_KEYS + ("json",) if condition is not None else IMAGE_KEYS


def sample_condition(sample, condition) -> list:
    """A sample's condition vector (C floats) from the labels in its .json; ValueError naming
    the label when the sample lacks it."""
    if "json" not in sample:
        raise ValueError("no .json with labels in the sample")
    labels = json.loads(sample["json"]).get("labels") or {}
    try:
        return condition.encode_one(labels)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f"no usable label {err} in the sample's .json") from None


def decode_sample(sample, resolution, budget, condition=None):
    """(H, W, 3) uint8 of a shard sample, checked against the resolution; None (counted) when bad.
    With a condition (facegan.conditions): (image, C floats), a sample without its
    labels being bad like an unreadable one."""
    try:
        cvec = sample_condition(sample, condition) if condition is not None else None
        data = _image_bytes(sample)
        w, h = image_size(data)
        if resolution and (w, h) != (resolution, resolution):
            raise ValueError(f"image is {w}x{h}, expected {resolution}x{resolution}")
        if w * h > MAX_PIXELS:
            raise ValueError(f"image is {w}x{h}, over {MAX_PIXELS} pixels")
        img = decode_hwc(data)
        if tuple(img.shape) != (h, w, 3):
            raise ValueError(f"image decoded to {tuple(img.shape)}, its header says {w}x{h}")
        budget.good()
        return img if condition is None else (img, cvec)
    except BadData:
        raise
    except Exception as err:
        budget.failed(f"{sample.get('__url__')}:{sample.get('__key__')}", reason_of(err))
        return None


class TrainStream(IterableDataset):
    """Endless uint8 (B, 3, H, W) batches for one rank (with a condition: (images, (B, C) float32
    conditions) pairs); see the module docstring."""

    def __init__(self, shards: ShardSet, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 start_batch: int = 0, max_bad_fraction: float = 0.01, stall_s: float = STALL_S,
                 counts: Optional[Counts] = None, condition=None):
        self.shards, self.batch_size, self.condition = shards, batch_size, condition
        self.rank, self.world, self.seed = rank, world, seed
        self.start_batch, self.max_bad_fraction, self.stall_s = start_batch, max_bad_fraction, stall_s
        self.counts = counts if counts is not None else Counts(1)

    def _assignment(self, slot, nslots):
        """(url, count-for-this-slot, residue, modulus) for each shard this slot reads: whole
        shards dealt round-robin while every slot can get one, and the leftover shards split
        by sample position, so slots stay balanced even when shards don't divide evenly."""
        counts = self.shards.counts or [None] * len(self.shards.urls)
        pairs = list(zip(self.shards.urls, counts))
        n_whole = len(pairs) // nslots * nslots
        whole = [(u, c, 0, 1) for u, c in pairs[:n_whole][slot::nslots]]
        rest = [(u, None if c is None else len(range(slot, c, nslots)), slot, nslots)
                for u, c in pairs[n_whole:]]
        return whole + rest

    def __iter__(self):
        info = get_worker_info()
        nw, wid = (info.num_workers, info.id) if info else (1, 0)
        # DataLoader takes batches from its workers round-robin, starting at worker 0. Give
        # worker w the role that global batch (start + w) belongs to, so the merged sequence
        # is the same whatever batch we start at.
        role = (self.start_batch + wid) % nw
        local_start = (self.start_batch + wid) // nw
        slot, nslots = self.rank * nw + role, self.world * nw
        assigned = self._assignment(slot, nslots)
        known = all(c is not None for _, c, _, _ in assigned)
        share = sum(c for _, c, _, _ in assigned) if known else None  # samples per pass
        per_pass = share // self.batch_size if known else None
        if per_pass == 0:
            raise RuntimeError(f"rank {self.rank} worker {wid}: its share of the data holds fewer than "
                               f"one batch of {self.batch_size}; use a smaller batch or fewer workers")
        budget = BadDataBudget(self.max_bad_fraction, share=share, counts=self.counts, slot=wid)
        p, skip = divmod(local_start, per_pass) if per_pass else (0, local_start)
        while True:
            produced, skipped, raw, pending, decoded = 0, 0, 0, [], 0
            for sample in self._pass_samples(assigned, slot, p, budget):
                if skip:  # fast-forward on resume: read, don't decode; B raw samples = 1 batch
                    raw += 1
                    if raw == self.batch_size:
                        skip, skipped, raw = skip - 1, skipped + 1, 0
                    continue
                arr = decode_sample(sample, self.shards.resolution, budget, self.condition)
                if arr is None:
                    continue
                pending.append(arr)
                decoded += 1
                if len(pending) == self.batch_size:
                    yield self._batch(pending)
                    produced, pending = produced + 1, []
            if produced == 0 and skipped == 0:  # not one batch's worth of data in a whole pass
                raise TooLittleData(
                    f"data.shards: a whole pass over {len(assigned)} shard(s) gave {decoded} usable images, fewer "
                    f"than one batch of {self.batch_size}" + (f" (rank {self.rank} of {self.world}, loader worker "
                                                              f"{wid} of {nw})" if nslots > 1 else "")
                    + "; use a smaller train.batch_size, fewer data.workers or more data")
            p += 1

    def _batch(self, pending):
        if self.condition is None:
            return decoded_batch(pending)
        return decoded_batch([img for img, _ in pending]), torch.tensor([c for _, c in pending], dtype=torch.float32)

    def _pass_samples(self, assigned, slot, p, budget):
        """One pass over this slot's data, as raw samples: shards in a seeded order, samples
        shuffled within each shard. The remainder under one batch is dropped by the caller."""
        rng = random.Random(pass_seed(self.seed, slot, p))
        order = list(assigned)
        rng.shuffle(order)
        for url, _, residue, modulus in order:
            samples = read_shard(url, budget, self.shards.count_of(url), residue, modulus, self.stall_s,
                                 keys_for(self.condition))
            rng.shuffle(samples)
            yield from samples


def pass_seed(seed: int, slot: int, p: int) -> int:
    """The seed of pass p of one reader slot: shard order and in-shard shuffle (and the device
    cache's permutation) derive from it, so a resumed run replays an uninterrupted one."""
    return (seed * 1_000_003 + slot) * 1_000_003 + p


def rank_images(shards: ShardSet, rank: int, world: int, seed: int, budget: BadDataBudget,
                stall_s: float = STALL_S, condition=None) -> list:
    """Every training image of this rank's share, decoded once: (H, W, 3) uint8 arrays in the
    order of the stream's first pass (what the device cache holds); with a condition,
    (image, C floats) pairs. Bad samples are skipped and counted by `budget`."""
    stream = TrainStream(shards, batch_size=1, rank=rank, world=world, seed=seed, stall_s=stall_s,
                         condition=condition)
    assigned = stream._assignment(rank, world)
    images = []
    for sample in stream._pass_samples(assigned, rank, 0, budget):
        img = decode_sample(sample, shards.resolution, budget, condition)
        if img is not None:
            images.append(img)
    return images


def label_bank(shards: ShardSet, condition, size: int, stall_s: float = STALL_S) -> torch.Tensor:
    """(size, C) condition vectors of the first labeled training samples in manifest order (the
    packer shuffled globally, so they are a random draw), repeated when the data holds fewer.
    The same on every rank. UserError when no sample carries the labels."""
    budget = BadDataBudget(1.0, share=None)
    rows = []
    for url in shards.urls:
        for sample in read_shard(url, budget, shards.count_of(url), stall_s=stall_s, keep=("json",)):
            try:
                rows.append(sample_condition(sample, condition))
            except ValueError:
                continue
            if len(rows) == size:
                return torch.tensor(rows, dtype=torch.float32)
    if not rows:
        raise UserError(f"model.condition={condition.kind}: no training sample carries the labels "
                        f"{', '.join(condition.names)}")
    return torch.tensor([rows[i % len(rows)] for i in range(size)], dtype=torch.float32)


def rank_share(shards: ShardSet, rank: int, world: int):
    """Samples in this rank's share of the shards (None for bare URLs)."""
    if not shards.counts:
        return None
    return sum(c for _, c, _, _ in TrainStream(shards, 1, rank, world)._assignment(rank, world))


def batches_per_pass(shards: ShardSet, batch_size: int, world: int) -> int:
    """Steps per rank that make one pass over the data (the same on every rank)."""
    if not shards.total:
        raise UserError("the number of samples is unknown for bare shard URLs; give a dataset directory")
    return max(1, shards.total // (batch_size * world))


_EXITING = None  # set when this (trainer) process begins to exit


def _exiting_event():
    global _EXITING
    if _EXITING is None:
        _EXITING = multiprocessing.Event()
        atexit.register(_EXITING.set)  # runs before multiprocessing terminates daemon workers
    return _EXITING


def _guard_stop_signals(exiting, _worker_id):
    """Launchers (torchrun, SLURM, a terminal's Ctrl-C) signal the whole process group. A loader
    worker that died of it would take the run down before the trainer could finish its step
    and write its checkpoint, so workers leave those signals to the trainer, which ends them
    through the DataLoader. Only when the trainer process itself is exiting (multiprocessing
    then terminates its daemon children with SIGTERM) does SIGTERM end a worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0) if exiting.is_set() else None)


def train_loader(shards: ShardSet, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 start_batch: int = 0, workers: int = 0, pin_memory: bool = False,
                 max_bad_fraction: float = 0.01, stall_s: float = STALL_S, condition=None) -> DataLoader:
    """A DataLoader over TrainStream; not passed through accelerator.prepare, because each rank
    reads its own shards from where it stopped (a prepared loader would re-shard and restart).
    Its `counts` hold the samples read and skipped by all its workers."""
    counts = Counts(max(1, workers))
    ds = TrainStream(shards, batch_size, rank, world, seed, start_batch, max_bad_fraction, stall_s, counts,
                     condition)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                        prefetch_factor=4 if workers else None, persistent_workers=False,
                        worker_init_fn=functools.partial(_guard_stop_signals, _exiting_event()) if workers else None)
    loader.counts = counts
    return loader


class EvalStream(IterableDataset):
    """The split once, in order, in batches of consecutive samples; this rank's are batches rank,
    rank + world, ... (so a sample is embedded in the same batch whatever the process count)."""

    def __init__(self, shards: ShardSet, batch_size: int, rank: int = 0, world: int = 1,
                 limit: Optional[int] = None, max_bad_fraction: float = 0.01, stall_s: float = STALL_S):
        self.shards, self.batch_size, self.rank, self.world = shards, batch_size, rank, world
        self.limit, self.max_bad_fraction, self.stall_s = limit, max_bad_fraction, stall_s

    def __iter__(self):
        budget = BadDataBudget(self.max_bad_fraction, share=self.shards.total)
        position, pending = 0, []
        for url in self.shards.urls:
            if self.limit is not None and position >= self.limit:
                break
            for sample in read_shard(url, budget, self.shards.count_of(url), stall_s=self.stall_s):
                if self.limit is not None and position >= self.limit:
                    break
                mine = position // self.batch_size % self.world == self.rank
                position += 1
                if mine:
                    arr = decode_sample(sample, self.shards.resolution, budget)
                    if arr is not None:
                        pending.append(arr)
                if position % self.batch_size == 0 and pending:  # batches never straddle blocks
                    yield decoded_batch(pending)
                    pending = []
        if pending:
            yield decoded_batch(pending)


def eval_loader(shards: ShardSet, batch_size: int, rank: int = 0, world: int = 1,
                limit: Optional[int] = None, max_bad_fraction: float = 0.01) -> DataLoader:
    return DataLoader(EvalStream(shards, batch_size, rank, world, limit, max_bad_fraction), batch_size=None,
                      num_workers=0)
