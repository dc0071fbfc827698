"""Data that goes missing is counted as what it was: a shard that cannot be read counts as the
samples it held (the manifest's count, or the mean of the readable shards without one), and a
run whose shards are largely gone stops with one line naming them."""

import glob
import os
import shutil

import pytest

from conftest import run_cli, ROOT
from facegan.data.bad_data import BadData, BadDataBudget
from facegan.data.loader import read_shard, resolve_shards, train_loader

TRAIN = os.path.join(ROOT, "launch", "train.py")
TINY = ["model.resolution=32", "model.ngf=8", "model.ndf=8", "model.nz=16", "train.batch_size=16",
        "data.workers=0", "train.max_steps=2", "log.every_steps=1", "train.sample_every_kimg=0"]


@pytest.fixture
def copy_of(cartoon_shards, tmp_path):
    """A private copy of the shared dataset directory (tests delete shards from it)."""
    out = str(tmp_path / "data")
    shutil.copytree(cartoon_shards, out)
    return out


def _pattern(directory):
    n = len(glob.glob(os.path.join(directory, "train-*.tar")))
    return os.path.join(directory, "train-{000000..%06d}.tar" % (n - 1)), n


def test_shard_urls_of_a_dataset_directory_take_the_manifest_counts(cartoon_shards):
    pattern, n = _pattern(cartoon_shards)
    by_url = resolve_shards(pattern, "train", 32)
    by_dir = resolve_shards(cartoon_shards, "train", 32)
    assert by_url.counts == by_dir.counts and len(by_url.urls) == n
    assert by_url.resolution == 32


def test_a_missing_shard_counts_as_the_samples_the_manifest_says(copy_of):
    pattern, _ = _pattern(copy_of)
    shards = resolve_shards(pattern, "train", 32)
    victim = shards.urls[1]
    os.remove(victim)
    tracker = BadDataBudget(1.0, share=shards.total)
    assert read_shard(victim, tracker, shards.count_of(victim)) == []
    assert tracker.bad == shards.count_of(victim) == 64
    assert tracker.empty_shards == [victim]


def test_most_shards_gone_is_refused_before_training_naming_them(copy_of, tmp_path):
    """The reported case: 4 of 6 train shards deleted, named by a brace pattern."""
    pattern, n = _pattern(copy_of)
    gone = sorted(glob.glob(os.path.join(copy_of, "train-*.tar")))[: n - 2]
    for path in gone:
        os.remove(path)
    run = tmp_path / "run"
    r = run_cli(TRAIN, f"data.shards={pattern}", f"run.dir={run}", *TINY, timeout=120)
    assert r.returncode == 2, r.stdout[-800:] + r.stderr[-800:]
    line = r.stderr.strip().splitlines()[-1]
    assert f"{len(gone)} of {n} shards missing ({len(gone) * 64} of {n * 64} training images" in line
    assert gone[0] in line and "data.max_bad_fraction=0.01" in line
    assert not run.exists()  # refused before it wrote anything


def test_a_shard_lost_within_the_budget_trains_with_a_note(copy_of, tmp_path):
    pattern, n = _pattern(copy_of)
    victim = sorted(glob.glob(os.path.join(copy_of, "train-*.tar")))[0]
    os.remove(victim)
    r = run_cli(TRAIN, f"data.shards={pattern}", f"run.dir={tmp_path / 'run'}", "data.max_bad_fraction=0.2",
                *TINY, timeout=180)
    assert r.returncode == 0, r.stderr[-1500:]
    assert f"1 of {n} shards missing (64 of {n * 64} training images" in r.stdout
    assert victim in r.stdout
    # What was chosen for the user stays with the run: config.yaml leads with it, as comments.
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert config.startswith("# ") and f"# facegan: note: 1 of {n} shards missing" in config
    from facegan.config import load_config
    assert load_config(str(tmp_path / "run" / "config.yaml")).data.max_bad_fraction == 0.2  # still loads


def test_a_shard_that_vanishes_during_training_stops_the_loader_naming_it(copy_of):
    """Present when the run started, gone when the loader reaches it (a disk or a mount failing)."""
    shards = resolve_shards(_pattern(copy_of)[0], "train", 32)
    for url in shards.urls[:4]:
        os.remove(url)
    loader = train_loader(shards, batch_size=16, workers=0, max_bad_fraction=0.01)
    with pytest.raises(BadData) as err:
        for i, _ in enumerate(loader):  # stops at the first missing shard the seeded order meets
            assert i < 40, "a whole pass went by without the missing shards being counted"
    msg = str(err.value)
    assert "shard(s) gave nothing" in msg and "samples unreadable" in msg
    assert any(url in msg for url in shards.urls[:4])


def test_without_a_manifest_an_empty_shard_counts_as_a_typical_shard(copy_of, tmp_path):
    """Shards copied away from their dataset.json: sizes unknown, so a shard that gives nothing
    counts as the mean of those that could be read (here 64), whether met before or after them."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in sorted(glob.glob(os.path.join(copy_of, "train-00000[0-2].tar"))):
        shutil.copy(path, bare)
    shards = resolve_shards(str(bare / "train-{000000..000003}.tar"), "train", 32)
    assert shards.counts is None  # no manifest beside them
    missing = str(bare / "train-000003.tar")
    tracker = BadDataBudget(1.0, share=None)
    assert read_shard(missing, tracker) == []  # met first: waits to be sized
    assert tracker.bad == 0
    for url in shards.urls[:3]:
        assert len(read_shard(url, tracker)) == 64
    assert tracker.bad == 64 and tracker.empty_shards == [missing]


def test_a_failing_pipe_counts_as_a_typical_shard(cartoon_shards):
    """Not a file at all: a `pipe:` command that fails, among ones that work (no manifest)."""
    good = sorted(glob.glob(os.path.join(cartoon_shards, "train-*.tar")))[:2]
    tracker = BadDataBudget(1.0, share=None)
    for url in good:
        assert len(read_shard(f"pipe:cat {url}", tracker)) == 64
    assert read_shard("pipe:exit 3", tracker) == []
    assert tracker.bad == 64
    assert tracker.empty_shards == ["pipe:exit 3"]


def test_a_double_colon_list_of_a_dataset_s_shards_takes_its_counts(cartoon_shards):
    """WebDataset's '::'-joined URL list, as bench/small_data.py names a subset of a pack."""
    urls = sorted(glob.glob(os.path.join(cartoon_shards, "train-*.tar")))[:2]
    shards = resolve_shards("::".join(urls), "train", 32)
    assert shards.urls == urls and shards.counts == [64, 64]
