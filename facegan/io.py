"""Every file facegan writes goes through here: atomic writes, JSON, digests, directory locks.

Why one module: a reader (a resumed run, a teammate, a second process) must never see half a
file, two processes must never share a temporary name, and every output is created with the
user's umask (safetensors and tempfile create files owner-only, which hides checkpoints and
shared FID caches from teammates on a cluster).
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import socket
import uuid

from .errors import UserError

TMP_MARK = ".tmp-"  # every temporary name holds this, then host, pid and a random part
LOCK_NAME = ".facegan.lock"
HOLDER_NAME = ".facegan.lock.holder.json"


# ---------------------------------------------------------------- digests and JSON

def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks (hashlib.file_digest needs Python 3.11)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str) -> str:
    return file_digest(path, "sha256")


def read_json(path: str, what: str) -> dict:
    """Parse a JSON file we wrote; a damaged one is a UserError naming the file."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable {what} ({err})") from None


# ---------------------------------------------------------------- temporary names

def _umask() -> int:
    # os.umask can only be read by setting it; done once per call, restored at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_name(path: str) -> str:
    """A sibling of `path` that no other process (on any host sharing the disk) can pick:
    '.NAME.tmp-HOST-PID-RANDOM'. Hidden, so a listing of finished outputs never shows it."""
    host = socket.gethostname().split(".")[0] or "host"
    base = os.path.basename(os.path.normpath(path))
    return os.path.join(os.path.dirname(path), f".{base}{TMP_MARK}{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_temp_name(name: str) -> bool:
    return TMP_MARK in name


def temp_owner_alive(name: str) -> bool:
    """Whether the process that made temporary `name` may still be writing it. Only a process on
    this host whose pid is gone is known dead; anything unparsable or foreign counts as alive."""
    try:
        host, pid, _ = name.rsplit(TMP_MARK, 1)[1].rsplit("-", 2)
        pid = int(pid)
    except ValueError:
        return False  # an old-style name (no host): written by a facegan that held no lock
    if host != (socket.gethostname().split(".")[0] or "host"):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str, include_own: bool = False) -> int:
    """Delete temporaries in `directory` whose writer is dead (and, with include_own, this
    process's own); never another live process's. Returns how many were removed."""
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if is_temp_name(name) and (not temp_owner_alive(name) or (include_own and _is_own(name))):
            path = os.path.join(directory, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _unlink(path)
            removed += 1
    return removed


def _is_own(name: str) -> bool:
    host = socket.gethostname().split(".")[0] or "host"
    return f"{TMP_MARK}{host}-{os.getpid()}-" in name


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- atomic writes

@contextlib.contextmanager
def atomic_path(path: str, mode: int = 0o666):
    """Yield a temporary path to write `path` through; on success it is fsynced, given the
    permissions `mode & ~umask` (as open() would), and renamed over `path` in one step. On any
    error (or Ctrl-C) the temporary is removed and `path` is left as it was.

    Raises UserError when `path` is an existing directory. Missing parent directories are made.
    """
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, expected a file path")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise RuntimeError(f"nothing was written to {tmp}")
        os.chmod(tmp, mode & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str):
    """Yield a temporary directory to fill; on success its files are fsynced and it takes the
    place of `path` (an existing `path` is moved aside first and removed after); on error it is
    removed and `path` is left as it was. Files inside get umask permissions."""
    tmp = temp_name(path)
    os.makedirs(tmp)
    try:
        yield tmp
        mask = _umask()
        os.chmod(tmp, 0o777 & ~mask)
        for name in os.listdir(tmp):
            f = os.path.join(tmp, name)
            if os.path.isfile(f):
                os.chmod(f, 0o666 & ~mask)
                _fsync(f)
        old = None
        if os.path.exists(path):
            old = temp_name(path)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(path: str, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str, obj) -> None:
    """JSON (indented, sorted keys) written atomically: readers never see half a file."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_safetensors_atomic(path: str, tensors: dict, metadata: dict = None) -> None:
    """safetensors.torch.save_file through atomic_path (and with umask permissions, which
    save_file alone does not give)."""
    from safetensors.torch import save_file
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


# ---------------------------------------------------------------- one writer per directory

class DirLock:
    """An exclusive lock on a directory for one process's life (filelock: flock on POSIX), so the
    operating system drops it when its holder dies, even by kill -9; no PID file to go stale.

    The holder's host, pid and start time go to a side file (the lock file itself is truncated
    by every process that tries it) so that a refused process can say who holds it.
    """

    def __init__(self, directory: str, what: str):
        self.directory, self.what = directory, what
        self._lock = None

    def acquire(self) -> "DirLock":
        """Take the lock or raise UserError naming the holder. Creates the directory."""
        from filelock import FileLock, Timeout
        os.makedirs(self.directory, exist_ok=True)
        lock = FileLock(os.path.join(self.directory, LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise UserError(f"{self.directory}: {self.holder_text()}; one writer per {self.what} "
                            f"(wait for it, stop it, or choose another directory)") from None
        self._lock = lock
        holder = {"host": socket.gethostname(), "pid": os.getpid(),
                  "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        with contextlib.suppress(OSError):
            write_json_atomic(os.path.join(self.directory, HOLDER_NAME), holder)
        return self

    def holder_text(self) -> str:
        try:
            with open(os.path.join(self.directory, HOLDER_NAME)) as f:
                h = json.load(f)
            return f"in use by pid {h['pid']} on {h['host']} since {h['since']}"
        except (OSError, ValueError, KeyError):
            return "in use by another process"

    def release(self, remove: bool = False) -> None:
        """Release; remove=True also deletes the lock file (for a refusal that must leave the
        directory as it found it)."""
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, HOLDER_NAME))
            if remove:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, LOCK_NAME))
            self._lock.release()
            self._lock = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _locked_ancestor(path: str):
    """The nearest directory at or above `path` that a facegan writer locks (it holds a lock file)."""
    d = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
    while True:
        if os.path.isfile(os.path.join(d, LOCK_NAME)):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def lock_outputs(paths, what: str = "run directory") -> list:
    """Locks of the run or shard directories that outputs `paths` (None entries ignored) will be
    written into, so a tool never writes into a directory a training or packer holds. Keep the
    returned list alive while writing; UserError naming the holder when one is held."""
    dirs = sorted({d for d in (_locked_ancestor(p) for p in paths if p) if d})
    locks = []
    try:
        for d in dirs:
            locks.append(DirLock(d, what).acquire())
    except UserError:
        for lock in locks:
            lock.release()
        raise
    return locks


def is_lock_file(name: str) -> bool:
    return name in (LOCK_NAME, HOLDER_NAME)


__all__ = ["atomic_path", "atomic_dir", "write_bytes_atomic", "write_text_atomic", "write_json_atomic",
           "save_safetensors_atomic", "read_json", "file_digest", "sha256_file", "DirLock", "temp_name",
           "is_temp_name", "temp_owner_alive", "remove_stale_temps", "is_lock_file"]
