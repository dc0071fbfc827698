"""A device-resident copy of this rank's training images, for datasets that fit in GPU memory.

Batches are drawn on the device from a per-pass permutation, with no loader processes, no
host-to-device copies and no decode after the first pass. Like the shard stream it starts at a
batch index, so a resumed run sees the batches an uninterrupted one would.
"""

import torch

from ..errors import UserError
from .decode import decoded_batch
from .bad_data import BadDataBudget, Counts
from .loader import pass_seed, rank_images, rank_share
from .shardset import ShardSet
from .shard_reader import STALL_S


class DeviceCache:
    """Iterates forever over uint8 (batch_size, 3, H, W) batches on `device` (with a condition:
    (images, (batch_size, C) float32 conditions) pairs). UserError when this rank's share holds
    fewer than one batch."""

    def __init__(self, shards: ShardSet, batch_size: int, rank: int, world: int, seed: int,
                 start_batch: int, device, max_bad_fraction: float = 0.01, stall_s: float = STALL_S,
                 condition=None):
        self.counts = Counts(1)
        budget = BadDataBudget(max_bad_fraction, share=rank_share(shards, rank, world), counts=self.counts)
        images = rank_images(shards, rank, world, seed, budget, stall_s, condition)
        if len(images) < batch_size:
            raise UserError(f"data.device_cache: rank {rank} holds {len(images)} images, fewer than one batch "
                            f"of {batch_size} (train.batch_size split over {world} processes)")
        self.conditions = None
        if condition is not None:
            self.conditions = torch.tensor([c for _, c in images], dtype=torch.float32).to(device)
            images = [img for img, _ in images]
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
            gen = torch.Generator(device="cpu").manual_seed(pass_seed(self.seed, self.rank, p))
            self._perm = torch.randperm(len(self), generator=gen).to(self.device)
            self._perm_pass = p
        self.position += 1
        index = self._perm[k * self.batch_size:(k + 1) * self.batch_size]
        return self.images[index] if self.conditions is None else (self.images[index], self.conditions[index])
