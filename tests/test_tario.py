"""The in-memory tar reader agrees with the tarfile module, including PAX and GNU long names."""

import io
import tarfile

import pytest

from facegan.data import tario


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


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_match_tarfile(fmt):
    long = "d/" + "x" * 150 + ".png"
    names = ["a/s1.png", "a/s1.json", "s2.png", long] if fmt != tarfile.USTAR_FORMAT else ["a/s1.png", "s2.png"]
    data = make_tar(fmt, names)
    ours = list(tario.members(data))
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        theirs = [(m.name, tf.extractfile(m).read()) for m in tf if m.isfile()]
    assert ours == theirs


def test_samples_group_by_key():
    data = make_tar(tarfile.GNU_FORMAT, ["dir/k1.png", "dir/k1.json", "dir/k2.png"])
    out = list(tario.samples("u", data))
    assert [s["__key__"] for s in out] == ["dir/k1", "dir/k2"] and set(out[0]) == {"__key__", "__url__", "png", "json"}


def test_truncated_and_damaged_shards_raise():
    data = make_tar(tarfile.GNU_FORMAT, ["k1.png", "k2.png"])
    with pytest.raises(tario.TarError, match="truncated"):
        list(tario.members(data[:512 + 3]))
    broken = bytearray(data)
    broken[100] ^= 0xFF  # inside the first header: checksum no longer matches
    with pytest.raises(tario.TarError, match="checksum"):
        list(tario.members(bytes(broken)))


def _with_pax_payload(payload: bytes) -> bytes:
    """A tar whose PAX extended header carries exactly this payload (valid header checksum)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        pax = tarfile.TarInfo("pax")
        pax.type, pax.size = tarfile.XHDTYPE, len(payload)
        tf.addfile(pax, io.BytesIO(payload))
        info = tarfile.TarInfo("k.png")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


@pytest.mark.parametrize("payload", [b"0 size=1\n", b"zz path=a\n", b"99 path=a\n"])
def test_damaged_pax_records_are_a_tar_error_not_a_hang(payload):
    with pytest.raises(tario.TarError, match="PAX"):
        list(tario.members(_with_pax_payload(payload)))


def test_random_damage_ends_in_members_or_tar_error():
    import random

    good = make_tar(tarfile.PAX_FORMAT, ["a/s1.png", "a/s1.json", "d/" + "y" * 120 + ".png"])
    rng = random.Random(0)
    for _ in range(2000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            list(tario.members(bytes(data[:rng.randint(0, len(data))])))
        except tario.TarError:
            pass
