"""Where a dataset is: a facegan dataset directory (checked against its dataset.json) or shard URLs
as WebDataset takes them. Everything that reads shards starts from a ShardSet."""

import functools
import os
from dataclasses import dataclass
from typing import List, Optional

import webdataset as wds

from ..errors import UserError
from .labels import manifest_fields
from .manifest import read_manifest, split_digest, split_shards


@dataclass
class ShardSet:
    urls: List[str]
    counts: Optional[List[int]]  # per shard, from dataset.json; None for bare URLs
    resolution: Optional[int]
    # What the shards hold, as the manifest records it (sha256 of the split's shard digests);
    # None for bare URLs. Caches derived from the shards are keyed by it.
    content_digest: Optional[str] = None
    # The dataset's label fields (facegan.data.labels), from the manifest; None: unlabeled or bare URLs.
    labels: Optional[tuple] = None

    @property
    def total(self):
        return sum(self.counts) if self.counts else None

    @functools.cached_property
    def _count_by_url(self) -> dict:
        return dict(zip(self.urls, self.counts)) if self.counts else {}

    def count_of(self, url: str) -> Optional[int]:
        """The manifest's sample count for a shard, or None for bare URLs."""
        return self._count_by_url.get(url)


def resolve_shards(spec, split: str = "train", resolution: Optional[int] = None) -> ShardSet:
    """A dataset directory (checked against dataset.json), or shard URLs as WebDataset takes them:
    a list, brace patterns, '::'-joined lists, pipe:, http(s), s3 through pipe:."""
    if isinstance(spec, (list, tuple)):
        urls = [u for s in spec for u in wds.shardlists.expand_urls(str(s))]
        return ShardSet(urls, None, resolution)
    spec = str(spec)
    if os.path.isdir(spec):
        manifest = read_manifest(spec)
        if resolution is not None and manifest["resolution"] != resolution:
            raise UserError(f"{spec}: shards are {manifest['resolution']}x{manifest['resolution']} but "
                            f"model.resolution is {resolution}; repack with --size {resolution}")
        pairs = split_shards(spec, manifest, split)
        return ShardSet([p for p, _ in pairs], [c for _, c in pairs], manifest["resolution"],
                        split_digest(manifest, split), manifest_fields(manifest, spec))
    if "://" not in spec and not spec.startswith("pipe:") and "{" not in spec and not os.path.exists(spec):
        raise UserError(f"{spec}: no such dataset directory or shard")
    return ShardSet(wds.shardlists.expand_urls(spec), None, resolution)
