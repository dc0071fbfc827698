"""dataset.json: the self-description of a packed dataset. Written last; no manifest, no dataset."""

import os

from ..errors import UserError
from ..io import read_json, sha256_file, write_json_atomic  # noqa: F401 (re-exported)

MANIFEST = "dataset.json"
FORMAT_VERSION = 1


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


def split_shards(directory: str, manifest: dict, split: str) -> list:
    """Paths and counts of the shards of one split."""
    if split not in manifest["splits"]:
        have = ", ".join(sorted(manifest["splits"])) or "none"
        raise UserError(f"{directory}: no '{split}' split in {MANIFEST} (has: {have})")
    return [(os.path.join(directory, s["name"]), s["count"]) for s in manifest["splits"][split]["shards"]]
