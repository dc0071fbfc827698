"""dataset.json: the self-description of a packed dataset. Written last; no manifest, no dataset."""

import hashlib
import json
import os

from ..errors import UserError

MANIFEST = "dataset.json"
FORMAT_VERSION = 1


def sha256_file(path: str) -> str:
    return file_digest(path, "sha256")


def file_digest(path: str, algorithm: str) -> str:
    """Hex digest of a file read in 1 MiB blocks (hashlib.file_digest needs Python 3.11)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str, obj) -> None:
    """Write JSON under a temporary name, fsync, then rename: readers never see half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str, what: str) -> dict:
    """Parse a JSON file we wrote; a damaged one is a UserError naming the file."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable {what} ({err})") from None


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
