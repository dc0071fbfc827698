"""Shards read through WebDataset: tar formats, grouping, and damage that ends a shard cleanly."""

import io
import os
import random
import tarfile

import pytest

from facegan.data.shard_reader import shard_samples


def make_tar(fmt, names):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name in names:
            data = name.encode() * 3
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1.5  # a float mtime makes PAX headers in PAX format
            tf.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("adir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
    return buf.getvalue()


def read(tmp_path, data, **kw):
    path = tmp_path / "shard.tar"
    path.write_bytes(data)
    problems = []
    return list(shard_samples(str(path), problems, **kw)), problems


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_every_tar_format_groups_members_into_samples(tmp_path, fmt):
    long = "d/" + "x" * 150
    names = ["a/s1.png", "a/s1.json", "s2.png"] + ([long + ".png", long + ".json"] if fmt != tarfile.USTAR_FORMAT else [])
    samples, problems = read(tmp_path, make_tar(fmt, names))
    assert not problems
    assert [s["__key__"] for s in samples] == ["a/s1", "s2"] + ([long] if fmt != tarfile.USTAR_FORMAT else [])
    assert samples[0]["png"] == b"a/s1.png" * 3 and samples[0]["json"] == b"a/s1.json" * 3


def test_keep_reads_only_the_named_extensions(tmp_path):
    samples, _ = read(tmp_path, make_tar(tarfile.GNU_FORMAT, ["k1.json", "k1.png", "k2.png"]), keep=("png",))
    assert [sorted(k for k in s if not k.startswith("__")) for s in samples] == [["png"], ["png"]]


def test_a_duplicate_member_is_a_problem_not_an_error(tmp_path):
    samples, problems = read(tmp_path, make_tar(tarfile.GNU_FORMAT, ["k1.png", "k1.png", "k2.png"]))
    assert [s["__key__"] for s in samples] == ["k1", "k2"] and "duplicate" in problems[0]


def test_a_missing_shard_is_one_problem(tmp_path):
    problems = []
    assert list(shard_samples(str(tmp_path / "nope.tar"), problems)) == []
    assert len(problems) == 1 and problems[0].startswith("FileNotFoundError")


def test_random_header_damage_always_ends(tmp_path):
    good = make_tar(tarfile.PAX_FORMAT, ["a/s1.png", "a/s1.json", "d/" + "y" * 120 + ".png"])
    rng = random.Random(0)
    ended_with_problem = 0
    for _ in range(1500):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        samples, problems = read(tmp_path, bytes(data[:rng.randint(0, len(data))]))
        assert all(isinstance(s, dict) and "__key__" in s for s in samples)
        ended_with_problem += bool(problems)
    assert ended_with_problem > 500  # the damage is real: most cases report a problem
