"""A device-resident copy of this rank's training images, for datasets that fit in GPU memory.

Batches are drawn on the device from a per-pass permutation, with no loader processes, no
host-to-device copies and no decode after the first pass. Like the shard stream it starts at a
batch index, so a resumed run sees the batches an uninterrupted one would.
"""

import torch

from .health import Counts, Tracker
from .decode import decoded_batch
from .loader import ShardSet, TrainStream, _decode


class DeviceCache:
    def __init__(self, shards: ShardSet, batch_size: int, rank: int, world: int, seed: int,
                 start_batch: int, device, max_bad_fraction: float = 0.01, stall_s: float = 120.0):
        stream = TrainStream(shards, batch_size=1, rank=rank, world=world, seed=seed, stall_s=stall_s)
        assigned = stream._assignment(rank, world)
        images = []
        self.counts = Counts(1)
        share = sum(c for _, c, _, _ in assigned) if shards.counts else None
        tracker = Tracker(max_bad_fraction, share=share, counts=self.counts)
        for sample in stream._pass_samples(assigned, rank, 0, tracker):
            img = _decode(sample, shards.resolution, tracker)
            if img is not None:
                images.append(img)
        if len(images) < batch_size:
            raise RuntimeError(f"rank {rank}: {len(images)} images cached, fewer than one batch of {batch_size}")
        self.images = decoded_batch(images).contiguous().to(device)
        self.batch_size, self.seed, self.rank, self.device = batch_size, seed, rank, device
        self.per_pass = len(images) // batch_size
        self.position = start_batch

    def __len__(self):
        return self.images.shape[0]

    @property
    def nbytes(self):
        return self.images.numel()

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        p, k = divmod(self.position, self.per_pass)
        if k == 0 or not hasattr(self, "_perm") or self._perm_pass != p:
            gen = torch.Generator(device="cpu").manual_seed((self.seed * 1_000_003 + self.rank) * 1_000_003 + p)
            self._perm = torch.randperm(len(self), generator=gen).to(self.device)
            self._perm_pass = p
        self.position += 1
        return self.images[self._perm[k * self.batch_size:(k + 1) * self.batch_size]]

