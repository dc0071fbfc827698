"""What facegan writes and reports can be trusted: one writer per directory, caches keyed by
content, sources that never misfile silently, logs that read as one run, numbers that say what
they are, quiet pipes, and EMA samples that show what a short run learned."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from PIL import Image

from conftest import ROOT, face_like, make_celeba, read_manifest, run_cli, shard
from facegan import io as fio
from facegan.data.loader import resolve_shards
from facegan.eval.metrics import fid_kid, reference_features, small_n_warning

TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
        "data.workers=0", "log.every_steps=2", "train.sample_every_kimg=0.064", "train.ema=0.9"]
TRAIN = [sys.executable, os.path.join(ROOT, "launch", "train.py")]


def train_proc(shards, run_dir, *extra):
    return subprocess.Popen(TRAIN + [f"data.shards={shards}", f"run.dir={run_dir}", *TINY, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True)


def end_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_for_file(path, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def steps_of(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------- one writer per directory

def test_second_training_on_a_run_dir_is_refused_naming_the_holder(cartoon_shards, tmp_path):
    run = str(tmp_path / "run")
    first = train_proc(cartoon_shards, run, "train.total_kimg=100")
    try:
        for line in first.stdout:  # training for real, lock held
            if line.startswith("kimg"):
                break
        r = run_cli(*TRAIN[1:], f"data.shards={cartoon_shards}", f"run.dir={run}", *TINY, "train.total_kimg=1",
                    timeout=120)
        assert r.returncode == 2, r.stderr[-2000:]
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "since" in lines[0], r.stderr
        # Another writer into the run (the report) is refused the same way.
        rep = run_cli("-m", "facegan.cli.report", run)
        assert rep.returncode == 2 and f"pid {first.pid}" in rep.stderr
        # ... and so is a tool writing into it, in process (the lock is the OS's, not a PID file).
        from facegan.cli.sample import main as sample_main

        with pytest.raises(SystemExit) as exit_info:
            sample_main([run, "--n", "4", "--out", os.path.join(run, "samples", "mine.png")])
        assert exit_info.value.code == 2 and not os.path.exists(os.path.join(run, "samples", "mine.png"))
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
        assert first.returncode == 0
    finally:
        end_group(first)
    steps = [r["step"] for r in steps_of(run)]
    assert steps == sorted(set(steps)), steps  # one run's log, never interleaved
    assert len(glob.glob(os.path.join(run, "checkpoints", "step-*"))) >= 1


def test_kill9_releases_the_lock_and_resume_reads_as_one_run(cartoon_shards, tmp_path):
    """kill -9 between checkpoints: the lock goes with the process; the resumed run drops the
    rows past its checkpoint, and data_read and wall time continue from the checkpoint's."""
    run = str(tmp_path / "run")
    # Checkpoints every 16 steps, rows every 2: killed at a row 2..8 steps past a checkpoint, the
    # run has rows to drop and at least 8 steps before it could write the next checkpoint.
    proc = train_proc(cartoon_shards, run, "train.total_kimg=100", "train.checkpoint_every_kimg=0.256")
    try:
        end = time.time() + 240
        while time.time() < end:
            rows = steps_of(run) if os.path.exists(os.path.join(run, "metrics.jsonl")) else []
            if rows and rows[-1]["step"] >= 18 and 2 <= rows[-1]["step"] % 16 <= 8:
                break
            time.sleep(0.02)
        end_group(proc)
        proc.wait(timeout=60)
    finally:
        end_group(proc)
    before = steps_of(run)
    from facegan.train import checkpoint as ckpt

    path, state = ckpt.find_resumable(os.path.join(run, "checkpoints"))
    assert before[-1]["step"] > state["step"], "no rows past the checkpoint to drop"
    r = run_cli(*TRAIN[1:], f"data.shards={cartoon_shards}", f"run.dir={run}", *TINY,
                f"train.total_kimg={(before[-1]['step'] + 4) * 16 / 1000}", "train.checkpoint_every_kimg=0.256")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = steps_of(run)
    steps = [row["step"] for row in rows]
    assert steps == sorted(set(steps)), steps
    resumed = [row for row in rows if row["step"] > state["step"]]
    assert resumed[0]["data_read"] > state["data_read"] > 0
    assert all(b["data_read"] >= a["data_read"] and b["wall_s"] >= a["wall_s"] for a, b in zip(rows, rows[1:]))
    log = open(os.path.join(run, "log.txt")).read()  # both attempts, as their terminals saw them
    assert log.count("==> ") == 2 and "resumed from" in log and log.count("facegan: device") == 2


def test_two_packers_on_one_out_the_second_refused(tmp_path):
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "facegan.cli.shard", "synthetic:cartoon", "--out", out, "--size", "32",
           "--limit", "3000", "--workers", "1"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_file(os.path.join(out, fio.HOLDER_NAME))
        r = shard("synthetic:cartoon", "--out", out, "--size", "8", "--limit", "10", "--overwrite")
        assert r.returncode == 2 and f"pid {first.pid}" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        end_group(first)
        first.wait()


def test_temporary_names_are_unique_per_writer(tmp_path):
    """Writers racing on one path never share a temporary, and never see a half file."""
    target = str(tmp_path / "grid.png")
    errors = []

    def write(k):
        try:
            for _ in range(30):
                fio.write_bytes_atomic(target, bytes([k]) * 5000)
        except Exception as err:  # noqa: BLE001 - any failure is the test's finding
            errors.append(err)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    data = open(target, "rb").read()
    assert len(data) == 5000 and len(set(data)) == 1
    assert os.listdir(tmp_path) == ["grid.png"]
    names = {fio.temp_name(target) for _ in range(100)}
    assert len(names) == 100 and all(str(os.getpid()) in n for n in names)


def test_stale_temporaries_of_dead_writers_go_live_ones_stay(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_name = os.path.basename(fio.temp_name(str(tmp_path / "a")))
    dead_name = live_name.replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    for name in (live_name, dead_name):
        (tmp_path / name).write_bytes(b"x")
    assert fio.remove_stale_temps(str(tmp_path)) == 1
    assert os.listdir(tmp_path) == [live_name]


def test_outputs_get_the_umask_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        path = str(tmp_path / "t.safetensors")
        fio.save_safetensors_atomic(path, {"x": torch.zeros(2)})
        assert os.stat(path).st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


# ---------------------------------------------------------------- caches keyed by content

class FirstPixels(torch.nn.Module):
    extractor_id = "first-pixels"
    num_features = 6

    def forward(self, x):
        return x.flatten(1)[:, : self.num_features].float()


def pack_dir(out, seed, n=40, overwrite=False):
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    pack(open_source("synthetic:cartoon", seed=seed, limit=n), out,
         PackOptions(size=16, shard_size=16, val_fraction=0.5, workers=1, seed=seed, overwrite=overwrite),
         log=lambda *a: None)


def test_reference_cache_never_outlives_its_shards(tmp_path):
    out = str(tmp_path / "ds")
    ext, said = FirstPixels(), []
    pack_dir(out, seed=1)
    a = reference_features(resolve_shards(out, "val"), out, "val", 20, ext, "cpu", log=said.append)
    assert glob.glob(os.path.join(out, "fid-ref-*")) and not said
    # Repacked with other images under --overwrite: the caches it derived go with the shards.
    pack_dir(out, seed=2, overwrite=True)
    assert not glob.glob(os.path.join(out, "fid-ref-*"))
    b = reference_features(resolve_shards(out, "val"), out, "val", 20, ext, "cpu", log=said.append)
    assert not torch.equal(a, b) and not said
    # Unlisted: other shards copied over these by hand (no --overwrite): the manifest's sha256s
    # differ, so the old cache is noticed, dropped and recomputed with one note.
    other = str(tmp_path / "other")
    pack_dir(other, seed=3)
    for f in os.listdir(other):
        if not f.startswith("."):
            shutil.copy(os.path.join(other, f), os.path.join(out, f))
    c = reference_features(resolve_shards(out, "val"), out, "val", 20, ext, "cpu", log=said.append)
    assert len(said) == 1 and "other shard contents" in said[0]
    assert torch.equal(c, reference_features(resolve_shards(other, "val"), None, "val", 20, ext, "cpu"))
    assert len(glob.glob(os.path.join(out, "fid-ref-*"))) == 1


def test_folder_cache_sees_an_image_replaced_in_place(tmp_path):
    """Same name, same size, same modification time, other pixels: recomputed."""
    from facegan.eval.image_sets import FolderSet

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        face_like(i, (16, 16)).save(folder / f"{i}.bmp")  # BMP: the size depends only on the shape
    ext, said = FirstPixels(), []
    first = FolderSet(str(folder)).features(4, ext, "cpu", log=said.append)
    target = folder / "0.bmp"
    st = os.stat(target)
    face_like(99, (16, 16)).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(target).st_size == st.st_size
    second = FolderSet(str(folder)).features(4, ext, "cpu", log=said.append)
    assert not torch.equal(first, second)
    assert any("changed since" in s for s in said) and not any("from cache" in s for s in said)
    third = FolderSet(str(folder)).features(4, ext, "cpu", log=said.append)
    assert torch.equal(second, third) and "from cache" in said[-1]


def test_converted_inception_weights_are_checked_against_their_source(tmp_path, monkeypatch):
    from facegan.eval import inception_weights as iw

    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path))
    said = []
    path = iw.converted_weights(log=said.append)
    assert path and iw.converted_is_intact(path)
    with open(path, "r+b") as f:  # flip bytes inside the tensors, header intact
        f.seek(os.path.getsize(path) - 1000)
        f.write(b"\xff" * 8)
    assert not iw.converted_is_intact(path)
    assert iw.converted_weights(log=said.append) == path and iw.converted_is_intact(path)
    assert any("converting again" in s for s in said)


# ---------------------------------------------------------------- sources never misfile

def celeba_as_png(root, n=15):
    make_celeba(root, n)
    img_dir = os.path.join(root, "img_align_celeba")
    for f in os.listdir(img_dir):
        Image.open(os.path.join(img_dir, f)).save(os.path.join(img_dir, f[:-4] + ".png"))
        os.remove(os.path.join(img_dir, f))
    return root


def test_celeba_png_release_splits_as_the_official_partition(tmp_path):
    src = celeba_as_png(str(tmp_path / "celeba"))
    out = str(tmp_path / "out")
    r = shard(src, "--out", out, "--size", "16")
    assert r.returncode == 0, r.stderr
    assert read_manifest(out)["splits"]["val"]["count"] == 3
    assert read_manifest(out)["splits"]["test"]["count"] == 3
    assert "warning" not in r.stderr


def test_celeba_partition_covering_half_or_none_says_so(tmp_path):
    half = celeba_as_png(str(tmp_path / "half"), n=16)
    part = os.path.join(half, "list_eval_partition.txt")
    lines = open(part).read().splitlines()
    open(part, "w").write("\n".join(lines[8:]) + "\n")  # the partition names only the last 8
    r = shard(half, "--out", str(tmp_path / "o1"), "--size", "16")
    assert r.returncode == 0 and "covers 8 of 16 images" in r.stderr and "go to train" in r.stderr
    assert read_manifest(str(tmp_path / "o1"))["splits"]["train"]["count"] == 8 + 2

    none = celeba_as_png(str(tmp_path / "none"), n=10)
    open(os.path.join(none, "list_eval_partition.txt"), "w").write("999999.jpg 1\n")
    r = shard(none, "--out", str(tmp_path / "o2"), "--size", "16", "--val-fraction", "0.3")
    assert r.returncode == 0 and "names none of the 10 images" in r.stderr
    assert read_manifest(str(tmp_path / "o2"))["splits"]["val"]["count"] == 3


def test_parquet_rows_with_paths_pack_like_hf(tmp_path):
    """As `datasets` writes local images: {bytes: None, path: ...}; absolute and relative paths."""
    datasets = pytest.importorskip("datasets")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    paths = []
    for i in range(12):
        p = imgs / f"{i}.png"
        face_like(500 + i).save(p)
        paths.append(str(p))
    ds = datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image())
    pq_path = str(tmp_path / "faces.parquet")
    ds.to_parquet(pq_path)
    r = shard(pq_path, "--out", str(tmp_path / "o1"), "--size", "16", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    assert read_manifest(str(tmp_path / "o1"))["count"] == 12

    import pyarrow as pa
    import pyarrow.parquet as pq

    rel = [{"bytes": None, "path": f"imgs/{i}.png"} for i in range(6)] + [{"bytes": None, "path": "imgs/gone.png"}]
    table = pa.table({"image": pa.array(rel, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})
    pq.write_table(table, str(tmp_path / "rel.parquet"))
    r = shard(str(tmp_path / "rel.parquet"), "--out", str(tmp_path / "o2"), "--size", "16", "--val-fraction", "0")
    assert r.returncode == 0, r.stderr
    m = read_manifest(str(tmp_path / "o2"))
    assert m["count"] == 6 and m["skipped"][0]["reason"].startswith("missing file: imgs/gone.png")


def test_nothing_to_write_counts_each_reason(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    for i in range(3):
        (src / f"empty{i}.png").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    r = shard(str(src), "--out", str(tmp_path / "out"), "--size", "16")
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "empty file: 3" in line and "not an image: 1" in line, line
    assert not os.path.exists(tmp_path / "out")  # a refused packer leaves nothing behind


# ---------------------------------------------------------------- numbers say what they are

def test_fid_on_few_images_warns_and_never_prints_negative_zero():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2048, generator=g, dtype=torch.float64)
    assert "fewer than the 2048 feature dimensions" in small_n_warning(8, 8)
    assert small_n_warning(2048, 5000) is None
    same = fid_kid(x, x)
    assert same["fid"] >= 0 and f"{same['fid']:.3f}" == "0.000"


def test_eval_command_prints_the_small_n_warning(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(8):
        face_like(i, (16, 16)).save(folder / f"{i}.png")
    r = run_cli("-m", "facegan.cli.eval", str(folder), "--ref", str(folder), "--n", "8", "--metrics", "fid")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "FID 0.000" in r.stdout and "-0.000" not in r.stdout
    assert "fewer than the 2048 feature dimensions" in r.stderr


# ---------------------------------------------------------------- output plumbing

@pytest.mark.parametrize("cmd", [
    "{py} -m facegan.cli.shard synthetic:cartoon --out {tmp}/o --size 8 --limit 40 --workers 1 | head -1",
    "{py} -m facegan.cli.eval --help | head -1",
])
def test_output_closed_early_ends_quietly(tmp_path, cmd):
    line = cmd.format(py=sys.executable, tmp=tmp_path)
    r = subprocess.run(["bash", "-o", "pipefail", "-c", line], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1


# ---------------------------------------------------------------- samples show what G learned

def test_ema_rampup_lets_a_short_run_follow_g(cartoon_shards, tmp_path):
    """With the half-life capped at a fraction of the images seen (StyleGAN2-ADA), G_ema tracks G
    after a few steps; without it (half-life 10 kimg) G_ema has barely left G's initial weights."""
    from facegan.config import load_config
    from facegan.train.ema import ema_beta
    from facegan.train.loop import train

    assert ema_beta(10.0, 32, 0.0, 0) == ema_beta(10.0, 32)  # off: today's decay
    assert ema_beta(10.0, 32, 0.05, 0) == 0.0 and ema_beta(10.0, 32, 0.05, 10**9) == ema_beta(10.0, 32)
    gaps = {}
    for rampup in (0.0, 0.05):
        cfg = load_config(None, [f"data.shards={cartoon_shards}", f"run.dir={tmp_path}/r{rampup}", *TINY,
                                 "train.ema=10", f"train.ema_rampup={rampup}", "train.total_kimg=0.16"])
        res = train(cfg)
        g0 = dict(res.G.state_dict())
        gaps[rampup] = sum(float((p - g0[k]).float().norm()) for k, p in res.G_ema.state_dict().items()
                           if p.is_floating_point())
    assert gaps[0.05] < 0.2 * gaps[0.0], gaps


def test_every_recipe_with_an_ema_ramps_it_up():
    """The grids, exports and scores of a short run must show what G learned, in every recipe."""
    import glob

    from facegan.config import load_config

    recipes = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
    assert recipes
    for path in recipes:
        t = load_config(path).train
        assert t.ema == 0 or t.ema_rampup > 0, f"{os.path.basename(path)}: EMA without ramp-up"
    assert load_config(None).train.ema_rampup == 0.05  # the default too
