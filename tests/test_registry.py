"""Architectures and losses come from one table each: a toy of each, added by this file alone,
trains, checkpoints, resumes and loads; checkpoints and exports of the first format still load."""

import os

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from facegan.config import load_config
from facegan.eval.generator_io import load_generator
from facegan.models import ArchSpec, DOutput, register_architecture
from facegan.train import checkpoint as ckpt
from facegan.train.losses import register_loss

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "format-v1")


class ToyG(nn.Module):
    """z (N, nz[, 1, 1]) -> (N, 3, R, R) through one linear layer."""

    def __init__(self, resolution, nz, width):
        super().__init__()
        self.resolution, self.nz = resolution, nz
        self.net = nn.Sequential(nn.Linear(nz, width), nn.ReLU(), nn.Linear(width, 3 * resolution * resolution))

    def forward(self, z):
        return torch.tanh(self.net(z.flatten(1))).view(-1, 3, self.resolution, self.resolution)


class ToyD(nn.Module):
    def __init__(self, resolution, width):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * resolution * resolution, width), nn.LeakyReLU(0.2),
                                 nn.Linear(width, 1))

    def forward(self, x):
        return DOutput(self.net(x).flatten())


@pytest.fixture
def toys():
    """The toy entries, for this test only (other tests see the shipped tables)."""
    from facegan.models import ARCHITECTURES
    from facegan.train.losses import LOSSES

    register_architecture(ArchSpec("toy-mlp", generator=lambda a: ToyG(a["resolution"], a["nz"], a["ngf"]),
                                   discriminator=lambda a: ToyD(a["resolution"], a["ndf"]), keys=("ngf", "ndf")))
    register_loss("toy-wgan", d=lambda real, fake: fake.mean() - real.mean(), g=lambda fake: -fake.mean())
    yield
    del ARCHITECTURES["toy-mlp"], LOSSES["toy-wgan"]


def test_toy_architecture_and_loss_train_checkpoint_resume_and_load(cartoon_shards, tmp_path, toys):
    from facegan.train.loop import train

    args = [f"data.shards={cartoon_shards}", f"run.dir={tmp_path}", "model.arch=toy-mlp", "train.loss=toy-wgan",
            "model.resolution=32", "model.nz=8", "model.ngf=16", "model.ndf=16", "train.batch_size=16",
            "data.workers=0", "train.ema=0.5"]
    first = train(load_config(None, args + ["train.total_kimg=0.016"]))
    assert isinstance(first.G, ToyG) and first.step == 1
    from facegan.models import build_models

    g0, _ = build_models(load_config(None, args).model, 0)
    assert not torch.equal(g0.net[0].weight, first.G.net[0].weight)  # one step moved G
    state = ckpt.verify(first.checkpoint)
    assert state["architecture"]["arch"] == "toy-mlp"
    G, info = load_generator(str(tmp_path))
    assert isinstance(G, ToyG) and info["architecture"]["ngf"] == 16
    assert torch.equal(G.net[0].weight, first.G_ema.net[0].weight)
    second = train(load_config(None, args + ["train.total_kimg=0.032"]))
    assert second.step == 2 and isinstance(second.G, ToyG)
    with pytest.raises(Exception, match="unknown loss|expected one of"):
        load_config(None, args + ["train.loss=nope"])


@pytest.mark.parametrize("source", ["generator.safetensors", "checkpoint"])
def test_first_format_checkpoint_and_export_still_load(source):
    G, info = load_generator(os.path.join(FIXTURES, source))
    assert info["architecture"]["arch"] == "dcgan"
    z = torch.randn(4, 8, 1, 1, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = G(z)
    assert torch.equal(out, load_file(os.path.join(FIXTURES, "expected-seed3.safetensors"))["images"])


def test_first_format_checkpoint_resumes(cartoon_shards, tmp_path):
    """The old checkpoint (16x16, ngf = ndf = 4, nz = 8) continues training under today's code."""
    from facegan.train.loop import train

    import shutil
    shutil.copytree(os.path.join(FIXTURES, "checkpoint"), tmp_path / "ck")
    s16 = str(tmp_path / "s16")
    from facegan.data.packer import PackOptions, pack
    from facegan.data.sources import open_source

    pack(open_source("synthetic:cartoon", limit=64), s16, PackOptions(size=16, val_fraction=0, workers=1),
         log=lambda *a: None)
    cfg = load_config(None, [f"data.shards={s16}", f"run.dir={tmp_path / 'run'}", f"run.resume={tmp_path / 'ck'}",
                             "model.resolution=16", "model.ngf=4", "model.ndf=4", "model.nz=8",
                             "train.batch_size=16", "data.workers=0", "train.total_kimg=0.048"])
    res = train(cfg)
    assert res.step == 3


def test_shape_contracts_are_checked_at_the_models_entry():
    from facegan.models import Discriminator, Generator

    G, D = Generator(32, 16, 8), Discriminator(32, 8)
    assert G(torch.randn(2, 16)).shape == G(torch.randn(2, 16, 1, 1)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"expected shape \(N, 16, 1, 1\), got \(2, 15, 1, 1\)"):
        G(torch.randn(2, 15, 1, 1))
    with pytest.raises(ValueError, match="Discriminator input"):
        D(torch.randn(2, 3, 64, 64))


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    import yaml

    run = tmp_path / "never"
    r = subprocess.run([sys.executable, "-m", "facegan.cli.train", "--config", "configs/demo.yaml", "--dry-run",
                        f"run.dir={run}", "train.lr_g=1e-3", "log.wandb=off"],
                       capture_output=True, text=True, cwd=os.path.abspath(os.path.join(FIXTURES, "..", "..", "..")),
                       env=dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(FIXTURES, "..", "..", ".."))))
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["train"]["lr_g"] == 1e-3 and cfg["run"]["dir"] == str(run) and cfg["log"]["wandb"] == "off"
    assert not run.exists()
    bad = subprocess.run([sys.executable, "-m", "facegan.cli.train", "--dry-run", "train.lr_g=abc"],
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.abspath(os.path.join(FIXTURES, "..", "..", ".."))))
    assert bad.returncode == 2 and "train.lr_g" in bad.stderr
