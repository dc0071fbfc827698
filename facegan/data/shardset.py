"""Where a dataset is: a facegan dataset directory (checked against its dataset.json) or shard URLs
as WebDataset takes them. Everything that reads shards starts from a ShardSet."""

import functools
import os
import re
from dataclasses import dataclass
from typing import List, Optional

import braceexpand

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


_SHELL_VARIABLE = re.compile(r"\$\{[^{}]*\}")


def expand_shard_urls(spec: str) -> List[str]:
    """The shard URLs of one spec, as WebDataset writes them: '::' joins lists, braces expand
    (train-{000000..000099}.tar). ${NAME} is not WebDataset's reading (webdataset.shardlists.envsubst
    looks up WDS_NAME and fails with an AssertionError when it is unset): in a pipe: command it is
    left as written for the shell that runs the command (pipe:cat ${HOME}/x.tar); in a path or an
    http(s) URL, where no shell sees it, it is refused. Raises UserError for that and for
    unbalanced braces."""
    held = []

    def hold(m):  # ${NAME} out of brace expansion's way ({HOME} is not a pattern)
        held.append(m.group(0))
        return f"\0{len(held) - 1}\0"

    urls = []
    for part in _SHELL_VARIABLE.sub(hold, spec).split("::"):
        try:
            expanded = list(braceexpand.braceexpand(part))
        except braceexpand.UnbalancedBracesError:
            raise UserError(f"{spec}: unbalanced braces (a shard pattern reads like "
                            f"train-{{000000..000099}}.tar)") from None
        for url in expanded:
            url = re.sub("\0([0-9]+)\0", lambda m: held[int(m.group(1))], url)
            variable = _SHELL_VARIABLE.search(url)
            if variable and not url.startswith("pipe:"):
                raise UserError(f"{url}: {variable.group(0)} is expanded only in a pipe: command (by its shell); "
                                f"write the path out")
            urls.append(url)
    return urls


def resolve_shards(spec, split: str = "train", resolution: Optional[int] = None) -> ShardSet:
    """A dataset directory (checked against dataset.json), or shard URLs as WebDataset takes them:
    a list, brace patterns, '::'-joined lists, pipe:, http(s), s3 through pipe:."""
    if isinstance(spec, (list, tuple)):
        urls = [u for s in spec for u in expand_shard_urls(str(s))]
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
    if "://" not in spec and not spec.startswith("pipe:") and "{" not in spec and "::" not in spec \
            and not os.path.exists(spec):  # a '::' list and brace patterns: the loader counts what is missing
        raise UserError(f"{spec}: no such dataset directory or shard")
    return _with_manifest_counts(ShardSet(expand_shard_urls(spec), None, resolution))


def _with_manifest_counts(shards: ShardSet) -> ShardSet:
    """Shard URLs that are files of a facegan dataset directory (`DIR/train-{000000..000005}.tar`)
    take their sample counts from its dataset.json, so a shard that is missing or unreadable
    counts as the samples it held, not as one bad sample (img2dataset#174: pipelines that ran on
    part of their shards without a word). URLs outside one (pipe:, http, foreign tars) stay
    uncounted."""
    counts, resolution, manifests = [], shards.resolution, {}
    for url in shards.urls:
        if "://" in url or url.startswith("pipe:"):
            return shards
        directory, name = os.path.split(os.path.abspath(url))
        if directory not in manifests:
            manifests[directory] = _shard_counts(directory)
        known = manifests[directory]
        if known is None or name not in known[0]:
            return shards
        counts.append(known[0][name])
        if resolution is not None and known[1] != resolution:
            raise UserError(f"{url}: shards are {known[1]}x{known[1]} but model.resolution is {resolution}; "
                            f"repack with --size {resolution}")
        resolution = known[1]
    return ShardSet(shards.urls, counts, resolution)


def _shard_counts(directory: str):
    """({shard name: sample count} over every split, resolution) of a dataset directory, or None
    when it holds no readable dataset.json."""
    if not os.path.isfile(os.path.join(directory, "dataset.json")):
        return None
    try:
        manifest = read_manifest(directory)
    except UserError:
        return None
    names = {s["name"]: s["count"] for split in manifest["splits"].values() for s in split.get("shards", [])}
    return names, manifest["resolution"]
