"""Losses, spectral norm, DiffAugment and lazy R1: their maths, and each on a tiny real run
(finite losses, both networks change, resume is bit-exact)."""

import json
import os

import pytest
import torch

from conftest import ROOT, run_cli
from facegan.models.dcgan import Discriminator
from facegan.train import checkpoint as ckpt
from facegan.train.augment import diff_augment, parse_policy
from facegan.train.losses import d_loss, g_loss, r1_penalty
from test_train import TINY, kimg, weights


def test_losses_match_their_definitions():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.5, -3.0])
    # hinge: mean(relu(1 - real)) + mean(relu(1 + fake)) = (0 + 1.5)/2 + (1.5 + 0)/2
    assert d_loss(real, fake, "hinge").item() == pytest.approx(1.5)
    assert g_loss(fake, "hinge").item() == pytest.approx(1.25)
    # lsgan: 0.5 * (mean((real-1)^2) + mean(fake^2))
    assert d_loss(real, fake, "lsgan").item() == pytest.approx(0.5 * ((1 + 2.25) / 2 + (0.25 + 9) / 2))
    assert g_loss(fake, "lsgan").item() == pytest.approx(0.5 * (0.25 + 16) / 2)
    # bce: -log sigmoid(real) - log(1 - sigmoid(fake)), averaged
    sig = torch.sigmoid
    expected = -(sig(real).log().mean() + (1 - sig(fake)).log().mean())
    assert d_loss(real, fake, "bce").item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError):
        d_loss(real, fake, "wgan")


def test_r1_penalty_is_the_squared_input_gradient():
    x = torch.randn(3, 2, requires_grad=True)
    w = torch.tensor([1.0, -2.0])
    logits = (x * w).sum(1)  # gradient w.r.t. each row is w: |w|^2 = 5
    assert r1_penalty(logits, x).item() == pytest.approx(5.0)


def test_diff_augment_policies():
    assert parse_policy("none") == () and parse_policy("Color, cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="flip"):
        parse_policy("color,flip")
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16, requires_grad=True) * 2 - 1
    for policy in [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")]:
        y = diff_augment(x, policy)
        assert y.shape == x.shape and not torch.equal(y, x)
        (g,) = torch.autograd.grad(y.sum(), x)  # differentiable: gradients reach the input (and G)
        assert g.abs().sum() > 0
    # cutout zeroes a square of half the side: 64 of 256 pixels (fewer where it leaves the image)
    zeros = (diff_augment(torch.ones(64, 1, 16, 16), ("cutout",)) == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() >= 16
    # translation moves content without changing it: a shifted image is a sub-window of the original
    img = torch.arange(256.0).view(1, 1, 16, 16).repeat(32, 1, 1, 1)
    moved = diff_augment(img, ("translation",))
    for k in range(32):
        kept = moved[k][moved[k] != 0]
        assert torch.isin(kept, img[k]).all()


def test_spectral_norm_discriminator_has_no_batchnorm_and_unit_spectral_norm():
    d = Discriminator(32, 8, norm="spectral")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    d.train()
    for _ in range(30):  # power iterations converge in training-mode forwards
        d(torch.randn(2, 3, 32, 32))
    conv = d.main[0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError):
        Discriminator(32, 8, norm="layer")


VARIANTS = {
    "hinge": ["train.loss=hinge"],
    "lsgan": ["train.loss=lsgan"],
    "spectral": ["model.d_norm=spectral", "train.loss=hinge"],
    "diffaugment": ["train.augment=color,translation,cutout"],
    "r1": ["train.r1_gamma=1", "train.r1_every=2"],
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_trains_changes_weights_and_resumes_exactly(cartoon_shards, tmp_path, name, capsys):
    """In this process (the command line is covered in test_train.py): a straight run of 6 steps
    and one stopped at 3 and resumed must end with the same weights."""
    from facegan.config import load_config
    from facegan.train.loop import train as train_in_process

    opts = VARIANTS[name]
    straight, split = tmp_path / "straight", tmp_path / "split"

    def train(run_dir, steps):
        train_in_process(load_config(None, [f"data.shards={cartoon_shards}", f"run.dir={run_dir}", *TINY,
                                            kimg(steps), "log.wandb=off", *opts]))

    train(straight, 6)
    train(split, 3)
    capsys.readouterr()
    train(split, 6)
    assert "resumed from" in capsys.readouterr().out
    rows = [json.loads(line) for line in open(straight / "metrics.jsonl")]
    assert all(abs(row["loss_D"]) < 1e6 and abs(row["loss_G"]) < 1e6 for row in rows if "loss_D" in row)
    a = weights(ckpt.list_checkpoints(str(straight / "checkpoints"))[0])
    b = weights(ckpt.list_checkpoints(str(split / "checkpoints"))[0])
    first = weights(ckpt.list_checkpoints(str(split / "checkpoints"))[-1])  # the step-3 checkpoint
    for net in ("G", "D"):
        assert any(not torch.equal(a[net][k], first[net][k]) for k in a[net]), f"{name}: {net} did not change"
    for net in a:
        for k in a[net]:
            assert torch.isfinite(a[net][k].float()).all(), (name, net, k)
            assert torch.equal(a[net][k], b[net][k]), (name, net, k)


def test_config_names_the_bad_stabilizer_key(tmp_path):
    for override, key in (("train.loss=wgan", "train.loss"), ("model.d_norm=layer", "model.d_norm"),
                          ("train.augment=color,zoom", "train.augment"), ("train.r1_every=0", "train.r1_every")):
        r = run_cli(os.path.join(ROOT, "launch", "train.py"), override, f"run.dir={tmp_path}")
        assert r.returncode == 2 and key in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_classic_recipe_is_radford_et_al():
    from facegan.config import load_config

    cfg = load_config(os.path.join(ROOT, "configs", "classic.yaml"))
    assert (cfg.model.resolution, cfg.model.nz, cfg.model.ngf, cfg.model.ndf, cfg.model.d_norm) == (64, 100, 64, 64,
                                                                                                    "batch")
    t = cfg.train
    assert (t.batch_size, t.lr_g, t.lr_d, t.betas, t.loss) == (128, 2e-4, 2e-4, [0.5, 0.999], "bce")
    assert (t.augment, t.r1_gamma, t.ema, cfg.data.flip) == ("none", 0.0, 0.0, False)
