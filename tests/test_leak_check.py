"""bench/leak_check.py: the check that D's augmentations did not leak into G's samples must see
rotated and tinted faces when they are there, and must not see them in real faces."""

import torch

from conftest import load_bench


def _faces(shards, split, n):
    from facegan.data.loader import eval_loader
    from facegan.data.shardset import resolve_shards
    from facegan.images import to_unit_range

    return torch.cat([to_unit_range(b, "cpu", flip=False)
                      for b in eval_loader(resolve_shards(shards, split, 32), 64, limit=n)])


def test_planted_rotations_and_tints_are_seen(cartoon_shards):
    leak = load_bench("leak_check")
    reals = _faces(cartoon_shards, "train", 576)
    fit, held = reals[:384], reals[384:]
    predict = leak.orientation_classifier(fit, steps=150)  # half the bench's steps: upright 0.93-0.95 here
    clean = leak.leak_report(held, held, predict)
    assert clean["fakes"]["upright"] > 0.85  # real faces read as upright
    views, labels = leak.rotations(held)  # every face in all 8 symmetries: 3/4 of them turned
    turned = leak.leak_report(views, held, predict)
    assert turned["fakes"]["upright"] < 0.5 * clean["fakes"]["upright"]
    assert sum(turned["fakes"]["orientations"].values()) == len(views)
    assert turned["reals"]["classifier_accuracy"] > 0.5  # 4 classes: chance is 0.25
    flipped = leak.leak_report(-held, held, predict)  # a luma flip moves the colour statistics
    assert abs(flipped["fakes"]["luma"] - clean["fakes"]["luma"]) > 0.1
    mirrored = leak.leak_report(held.flip(-1), held, predict)  # x-flips are ordinary faces
    assert mirrored["fakes"]["upright"] > 0.85


def test_dihedral_views_are_distinct():
    leak = load_bench("leak_check")
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    views, labels = leak.rotations(x)
    assert views.shape == (16, 3, 4, 4) and labels.tolist() == [k for k in range(4) for _ in range(4)]
    assert len({tuple(v.flatten().tolist()) for v in views[::2]} | {tuple(v.flatten().tolist()) for v in views[1::2]}) == 16
