"""Every mistake gets one line and changes nothing; small data trains; outputs behave the same in
every tool; numbers do not depend on how they were computed; SIGTERM leaves nothing behind."""

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from conftest import ROOT, run_cli
from procs import wait_for

TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "log.wandb=off",
        "train.mixed_precision=no", "train.total_kimg=1", "log.every_steps=1", "train.sample_every_kimg=0"]


def snapshot(root) -> dict:
    """Every path under root with its size and mtime: what 'changes nothing' is checked against."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(base, name)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def one_line_error(capsys, call, prog):
    """Run a CLI main in-process; it must exit 2 with one error line and no traceback."""
    with pytest.raises(SystemExit) as exc:
        call()
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith(f"{prog}: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def s50(tmp_path_factory):
    """The issue's dataset: 50 synthetic faces, 10% held out, so 45 training images."""
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    out = str(tmp_path_factory.mktemp("s50"))
    pack(open_source("synthetic:cartoon", limit=50), out,
         PackOptions(size=32, shard_size=64, val_fraction=0.1, workers=1, overwrite=True), log=lambda *a: None)
    return out


# ---------------------------------------------------------------- config ranges

def _numeric_keys():
    from facegan.config import Config

    cfg = Config()
    return [(f"{s.name}.{f.name}", f.metadata.get("range")) for s in dataclasses.fields(cfg)
            for f in dataclasses.fields(getattr(cfg, s.name))
            if f.type in (int, float) or "float" in str(f.type).lower()]


def test_every_numeric_key_declares_a_range():
    missing = [key for key, rng in _numeric_keys() if rng is None and key != "model.resolution"]
    assert not missing, f"numeric keys without a declared Range: {missing}"


@pytest.mark.parametrize("key", [k for k, r in _numeric_keys() if r is not None])
def test_every_numeric_key_refuses_nan_and_out_of_range(key):
    from facegan.config import load_config
    from facegan.errors import UserError

    sec, name = key.split(".")
    rng = [r for k, r in _numeric_keys() if k == key][0]
    default = getattr(getattr(load_config(), sec), name)
    is_int = isinstance(default, int)
    bad = ["-1000000"] + ([] if is_int else ["nan", "inf"])
    for value in bad:
        value = f"[0.5, {value}]" if isinstance(default, list) else value
        with pytest.raises(UserError, match=rf"^{re.escape(key)}: must be"):
            load_config(None, [f"{key}={value}"])
    assert all(rng.problem(float(v)) is None for v in (default if isinstance(default, list) else [default]))


def test_lr_nan_and_negative_are_one_line_before_anything_is_written(capsys, tmp_path):
    """The issue's train.lr_g=nan and train.lr_d=-1 (torch's 'Invalid learning rate' before)."""
    from facegan.cli.train import main

    for bad in ("train.lr_g=nan", "train.lr_d=-1"):
        line = one_line_error(capsys, lambda: main([f"run.dir={tmp_path / 'r'}", bad]), "facegan-train")
        assert bad.split("=")[0] in line and "must be" in line
    assert not os.path.exists(tmp_path / "r")


# ---------------------------------------------------------------- small data and refused runs

def test_small_data_trains_and_reals_shrink_to_what_exists(s50, tmp_path):
    """45 training images, batch 32, 2 loader workers (each would hold 22-23 images): the run
    trains with one worker (a note says so), and reals.png shows the 45 there are."""
    run = tmp_path / "run"
    r = run_cli("launch/train.py", f"data.shards={s50}", f"run.dir={run}", *TINY, "train.batch_size=32",
                "data.workers=2", "train.max_steps=2", timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "data.workers=2 lowered to 1" in r.stdout
    reals = Image.open(run / "samples" / "reals.png")
    assert reals.size == (8 * 34 + 2, 6 * 34 + 2)  # 45 images, 8 a row: 6 rows (64 would be 8)


def test_fewer_images_than_a_batch_is_one_line_naming_count_and_batch(s50, tmp_path, capsys):
    from facegan.cli.train import main

    one = os.path.join(s50, "train-000000.tar")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a shard\n")
    cases = {f"data.shards={s50}": "holds 45 training images, fewer than one batch (train.batch_size=64)",
             f"data.shards={one}": "holds 45 training images, fewer than one batch (train.batch_size=64)",
             f"data.shards={notes}": "neither a dataset directory nor a tar shard",
             f"data.shards={tmp_path}/gone-{{000000..000003}}.tar":
                 f"no such shard: {tmp_path}/gone-000000.tar (nor any of the other 3)"}
    for override, expected in cases.items():
        run = tmp_path / "run"
        line = one_line_error(capsys, lambda: main([override, f"run.dir={run}", *TINY, "train.batch_size=64"]),
                              "facegan-train")
        assert expected in line, line
        assert not run.exists(), override


def test_a_stream_of_unknown_size_with_less_than_a_batch_is_one_line(s50):
    """Shard URLs whose counts are unknown until read (pipe:, http): the loader worker's error
    reaches the trainer as one line naming the count and the batch."""
    from facegan.data.loader import TooLittleData, resolve_shards, train_loader

    shards = resolve_shards(f"pipe:cat {os.path.join(s50, 'train-000000.tar')}", resolution=32)
    with pytest.raises(TooLittleData) as exc:
        next(iter(train_loader(shards, 64, workers=1)))
    assert str(exc.value).startswith("data.shards: a whole pass over 1 shard(s) gave 45 usable images, fewer "
                                     "than one batch of 64"), str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_a_refused_run_leaves_its_run_directory_as_it_was(tiny_run, cartoon_shards, s50, tmp_path, capsys):
    """Architecture against the checkpoint (the issue: config.yaml said ngf 32 afterwards),
    resolution against the shards, missing shards, batch against the data: each refused with one
    line, the run directory byte for byte as it was; a new run directory is never created."""
    from facegan.cli.train import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    base = [f"run.dir={run}", "log.wandb=off", "train.mixed_precision=no", "model.resolution=32", "model.ngf=8",
            "model.ndf=8", "model.nz=16", f"data.shards={cartoon_shards}"]
    cases = {"model.ngf=32": "architecture differs from the config (model.ngf: checkpoint 8 vs config 32)",
             "model.resolution=64": "shards are 32x32 but model.resolution is 64",
             f"data.shards={tmp_path / 'absent'}": "no such dataset directory or shard",
             "train.batch_size=1024": "fewer than one batch (train.batch_size=1024)",
             f"run.resume={tmp_path}": "not a checkpoint"}
    for override, expected in cases.items():
        line = one_line_error(capsys, lambda: main([*base, override]), "facegan-train")
        assert expected in line, line
        assert snapshot(run) == before, override
    fresh = tmp_path / "fresh"
    one_line_error(capsys, lambda: main([*base, f"run.dir={fresh}", "model.resolution=64"]), "facegan-train")
    assert not fresh.exists()


# ---------------------------------------------------------------- facegan-sample and facegan-export outputs

def test_sample_outputs(tiny_run, tmp_path, capsys):
    from facegan.cli.sample import main

    os.chdir(tmp_path)
    os.mkdir("some_existing_directory")
    cases = {("--out", "some_existing_directory"): "is a directory",
             ("--out", "grid.txt"): "a grid is written as .jpeg, .jpg, .png, .webp, not '.txt'",
             ("--interpolate", "0", "--out", "walk.gif"): "not '.gif'",
             ("--interpolate", "2", "--out", "walk.avi"): "an interpolation is written as",
             ("--outdir", "faces", "--out", "x.png", "--interpolate", "2"): "not --outdir"}
    if not torch.cuda.is_available():
        cases[("--device", "cuda", "--out", "g.png")] = "no CUDA device on this machine"
    for args, expected in cases.items():
        line = one_line_error(capsys, lambda: main([tiny_run, "--n", "4", *args]), "facegan-sample")
        assert expected in line, line
    assert sorted(os.listdir(tmp_path)) == ["some_existing_directory"]  # nothing written, no temporaries
    assert os.listdir("some_existing_directory") == []

    for name, fmt in (("g.png", "PNG"), ("g.jpg", "JPEG"), ("g.webp", "WEBP")):
        assert main([tiny_run, "--n", "4", "--out", f"deep/er/{name}"]) == 0  # parents made
        assert Image.open(f"deep/er/{name}").format == fmt
    assert main([tiny_run, "--n", "3", "--interpolate", "2", "--out", "walk.gif"]) == 0
    walk = Image.open("walk.gif")
    assert walk.format == "GIF" and walk.n_frames == 5
    # A re-run writing the same output replaces facegan's own file; a foreign file needs --overwrite.
    assert main([tiny_run, "--n", "4", "--seed", "1", "--out", "deep/er/g.png"]) == 0
    Image.new("RGB", (4, 4)).save("photo.png")
    line = one_line_error(capsys, lambda: main([tiny_run, "--n", "4", "--out", "photo.png"]), "facegan-sample")
    assert "exists and is not an image facegan wrote; pass --overwrite" in line
    assert Image.open("photo.png").size == (4, 4)
    os.makedirs("faces")
    Image.new("RGB", (4, 4)).save("faces/0000-000002.png")  # someone's file where --outdir would write
    one_line_error(capsys, lambda: main([tiny_run, "--n", "4", "--outdir", "faces"]), "facegan-sample")
    assert os.listdir("faces") == ["0000-000002.png"]  # refused before the first image
    assert main([tiny_run, "--n", "4", "--out", "photo.png", "--overwrite"]) == 0
    assert Image.open("photo.png").size != (4, 4)


def test_export_outputs(tiny_run, tmp_path, capsys):
    from facegan.cli.export import main
    from facegan.eval.generator_io import load_generator

    out = tmp_path / "not" / "yet" / "generator.safetensors"
    assert main([tiny_run, "--out", str(out)]) == 0  # the issue: SafetensorError traceback
    assert load_generator(str(out))[1]["architecture"]["ngf"] == 8
    assert main([tiny_run, "--out", str(out)]) == 0  # its own export, replaced on a re-run
    notes = tmp_path / "notes.safetensors"
    notes.write_text("mine")
    line = one_line_error(capsys, lambda: main([tiny_run, "--out", str(notes)]), "facegan-export")
    assert "exists and is not a facegan export; pass --overwrite" in line and notes.read_text() == "mine"
    line = one_line_error(capsys, lambda: main([tiny_run, "--out", str(tmp_path)]), "facegan-export")
    assert "is a directory" in line
    assert main([tiny_run, "--out", str(notes), "--overwrite"]) == 0
    assert load_generator(str(notes))[1]["architecture"]["nz"] == 16
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- evaluation figures

def test_kid_is_the_same_on_every_run_and_leaves_the_global_rng_alone():
    from facegan.eval.metrics import fid_kid

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 8, generator=g), torch.randn(60, 8, generator=g) + 0.3
    state = torch.random.get_rng_state()
    first = fid_kid(real, fake, ("kid",), kid_subset=20)
    torch.rand(5)  # move the global RNG: KID must not follow it
    second = fid_kid(real, fake, ("kid",), kid_subset=20)
    assert first == second
    assert fid_kid(real, fake, ("kid",), kid_subset=20, seed=1)["kid"] != first["kid"]  # subsets do vary
    torch.random.set_rng_state(state)
    fid_kid(real, fake, ("kid",), kid_subset=20)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_generated_samples_are_a_function_of_seed_and_index(tiny_run):
    """Each rank's share of generate-and-embed, put back together, equals one process's."""
    from facegan.eval.generator_io import load_generator
    from facegan.eval.metrics import blocks_of, merge_blocks

    g, _ = load_generator(tiny_run)
    from facegan.sampling import generate, latents

    n, b, world = 7, 2, 3
    z = latents(n, g.nz, 5)
    alone = generate(g, z, b).float().flatten(1)
    parts = [torch.cat([generate(g, z[s:e], b) for s, e in blocks_of(n, b, r, world)]).float().flatten(1)
             for r in range(world)]
    assert torch.equal(merge_blocks(n, b)(parts), alone)


@pytest.mark.slow
def test_eval_across_two_processes_as_the_readme_writes_it(tiny_run, cartoon_shards, random_inception, tmp_path):
    """The README's `accelerate launch ... -m facegan.cli.eval` with two real CPU processes over
    gloo gives exactly the figures of one process (same --seed, same threads per process)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        line = re.search(r"`(accelerate launch [^`]*-m facegan\.cli\.eval[^`]*)`", f.read()).group(1)
    words = shlex.split(line.replace("runs/demo", tiny_run))
    refs = []
    for name in ("one", "two"):  # each its own copy, so each computes its reference features
        refs.append(str(tmp_path / name))
        shutil.copytree(cartoon_shards, refs[-1])
    extra = ["--n", "6", "--batch-size", "2", "--inception-weights", random_inception]
    two = [w if w != "shards/cartoon32" else refs[1] for w in words[2:]]
    r = run_cli("-m", "accelerate.commands.launch", "--mixed_precision", "no", "--dynamo_backend", "no",
                *two, *extra, "--json", str(tmp_path / "two.json"), env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    two = json.load(open(tmp_path / "two.json"))
    assert two["processes"] == 2

    # One process, here, with the functions facegan-eval calls (one thread, as each rank had).
    from facegan.eval.features import InceptionFeatures
    from facegan.eval.image_sets import open_image_set
    from facegan.eval.metrics import fid_kid

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        source = open_image_set(tiny_run, "val", False, "cpu")
        ref = open_image_set(refs[0], "val", False, "cpu", resolution=source.resolution)
        extractor = InceptionFeatures(random_inception, log=lambda *a: None).eval()
        common = dict(extractor=extractor, device="cpu", batch_size=2, seed=two["seed"], log=lambda *a: None)
        one = fid_kid(ref.features(6, **common), source.features(6, **common), ("fid", "kid"), seed=two["seed"])
    finally:
        torch.set_num_threads(threads)
    assert one["fid"] > 0 and (one["fid"], one["kid"], one["kid_std"]) == (two["fid"], two["kid"], two["kid_std"])


# ---------------------------------------------------------------- signals

def sigterm_when(proc, ready, timeout, what, settle=0.0) -> str:
    """Send SIGTERM to proc once ready() holds; its stderr. Its whole group is ended whatever happens."""
    try:
        wait_for(ready, timeout, what)
        time.sleep(settle)
        os.kill(proc.pid, signal.SIGTERM)
        return proc.communicate(timeout=60)[1]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigterm_during_packing_leaves_nothing_and_a_rerun_is_accepted(tmp_path):
    """The issue: exit 143 with no message, a hidden spill file left, and a rerun refused as 'not
    empty'. Now: a message, exit 143, nothing left in --out, and the same --out accepted."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "facegan.cli.shard", "synthetic:cartoon", "--out", str(out),
                             "--size", "32", "--limit", "3000", "--workers", "2"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = sigterm_when(proc, lambda: out.exists() and os.listdir(out), 60, "the packer's first output", 0.5)
    assert proc.returncode == 143, err[-2000:]
    assert "facegan-shard: terminated" in err and "Traceback" not in err
    # The packer made --out, so it removes it again; a directory it did not make keeps nothing of it.
    assert not out.exists() or [n for n in os.listdir(out) if not n.startswith(".facegan.lock")] == []
    r = run_cli("-m", "facegan.cli.shard", "synthetic:cartoon", "--out", str(out), "--size", "32", "--limit", "40",
                "--workers", "1")
    assert r.returncode == 0, r.stderr[-2000:]



@pytest.mark.slow
def test_sigterm_during_sampling_leaves_no_temporaries_and_a_rerun_is_accepted(tiny_run, tmp_path):
    """Not in the issue: facegan-sample writing 2000 files, ended by SIGTERM. A message,
    exit 143, only whole images (no hidden temporaries), and the same command accepted again
    (the images there are facegan's own)."""
    out = tmp_path / "faces"
    cmd = [sys.executable, "-m", "facegan.cli.sample", tiny_run, "--n", "2000", "--outdir", str(out)]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = sigterm_when(proc, lambda: out.exists() and len(os.listdir(out)) > 10, 120, "the first images")
    assert proc.returncode == 143 and "facegan-sample: terminated" in err and "Traceback" not in err, err[-2000:]
    names = os.listdir(out)
    assert 10 < len(names) < 2000 and all(re.fullmatch(r"0000-\d{6}\.png", n) for n in names), names[:5]
    for name in sorted(names)[-20:]:  # the newest ones, written as the signal came, are whole
        Image.open(out / name).verify()
    from facegan.cli.sample import main

    assert main([tiny_run, "--n", "12", "--outdir", str(out)]) == 0
