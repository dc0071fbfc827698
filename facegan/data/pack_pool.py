"""The packer's worker processes: starting them (fork where safe, forkserver elsewhere), feeding
them chunks of items, getting results back in source order, and ending them (SIGKILL, then reap).

Workers ignore SIGINT and SIGTERM: a signal to the process group is for the main process, which
stops feeding and kills them itself, so no worker dies alone with a chunk unanswered. The main
process holds both signals (signals_held) while it starts or ends workers, so neither is left
half done. choose_workers says how many there are.
"""

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as wait_for_any

from PIL import Image

from ..errors import UserError

# Modules whose native thread pools are not safe to fork (torch's OpenMP, Arrow's readers).
FORK_UNSAFE = frozenset({"torch", "pyarrow", "datasets", "tensorflow", "jax"})


def _worker(conn, work, job) -> None:
    """A worker's life: chunks of items in, work(job, item) of each out, until told to stop or orphaned.

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
            conn.send((index, [work(job, item) for item in items]))
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
def signals_held():
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
    """Worker processes that run work(job, item) on chunks of items (work: a module-level function,
    the packer's process_item); results come back in source order.

    Nothing waits on a worker without end: a worker that dies is an EOF on its pipe (one error
    line); on any exception here, SIGINT and SIGTERM included, every worker is killed and reaped
    with a timeout. Chunks go to whichever worker is free, at most DEPTH queued per worker and a
    window of chunks ahead of the oldest unanswered one (bounded memory, whatever one slow image does).
    """

    DEPTH = 2

    def __init__(self, n: int, work, job):
        self.n, self.work, self.job = n, work, job
        self.procs, self.conns = [], []
        self.window = n * (self.DEPTH + 2)

    def __enter__(self):
        ctx = mp.get_context(_start_method())
        if ctx.get_start_method() == "forkserver":
            # The caller's main module once in the server (as multiprocessing does by default), not
            # again in every worker; and the module of the work (the packer).
            ctx.set_forkserver_preload(["__main__", self.work.__module__])
            # Started here, before signals are held: starting it unblocks SIGINT and SIGTERM
            # (multiprocessing's own guard), which would let them into the server's start below.
            from multiprocessing import resource_tracker
            resource_tracker.ensure_running()
        Image.preinit()  # PIL's common decoders, imported once here rather than in every worker
        for stream in (sys.stdout, sys.stderr):  # a forked worker must not print what is buffered again
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            with signals_held():  # a signal held here is raised when it ends: still in this try
                for _ in range(self.n):
                    ours, theirs = ctx.Pipe()
                    proc = ctx.Process(target=_worker, args=(theirs, self.work, self.job), daemon=True,
                                       name="facegan-shard worker")
                    self.procs.append(proc)
                    self.conns.append(ours)
                    proc.start()
                    theirs.close()
        except BaseException:
            with signals_held():
                self._end()
            raise
        return self

    def __exit__(self, *exc):
        with signals_held():
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
