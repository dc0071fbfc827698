"""One shard's samples, read with WebDataset's own pieces, never raising and never hanging.

WebDataset opens the URL (a path, pipe:, http(s), object stores through pipe:) and splits the
tar into samples (`tar_file_expander` + `group_by_keys`, over Python's tarfile). What this
module adds is what a long training run needs around them:
- a stream that stops delivering (a stalled `pipe:` command, a hung network read, a FIFO) is
  an error after `stall_s` seconds without a byte, not a run that waits forever;
- every problem (an unopenable URL, a damaged header, a cut-off member, a duplicate name, a
  failing command) becomes one line in a list, and the shard ends or goes on as the tar allows;
  the caller decides what that costs.
"""

import os
import select
import signal
import stat
import subprocess
from typing import Collection, Iterator, List, Optional

import webdataset as wds
from webdataset.gopen import Pipe
from webdataset.tariterators import group_by_keys, tar_file_expander

from .bad_data import reason_of

STALL_S = 120.0  # default data.stall_s: seconds a shard stream may deliver nothing


class StalledRead(OSError):
    pass


class _WatchedStream:
    """A non-file stream (a pipe, a socket, a FIFO) read straight from its descriptor, waiting at
    most stall_s for each chunk. A command that stalls is killed; one that fails says so."""

    def __init__(self, opened, stall_s: float):
        self.opened, self.stall_s = opened, stall_s
        self.proc = getattr(opened, "proc", None)  # webdataset's Pipe for pipe: and http(s)
        raw = getattr(opened, "stream", opened)
        self.fd = raw.fileno()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while True:
                chunk = self.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        ready, _, _ = select.select([self.fd], [], [], self.stall_s)
        if not ready:
            raise StalledRead(f"no data for {self.stall_s:g} s (data.stall_s)")
        data = os.read(self.fd, n)
        if not data and self.proc is not None:
            try:
                status = self.proc.wait(timeout=self.stall_s)
            except subprocess.TimeoutExpired:
                raise StalledRead(f"command closed its output but did not exit within {self.stall_s:g} s") from None
            if status != 0:
                raise OSError(f"command exited with status {status}")
        return data

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if getattr(self.opened, "own_session", False):
                try:  # what the shell started (`a | b`, `x; sleep`) goes with it
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            getattr(self.opened, "stream", self.opened).close()
        except OSError:
            pass

    def __str__(self):
        return "<shard stream>"


def _open_pipe(command: str):
    """webdataset's Pipe for a pipe: URL, as wds.gopen opens it, but in a session of its own, so
    that a stalled command can be ended with everything it started."""
    pipe = Pipe(command, mode="rb", shell=True, bufsize=8192, ignore_status=[141], start_new_session=True)
    pipe.own_session = True
    return pipe


class _EndGuard:
    """Ends reads past the end of the stream. tarfile skips a member it does not extract by
    reading its size's worth of blocks; with a damaged size field (up to 2**95 bytes in base-256)
    that loop would read nothing for ever. One empty read is the normal end; a few more are
    a member that claims to run past it."""

    EMPTY_READS_ALLOWED = 4

    def __init__(self, stream):
        self.stream, self.empty_reads = stream, 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        if not data and n != 0:
            self.empty_reads += 1
            if self.empty_reads > self.EMPTY_READS_ALLOWED:
                raise EOFError("a member runs past the end of the shard (cut off, or a damaged size field)")
        return data

    def close(self):
        self.stream.close()

    def __str__(self):
        return "<shard stream>"


def open_shard(url: str, stall_s: float = STALL_S):
    """A readable stream for a shard URL; anything that is not a regular file is watched."""
    opened = _open_pipe(url[5:]) if url.startswith("pipe:") else wds.gopen(url, "rb")
    raw = getattr(opened, "stream", opened)
    try:
        regular = stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no descriptor: an in-memory or library stream
        regular = True
    watched = opened if regular and not hasattr(opened, "proc") else _WatchedStream(opened, stall_s)
    return _EndGuard(watched)


def shard_samples(url: str, problems: List[str], stall_s: float = STALL_S,
                  keep: Optional[Collection[str]] = None) -> Iterator[dict]:
    """The samples of one shard, in order ({"__key__", "__url__", ext: bytes, ...}). Each problem
    is appended to `problems` as one line; after one that ends the tar stream, the shard ends.
    keep: the file extensions to read (others are skipped unread: the loader needs no .json)."""

    def handler(err: BaseException) -> bool:
        problems.append(reason_of(err))
        return True  # go on: skip the member, or (for the stream itself) end this shard

    try:
        stream = open_shard(url, stall_s)
    except Exception as err:  # a missing file, an unknown scheme, a command that cannot start
        handler(err)
        return
    try:
        select = None if keep is None else (lambda name: name.rsplit(".", 1)[-1].lower() in keep)
        files = tar_file_expander([{"url": url, "stream": stream}], handler=handler, select_files=select)
        yield from group_by_keys(files, handler=handler)
    finally:
        stream.close()
