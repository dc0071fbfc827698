"""The packer: source images -> RGB squares -> shuffled WebDataset tar shards + dataset.json.

Two phases keep memory flat and output deterministic whatever the number of workers:
1. decode/crop/resize/encode in parallel, in source order, appending results to a spill file;
2. permute the kept images with the seed, split train/val, write shards from the spill file.
Every shard is written under a temporary name and renamed when whole; dataset.json comes last.
"""

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import random
import sys
import time
import zipfile
from dataclasses import dataclass, field
from typing import Optional

import webdataset as wds
from tqdm import tqdm

from .. import __version__
from ..errors import UserError
from . import transforms
from ..io import (LOCK_NAME, DirLock, atomic_path, is_lock_file, is_temp_name, remove_stale_temps, sha256_file,
                  temp_name, temp_owner_alive, write_json_atomic)
from .manifest import DERIVED_PREFIXES, FORMAT_VERSION, MANIFEST
from .intake import Limits, Skip, open_image, read_file, read_zip_member
from .labels import manifest_labels
from .sources import Item, Source
from .synthetic import cartoon_face

SPLITS = ("train", "val", "test")
# Smallest fraction of an image's short side that each crop keeps (celeba: 128 of up to 218).
CROP_KEEP = {"center": 1.0, "none": 1.0, "celeba": 128 / 218}


@dataclass
class PackOptions:
    size: int = 64
    crop: Optional[str] = None  # None: the source's default
    image_format: str = "png"
    quality: int = 95
    shard_size: int = 2000
    val_fraction: float = 0.02
    workers: int = 0  # 0: all cores
    seed: int = 0
    limit: Optional[int] = None
    dedupe: bool = False
    overwrite: bool = False
    command: str = ""
    limits: Limits = field(default_factory=Limits)


@dataclass
class PackResult:
    counts: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)
    duplicates: int = 0
    seconds: float = 0.0
    images_in: int = 0
    label_fields: Optional[tuple] = None  # the dataset's LabelFields; None: unlabeled
    label_source: str = ""


_ZIPS: dict = {}  # per-worker cache of open zip archives


def read_item(item: Item, limits: Limits) -> bytes:
    """An item's encoded bytes (in a worker), within the size limit."""
    if item.kind == "file":
        return read_file(item.ref, limits)
    if item.kind == "zip":
        archive, member = item.ref
        if archive not in _ZIPS:
            _ZIPS[archive] = zipfile.ZipFile(archive)
        return read_zip_member(_ZIPS[archive], member, limits)
    if item.kind == "bytes":
        return item.ref
    raise ValueError(f"item {item.name} has no bytes ({item.kind})")


def process_item(args):
    """Worker: one item -> (ok, name, payload). payload is (encoded, meta, digest) or a reason.
    meta["labels"] holds the item's labels (a synthetic face's: the attributes it was drawn with)."""
    item, size, crop, fmt, quality, limits = args
    try:
        if item.kind == "error":  # the source could not be read past this point
            return False, item.name, item.ref
        labels = item.labels
        if item.kind == "synthetic":
            seed, index = item.ref
            img, labels = cartoon_face(index, seed, attributes=True)
            orig = img.size
        else:
            # The crop keeps at least CROP_KEEP of the short side; decode no smaller than that needs.
            img, orig = open_image(read_item(item, limits), limits, min_side=int(size / CROP_KEEP[crop]) + 1)
        img = transforms.resize_square(transforms.crop_square(transforms.to_rgb(img), crop), size)
        encoded = transforms.encode(img, fmt, quality)
        digest = hashlib.sha1(img.tobytes()).hexdigest()
        meta = {"source": item.name, "width": orig[0], "height": orig[1]}
        if labels is not None:
            meta["labels"] = labels
        return True, item.name, (encoded, meta, digest)
    except Skip as why:
        return False, item.name, str(why)
    except Exception as err:  # every failure of one image is a skip with its reason, never fatal
        reason = f"damaged: {type(err).__name__}: {err}".splitlines()[0][:200]
        return False, item.name, reason


def skip_counts(skipped: list) -> dict:
    """{category: count} of skip records; a reason reads 'category: detail'."""
    counts = {}
    for s in skipped:
        key = s["reason"].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def describe_skips(skipped: list) -> str:
    """'damaged: 3, missing file: 9 (e.g. a.png: missing file: ...)': counts per reason."""
    counts = skip_counts(skipped)
    text = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{text} (e.g. {skipped[0]['source']}: {skipped[0]['reason']})" if skipped else text


def _lock_out(out: str) -> DirLock:
    """Lock --out for this packer (one writer per shard directory). A directory that existed is
    left as it was found when the packer is refused."""
    if os.path.isfile(out):
        raise UserError(f"--out {out}: is a file, not a directory")
    existed = os.path.isdir(out)
    lock_existed = existed and os.path.exists(os.path.join(out, LOCK_NAME))
    lock = DirLock(out, "shard directory").acquire()
    lock.created_dir, lock.created_file = not existed, not lock_existed
    return lock


def _prepare_out(out: str, overwrite: bool) -> None:
    """Refuse a non-empty --out without --overwrite; with it, remove what facegan wrote there:
    the manifest first (so the directory stops being a dataset), then shards, caches derived
    from them (FID reference features) and temporaries of dead writers."""
    remove_stale_temps(out)
    names = [n for n in os.listdir(out) if not is_lock_file(n)]
    if not names:
        return
    if not overwrite:
        raise UserError(f"--out {out}: directory is not empty (use --overwrite to replace it)")
    if os.path.exists(os.path.join(out, MANIFEST)):
        os.remove(os.path.join(out, MANIFEST))
    for name in names:
        if name.endswith(".tar") or name.startswith(DERIVED_PREFIXES) or is_temp_name(name) \
                or name.startswith(".facegan-spill"):
            path = os.path.join(out, name)
            if not is_temp_name(name) or not temp_owner_alive(name):
                os.remove(path)


def _choose_splits(n: int, item_splits: list, opts: PackOptions, has_splits: bool) -> dict:
    """Seeded global permutation of kept images, divided into splits."""
    order = list(range(n))
    random.Random(opts.seed).shuffle(order)
    if has_splits:
        return {s: [i for i in order if item_splits[i] == s] for s in SPLITS}
    n_val = int(round(n * opts.val_fraction)) if n > 1 else 0
    n_val = min(n_val, n - 1)
    return {"train": order[n_val:], "val": order[:n_val]}


def _write_shard(path: str, samples, spill) -> tuple:
    """Write one tar under a temporary name, fsync, hash, rename into place."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            # An integer mtime: a float one makes tarfile add a PAX header to every member.
            writer = wds.TarWriter(f, user="facegan", group="facegan", mtime=0)
            for key, ext, offset, length, meta in samples:
                spill.seek(offset)
                writer.write({"__key__": key, ext: spill.read(length),
                              "json": json.dumps(meta, sort_keys=True).encode()})
            writer.close()
        digest = sha256_file(tmp)
    return digest, os.path.getsize(path)


def pack(source: Source, out: str, opts: PackOptions, log=print) -> PackResult:
    """Pack `source` into WebDataset shards and dataset.json in `out` (locked while packing).

    Images become RGB squares of opts.size pixels (8..1024) in opts.image_format; unusable
    inputs are skipped with a reason and counted. Raises UserError for bad options, a non-empty
    `out` without opts.overwrite, another packer holding `out`, nothing left to write (with the
    count per reason), or a write error; then `out` is left as it was found (a directory the
    packer made is removed) and nothing looks finished: dataset.json is written last.
    """
    if not 8 <= opts.size <= 1024:
        raise UserError(f"--size {opts.size}: must be between 8 and 1024")
    if not 0 <= opts.val_fraction < 1:
        raise UserError(f"--val-fraction {opts.val_fraction}: must be in [0, 1)")
    if opts.shard_size < 1:
        raise UserError(f"--shard-size {opts.shard_size}: must be at least 1")
    fmt = transforms.FORMATS.get(opts.image_format.lower())
    if fmt is None:
        raise UserError(f"--format {opts.image_format}: expected png, jpg, webp or npy")
    crop = opts.crop or source.default_crop
    if crop not in transforms.CROPS:
        raise UserError(f"--crop {crop}: expected one of {', '.join(transforms.CROPS)}")
    lock = _lock_out(out)
    try:
        _prepare_out(out, opts.overwrite)
        source.max_bytes = opts.limits.max_bytes
        for note in source.notes:
            print(f"facegan-shard: {note}", file=sys.stderr)
        result = PackResult()
        spill_path = temp_name(os.path.join(out, "spill"))
        try:
            result = _pack_into(source, out, opts, crop, fmt, spill_path, result, time.time())
        except OSError as err:  # disk full, permissions: one line, and no temporary files left
            raise UserError(f"writing {out}: {err.strerror or err}") from None
        finally:
            remove_stale_temps(out, include_own=True)
    except BaseException:
        # Refused or failed: a directory this packer made goes again, lock file included.
        lock.release(remove=lock.created_file)
        if lock.created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(out)
        raise
    lock.release()
    return result


def _pack_into(source, out, opts, crop, fmt, spill_path, result, start):
    total = min(len(source), opts.limit) if opts.limit and len(source) else (opts.limit or len(source))
    workers = opts.workers or os.cpu_count() or 1
    records, item_splits, seen = [], [], set()
    fed_splits = []  # each fed item's split, by position (filled by the pool's feeder thread)
    fields = source.label_fields  # labeled: every kept image carries these, checked here
    label_values = []  # the labels of each record (of a labeled source)

    def tasks():
        for n, item in enumerate(source.items()):
            if opts.limit and n >= opts.limit:
                return
            fed_splits.append(item.split or "train")
            yield item, opts.size, crop, fmt, opts.quality, opts.limits

    try:
        with open(spill_path, "w+b") as spill:
            # forkserver: workers fork from a clean single-threaded server, never from this process,
            # whose threads (a parquet reader, tqdm's monitor) may hold a lock at fork time and
            # leave a worker deadlocked before its first image.
            pool = mp.get_context("forkserver").Pool(workers) if workers > 1 else None
            try:
                results = pool.imap(process_item, tasks(), chunksize=16) if pool else map(process_item, tasks())
                bar = tqdm(results, total=total or None, unit="img", desc="packing",
                           disable=None, file=sys.stderr, smoothing=0.1)
                for ok, name, payload in bar:
                    split = fed_splits[result.images_in]
                    result.images_in += 1
                    if not ok:
                        result.skipped.append({"source": name, "reason": payload})
                        continue
                    encoded, meta, digest = payload
                    # A sample's .json has "labels" exactly when the dataset is labeled.
                    labels = meta.pop("labels", None)
                    if fields and labels is None:
                        result.skipped.append({"source": name, "reason": "unlabeled: no labels"})
                        continue
                    if fields:
                        meta["labels"] = labels = {f.name: f.check(labels.get(f.name), name) for f in fields}
                    if opts.dedupe:
                        if digest in seen:
                            result.duplicates += 1
                            continue
                        seen.add(digest)
                    offset = spill.tell()
                    spill.write(encoded)
                    records.append((offset, len(encoded), meta))
                    item_splits.append(split)
                    if fields:
                        label_values.append(labels)
                bar.close()
            finally:
                if pool:
                    pool.terminate()
            if not records:
                why = f": {describe_skips(result.skipped)}" if result.skipped else ""
                dup = f", {result.duplicates} duplicates" if result.duplicates else ""
                raise UserError(f"nothing to write: none of {result.images_in} inputs gave an image "
                                f"({len(result.skipped)} skipped{why}{dup})")

            splits = _choose_splits(len(records), item_splits, opts, source.has_splits)
            manifest_splits = {}
            written = tqdm(total=len(records), unit="img", desc="writing", disable=None, file=sys.stderr)
            for split, order in splits.items():
                if not order:
                    continue
                shards = []
                for k, lo in enumerate(range(0, len(order), opts.shard_size)):
                    chunk = order[lo:lo + opts.shard_size]
                    name = f"{split}-{k:06d}.tar"
                    samples = [(f"{split}{lo + j:09d}", fmt, *records[i]) for j, i in enumerate(chunk)]
                    digest, nbytes = _write_shard(os.path.join(out, name), samples, spill)
                    shards.append({"name": name, "count": len(chunk), "sha256": digest, "bytes": nbytes})
                    written.update(len(chunk))
                manifest_splits[split] = {"count": len(order), "shards": shards}
                result.counts[split] = len(order)
            written.close()
    finally:
        if os.path.exists(spill_path):
            os.remove(spill_path)

    result.seconds = time.time() - start
    result.label_fields, result.label_source = fields, source.label_source if fields else ""
    manifest = {
        "format_version": FORMAT_VERSION,
        "facegan_version": __version__,
        "resolution": opts.size,
        "image_format": fmt,
        "quality": opts.quality if fmt != "png" else None,
        "crop": crop,
        "seed": opts.seed,
        "source": {"kind": source.kind, "inputs": result.images_in},
        "count": sum(result.counts.values()),
        "splits": manifest_splits,
        "skipped": result.skipped,
        "duplicates": result.duplicates,
        "command": opts.command,
    }
    if fields:
        manifest["labels"] = manifest_labels(fields, source.label_source, label_values)
    write_json_atomic(os.path.join(out, MANIFEST), manifest)
    return result
