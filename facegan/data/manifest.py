"""dataset.json: the self-description of a packed dataset. Written last; no manifest, no dataset."""

import hashlib
import os
import shlex
from typing import Optional, Tuple

from ..errors import UserError
from ..io import is_lock_file, is_temp_name, read_json
from .labels import LabelField, manifest_fields

MANIFEST = "dataset.json"
FORMAT_VERSION = 1
# Files other commands derive from a dataset and keep beside it (FID reference features);
# `facegan-shard --overwrite` removes them with the shards they came from.
DERIVED_PREFIXES = ("fid-ref-",)


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise UserError(_not_a_dataset(directory))
    manifest = read_json(path, "manifest")
    for key in ("format_version", "resolution", "image_format", "splits"):
        if key not in manifest:
            raise UserError(f"{path}: manifest lacks the key '{key}'")
    if manifest["format_version"] > FORMAT_VERSION:
        raise UserError(f"{path}: format version {manifest['format_version']} is newer than this "
                        f"facegan reads ({FORMAT_VERSION}); upgrade facegan")
    return manifest


def _not_a_dataset(directory: str) -> str:
    """Why a directory without dataset.json is no dataset: packing stopped before the end (shards,
    temporaries or the packer's lock there), a folder of images never packed, or neither."""
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    if any(n.endswith(".tar") or is_temp_name(n) or is_lock_file(n) for n in names):
        return f"{directory}: not a facegan dataset (no {MANIFEST}; was packing interrupted?)"
    if _holds_images(directory):
        name = os.path.basename(os.path.normpath(directory)) or "NAME"
        folder = shlex.quote(directory)
        return (f"{directory}: a folder of images, not a packed dataset; pack it first: "
                f"facegan-shard {folder} --out {shlex.quote(f'shards/{name}')} --size N")
    return f"{directory}: not a facegan dataset (no {MANIFEST})"


def _holds_images(directory: str, look_at: int = 10000) -> bool:
    """Whether an image file (by extension) is in directory or below, looking at no more than
    look_at entries (an ImageFolder tree keeps its images one level down)."""
    from .sources import IMAGE_EXTS  # the packer's own list; imported here, on the error path only

    seen = 0
    for _, dirs, files in os.walk(directory):
        dirs.sort()
        if any(f.lower().endswith(IMAGE_EXTS) for f in files):
            return True
        seen += len(files) + len(dirs)
        if seen > look_at:
            return False
    return False


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
