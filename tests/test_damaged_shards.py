"""Shards damaged the ways disks, object stores and other tools damage them: the real loader
(0 and 2 workers) and real training steps skip and count what is lost, or stop with one line;
nothing hangs and nothing ends in a traceback."""

import contextlib
import glob
import io
import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import time

import pytest
import torch

from conftest import run_cli
from facegan.data.bad_data import BadData, BadDataBudget
from facegan.data.loader import read_shard, resolve_shards, train_loader
from facegan.data.shard_reader import shard_samples

LIMIT_S = 60  # every case must end well inside this
VICTIM = "train-000001.tar"  # one shard of nine: 64 of the 576 training samples


@contextlib.contextmanager
def within(seconds):
    """Fail, instead of hanging the test run, if the block takes longer than `seconds`."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _tar_with_pax(payload: bytes, members=3) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        pax = tarfile.TarInfo("pax")
        pax.type, pax.size = tarfile.XHDTYPE, len(payload)
        tf.addfile(pax, io.BytesIO(payload))
        for i in range(members):
            info = tarfile.TarInfo(f"k{i}.png")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


def _headers(data: bytes, suffix=b""):
    """Offsets of the member headers of a well-formed tar (of the members named *suffix)."""
    offsets, off = [], 0
    while off + 512 <= len(data) and data[off] != 0:
        if data[off:off + 100].rstrip(b"\0").endswith(suffix):
            offsets.append(off)
        size = int(data[off + 124:off + 136].split(b"\0")[0].strip() or b"0", 8)
        off += 512 + -(-size // 512) * 512
    return offsets


def _set_size(data: bytes, member: int, field: bytes) -> bytes:
    """Rewrite one member's size field (and its checksum, so the header still looks valid)."""
    out = bytearray(data)
    h = _headers(data)[member]
    out[h + 124:h + 136] = field
    out[h + 148:h + 156] = b" " * 8
    out[h + 148:h + 156] = b"%06o\0 " % sum(out[h:h + 512])
    return bytes(out)


def _flip(data: bytes, positions, seed) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for p in positions:
        out[p] ^= 1 << rng.randrange(8)
    return bytes(out)


def _header_flips(data):
    rng = random.Random(1)
    spots = [h + rng.randrange(512) for h in _headers(data)[4:] for _ in range(3)]
    return _flip(data, spots, 1)


def _payload_flips(data):
    rng = random.Random(2)
    spots = [h + 512 + rng.randrange(40, 200) for h in _headers(data, b".png")[:20]]
    return _flip(data, spots, 2)


DAMAGE = {
    "pax_record_length_zero": lambda d: _tar_with_pax(b"0 size=1\n"),
    "pax_record_length_not_a_number": lambda d: _tar_with_pax(b"zz path=a\n"),
    "pax_record_longer_than_header": lambda d: _tar_with_pax(b"99 path=a\n"),
    "huge_size_field_octal": lambda d: _set_size(d, 5, b"77777777777\0"),
    "huge_size_field_base256": lambda d: _set_size(d, 5, b"\x80" + b"\x7f" * 11),
    "bit_flips_in_headers": _header_flips,
    "bit_flips_in_payloads": _payload_flips,
    "truncated_mid_member": lambda d: d[:_headers(d)[9] + 700],
    "zero_bytes": lambda d: b"",
    "random_bytes": lambda d: random.Random(3).randbytes(50_000),
    "gzip_magic_then_garbage": lambda d: b"\x1f\x8b\x08\x00" + random.Random(4).randbytes(20_000),
    "only_end_of_archive_blocks": lambda d: b"\0" * 10240,
}


@pytest.fixture(scope="module", params=sorted(DAMAGE))
def damaged(request, cartoon_shards, tmp_path_factory):
    """The shared dataset with one training shard damaged (the manifest still lists it)."""
    out = str(tmp_path_factory.mktemp(request.param))
    for path in glob.glob(os.path.join(cartoon_shards, "*")):
        shutil.copy(path, out)
    victim = os.path.join(out, VICTIM)
    with open(victim, "rb") as f:
        data = f.read()
    with open(victim, "wb") as f:
        f.write(DAMAGE[request.param](data))
    return request.param, out


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_skips_and_counts_what_a_damaged_shard_loses(damaged, workers, capfd):
    name, out = damaged
    shards = resolve_shards(out, "train", 32)
    with within(LIMIT_S):
        loader = train_loader(shards, 16, workers=workers, max_bad_fraction=0.5)
        it = iter(loader)
        batches = [next(it) for _ in range(45)]  # more than a pass: every shard is read
        del it
    assert all(b.shape == (16, 3, 32, 32) and b.dtype == torch.uint8 for b in batches)
    seen, bad = loader.counts.totals()
    assert bad >= 1, f"{name}: nothing counted as bad"
    assert seen >= 16 * 45 * 0.9
    err = capfd.readouterr().err
    assert "facegan: skipping bad" in err and (VICTIM in err), err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize("workers", [0, 2])
def test_past_the_threshold_the_loader_stops_with_one_line(damaged, workers):
    name, out = damaged
    shards = resolve_shards(out, "train", 32)
    it = iter(train_loader(shards, 16, workers=workers, max_bad_fraction=0.001))
    with within(LIMIT_S), pytest.raises(BadData) as caught:
        for _ in range(200):
            next(it)
    message = str(caught.value)
    # The traceback holds the iterator in a cycle; a later collection may free its queues before
    # it, and then each worker waits out torch's 5 s status interval. End the workers now.
    getattr(it, "_shutdown_workers", lambda: None)()
    assert "\n" not in message and message.startswith("too much bad data:"), message
    assert VICTIM in message and "data.max_bad_fraction=0.001" in message


def test_a_few_training_steps_on_each_damaged_dataset(damaged, tmp_path):
    name, out = damaged
    from facegan.config import load_config
    from facegan.train.loop import train

    cfg = load_config(None, [f"data.shards={out}", "model.resolution=32", "model.ngf=8", "model.ndf=8",
                             "train.batch_size=16", "train.max_steps=40", "train.total_kimg=1",
                             "log.every_steps=20", "data.workers=2", "data.max_bad_fraction=0.5",
                             f"run.dir={tmp_path / 'run'}", "log.wandb=off", "train.sample_every_kimg=0",
                             "train.checkpoint_every_kimg=0"])
    with within(LIMIT_S):
        result = train(cfg)
    assert result.step == 40
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f if '"data_bad"' in line]
    assert records and records[-1]["data_bad"] >= 1 and records[-1]["data_read"] >= 40 * 16


def test_training_past_the_threshold_ends_with_one_line_and_status_2(cartoon_shards, tmp_path):
    out = str(tmp_path / "data")
    shutil.copytree(cartoon_shards, out)
    with open(os.path.join(out, VICTIM), "wb") as f:
        f.write(random.Random(5).randbytes(30_000))
    r = run_cli("launch/train.py", f"data.shards={out}", "model.resolution=32", "model.ngf=8", "model.ndf=8",
                "train.batch_size=16", "train.max_steps=60", f"run.dir={tmp_path / 'run'}", "log.wandb=off",
                "data.workers=2", timeout=LIMIT_S * 2)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("facegan-train: error: too much bad data: ") and VICTIM in last, last


def test_a_stream_that_stops_delivering_is_bad_data_not_a_hang(cartoon_shards):
    shard = os.path.join(cartoon_shards, "train-000000.tar")
    url = f"pipe:sh -c 'head -c 20000 {shard}; exec sleep 600'"
    tracker = BadDataBudget(1.0)
    t = time.time()
    with within(LIMIT_S):
        got = read_shard(url, tracker, expected=64, stall_s=2)
    assert time.time() - t < 10
    assert 0 < len(got) < 64 and tracker.bad == 64 - len(got)
    left = subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True, text=True).stdout.split()
    assert not left, f"the stalled command is still running: {left}"


def test_a_failing_command_is_bad_data(cartoon_shards):
    tracker = BadDataBudget(1.0)
    assert read_shard("pipe:exit 3", tracker) == []
    # A bare URL: its count is unknown, so the lost shard counts as a readable shard's samples,
    # once one has been read (tests/test_missing_shards.py has the other orders).
    assert tracker.bad == 0 and tracker.empty_shards == []
    good = sorted(glob.glob(os.path.join(cartoon_shards, "train-*.tar")))[0]
    assert len(read_shard(f"pipe:cat {good}", tracker)) == 64
    assert tracker.bad == 64 and tracker.empty_shards == ["pipe:exit 3"]
    problems = []
    assert list(shard_samples("pipe:exit 3", problems)) == []
    assert problems == ["OSError: command exited with status 3"]


DECODER_FUZZ = r"""
import io, random, sys
import numpy as np
from facegan.data.decode import decode_hwc, image_size
from facegan.data.synthetic import cartoon_face
img = cartoon_face(3, 0).resize((32, 32))
for fmt in ("PNG", "JPEG", "WEBP", "NPY"):
    buf = io.BytesIO()
    if fmt == "NPY":
        np.lib.format.write_array(buf, np.asarray(img), allow_pickle=False)
    else:
        img.save(buf, format=fmt)
    good = buf.getvalue()
    rng, failed = random.Random(fmt), 0
    for _ in range(1000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            data = data[:rng.randrange(1, len(data))]
        try:
            image_size(bytes(data))
            out = decode_hwc(bytes(data))
        except Exception:
            failed += 1
            continue
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, (fmt, out.shape, out.dtype)
    print(fmt, failed)
"""


def test_damaged_images_never_crash_the_decoder():
    # In a child process: a decoder that crashes (torchvision's PNG path did, with SIGSEGV)
    # shows up as a failed test, not as a dead test run.
    r = run_cli("-c", DECODER_FUZZ, timeout=LIMIT_S * 2)
    assert r.returncode == 0, f"decoder crashed (status {r.returncode}): {r.stderr[-1500:]}"
    failed = dict(line.split() for line in r.stdout.split("\n") if line)
    assert set(failed) == {"PNG", "JPEG", "WEBP", "NPY"} and all(int(n) > 0 for n in failed.values())
