"""The shard loader: two real ranks, exact restart positions, URLs, corrupt data, eval split."""

import glob
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest
import torch

from conftest import ROOT
from facegan.data.bad_data import BadData
from facegan.data.loader import EvalStream, TrainStream, resolve_shards, train_loader
from facegan.errors import UserError


def test_batches_are_uint8_nchw(cartoon_shards):
    b = next(iter(train_loader(resolve_shards(cartoon_shards, "train", 32), 16)))
    assert b.dtype == torch.uint8 and b.shape == (16, 3, 32, 32)


def test_resolution_mismatch_is_refused(cartoon_shards):
    with pytest.raises(UserError, match="32x32 but model.resolution is 64"):
        resolve_shards(cartoon_shards, "train", 64)


def test_two_ranks_read_disjoint_data_in_equal_batch_counts(cartoon_shards, tmp_path):
    prefix = str(tmp_path / "rank")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           os.path.join(ROOT, "tests", "helpers", "read_rank.py"), cartoon_shards, prefix, "8"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.load(open(f"{prefix}{i}.json")) for i in range(2)]
    assert all(x["world"] == 2 for x in ranks)
    assert ranks[0]["all_steps"] == ranks[1]["all_steps"] == [ranks[0]["steps"]] * 2
    a, b = set(ranks[0]["hashes"]), set(ranks[1]["hashes"])
    assert len(a) == len(ranks[0]["hashes"]) and not a & b
    assert len(a) == len(b) == ranks[0]["steps"] * 8


@pytest.mark.parametrize("workers", [0, 2])
def test_restart_at_any_batch_gives_the_same_stream(cartoon_shards, workers):
    shards = resolve_shards(cartoon_shards, "train", 32)

    def batches(start, n):
        it = iter(train_loader(shards, 16, seed=3, start_batch=start, workers=workers))
        return [next(it) for _ in range(n)]

    straight = batches(0, 11)  # crosses a pass boundary (576 // 16 = 36 per pass with 0 workers... any)
    resumed = batches(5, 6)
    assert all(torch.equal(x, y) for x, y in zip(straight[5:], resumed))
    assert not torch.equal(straight[0], straight[1])


def test_fewer_shards_than_ranks_split_by_sample(cartoon_shards):
    one = resolve_shards(sorted(glob.glob(os.path.join(cartoon_shards, "train-000000.tar"))), resolution=32)
    seen = []
    for rank in range(3):
        it = iter(TrainStream(one, 4, rank=rank, world=3))
        seen.append({hashlib.sha1(x.numpy().tobytes()).hexdigest() for _ in range(5) for x in next(it)})
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])


def test_urls_brace_patterns_and_pipe(cartoon_shards):
    n = len(glob.glob(os.path.join(cartoon_shards, "train-*.tar")))
    brace = os.path.join(cartoon_shards, "train-{000000..%06d}.tar" % (n - 1))
    assert len(resolve_shards(brace).urls) == n
    piped = resolve_shards(f"pipe:cat {os.path.join(cartoon_shards, 'train-000000.tar')}", resolution=32)
    b = next(iter(train_loader(piped, 8)))
    assert b.shape == (8, 3, 32, 32)


def _copy_with_corruption(src_dir, dst, bad_every):
    """Rewrite the train shards with every bad_every-th image replaced by garbage bytes."""
    os.makedirs(dst)
    for path in sorted(glob.glob(os.path.join(src_dir, "train-*.tar"))):
        with tarfile.open(path) as tin, tarfile.open(os.path.join(dst, os.path.basename(path)), "w") as tout:
            for i, m in enumerate(tin.getmembers()):
                data = tin.extractfile(m).read()
                if m.name.endswith(".png") and (i // 2) % bad_every == 0:
                    data = b"\x89PNG broken"
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
    return sorted(glob.glob(os.path.join(dst, "*.tar")))


def test_corrupt_samples_are_skipped_below_threshold(cartoon_shards, tmp_path, capsys):
    urls = _copy_with_corruption(cartoon_shards, str(tmp_path / "bad"), bad_every=40)
    stream = TrainStream(resolve_shards(urls, resolution=32), 8, max_bad_fraction=0.1)
    it = iter(stream)
    for _ in range(20):
        assert next(it).shape == (8, 3, 32, 32)
    err = capsys.readouterr().err
    assert "facegan: skipping bad sample at " in err and "train-0000" in err
    assert "UnidentifiedImageError: cannot identify image file\n" in err  # no object address


def test_corrupt_samples_over_threshold_fail(cartoon_shards, tmp_path):
    urls = _copy_with_corruption(cartoon_shards, str(tmp_path / "bad"), bad_every=2)
    with pytest.raises(BadData, match=r"too much bad data: \d+ of \d+ samples unreadable .*over "
                       r"data.max_bad_fraction=0.05\); last at .*train-0000\d\d.tar:train\d+"):
        it = iter(TrainStream(resolve_shards(urls, resolution=32), 8, max_bad_fraction=0.05))
        for _ in range(60):
            next(it)


def test_eval_stream_reads_val_once_split_across_ranks(cartoon_shards):
    val = resolve_shards(cartoon_shards, "val", 32)
    per_rank = [[x for b in EvalStream(val, 5, rank, 2) for x in b] for rank in range(2)]
    alone = [x for b in EvalStream(val, 5) for x in b]
    assert len(per_rank[0]) + len(per_rank[1]) == len(alone) == val.total
    h = lambda xs: {hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in xs}
    assert h(per_rank[0]) | h(per_rank[1]) == h(alone) and not h(per_rank[0]) & h(per_rank[1])


def test_restart_at_a_pass_boundary_from_bare_urls(cartoon_shards):
    # Bare URLs: counts unknown, so fast-forward runs across passes and may end exactly at one.
    urls = sorted(glob.glob(os.path.join(cartoon_shards, "train-00000[01].tar")))  # 128 samples
    shards = resolve_shards(urls, resolution=32)
    straight = iter(TrainStream(shards, 16, seed=2))
    first = [next(straight) for _ in range(10)]
    resumed = iter(TrainStream(shards, 16, seed=2, start_batch=8))  # pass 0 holds exactly 8 batches
    assert torch.equal(next(resumed), first[8]) and torch.equal(next(resumed), first[9])
