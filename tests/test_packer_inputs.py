"""The packer on inputs that break naive image pipelines: decompression bombs, extreme shapes,
multi-frame files, lying extensions, files that cannot be read. Each is packed correctly or
skipped with a named reason, in bounded time and memory."""

import io
import os
import re
import struct
import tarfile
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import encoded, face_like, read_manifest, run_cli, shard
from test_shard import all_samples, tar_samples

LIMIT_S = 120


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring width x height, with one tiny IDAT: what a
    decompression bomb looks like before its pixels are inflated."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def zero_png(width: int, height: int) -> bytes:
    """A real bomb: a black grayscale PNG, some thousand times smaller than its pixels."""
    return encoded(Image.new("L", (width, height)), "PNG", optimize=False)


def sample_by_source(out):
    import json

    return {json.loads(s["json"])["source"]: s for s in all_samples(out).values()}


def reasons(out):
    return {os.path.basename(s["source"]): s["reason"] for s in read_manifest(out)["skipped"]}


@pytest.fixture(scope="module")
def messy_pile(tmp_path_factory):
    src = tmp_path_factory.mktemp("pile")
    files = {
        "bomb_header.png": png_header_only(100_000, 100_000),  # 10 gigapixels declared
        "bomb_zeros.png": zero_png(6000, 5000),  # 30 MP of zeros in ~30 kB
        "one_pixel.png": encoded(Image.new("RGB", (1, 1), (10, 200, 30))),
        "strip.png": encoded(Image.new("RGB", (100_000, 10), (200, 20, 20))),
        "png_named.jpg": encoded(face_like(1)),
        "jpeg_named.gif": encoded(face_like(2), "JPEG"),
        "html_named.png": b"<!doctype html><title>404 Not Found</title>",
        "good.png": encoded(face_like(3)),
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (4000, 3000, 3), dtype=np.uint8))
    big.save(src / "photo_12mp.jpg", quality=70)  # over the limit as stored, under it once scaled
    frames = [Image.new("RGB", (24, 24), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    frames[0].save(src / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[1].save(src / "pages.tiff", save_all=True, append_images=[frames[2], frames[0]])
    os.mkfifo(src / "fifo.png")  # open() on it would wait for a writer for ever
    os.symlink(src / "gone.png", src / "dangling.png")
    (src / "dir.png").mkdir()
    return src


# The packer in a process of its own, which then reports the largest resident set of any
# process in the packer's tree (its own RUSAGE_CHILDREN: nothing else the test run started).
PEAK_RSS_OF_PACKER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run([sys.executable, '-m', 'facegan.cli.shard', *sys.argv[1:]]).returncode\n"
    "print('peak-rss-kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n")


@pytest.fixture(scope="module")
def packed(messy_pile, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("packed") / "out")
    r = run_cli("-c", PEAK_RSS_OF_PACKER, str(messy_pile), "--out", out, "--size", "32", "--val-fraction", "0",
                "--workers", "2", "--max-megapixels", "8", timeout=LIMIT_S)
    assert r.returncode == 0, r.stderr[-2000:]
    peak_mb = int(re.search(r"peak-rss-kb (\d+)", r.stderr).group(1)) / 1024
    return out, r, peak_mb


def test_bombs_are_refused_before_decoding_and_memory_stays_bounded(packed):
    out, r, peak_mb = packed
    why = reasons(out)
    assert why["bomb_header.png"].startswith("too large: 100000x100000 (10000 MP), over --max-megapixels 8")
    assert why["bomb_zeros.png"].startswith("too large: 6000x5000 (30 MP)")
    # Decoding either would take 10 GB or 30 MB per copy; the whole packer stayed far below.
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB"
    print(f"packer peak RSS {peak_mb:.0f} MB")
    assert "too large: 2" in r.stdout  # the summary counts skips by category


def test_a_large_jpeg_is_decoded_scaled_down_within_the_limit(packed):
    out, _, _ = packed
    sample = sample_by_source(out)["photo_12mp.jpg"]
    img = Image.open(io.BytesIO(sample["png"]))
    assert img.size == (32, 32)


def test_extreme_shapes_are_packed_as_squares(packed):
    import json

    out, _, _ = packed
    by_source = sample_by_source(out)
    for name, colour, size in (("one_pixel.png", (10, 200, 30), [1, 1]), ("strip.png", (200, 20, 20), [100_000, 10])):
        sample = by_source[name]
        meta = json.loads(sample["json"])
        assert [meta["width"], meta["height"]] == size
        pixels = np.asarray(Image.open(io.BytesIO(sample["png"])))
        assert pixels.shape == (32, 32, 3) and np.abs(pixels.astype(int) - colour).max() <= 2


def test_multi_frame_files_give_their_first_frame(packed):
    out, _, _ = packed
    by_source = sample_by_source(out)
    for name, colour in (("animated.gif", (250, 0, 0)), ("pages.tiff", (0, 250, 0))):
        pixels = np.asarray(Image.open(io.BytesIO(by_source[name]["png"]))).astype(int)
        assert np.abs(pixels - colour).max() <= 8, name


def test_content_decides_the_format_not_the_extension(packed):
    out, _, _ = packed
    by_source = sample_by_source(out)
    assert {"png_named.jpg", "jpeg_named.gif", "good.png"} <= set(by_source)
    assert reasons(out)["html_named.png"] == "not an image: no decoder recognises its bytes"


def test_files_that_cannot_be_read_are_named(packed):
    out, r, _ = packed
    why = reasons(out)
    assert why["fifo.png"] == "unreadable: not a regular file (a directory, FIFO, socket or device)"
    assert why["dangling.png"] == "unreadable: no such file (removed, or a dangling link)"
    m = read_manifest(out)
    assert m["count"] == 8 and len(m["skipped"]) == 5, m["skipped"]
    assert "Traceback" not in r.stderr


def test_an_unreadable_file_is_skipped(tmp_path, monkeypatch):
    from facegan.data import intake
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"face{i}.png").write_bytes(encoded(face_like(i)))
    locked = src / "face1.png"
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads through any mode bits: refuse the open as the kernel would
        real_open = os.open

        def refusing_open(path, *args, **kw):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kw)

        monkeypatch.setattr(intake.os, "open", refusing_open)
    result = pack(open_source(str(src)), str(tmp_path / "out"), PackOptions(size=16, workers=1, val_fraction=0),
                  log=lambda *a: None)
    assert result.counts == {"train": 2}
    assert result.skipped == [{"source": "face1.png", "reason": "unreadable: permission denied"}]


def test_size_limits_and_min_side(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tiny.png").write_bytes(encoded(Image.new("RGB", (4, 50))))
    (src / "face.png").write_bytes(encoded(face_like(0)))
    noise = np.random.default_rng(1).integers(0, 255, (800, 800, 3), dtype=np.uint8)
    (src / "heavy.png").write_bytes(encoded(Image.fromarray(noise)))  # ~1.9 MB
    archive = tmp_path / "pile.tar"
    with tarfile.open(archive, "w") as tf:
        for name in ("tiny.png", "face.png", "heavy.png"):
            tf.add(src / name, arcname=name)
    for source in (src, archive):
        out = str(tmp_path / f"out-{source.name}")
        r = shard(str(source), "--out", out, "--size", "16", "--val-fraction", "0", "--min-side", "8",
                  "--max-file-mb", "1", timeout=LIMIT_S)
        assert r.returncode == 0, r.stderr[-2000:]
        assert reasons(out) == {"tiny.png": "too small: 4x50, under --min-side 8",
                                "heavy.png": "file too large: 2 MB, over --max-file-mb 1"}, source
        assert read_manifest(out)["count"] == 1


def test_limits_must_be_positive(tmp_path):
    r = shard("synthetic:cartoon", "--out", str(tmp_path / "o"), "--max-megapixels", "0")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith("--max-megapixels 0: must be at least 1e-06")
