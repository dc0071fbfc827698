"""Shared fixtures: tests make every input they use (images, archives, CelebA tree, parquet)."""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Test processes side by side (pytest -n N): one intra-op thread each. With more OpenMP
    # threads than cores, torch's spinning threads made a 1 s training test take 40 s.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import io
import json
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np
import pytest
from PIL import Image

# The commands the tests start must take Ctrl-C as from a terminal even when the suite itself was
# started with SIGINT ignored (a script's background job inherits that, and exec keeps it; Python
# then installs no KeyboardInterrupt handler). A handler, unlike SIG_IGN, is reset by exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Converted FID weights and folder feature caches go to a fresh directory per test session,
# never to the user's cache (and every subprocess of the session shares it).
os.environ["FACEGAN_CACHE"] = tempfile.mkdtemp(prefix="facegan-test-cache-")


def load_bench(name: str):
    """bench/<name>.py as a module (the benchmarks import their sibling common.py)."""
    import importlib.util

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "bench", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def face_like(seed: int, size=(40, 48)) -> Image.Image:
    """A small distinct RGB image (random blocks), so dedupe and split checks can tell them apart."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.NEAREST)


def encoded(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_folder(root, n=12, nested=True):
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        sub = os.path.join(root, f"class{i % 3}") if nested else root
        os.makedirs(sub, exist_ok=True)
        fmt, ext = [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp")][i % 4]
        face_like(i).save(os.path.join(sub, f"img{i:03d}.{ext}"), format=fmt)
    return root


def make_bad_files(root):
    """A zero-byte file, a truncated JPEG and a text file dressed as an image."""
    open(os.path.join(root, "empty.jpg"), "wb").close()
    data = encoded(face_like(99, (64, 64)), "JPEG", quality=90)
    with open(os.path.join(root, "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 3])
    with open(os.path.join(root, "notes.png"), "w") as f:
        f.write("this is not an image\n")
    return {"empty.jpg", "truncated.jpg", "notes.png"}


def make_zip(path, n=10):
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            zf.writestr(f"faces/{i:03d}.png", encoded(face_like(100 + i)))
        zf.writestr("faces/readme.txt", "not an image")
    return path


def make_tar(path, n=10):
    with tarfile.open(path, "w:gz") as tf:
        for i in range(n):
            data = encoded(face_like(200 + i), "JPEG", quality=95)
            info = tarfile.TarInfo(f"faces/{i:03d}.jpg")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_celeba(root, n=15):
    """img_align_celeba/ with 178x218 images and the official partition file (0/1/2)."""
    img_dir = os.path.join(root, "img_align_celeba")
    os.makedirs(img_dir)
    lines = []
    for i in range(1, n + 1):
        name = f"{i:06d}.jpg"
        face_like(300 + i, (178, 218)).save(os.path.join(img_dir, name), quality=95)
        lines.append(f"{name} {0 if i <= n - 6 else (1 if i <= n - 3 else 2)}")
    with open(os.path.join(root, "list_eval_partition.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return root


def make_parquet(path, n=10, bad=0):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"bytes": encoded(face_like(400 + i)), "path": f"anime_{i}.png"} for i in range(n)]
    rows += [{"bytes": b"garbage", "path": f"bad_{i}.png"} for i in range(bad)]
    table = pa.table({"image": pa.array(rows, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array(list(range(len(rows))))})
    # The schema metadata the Hugging Face hub writes, so `datasets` sees an Image feature.
    features = {"image": {"_type": "Image"}, "label": {"dtype": "int64", "_type": "Value"}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(table, path)
    return path


# Variables a test may set for a warm command: read by facegan or the libraries when used, not
# when imported (tests/warm.py applies OMP_NUM_THREADS itself). Any other one runs the command cold.
WARM_ENV = ("FACEGAN_", "WANDB_", "TORCH_HOME", "OMP_NUM_THREADS")


def warm_ok(args, env) -> bool:
    """Whether `python ARGS` can run forked from the warm server (tests/warm.py)."""
    # Linux only: on macOS a process that loaded system frameworks is not safe to fork.
    if os.environ.get("FACEGAN_TEST_COLD") == "1" or not sys.platform.startswith("linux") or not args:
        return False
    if any(not k.startswith(WARM_ENV) for k in (env or {})):
        return False
    first = args[0]
    if first in ("-m", "-c"):
        # launchers start their own interpreters: nothing to save, and their start is the point
        return len(args) > 1 and not args[1].startswith(("accelerate", "torch.distributed"))
    return first.endswith(".py") and not first.startswith("-")


def _pythonpath() -> str:
    """This checkout first; an existing PYTHONPATH stays (the GPU machine's carried wheels live there)."""
    return os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)


def run_cli(*args, env=None, timeout=300, cold=False):
    """Run `python ARGS` as a user would; returns CompletedProcess with text output.

    A real process in a session of its own, ended as a whole afterwards (no pool or loader worker
    outlives its test). Where `warm_ok` allows and `cold` is not set, the process is forked from an
    interpreter with torch imported already (tests/warm.py), which saves the 4-10 s import."""
    full_env = dict(os.environ, PYTHONPATH=_pythonpath(), **(env or {}))
    cmd = [sys.executable, *args]
    if not cold and warm_ok(args, env):
        warm = _warm_server()
        if warm is not None:
            return warm.run(cmd, full_env, timeout)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                          cwd=ROOT, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class _WarmServer:
    """Client of tests/warm.py: one server per test process, started on first use."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="facegan-warm-")
        self.path = os.path.join(self.dir, "sock")
        env = dict(os.environ, PYTHONPATH=_pythonpath())
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "warm.py"), self.path],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     text=True, env=env,
                                     cwd=ROOT, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"warm server did not start: {line!r}")

    def run(self, cmd, env, timeout):
        import socket

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "rb") as stdin, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            req = json.dumps({"argv": cmd[1:], "cwd": ROOT, "env": env}).encode()
            socket.send_fds(conn, [req], [stdin.fileno(), out.fileno(), err.fileno()])
            buf = bytearray()

            def line(wait):
                conn.settimeout(wait)
                while b"\n" not in buf:
                    chunk = conn.recv(64)
                    if not chunk:
                        break
                    buf.extend(chunk)
                head, _, rest = bytes(buf).partition(b"\n")
                buf[:] = rest
                return head.decode()

            pid = int(line(60).split()[1])
            try:
                try:
                    reply = line(timeout)
                except (TimeoutError, socket.timeout):
                    os.killpg(pid, signal.SIGKILL)
                    line(60)
                    raise subprocess.TimeoutExpired(cmd, timeout)
            finally:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not reply.startswith("rc "):
                raise RuntimeError(f"warm server lost the command {cmd[1:]}: {reply!r}")
            rc = int(reply.split()[1])
            texts = []
            for f in (out, err):
                f.seek(0)
                texts.append(f.read().decode("utf-8", "replace"))
            return subprocess.CompletedProcess(cmd, rc, *texts)

    def close(self):
        import shutil

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


_WARM = []


def _warm_server():
    """The test process's warm server, or None where it cannot start (then commands run cold)."""
    if not _WARM:
        import atexit

        try:
            _WARM.append(_WarmServer())
            atexit.register(_WARM[0].close)
        except (OSError, RuntimeError) as e:
            print(f"warm server unavailable, commands run cold: {e}", file=sys.stderr)
            _WARM.append(None)
    return _WARM[0]


def pytest_sessionfinish(session, exitstatus):
    for server in _WARM:
        if server is not None:
            server.close()


def shard(*args, **kw):
    return run_cli("-m", "facegan.cli.shard", *args, **kw)


def read_manifest(out):
    with open(os.path.join(out, "dataset.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def cartoon_shards(tmp_path_factory):
    """A small synthetic dataset at 32x32 shared by loader and trainer tests."""
    out = str(tmp_path_factory.mktemp("cartoon32"))
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    pack(open_source("synthetic:cartoon", limit=640), out,
         PackOptions(size=32, shard_size=64, val_fraction=0.1, workers=1, overwrite=True))
    return out


EVAL_TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
             "data.workers=0", "log.every_steps=2", "train.sample_every_kimg=0.032", "train.total_kimg=0.128"]


@pytest.fixture(scope="session")
def tiny_run(cartoon_shards, tmp_path_factory):
    """A tiny trained run (8 steps at 32x32) shared by the tools' tests (sample, eval, export, app)."""
    run = str(tmp_path_factory.mktemp("run"))
    r = run_cli(os.path.join(ROOT, "launch", "train.py"), f"data.shards={cartoon_shards}", f"run.dir={run}",
                *EVAL_TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    return run


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory):
    """The FID Inception architecture with random weights, saved as a plain tensor file: the
    real extractor code path, without the published weights (no network here)."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    orig = fe.FeatureExtractorInceptionV3.load_state_dict
    fe_url = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *a, **k: {}
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, strict=True: None
    try:
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict = orig
        fe.load_state_dict_from_url = fe_url
    path = str(tmp_path_factory.mktemp("weights") / "inception-random.pth")
    torch.save(net.state_dict(), path)
    return path


def pytest_collection_modifyitems(config, items):
    """Modules with tests marked slow first (each module's tests stay together, so module fixtures
    are built once): with tests spread over processes, the long ones then do not end the run alone."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)
