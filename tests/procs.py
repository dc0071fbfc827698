"""Real launcher processes for the multi-process tests: output collected with timestamps, the
ranks found by their parent, and the whole process group ended whatever the test's outcome."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--mixed_precision", "no", "--dynamo_backend", "no"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Launch:
    """`accelerate launch ...` in its own session; .lines holds (seconds since start, line)."""

    def __init__(self, args, name="launch", env=None):
        self.name, self.t0, self.lines = name, time.time(), []
        self.proc = subprocess.Popen(ACCELERATE + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})),
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first_time(self, text):
        """When a line containing text was printed (epoch seconds), or None."""
        return next((t for t, line in list(self.lines) if text in line), None)

    def ranks(self):
        """PIDs of the trainer processes this launcher (the torchrun agent) started."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid:
                pids.append(int(entry))
        return pids

    def group_alive(self):
        """PIDs still in this launcher's process group (the agent, ranks, loader workers)."""
        return group_alive(self.proc.pid)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=10)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def group_alive(pgid: int) -> list:
    """PIDs of the living (not zombie) processes of process group pgid, read from /proc."""
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    with open(f"/proc/{entry}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            alive.append(int(entry))
            except (OSError, IndexError):
                pass
    return alive
