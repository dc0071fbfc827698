"""The packer: source images -> RGB squares -> shuffled WebDataset tar shards + dataset.json.

Two phases keep memory flat and output deterministic whatever the number of workers:
1. decode/crop/resize/encode in parallel, in source order, keeping the results (in memory up to
   256 MB, the rest in a spill file beside the shards);
2. permute the kept images with the seed, split train/val, write the shards (a few at a time).
Every shard is written under a temporary name and renamed when whole; dataset.json comes last.

Start-up counts (a pack of a few thousand images takes seconds): nothing here imports torch, and
workers are forked from this process when that is safe. Each choice made for the user (the val
split, the crop, upscaling, the number of workers) is said once, in the summary and dataset.json.
The worker processes are pack_pool's; tar writing and the spill buffer are shard_writer's.
"""

import collections
import contextlib
import hashlib
import io
import itertools
import os
import random
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Optional

from PIL import Image

from .. import __version__
from ..errors import UserError
from ..log import get_logger
from ..progress import progress
from . import transforms
from ..io import (LOCK_NAME, DirLock, is_lock_file, is_temp_name, remove_stale_temps, temp_name,
                  temp_owner_alive, write_json_atomic)
from .manifest import DERIVED_PREFIXES, FORMAT_VERSION, MANIFEST
from .intake import Limits, Skip, open_image, read_file, read_zip_member
from .labels import manifest_labels
from .pack_pool import Workers, choose_workers, signals_held
from .shard_writer import Spill, tar_header, tar_member, write_splits
from .sources import Item, Source
from .synthetic import NATIVE, cartoon_face

SPLITS = ("train", "val", "test")
# Smallest fraction of an image's short side that each crop keeps (celeba: 128 of up to 218).
CROP_KEEP = {"center": 1.0, "none": 1.0, "celeba": 128 / 218}
PROBE = 16  # images whose header is read to check a crop box before packing
# Where they were before shard_writer: tests/test_pack_promises.py checks them against tarfile's.
_tar_header, _tar_member = tar_header, tar_member


@dataclass
class PackOptions:
    size: int = 64
    crop: Optional[str] = None  # None: the source's default
    image_format: str = "png"
    quality: int = 95
    shard_size: int = 2000
    val_fraction: float = 0.02
    workers: int = 0  # 0: one per usable core
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
    # What was chosen for the user, one sentence each ({"split": ..., "crop": ..., "upscaled": ...,
    # "source": [...]}), as dataset.json's "notes"; and the workers used, which are no part of the
    # dataset (the same output whatever their number).
    notes: dict = field(default_factory=dict)
    workers: int = 1
    workers_note: str = ""


@dataclass(frozen=True)
class Job:
    """What every image goes through; the same for the whole run (each worker gets it once)."""
    size: int
    crop: str
    fmt: str
    quality: int
    limits: Limits
    dedupe: bool


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


def fits_celeba(width: int, height: int) -> bool:
    """Whether an image has the shape of CelebA's aligned images (178x218, or that scaled), the
    only shape the celeba box is placed for."""
    ref_w, ref_h = transforms.CELEBA_BOX[:2]
    return height > 0 and abs(width * ref_h / (height * ref_w) - 1) <= 0.02


def celeba_box(width: int, height: int) -> tuple:
    """(x, y, side) of the celeba crop in a width x height image (as transforms.crop_square)."""
    ref_w, ref_h, side, cx, cy = transforms.CELEBA_BOX
    s = min(round(side * width / ref_w), width, height)
    x = min(max(round(cx * width / ref_w - s / 2), 0), width - s)
    y = min(max(round(cy * height / ref_h - s / 2), 0), height - s)
    return x, y, s


def process_item(job: Job, item: Item):
    """One item -> (ok, name, payload). payload is a reason, or (encoded, meta, digest, upscaled,
    off_shape): digest (with job.dedupe) identifies the pixels, upscaled says the crop was smaller
    than the output, off_shape that a celeba crop met an image not shaped as CelebA's.
    meta["labels"] holds the item's labels (a synthetic face's: the attributes it was drawn with)."""
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
            img, orig = open_image(read_item(item, job.limits), job.limits,
                                   min_side=int(job.size / CROP_KEEP[job.crop]) + 1)
        scale = orig[0] / img.size[0]  # > 1 where a JPEG was decoded scaled down
        square = transforms.crop_square(transforms.to_rgb(img), job.crop)
        upscaled = min(square.size) * scale < job.size
        img = transforms.resize_square(square, job.size)
        encoded = transforms.encode(img, job.fmt, job.quality)
        digest = hashlib.sha1(img.tobytes()).digest() if job.dedupe else None
        meta = {"source": item.name, "width": orig[0], "height": orig[1]}
        if labels is not None:
            meta["labels"] = labels
        off_shape = job.crop == "celeba" and not fits_celeba(*orig)
        return True, item.name, (encoded, meta, digest, upscaled, off_shape)
    except Skip as why:
        return False, item.name, str(why)
    except Exception as err:  # every failure of one image is a skip with its reason, never fatal
        reason = f"damaged: {type(err).__name__}: {err}".splitlines()[0][:200]
        return False, item.name, reason


def _chunks(items, size: int):
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


# ---------------------------------------------------------------- choices, said once

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


def probe_sizes(source: Source, limits: Limits, n: int = PROBE) -> list:
    """[(where, (width, height))] of the first n images of `source` whose header reads, where is
    the file's path (or the item's name): what a crop box is checked against before packing."""
    found = []
    items = source.items()
    try:
        for item in itertools.islice(items, 4 * n):
            if item.kind == "synthetic":
                found.append((item.name, (NATIVE, NATIVE)))
            elif item.kind in ("file", "zip", "bytes"):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        with Image.open(io.BytesIO(read_item(item, limits))) as img:
                            found.append((item.ref if item.kind == "file" else item.name, img.size))
                except Exception:  # unreadable here: packing skips it with its reason
                    continue
            if len(found) >= n:
                break
    finally:
        close = getattr(items, "close", None)
        if close:
            close()
    return found


def choose_crop(source: Source, opts: PackOptions) -> tuple:
    """(crop, why). The celeba box is checked against the first images' sizes: asked for with
    --crop celeba on images of another shape, one error line naming a file; taken by default
    (a CelebA layout) on such images, the centre square instead, and said."""
    crop = opts.crop or source.default_crop
    if crop not in transforms.CROPS:
        raise UserError(f"--crop {crop}: expected one of {', '.join(transforms.CROPS)}")
    asked = f"--crop {crop}" if opts.crop else None
    if crop == "center":
        return crop, f"center: the central square of each image ({asked or 'the default; --crop to change'})"
    if crop == "none":
        return crop, "none: each whole image squashed to a square (--crop none)"
    ref_w, ref_h = transforms.CELEBA_BOX[:2]
    sizes = probe_sizes(source, opts.limits)
    off = [(where, size) for where, size in sizes if not fits_celeba(*size)]
    if off:
        where, (w, h) = off[0]
        if asked:
            raise UserError(f"--crop celeba: {where} is {w}x{h}; the celeba box is placed for CelebA's aligned "
                            f"{ref_w}x{ref_h} images (or that shape scaled): use --crop center or --crop none")
        return "center", (f"center: the central square of each image, not the celeba face box (the default for "
                          f"CelebA), which is placed for its aligned {ref_w}x{ref_h} images, and {where} is {w}x{h} "
                          f"(--crop celeba forces the box)")
    w, h = collections.Counter(size for _, size in sizes).most_common(1)[0][0] if sizes else (ref_w, ref_h)
    x, y, s = celeba_box(w, h)
    of = f"CelebA's {ref_w}x{ref_h} aligned images" if (w, h) == (ref_w, ref_h) else \
        f"the {w}x{h} images (CelebA's {ref_w}x{ref_h} aligned shape, scaled)"
    return crop, f"celeba: the face-centred {s}x{s} box at ({x}, {y}) of {of} ({asked or 'the default for CelebA'})"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _n_val(n: int, fraction: float) -> int:
    return min(int(round(n * fraction)), n - 1) if n > 1 else 0


def _holdout_note(why: str, n_val: int, n: int, opts: PackOptions, of: str = "") -> str:
    """'no partition file: kept 2% (240 of 12000) for val; ...': the held-out val split, and why."""
    if n_val:
        return (f"{why}: kept {_percent(opts.val_fraction)}{of} ({n_val} of {n}) for val; FID against it is "
                f"capped at n = {n_val}; use --val-fraction to change")
    if opts.val_fraction == 0:
        return f"{why}: no val split (--val-fraction 0); FID needs a reference from elsewhere"
    return (f"{why}: {_percent(opts.val_fraction)}{of} ({n} images) rounds to none: no val split; "
            f"raise --val-fraction to hold some out")


def choose_splits(n: int, item_splits: list, opts: PackOptions, source: Source) -> tuple:
    """(splits, why): a seeded global permutation of the kept images divided into splits, by the
    source's own partition where it has one."""
    order = list(range(n))
    random.Random(opts.seed).shuffle(order)
    if source.has_splits:
        splits = {s: [i for i in order if item_splits[i] == s] for s in SPLITS}
        what = source.split_source or "the source's own split"
        extra = "".join(f"; {d}" for d in source.split_details)
        if splits["val"]:
            counts = ", ".join(f"{s} {len(v)}" for s, v in splits.items() if v)
            return splits, f"{what} ({counts}){extra}"
        # A subset of the dataset (its first images, say) can lie wholly in the partition's train:
        # without a val split there is no FID reference, so one is held out of train instead.
        train = splits["train"]
        n_val = _n_val(len(train), opts.val_fraction)
        splits["val"], splits["train"] = train[:n_val], train[n_val:]
        return splits, _holdout_note(f"{what} puts none of these {n} images in val", n_val, len(train), opts,
                                     " of its train") + extra
    n_val = _n_val(n, opts.val_fraction)
    return {"train": order[n_val:], "val": order[:n_val]}, _holdout_note(source.no_split_reason, n_val, n, opts)


# ---------------------------------------------------------------- the output directory

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


def pack(source: Source, out: str, opts: PackOptions, log=None) -> PackResult:
    """Pack `source` into WebDataset shards and dataset.json in `out` (locked while packing).

    Images become RGB squares of opts.size pixels (8..1024) in opts.image_format; unusable
    inputs are skipped with a reason and counted. Raises UserError for bad options, a non-empty
    `out` without opts.overwrite, another packer holding `out`, nothing left to write (with the
    count per reason), or a write error; then `out` is left as it was found (a directory the
    packer made is removed) and nothing looks finished: dataset.json is written last. Stopped
    (SIGINT, SIGTERM), it kills its workers and removes what it wrote, shards included.
    log(text) takes the source's notes (default: facegan-shard's logger, on stderr: the command's
    stdout is its summary).
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
    workers, workers_note = choose_workers(opts.workers)
    source.max_bytes = opts.limits.max_bytes
    crop, crop_note = choose_crop(source, opts)
    lock = _lock_out(out)
    try:
        _prepare_out(out, opts.overwrite)
        for note in source.notes:
            (log or get_logger("facegan-shard").warning)(note)
        result = PackResult(workers=workers, workers_note=workers_note)
        result.notes = {"crop": crop_note}
        spill_path = temp_name(os.path.join(out, "spill"))
        job = Job(opts.size, crop, fmt, opts.quality, opts.limits, opts.dedupe)
        try:
            result = _pack_into(source, out, opts, job, spill_path, result, time.time())
        except OSError as err:  # disk full, permissions: one line, and no temporary files left
            raise UserError(f"writing {out}: {err.strerror or err}") from None
        finally:
            remove_stale_temps(out, include_own=True)
    except BaseException:
        # Refused, failed or stopped: a directory this packer made goes again, lock file included.
        with signals_held():
            lock.release(remove=lock.created_file)
            if lock.created_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(out)
        raise
    lock.release()
    return result


def _pack_into(source, out, opts, job, spill_path, result, start):
    total = min(len(source), opts.limit) if opts.limit and len(source) else (opts.limit or len(source))
    records, item_splits, seen = [], [], set()
    fields = source.label_fields  # labeled: every kept image carries these, checked here
    label_values = []  # the labels of each record (of a labeled source)
    upscaled = off_shape = 0
    written = []  # shards this run may have put in place: removed again if it does not finish
    spill = Spill(spill_path)
    items = source.items()
    if opts.limit:
        items = itertools.islice(items, opts.limit)
    # Chunks small enough that every worker gets several even from a few dozen images.
    chunk = max(1, min(16, (total or 10**9) // (4 * result.workers)))

    try:
        with contextlib.ExitStack() as stack:
            if result.workers > 1:
                pool = stack.enter_context(Workers(result.workers, process_item, job))
                answered = pool.imap(_chunks(items, chunk))
            else:
                answered = ((c, [process_item(job, item) for item in c]) for c in _chunks(items, chunk))
            bar = stack.enter_context(progress(total=total or None, unit="img", desc="packing", smoothing=0.1))
            for batch, results in answered:
                for item, (ok, name, payload) in zip(batch, results):
                    result.images_in += 1
                    if not ok:
                        result.skipped.append({"source": name, "reason": payload})
                        continue
                    encoded, meta, digest, was_upscaled, was_off_shape = payload
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
                    records.append((spill.add(encoded), meta))
                    item_splits.append(item.split or "train")
                    upscaled += was_upscaled
                    off_shape += was_off_shape
                    if fields:
                        label_values.append(labels)
                bar.update(len(batch))
            stack.pop_all().close()  # the workers end before the writing starts
            spill.done_adding()
            if not records:
                why = f": {describe_skips(result.skipped)}" if result.skipped else ""
                dup = f", {result.duplicates} duplicates" if result.duplicates else ""
                raise UserError(f"nothing to write: none of {result.images_in} inputs gave an image "
                                f"({len(result.skipped)} skipped{why}{dup})")

            splits, result.notes["split"] = choose_splits(len(records), item_splits, opts, source)
            manifest_splits = write_splits(out, splits, records, job.fmt, opts.shard_size, spill,
                                            min(result.workers, 4), written)
            result.counts = {split: len(order) for split, order in splits.items() if order}
    except BaseException:
        with signals_held():
            for path in written:  # not a dataset without its dataset.json: nothing to trip a rerun
                with contextlib.suppress(OSError):
                    os.remove(path)
        raise
    finally:
        spill.close()

    kept = len(records)
    if job.crop == "celeba" and off_shape:
        result.notes["crop"] += (f"; {off_shape} of {kept} images are not shaped as CelebA's aligned images "
                                 f"and got the box scaled to their width")
    if upscaled:
        result.notes["upscaled"] = (f"{upscaled} of {kept} images were smaller than {opts.size} and were upscaled "
                                    f"(--min-side {opts.size} skips them instead)")
    if source.notes:
        result.notes["source"] = list(source.notes)
    result.seconds = time.time() - start
    result.label_fields, result.label_source = fields, source.label_source if fields else ""
    manifest = {
        "format_version": FORMAT_VERSION,
        "facegan_version": __version__,
        "resolution": opts.size,
        "image_format": job.fmt,
        "quality": opts.quality if job.fmt != "png" else None,
        "crop": job.crop,
        "seed": opts.seed,
        "source": {"kind": source.kind, "inputs": result.images_in},
        "count": sum(result.counts.values()),
        "splits": manifest_splits,
        "skipped": result.skipped,
        "duplicates": result.duplicates,
        "notes": result.notes,
        "run": {"workers": result.workers, "workers_note": result.workers_note},
        "command": opts.command,
    }
    if fields:
        manifest["labels"] = manifest_labels(fields, source.label_source, label_values)
    write_json_atomic(os.path.join(out, MANIFEST), manifest)
    return result
