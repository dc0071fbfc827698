"""The packer: source images -> RGB squares -> shuffled WebDataset tar shards + dataset.json.

Two phases keep memory flat and output deterministic whatever the number of workers:
1. decode/crop/resize/encode in parallel, in source order, keeping the results (in memory up to
   256 MB, the rest in a spill file beside the shards);
2. permute the kept images with the seed, split train/val, write the shards (a few at a time).
Every shard is written under a temporary name and renamed when whole; dataset.json comes last.

Start-up counts (a pack of a few thousand images takes seconds): nothing here imports torch, and
workers are forked from this process when that is safe. Each choice made for the user (the val
split, the crop, upscaling, the number of workers) is said once, in the summary and dataset.json.
"""

import collections
import contextlib
import hashlib
import io
import itertools
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import tarfile
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_any
from typing import Optional

from PIL import Image

from .. import __version__
from ..errors import UserError
from ..progress import progress
from . import transforms
from ..io import (LOCK_NAME, DirLock, atomic_path, is_lock_file, is_temp_name, remove_stale_temps,
                  temp_name, temp_owner_alive, write_json_atomic)
from .manifest import DERIVED_PREFIXES, FORMAT_VERSION, MANIFEST
from .intake import Limits, Skip, open_image, read_file, read_zip_member
from .labels import manifest_labels
from .sources import Item, Source
from .synthetic import NATIVE, cartoon_face

SPLITS = ("train", "val", "test")
# Smallest fraction of an image's short side that each crop keeps (celeba: 128 of up to 218).
CROP_KEEP = {"center": 1.0, "none": 1.0, "celeba": 128 / 218}
# Modules whose native thread pools are not safe to fork (torch's OpenMP, Arrow's readers).
FORK_UNSAFE = frozenset({"torch", "pyarrow", "datasets", "tensorflow", "jax"})
PROBE = 16  # images whose header is read to check a crop box before packing


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


# ---------------------------------------------------------------- worker processes

def _worker(conn, job: Job) -> None:
    """A worker's life: chunks of items in, their results out, until told to stop or orphaned.

    SIGINT and SIGTERM to the process group (Ctrl-C, timeout, scancel) are for the main process,
    which stops feeding and kills the workers itself: a worker dying of them on its own would
    leave its chunk unanswered and print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # started while the main process held them
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    parent = os.getppid()
    try:
        while True:
            if not conn.poll(1.0):
                if os.getppid() != parent:  # whoever started us is gone (killed): so is the work
                    return
                continue
            task = conn.recv()
            if task is None:
                return
            index, items = task
            conn.send((index, [process_item(job, item) for item in items]))
    except (EOFError, OSError):  # the main process closed the pipe: it is ending
        return


def _start_method() -> str:
    """fork where it is safe, forkserver elsewhere. fork costs nothing (no new interpreter, nothing
    imported again) but copies this process as it is: safe while no thread here can hold a lock at
    fork time (none of Python's, no native pool of FORK_UNSAFE; a BLAS pool re-forms itself).
    forkserver forks workers from a clean single-threaded server that imports only the packer."""
    if sys.platform.startswith("linux") and threading.active_count() == 1 \
            and not FORK_UNSAFE.intersection(sys.modules):
        return "fork"
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait (and are delivered right after) while workers are started or ended,
    so that neither is left half done: a worker started but not yet known, one not yet killed."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Workers:
    """Worker processes that pack chunks of items; results come back in source order.

    Nothing waits on a worker without end: a worker that dies is an EOF on its pipe (one error
    line); on any exception here, SIGINT and SIGTERM included, every worker is killed and reaped
    with a timeout. Chunks go to whichever worker is free, at most DEPTH queued per worker and a
    window of chunks ahead of the oldest unanswered one (bounded memory, whatever one slow image does).
    """

    DEPTH = 2

    def __init__(self, n: int, job: Job):
        self.n, self.job = n, job
        self.procs, self.conns = [], []
        self.window = n * (self.DEPTH + 2)

    def __enter__(self):
        ctx = mp.get_context(_start_method())
        if ctx.get_start_method() == "forkserver":
            # The caller's main module once in the server (as multiprocessing does by default), not
            # again in every worker; and the packer.
            ctx.set_forkserver_preload(["__main__", __name__])
            # Started here, before signals are held: starting it unblocks SIGINT and SIGTERM
            # (multiprocessing's own guard), which would let them into the server's start below.
            from multiprocessing import resource_tracker
            resource_tracker.ensure_running()
        Image.preinit()  # PIL's common decoders, imported once here rather than in every worker
        for stream in (sys.stdout, sys.stderr):  # a forked worker must not print what is buffered again
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            with _signals_held():  # a signal held here is raised when it ends: still in this try
                for _ in range(self.n):
                    ours, theirs = ctx.Pipe()
                    proc = ctx.Process(target=_worker, args=(theirs, self.job), daemon=True,
                                       name="facegan-shard worker")
                    self.procs.append(proc)
                    self.conns.append(ours)
                    proc.start()
                    theirs.close()
        except BaseException:
            with _signals_held():
                self._end()
            raise
        return self

    def __exit__(self, *exc):
        with _signals_held():
            self._end()

    def _end(self) -> None:
        for conn in self.conns:
            conn.close()
        for proc in self.procs:  # they hold nothing of ours on disk: killing is safe, and quick
            if proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            if proc.pid is not None:
                proc.join(max(0.1, deadline - time.monotonic()))
        self.procs, self.conns = [], []

    def imap(self, chunks):
        """(items, results) for each chunk of `chunks`, in order."""
        chunks = iter(chunks)
        sent, done, owner = {}, {}, {}  # index -> items, results, the pipe it went down
        busy = dict.fromkeys(self.conns, 0)
        state = {"next_in": 0, "exhausted": False}
        next_out = 0

        def died(conn):  # the error for a worker gone, naming what it had in hand
            return self._died(conn, [sent[i] for i, c in owner.items() if c is conn and i not in done])

        def feed(conn):
            while (not state["exhausted"] and busy[conn] < self.DEPTH
                   and state["next_in"] - next_out < self.window):
                items = next(chunks, None)
                if items is None:
                    state["exhausted"] = True
                    return
                index = state["next_in"]
                sent[index], owner[index] = items, conn
                try:
                    conn.send((index, items))
                except OSError:
                    raise died(conn) from None
                busy[conn] += 1
                state["next_in"] += 1

        for conn in self.conns:
            feed(conn)
        while True:
            while next_out in done:
                owner.pop(next_out)
                yield sent.pop(next_out), done.pop(next_out)
                next_out += 1
                for conn in self.conns:
                    feed(conn)
            waiting = [c for c in self.conns if busy[c]]
            if not waiting:  # everything sent was answered, and there is nothing more to send
                return
            for conn in wait_for_any(waiting):
                try:
                    index, results = conn.recv()
                except (EOFError, OSError):
                    raise died(conn) from None
                done[index] = results
                busy[conn] -= 1
                feed(conn)

    def _died(self, conn, chunks) -> UserError:
        proc = self.procs[self.conns.index(conn)]
        proc.join(1)
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"killed by {name}" + (", out of memory?" if -code == signal.SIGKILL else "")
        else:
            how = f"exit status {code}"
        names = [item.name for chunk in chunks for item in chunk]
        where = f" while packing one of {len(names)} images from {names[0]}" if names else ""
        return UserError(f"a packer worker ended ({how}){where}; nothing was written (rerun with "
                         f"--workers 1 to pack in one process)")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may run on (taskset, SLURM, cgroups)
    except AttributeError:
        return os.cpu_count() or 1


def choose_workers(asked: int) -> tuple:
    """(workers, why): one per usable core by default; never more than the usable cores."""
    cores = _usable_cores()
    if asked < 0:
        raise UserError(f"--workers {asked}: must be at least 0 (0: one per usable core)")
    if not asked:
        return cores, f"{cores} (one per usable core; --workers to change)"
    if asked > cores:
        return cores, (f"{cores} (--workers {asked} lowered to the {cores} usable cores: more would only "
                       f"compete for them)")
    return asked, f"{asked} (--workers {asked})" if asked > 1 else "1 (--workers 1: in this process)"


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


def _tar_header(name: str, size: int) -> bytes:
    """A tar member's header as WebDataset's TarWriter writes it through tarfile (ustar, mode
    0444, owner facegan), with mtime 0 so the same images always give the same bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uname = info.gname = "facegan"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


_HEADER = bytearray(_tar_header("x", 0))


def _add_member(buf: bytearray, name: str, data: bytes) -> None:
    """Append one member (header, data, padding) to buf. The header is tarfile's own for a short
    ASCII name with only the name, size and checksum put in: building every header from scratch
    took a third of the writing phase."""
    raw = name.encode("ascii", "replace")
    if len(raw) >= 100 or not name.isascii() or len(data) >= 8 ** 11:
        buf += _tar_header(name, len(data))
    else:
        header = bytearray(_HEADER)
        header[0:100] = raw.ljust(100, b"\0")
        header[124:136] = b"%011o\0" % len(data)
        header[148:156] = b"        "  # the checksum counts its own field as spaces
        header[148:156] = b"%06o\0 " % sum(header)
        buf += header
    buf += data
    buf += bytes(-len(data) % tarfile.BLOCKSIZE)


def _tar_member(name: str, data: bytes) -> bytes:
    buf = bytearray()
    _add_member(buf, name, data)
    return bytes(buf)


class _Spill:
    """The encoded images between the two phases: in memory up to MEMORY bytes (a pack of some
    thousands of images never writes and reads them back), the rest in a temporary file in --out.
    add() gives a reference that get() turns back into the bytes, from any thread."""

    MEMORY = 256 << 20

    def __init__(self, path: str):
        self.path, self.file, self.held = path, None, 0

    def add(self, data: bytes):
        if self.held + len(data) <= self.MEMORY:
            self.held += len(data)
            return data
        if self.file is None:
            self.file = open(self.path, "w+b")
        offset = self.file.tell()
        self.file.write(data)
        return offset, len(data)

    def done_adding(self) -> None:
        if self.file is not None:
            self.file.flush()

    def get(self, ref) -> bytes:
        if isinstance(ref, bytes):
            return ref
        offset, length = ref
        return os.pread(self.file.fileno(), length, offset)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        with contextlib.suppress(OSError):
            os.remove(self.path)


def _write_shard(path: str, samples, spill: _Spill, stop: Optional[threading.Event] = None) -> tuple:
    """Write one tar under a temporary name, fsync, rename into place: (sha256, bytes). Members
    are key.ext then key.json (sorted by extension, as TarWriter orders them); written in blocks
    of about a megabyte and hashed on the way (the shard is never read back)."""
    sha256, size, buf = hashlib.sha256(), 0, bytearray()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            def flush():
                nonlocal size
                sha256.update(buf)
                f.write(buf)
                size += len(buf)
                buf.clear()

            for key, ext, ref, meta in samples:
                if stop is not None and stop.is_set():
                    raise RuntimeError("stopped")  # the packer is ending: the temporary goes
                members = {ext: spill.get(ref), "json": json.dumps(meta, sort_keys=True).encode()}
                for name in sorted(members):
                    _add_member(buf, f"{key}.{name}", members[name])
                if len(buf) >= 1 << 20:
                    flush()
            buf += bytes(2 * tarfile.BLOCKSIZE)  # the end-of-archive marker, then whole records
            buf += bytes(-(size + len(buf)) % tarfile.RECORDSIZE)
            flush()
    return sha256.hexdigest(), size


def pack(source: Source, out: str, opts: PackOptions, log=print) -> PackResult:
    """Pack `source` into WebDataset shards and dataset.json in `out` (locked while packing).

    Images become RGB squares of opts.size pixels (8..1024) in opts.image_format; unusable
    inputs are skipped with a reason and counted. Raises UserError for bad options, a non-empty
    `out` without opts.overwrite, another packer holding `out`, nothing left to write (with the
    count per reason), or a write error; then `out` is left as it was found (a directory the
    packer made is removed) and nothing looks finished: dataset.json is written last. Stopped
    (SIGINT, SIGTERM), it kills its workers and removes what it wrote, shards included.
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
            print(f"facegan-shard: {note}", file=sys.stderr)
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
        with _signals_held():
            lock.release(remove=lock.created_file)
            if lock.created_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(out)
        raise
    lock.release()
    return result


def _write_splits(out, splits, records, fmt, shard_size, spill, threads, written) -> dict:
    """Write every split's shards, `threads` at a time: building a tar is Python's work, but
    writing, hashing and fsyncing it let other threads run, so one shard's I/O overlaps the next
    one's building. Returns the manifest's "splits"; every path it may write is in `written`
    first. Stopped (an exception here, SIGINT or SIGTERM included), the shards being written stop
    at their next image and nothing queued starts."""
    plan = []
    for split, order in splits.items():
        for k, lo in enumerate(range(0, len(order), shard_size)):
            ids = order[lo:lo + shard_size]
            samples = [(f"{split}{lo + j:09d}", fmt, *records[i]) for j, i in enumerate(ids)]
            plan.append((split, f"{split}-{k:06d}.tar", samples))
    written.extend(os.path.join(out, name) for _, name, _ in plan)
    stop = threading.Event()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="facegan-shard writer")
    manifest_splits = {}
    try:
        futures = [pool.submit(_write_shard, os.path.join(out, name), samples, spill, stop)
                   for _, name, samples in plan]
        with progress(total=len(records), unit="img", desc="writing") as bar:
            for (split, name, samples), future in zip(plan, futures):
                digest, nbytes = future.result()
                entry = manifest_splits.setdefault(split, {"count": len(splits[split]), "shards": []})
                entry["shards"].append({"name": name, "count": len(samples), "sha256": digest, "bytes": nbytes})
                bar.update(len(samples))
    finally:
        with _signals_held():  # no shard may be renamed into place after this returns
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
    return manifest_splits


def _pack_into(source, out, opts, job, spill_path, result, start):
    total = min(len(source), opts.limit) if opts.limit and len(source) else (opts.limit or len(source))
    records, item_splits, seen = [], [], set()
    fields = source.label_fields  # labeled: every kept image carries these, checked here
    label_values = []  # the labels of each record (of a labeled source)
    upscaled = off_shape = 0
    written = []  # shards this run may have put in place: removed again if it does not finish
    spill = _Spill(spill_path)
    items = source.items()
    if opts.limit:
        items = itertools.islice(items, opts.limit)
    # Chunks small enough that every worker gets several even from a few dozen images.
    chunk = max(1, min(16, (total or 10**9) // (4 * result.workers)))

    try:
        with contextlib.ExitStack() as stack:
            if result.workers > 1:
                pool = stack.enter_context(Workers(result.workers, job))
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
            manifest_splits = _write_splits(out, splits, records, job.fmt, opts.shard_size, spill,
                                            min(result.workers, 4), written)
            result.counts = {split: len(order) for split, order in splits.items() if order}
    except BaseException:
        with _signals_held():
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
