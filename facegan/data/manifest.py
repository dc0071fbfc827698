"""dataset.json: the self-description of a packed dataset. Written last; no manifest, no dataset."""

import hashlib
import os
from typing import Optional, Tuple

from ..errors import UserError
from ..io import read_json
from .labels import LabelField, manifest_fields

MANIFEST = "dataset.json"
FORMAT_VERSION = 1
# Files other commands derive from a dataset and keep beside it (FID reference features);
# `facegan-shard --overwrite` removes them with the shards they came from.
DERIVED_PREFIXES = ("fid-ref-",)


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise UserError(f"{directory}: not a facegan dataset (no {MANIFEST}; was packing interrupted?)")
    manifest = read_json(path, "manifest")
    for key in ("format_version", "resolution", "image_format", "splits"):
        if key not in manifest:
            raise UserError(f"{path}: manifest lacks the key '{key}'")
    if manifest["format_version"] > FORMAT_VERSION:
        raise UserError(f"{path}: format version {manifest['format_version']} is newer than this "
                        f"facegan reads ({FORMAT_VERSION}); upgrade facegan")
    return manifest


def split_digest(manifest: dict, split: str) -> str:
    """sha256 over the names and sha256s of one split's shards (and the format they decode to):
    changes whenever any image of the split does."""
    h = hashlib.sha256(f"{manifest['resolution']}\0{manifest['image_format']}\0{split}\n".encode())
    for s in manifest["splits"].get(split, {}).get("shards", []):
        h.update(f"{s['name']}\0{s.get('sha256', '')}\0{s['count']}\n".encode())
    return h.hexdigest()


def split_shards(directory: str, manifest: dict, split: str) -> list:
    """Paths and counts of the shards of one split."""
    if split not in manifest["splits"]:
        have = ", ".join(sorted(manifest["splits"])) or "none"
        raise UserError(f"{directory}: no '{split}' split in {MANIFEST} (has: {have})")
    return [(os.path.join(directory, s["name"]), s["count"]) for s in manifest["splits"][split]["shards"]]


def label_fields(manifest: dict, directory: str = "") -> Optional[Tuple[LabelField, ...]]:
    """The dataset's label fields (labels.py), or None for an unlabeled dataset and for shards
    packed before labels existed."""
    return manifest_fields(manifest, os.path.join(directory, MANIFEST) if directory else MANIFEST)
