"""What facegan-shard promises beyond the packing itself: it reads CelebA as its official archives
unpack (JPEG or PNG release) and checks the layout's defaults against the images; it says each
choice it made for the user (val split, crop, upscaling, workers) once, in the summary and in
dataset.json; it shows progress in a log at a bounded rate; it starts without torch; and SIGINT
or SIGTERM to its process group ends it within seconds, whatever the load, leaving nothing
behind that a rerun would trip on."""

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time

import pytest
from PIL import Image

from conftest import ROOT, face_like, make_folder, read_manifest, shard
from procs import group_alive
from test_shard import all_samples


def celeba_tree(root, n=30, image_dir="img_align_celeba_png", ext="png", named_ext="jpg", size=(178, 218),
                parts=None, nested=False, attributes=False):
    """A CelebA layout as its archives unpack: image_dir/ of n images (000001.ext ...) and
    list_eval_partition.txt naming them with named_ext (the official file names .jpg); by default
    the last 6 are val (3) and test (3)."""
    img_dir = os.path.join(root, image_dir, image_dir) if nested else os.path.join(root, image_dir)
    os.makedirs(img_dir)
    parts = parts or [0 if i <= n - 6 else (1 if i <= n - 3 else 2) for i in range(1, n + 1)]
    lines = []
    for i, part in zip(range(1, n + 1), parts):
        face_like(500 + i, size).save(os.path.join(img_dir, f"{i:06d}.{ext}"))
        lines.append(f"{i:06d}.{named_ext} {part}")
    with open(os.path.join(root, "list_eval_partition.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if attributes:
        with open(os.path.join(root, "list_attr_celeba.txt"), "w") as f:
            f.write(f"{n}\nSmiling Male Young\n")
            f.writelines(f"{i:06d}.jpg {' '.join(('1' if (i >> k) & 1 else '-1') for k in range(3))}\n"
                         for i in range(1, n + 1))
    return str(root)


def summary(stdout: str) -> dict:
    """{'split': text, 'crop': text, ...} of the summary's indented lines."""
    return dict(line.strip().split(": ", 1) for line in stdout.splitlines()
                if line.startswith("  ") and not line.startswith("    ") and ": " in line)


def sources_of(out, split):
    return {json.loads(s["json"])["source"] for s in all_samples(out, split).values()}


# ---------------------------------------------------------------- CelebA as it unpacks

@pytest.mark.parametrize("nested", [False, True])
def test_png_release_packs_with_the_official_partition(tmp_path, nested):
    src = celeba_tree(tmp_path / "celeba", n=30, nested=nested, attributes=True)
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "32", "--workers", "2")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["source"]["kind"] == "celeba" and m["crop"] == "celeba"
    assert {k: v["count"] for k, v in m["splits"].items()} == {"train": 24, "val": 3, "test": 3}
    assert sources_of(out, "val") == {"000025.png", "000026.png", "000027.png"}
    assert sources_of(out, "test") == {"000028.png", "000029.png", "000030.png"}
    said = summary(r.stdout)
    assert said["split"] == ("the official partition in list_eval_partition.txt (train 24, val 3, test 3); "
                             "it names .jpg files and the images are .png: matched by number")
    assert said["crop"] == ("celeba: the face-centred 128x128 box at (25, 57) of CelebA's 178x218 aligned images "
                            "(the default for CelebA)")
    assert m["notes"]["split"] == said["split"] and m["notes"]["crop"] == said["crop"]
    assert said["labels"].startswith("3 fields (binary: smiling, male, young)")
    assert "warning" not in r.stderr


def test_jpg_images_with_a_partition_naming_png(tmp_path):
    src = celeba_tree(tmp_path / "celeba", n=12, image_dir="img_align_celeba", ext="jpg", named_ext="png")
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "16", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert {k: v["count"] for k, v in read_manifest(out)["splits"].items()} == {"train": 6, "val": 3, "test": 3}
    assert summary(r.stdout)["split"].endswith("it names .png files and the images are .jpg: matched by number")


def test_both_releases_side_by_side_pack_the_png_one_and_say_so(tmp_path):
    src = celeba_tree(tmp_path / "celeba", n=12)
    os.makedirs(tmp_path / "celeba" / "img_align_celeba")
    Image.new("RGB", (178, 218)).save(tmp_path / "celeba" / "img_align_celeba" / "000001.jpg")
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "16", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "packing the lossless" in r.stderr and read_manifest(out)["count"] == 12
    assert any("packing the lossless" in n for n in read_manifest(out)["notes"]["source"])


def test_the_image_folder_itself_is_packed_as_a_folder_and_the_parent_named(tmp_path):
    celeba_tree(tmp_path / "celeba", n=10)
    folder = str(tmp_path / "celeba" / "img_align_celeba_png")
    out = str(tmp_path / "out")
    r = shard(folder, "--out", out, "--size", "16", "--workers", "1")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["source"]["kind"] == "folder"
    assert f"pass {tmp_path / 'celeba'} instead for the official partition" in r.stderr
    assert m["notes"]["source"] == [line.split("facegan-shard: ", 1)[1] for line in r.stderr.splitlines()
                                    if line.startswith("facegan-shard: note")]


def test_a_partition_that_puts_no_image_in_val_gets_a_held_out_val(tmp_path):
    # The first images of CelebA are all in its official train split: a subset packs without a
    # val split unless one is held out (and said).
    src = celeba_tree(tmp_path / "celeba", n=20, parts=[0] * 20)
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "16", "--val-fraction", "0.1", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert {k: v["count"] for k, v in read_manifest(out)["splits"].items()} == {"train": 18, "val": 2}
    assert summary(r.stdout)["split"] == (
        "the official partition in list_eval_partition.txt puts none of these 20 images in val: kept 10% of its "
        "train (2 of 20) for val; FID against it is capped at n = 2; use --val-fraction to change; it names .jpg "
        "files and the images are .png: matched by number")


# ---------------------------------------------------------------- the crop box against the images

def test_a_crop_box_that_does_not_fit_the_images_is_said(tmp_path):
    src = celeba_tree(tmp_path / "celeba", n=12, size=(64, 64))
    first = os.path.join(src, "img_align_celeba_png", "000001.png")
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "32", "--workers", "1")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["crop"] == "center"
    assert summary(r.stdout)["crop"] == (
        "center: the central square of each image, not the celeba face box (the default for CelebA), which is "
        f"placed for its aligned 178x218 images, and {first} is 64x64 (--crop celeba forces the box)")
    assert m["notes"]["crop"] == summary(r.stdout)["crop"]
    # Asked for by name, it is refused: one line naming the file, nothing made.
    out2 = str(tmp_path / "out2")
    r = shard(src, "--out", out2, "--size", "32", "--crop", "celeba")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"facegan-shard: error: --crop celeba: {first} is 64x64; the celeba box is placed for CelebA's aligned "
        "178x218 images (or that shape scaled): use --crop center or --crop none"]
    assert not os.path.exists(out2)


def test_the_crop_box_scales_with_the_celeba_shape_and_counts_odd_images(tmp_path):
    src = celeba_tree(tmp_path / "celeba", n=20, size=(356, 436))  # twice CelebA's aligned size
    odd = os.path.join(src, "img_align_celeba_png", "000020.png")
    Image.new("RGB", (300, 300), (9, 9, 9)).save(odd)  # past the first images the check reads
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "32", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert summary(r.stdout)["crop"] == (
        "celeba: the face-centred 256x256 box at (50, 114) of the 356x436 images (CelebA's 178x218 aligned "
        "shape, scaled) (the default for CelebA); 1 of 20 images are not shaped as CelebA's aligned images "
        "and got the box scaled to their width")


# ---------------------------------------------------------------- val split, upscaling, workers

def test_val_split_and_upscaling_are_said_in_the_summary_and_dataset_json(tmp_path):
    src = tmp_path / "faces"
    src.mkdir()
    for i in range(30):
        face_like(i, (64, 64)).save(src / f"small{i:02d}.png")
    for i in range(10):
        face_like(100 + i, (160, 200)).save(src / f"large{i:02d}.jpg", quality=95)
    out = str(tmp_path / "out")
    r = shard(str(src), "--out", out, "--size", "128", "--val-fraction", "0.1", "--workers", "2")
    assert r.returncode == 0, r.stderr
    said, m = summary(r.stdout), read_manifest(out)
    assert said["split"] == ("the source has no split: kept 10% (4 of 40) for val; FID against it is capped at "
                             "n = 4; use --val-fraction to change")
    assert said["upscaled"] == ("30 of 40 images were smaller than 128 and were upscaled "
                                "(--min-side 128 skips them instead)")
    assert said["crop"] == "center: the central square of each image (the default; --crop to change)"
    assert m["notes"] == {"split": said["split"], "upscaled": said["upscaled"], "crop": said["crop"]}
    # Each said once: no line of the output repeats another.
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == len(set(lines))

    out2 = str(tmp_path / "out2")  # nothing upscaled: nothing said about it
    r = shard(str(src), "--out", out2, "--size", "32", "--val-fraction", "0", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "upscaled" not in summary(r.stdout) and "upscaled" not in read_manifest(out2)["notes"]
    assert summary(r.stdout)["split"] == ("the source has no split: no val split (--val-fraction 0); FID needs a "
                                          "reference from elsewhere")


def test_a_val_fraction_that_rounds_to_nothing_is_said(tmp_path):
    src = make_folder(str(tmp_path / "imgs"), n=20)
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "8", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "val" not in read_manifest(out)["splits"]
    assert summary(r.stdout)["split"] == ("the source has no split: 2% (20 images) rounds to none: no val split; "
                                          "raise --val-fraction to hold some out")


def test_workers_are_said_and_lowered_to_the_usable_cores(tmp_path):
    cores = len(os.sched_getaffinity(0))
    out = str(tmp_path / "out")
    r = shard("synthetic:cartoon", "--out", out, "--size", "8", "--limit", "40", "--workers", "1000")
    assert r.returncode == 0, r.stderr
    assert summary(r.stdout)["workers"] == (f"{cores} (--workers 1000 lowered to the {cores} usable cores: more "
                                            "would only compete for them)")
    assert read_manifest(out)["run"]["workers"] == cores
    r = shard("synthetic:cartoon", "--out", out, "--size", "8", "--limit", "40", "--overwrite")
    assert summary(r.stdout)["workers"] == f"{cores} (one per usable core; --workers to change)"
    r = shard("synthetic:cartoon", "--out", out, "--size", "8", "--limit", "4", "--workers", "-1")
    assert r.returncode == 2 and "--workers -1: must be at least 0" in r.stderr


# ---------------------------------------------------------------- progress, start-up, format

def test_progress_in_a_pipe_is_lines_with_rate_and_eta_at_a_bounded_rate(tmp_path):
    interval = 0.3
    cmd = [sys.executable, "-m", "facegan.cli.shard", "synthetic:cartoon", "--out", str(tmp_path / "out"),
           "--size", "16", "--limit", "600", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT, FACEGAN_PROGRESS_S=str(interval)),
                            start_new_session=True)
    lines = []

    def read():
        for line in proc.stderr:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert proc.wait(timeout=300) == 0
        reader.join(10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not any("\r" in line for _, line in lines)
    packing = [(t, line.rstrip("\n")) for t, line in lines if line.startswith("packing:")]
    # e.g. "packing:  43%|####      | 258/600 [00:01<00:01, 203.01img/s]"
    shape = re.compile(r"packing: +\d+%\|[#0-9 ]*\| \d+/600 \[\d\d:\d\d<(\d\d:\d\d|\?), +"
                       r"([\d.]+img/s|[\d.]+s/img|\?img/s)\]")
    assert all(shape.fullmatch(line) for _, line in packing), packing
    assert packing[-1][1].startswith("packing: 100%") and "600/600" in packing[-1][1]
    assert len(packing) >= 3, packing  # some on the way, and the end
    middle = [t for t, _ in packing[:-1]]  # the last is printed on closing, whenever that is
    assert all(b - a >= interval * 0.8 for a, b in zip(middle, middle[1:])), packing


def test_the_cli_starts_without_torch():
    code = "import sys, facegan.cli.shard; print(sorted(m for m in ('torch', 'webdataset') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_shard_members_are_as_tarfile_writes_them(tmp_path):
    from facegan.data.packer import _tar_header, _tar_member

    for name in ("train000000001.png", "val000000123.json", "x" * 99, "y" * 120, "caf\u00e9.png"):
        for size in (0, 1, 511, 512, 513, 70000):
            data = bytes(range(256)) * (size // 256) + bytes(size % 256)
            assert _tar_member(name, data) == _tar_header(name, size) + data + bytes(-size % 512), (name, size)
    out = str(tmp_path / "out")
    r = shard("synthetic:cartoon", "--out", out, "--size", "8", "--limit", "5", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    with tarfile.open(os.path.join(out, "train-000000.tar")) as tf:
        members = tf.getmembers()
    assert [m.name for m in members[:2]] == ["train000000000.json", "train000000000.png"]
    assert {(m.mode, m.mtime, m.uname, m.gname) for m in members} == {(0o444, 0, "facegan", "facegan")}


# ---------------------------------------------------------------- ending: signals, a dying worker

def start_packer(source, out, *args):
    return subprocess.Popen([sys.executable, "-m", "facegan.cli.shard", source, "--out", out, *args],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, FACEGAN_PROGRESS_S="0.5",
                                               PYTHONFAULTHANDLER="1"),  # SIGABRT dumps every thread's stack
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def where_it_hangs(proc) -> str:
    """A packer that did not end: its process group's states, then every thread's Python stack
    (faulthandler, on SIGABRT), for the failure message."""
    states = subprocess.run(["ps", "-o", "pid,stat,wchan:24,args", "-g", str(proc.pid)], capture_output=True,
                            text=True).stdout
    os.kill(proc.pid, signal.SIGABRT)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stderr = "(no stack dump within 30 s)"
    return f"{states}\n{stderr[-6000:]}"


def wait_started(proc, out, timeout=120):
    """Until the packer holds --out (its imports done, its signal handling in place)."""
    end = time.time() + timeout
    while not os.path.exists(os.path.join(out, ".facegan.lock.holder.json")):
        assert proc.poll() is None and time.time() < end, "the packer did not start"
        time.sleep(0.02)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(("packing:", "writing:"))]


@pytest.fixture
def busy_cores():
    """Every core kept busy by a spinning process, as when other jobs share the machine."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                for _ in range(len(os.sched_getaffinity(0)))]
    yield
    for p in spinners:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.fixture(scope="module")
def parquet_faces(tmp_path_factory):
    """A parquet source: it imports pyarrow, so the workers start through the forkserver."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for i in range(1500):
        buf = io.BytesIO()
        face_like(i, (96, 96)).save(buf, format="PNG")
        rows.append({"bytes": buf.getvalue(), "path": f"{i}.png"})
    path = str(tmp_path_factory.mktemp("pq") / "faces.parquet")
    pq.write_table(pa.table({"image": pa.array(rows, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))}),
                   path)
    return path


@pytest.mark.slow
def test_sigint_and_sigterm_to_the_group_end_it_quickly_under_load(tmp_path, busy_cores, parquet_faces):
    rng = random.Random(os.getpid())
    # (signal, source, extra args, phase): synthetic faces start their workers by fork, a parquet
    # source (pyarrow) through the forkserver; in "writing" the signal comes once shards appear.
    long = ["--limit", "20000", "--shard-size", "500"]
    tries = [(signal.SIGTERM, "synthetic:cartoon", long, "packing"),
             (signal.SIGINT, "synthetic:cartoon", long, "packing"),
             (signal.SIGTERM, "synthetic:cartoon", ["--limit", "600", "--shard-size", "2"], "writing"),
             (signal.SIGINT, "synthetic:cartoon", ["--limit", "600", "--shard-size", "2"], "writing"),
             (signal.SIGTERM, parquet_faces, ["--shard-size", "10"], "packing"),
             (signal.SIGINT, parquet_faces, ["--shard-size", "10"], "packing"),
             (signal.SIGTERM, "synthetic:cartoon", long, "packing")]
    for k, (sig, source, extra, phase) in enumerate(tries):
        out = str(tmp_path / f"out{k}")
        existed = k == len(tries) - 1
        if existed:
            os.makedirs(out)  # a directory that was there before stays, empty
        proc = start_packer(source, out, "--size", "32", "--workers", "2", *extra)
        try:
            wait_started(proc, out)
            if phase == "writing":
                while proc.poll() is None and not [n for n in os.listdir(out) if n.endswith(".tar")]:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.03))
            else:
                time.sleep(rng.uniform(0.2, 1.0 if source == parquet_faces else 3.0))
            sent = time.time()
            os.killpg(proc.pid, sig)
            try:
                stdout, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{sig.name} to the packer of {source} {extra} ({phase}): still running after 30 s\n"
                            f"{where_it_hangs(proc)}")
            took = time.time() - sent
            time.sleep(0.3)
            left = group_alive(proc.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        what = (sig.name, source, extra, phase, stderr[-800:])
        assert took < 10 and not left, what
        if "facegan-shard: wrote" in stdout:  # finished before the signal came (or as it exited)
            assert os.path.exists(os.path.join(out, "dataset.json")), what
            continue
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), what
        said = "interrupted" if sig == signal.SIGINT else "terminated"
        assert error_lines(stderr) == [f"facegan-shard: {said}"], what
        assert (os.listdir(out) == []) if existed else not os.path.exists(out), (what, os.listdir(out))
    # Nothing a rerun trips on: the same --out again, without --overwrite.
    r = shard("synthetic:cartoon", "--out", str(tmp_path / f"out{len(tries) - 1}"), "--size", "8", "--limit", "20")
    assert r.returncode == 0, r.stderr


def test_a_worker_that_dies_is_one_error_line_not_a_hang(tmp_path):
    out = str(tmp_path / "out")
    proc = start_packer("synthetic:cartoon", out, "--size", "32", "--limit", "20000", "--workers", "2")
    try:
        wait_started(proc, out)
        end = time.time() + 60
        workers = []
        while not workers and time.time() < end:
            workers = [p for p in group_alive(proc.pid) if p != proc.pid]
            time.sleep(0.05)
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
        time.sleep(0.3)
        assert not group_alive(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith(
        "facegan-shard: error: a packer worker ended (killed by SIGKILL, out of memory?) while packing one of "), stderr
    assert "Traceback" not in stderr and not os.path.exists(out)
