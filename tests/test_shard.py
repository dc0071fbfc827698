"""facegan-shard on every source kind, bad inputs, determinism and a packer killed midway."""

import glob
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from facegan.io import is_lock_file
from PIL import Image

from conftest import (ROOT, make_bad_files, make_celeba, make_folder, make_parquet, make_tar, make_zip,
                      read_manifest, shard)


def tar_samples(path):
    """{key: {ext: bytes}} of one shard, read with plain tarfile (what any WebDataset reader sees)."""
    samples = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            key, ext = m.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return samples


def all_samples(out, split="train"):
    merged = {}
    for p in sorted(glob.glob(os.path.join(out, f"{split}-*.tar"))):
        merged.update(tar_samples(p))
    return merged


def test_folder_source_with_bad_files(tmp_path):
    src = make_folder(str(tmp_path / "imgs"), n=12)
    bad = make_bad_files(src)
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "16", "--val-fraction", "0.25", "--shard-size", "4", "--workers", "2")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["resolution"] == 16 and m["image_format"] == "png"
    assert m["splits"]["train"]["count"] == 9 and m["splits"]["val"]["count"] == 3
    assert {os.path.basename(s["source"]) for s in m["skipped"]} == bad
    assert all(s["reason"] for s in m["skipped"])
    assert "skipped: 3" in r.stdout and "images/s" in r.stdout
    for split in ("train", "val"):
        for s in m["splits"][split]["shards"]:
            path = os.path.join(out, s["name"])
            assert hashlib.sha256(open(path, "rb").read()).hexdigest() == s["sha256"]
            assert len(tar_samples(path)) == s["count"]
    samples = all_samples(out)
    for key, sample in samples.items():
        assert "." not in key and set(sample) == {"png", "json"}
        meta = json.loads(sample["json"])
        assert meta["source"].startswith("class") and meta["width"] == 40 and meta["height"] == 48
        img = Image.open(io.BytesIO(sample["png"]))
        assert img.size == (16, 16) and img.mode == "RGB"


def test_zip_and_tar_sources(tmp_path):
    for src in (make_zip(str(tmp_path / "faces.zip")), make_tar(str(tmp_path / "faces.tar.gz"))):
        out = str(tmp_path / os.path.basename(src).replace(".", "_"))
        r = shard(src, "--out", out, "--size", "8", "--val-fraction", "0", "--workers", "1")
        assert r.returncode == 0, r.stderr
        m = read_manifest(out)
        assert m["splits"]["train"]["count"] == 10 and m["source"]["kind"] in ("zip", "tar")
        assert "val" not in m["splits"]


def test_celeba_layout_uses_official_partition_and_face_crop(tmp_path):
    src = make_celeba(str(tmp_path / "celeba"), n=15)
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "32", "--workers", "1")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["source"]["kind"] == "celeba" and m["crop"] == "celeba"
    assert {k: v["count"] for k, v in m["splits"].items()} == {"train": 9, "val": 3, "test": 3}
    names = {json.loads(s["json"])["source"] for s in all_samples(out, "val").values()}
    assert names == {"000010.jpg", "000011.jpg", "000012.jpg"}


def test_parquet_file_dir_and_hf_loader(tmp_path):
    pq = make_parquet(str(tmp_path / "anime" / "data" / "train-00000-of-00001.parquet"), n=10, bad=2)
    for src in (pq, str(tmp_path / "anime"), "hf:" + str(tmp_path / "anime")):
        out = str(tmp_path / ("out" + str(abs(hash(src)))))
        r = shard(src, "--out", out, "--size", "16", "--val-fraction", "0", "--workers", "2",
                  env={"HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
        assert r.returncode == 0, (src, r.stderr)
        m = read_manifest(out)
        assert m["splits"]["train"]["count"] == 10, src
        assert len(m["skipped"]) == 2


def test_synthetic_is_deterministic_across_worker_counts(tmp_path):
    outs = []
    for workers in (1, 2):
        out = str(tmp_path / f"w{workers}")
        r = shard("synthetic:cartoon", "--out", out, "--size", "24", "--limit", "60", "--shard-size", "16",
                  "--workers", str(workers))
        assert r.returncode == 0, r.stderr
        outs.append(out)
    files = sorted(os.listdir(outs[0]))
    assert files == sorted(os.listdir(outs[1])) and len([f for f in files if f.endswith(".tar")]) == 5
    for f in files:
        if f.endswith(".tar"):
            assert open(os.path.join(outs[0], f), "rb").read() == open(os.path.join(outs[1], f), "rb").read(), f
    manifests = [read_manifest(o) for o in outs]
    for m in manifests:
        m.pop("command")  # records --workers; everything else must match
        assert m.pop("run")["workers"] in (1, 2)  # how it was packed, not what
    assert manifests[0] == manifests[1]


def test_synthetic_faces_are_varied(tmp_path):
    from facegan.data.synthetic import cartoon_face
    import numpy as np

    faces = [np.asarray(cartoon_face(i).resize((32, 32))).astype(float) for i in range(40)]
    # Distinct images, and the centre (the face) differs from the border (the background).
    diffs = [np.abs(faces[i] - faces[j]).mean() for i in range(10) for j in range(i + 1, 10)]
    assert min(diffs) > 5
    assert np.std([f[12:20, 12:20].mean() for f in faces]) > 5


def test_dedupe(tmp_path):
    src = make_folder(str(tmp_path / "imgs"), n=6, nested=False)
    for i in range(3):  # exact copies under other names, and a re-encoded copy
        Image.open(os.path.join(src, "img000.png")).save(os.path.join(src, f"copy{i}.png"))
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "8", "--dedupe", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["duplicates"] == 3 and m["splits"]["train"]["count"] == 6


@pytest.mark.parametrize("case", ["missing", "unknown_kind", "nothing_left", "not_empty", "bad_size"])
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    out = str(tmp_path / "out")
    if case == "missing":
        args = [str(tmp_path / "nope"), "--out", out]
    elif case == "unknown_kind":
        p = tmp_path / "faces.rar"
        p.write_bytes(b"x")
        args = [str(p), "--out", out]
    elif case == "nothing_left":
        src = tmp_path / "bad"
        src.mkdir()
        make_bad_files(str(src))
        args = [str(src), "--out", out]
    elif case == "not_empty":
        os.makedirs(out)
        open(os.path.join(out, "keep.txt"), "w").close()
        args = ["synthetic:cartoon", "--limit", "4", "--out", out]
    else:
        args = ["synthetic:cartoon", "--limit", "4", "--out", out, "--size", "4"]
    r = shard(*args)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and "%|" not in line and "packing" not in line]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("facegan-shard: error:")
    assert not os.path.exists(os.path.join(out, "dataset.json"))


def test_overwrite_replaces_dataset(tmp_path):
    out = str(tmp_path / "out")
    assert shard("synthetic:cartoon", "--limit", "20", "--size", "8", "--out", out).returncode == 0
    assert shard("synthetic:cartoon", "--limit", "10", "--size", "8", "--out", out, "--overwrite",
                 "--val-fraction", "0").returncode == 0
    m = read_manifest(out)
    assert m["count"] == 10 and sorted(f for f in os.listdir(out) if f.endswith(".tar")) == ["train-000000.tar"]


def test_killed_packer_leaves_no_finished_looking_dataset(tmp_path):
    out = str(tmp_path / "out")
    # Many small shards, each fsynced: the writing phase lasts long enough to be caught in.
    cmd = [sys.executable, "-m", "facegan.cli.shard", "synthetic:cartoon", "--out", out, "--size", "32",
           "--limit", "1500", "--shard-size", "10", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not glob.glob(os.path.join(out, "train-*.tar")):
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the packer and its workers
    proc.wait()
    assert glob.glob(os.path.join(out, "train-*.tar")), "packer never got to writing shards"
    assert not os.path.exists(os.path.join(out, "dataset.json"))
    for path in glob.glob(os.path.join(out, "*.tar")):  # anything named like a shard is whole
        assert len(tar_samples(path)) == 10
    assert all(f.startswith(".") for f in os.listdir(out) if not f.endswith(".tar"))
    from facegan.data.loader import resolve_shards
    from facegan.errors import UserError

    with pytest.raises(UserError, match="not a facegan dataset"):
        resolve_shards(out)
    r = shard("synthetic:cartoon", "--out", out, "--size", "8", "--limit", "30", "--overwrite")
    assert r.returncode == 0 and read_manifest(out)["count"] == 30
    assert not [f for f in os.listdir(out) if f.startswith(".") and not is_lock_file(f)]


def test_truncated_archive_keeps_what_precedes_the_damage(tmp_path):
    src = make_tar(str(tmp_path / "faces.tar.gz"), n=10)
    data = open(src, "rb").read()
    cut = str(tmp_path / "cut.tar.gz")
    with open(cut, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    out = str(tmp_path / "out")
    r = shard(cut, "--out", out, "--size", "8", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert 0 < m["count"] < 10
    assert any("archive damaged" in s["reason"] for s in m["skipped"])


def test_symlink_cycle_in_folder_terminates(tmp_path):
    src = make_folder(str(tmp_path / "imgs"), n=4, nested=False)
    os.symlink(src, os.path.join(src, "loop"))
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "8", "--val-fraction", "0", timeout=60)
    assert r.returncode == 0, r.stderr
    assert read_manifest(out)["count"] == 4


def test_messy_images_all_become_rgb_squares(tmp_path):
    import numpy as np

    src = tmp_path / "messy"
    src.mkdir()
    Image.new("LA", (30, 20), (100, 50)).save(src / "gray_alpha.png")
    pal = Image.new("P", (25, 25), 1)
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    pal.save(src / "palette_transparent.png", transparency=0)
    Image.fromarray(np.full((12, 40), 40000, dtype=np.uint16)).save(src / "sixteen_bit.png")
    Image.new("CMYK", (33, 21), (10, 200, 30, 0)).save(src / "cmyk.jpg")
    Image.new("RGB", (1, 1), (1, 2, 3)).save(src / "one_pixel.bmp")
    Image.new("RGB", (900, 3), (9, 9, 9)).save(src / "sliver.tiff")
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(src / "animated.gif", save_all=True, append_images=frames[1:])
    Image.new("RGBA", (20, 20), (0, 0, 255, 128)).save(src / "rgba.webp")
    out = str(tmp_path / "out")
    r = shard(str(src), "--out", out, "--size", "16", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["count"] == 8 and not m["skipped"], m["skipped"]
    for sample in all_samples(out).values():
        img = Image.open(io.BytesIO(sample["png"]))
        assert img.mode == "RGB" and img.size == (16, 16)
