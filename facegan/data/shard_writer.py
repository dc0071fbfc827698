"""Writing shards: WebDataset tar members built from a header template, each shard hashed as it
is written under a temporary name and renamed when whole, a few shards at a time in threads; and
the Spill buffer that holds the encoded images between the packer's two phases (in memory, then a
temporary file beside the shards).
"""

import contextlib
import hashlib
import json
import os
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ..io import atomic_path
from ..progress import progress
from .pack_pool import signals_held


def tar_header(name: str, size: int) -> bytes:
    """A tar member's header as WebDataset's TarWriter writes it through tarfile (ustar, mode
    0444, owner facegan), with mtime 0 so the same images always give the same bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o444
    info.uname = info.gname = "facegan"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


_HEADER = bytearray(tar_header("x", 0))


def _add_member(buf: bytearray, name: str, data: bytes) -> None:
    """Append one member (header, data, padding) to buf. The header is tarfile's own for a short
    ASCII name with only the name, size and checksum put in: building every header from scratch
    took a third of the writing phase."""
    raw = name.encode("ascii", "replace")
    if len(raw) >= 100 or not name.isascii() or len(data) >= 8 ** 11:
        buf += tar_header(name, len(data))
    else:
        header = bytearray(_HEADER)
        header[0:100] = raw.ljust(100, b"\0")
        header[124:136] = b"%011o\0" % len(data)
        header[148:156] = b"        "  # the checksum counts its own field as spaces
        header[148:156] = b"%06o\0 " % sum(header)
        buf += header
    buf += data
    buf += bytes(-len(data) % tarfile.BLOCKSIZE)


def tar_member(name: str, data: bytes) -> bytes:
    buf = bytearray()
    _add_member(buf, name, data)
    return bytes(buf)


class Spill:
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


def _write_shard(path: str, samples, spill: Spill, stop: Optional[threading.Event] = None) -> tuple:
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

def write_splits(out, splits, records, fmt, shard_size, spill, threads, written) -> dict:
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
        with signals_held():  # no shard may be renamed into place after this returns
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
    return manifest_splits
