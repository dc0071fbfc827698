"""Run a test's command in a new process forked from an interpreter that has imported torch already.

Why: importing torch, torchvision and accelerate, and the torch._dynamo that any optimizer step
pulls in, costs 4-10 s of CPU per process on a small shared machine, which was most of the test
suite's time. One server per test worker imports those libraries once and never runs a tensor
operation (so no OpenMP or other thread exists when it forks). Each command then runs in a fresh
fork of it: its own pid and session, its own stdin/stdout/stderr, exit status and signals, the
environment and working directory the test gives, and facegan itself imported afresh (the server
never imports it). Tests whose subject is the interpreter's own start (environment variables that
libraries read at import, launchers, timing of a cold start) run the command cold instead; see
`warm_ok` in tests/conftest.py.

Protocol (one Unix-socket connection per command): the client sends a JSON request line with the
three standard descriptors attached (SCM_RIGHTS); a monitor forked for it replies "pid N" once the
command's process exists and "rc N" when it ends (negative: killed by that signal, as subprocess
reports it).
"""

import json
import os
import signal
import socket
import sys
import threading

PRELOAD = ("numpy", "PIL.Image", "torch", "torch._dynamo", "torchvision", "accelerate", "safetensors.torch",
           "yaml", "tqdm")


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _run_command(argv, cwd, env):
    """In the forked child: behave as `python ARGV...` would. Returns the exit status, or minus
    SIGINT for an uncaught KeyboardInterrupt (the caller then ends the process by that signal)."""
    import runpy

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # The server loaded libgomp with one thread (see serve); give the command what a cold start
    # would: its OMP_NUM_THREADS, else one thread per usable core (libgomp's default).
    threads = env.get("OMP_NUM_THREADS", "")
    import torch

    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else len(os.sched_getaffinity(0)))
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    base = [p for p in _BASE if p not in extra]
    try:
        if argv[0] == "-m":
            sys.argv = ["-m", *argv[2:]]
            sys.path[:] = [cwd, *extra, *base]
            runpy._run_module_as_main(argv[1], alter_argv=True)
        elif argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            sys.path[:] = ["", *extra, *base]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            path = os.path.abspath(argv[0])
            sys.argv = list(argv)
            sys.path[:] = [os.path.dirname(path), *extra, *base]
            runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        code = -signal.SIGINT  # as Python does: end by the signal itself (see below)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    # What the interpreter does on its way out: wait for non-daemon threads, run atexit handlers.
    try:
        threading._shutdown()
    except BaseException:
        pass
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    return code


def _serve_one(conn: socket.socket, listener: socket.socket):
    """The monitor: fork the command's process, report its pid, wait, report its status."""
    listener.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    req = json.loads(msg.decode())
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            conn.close()
            os.setsid()
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
                os.close(fd)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(sig, signal.SIG_DFL)
            code = _run_command(req["argv"], req["cwd"], req["env"])
            if code < 0:  # an uncaught KeyboardInterrupt: die by SIGINT, as a cold interpreter does
                signal.signal(-code, signal.SIG_DFL)
                os.kill(os.getpid(), -code)
        finally:
            os._exit(code & 0xFF if code >= 0 else 1)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"pid {pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    try:
        conn.sendall(f"rc {rc}\n".encode())
    except OSError:
        pass
    os._exit(0)


_BASE = []  # the interpreter's own sys.path: what follows the script's folder and PYTHONPATH


def serve(path: str):
    # No thread pool may exist at a fork: OpenBLAS (numpy) starts one per core when it loads.
    os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"
    own = {p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    _BASE[:] = [p for p in sys.path[1:] if p not in own]
    for name in PRELOAD:
        __import__(name)
    if _threads() != 1:  # forking a process with threads could copy a held lock: refuse
        print(f"not-ready {_threads()} threads after imports", flush=True)
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            try:
                _serve_one(conn, listener)
            finally:
                os._exit(1)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
