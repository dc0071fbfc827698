import pytest
import torch

from facegan.config import ModelConfig
from facegan.models import Discriminator, Generator, build_models


@pytest.mark.parametrize("res", [16, 32, 64, 128, 256])
def test_shapes_at_every_resolution(res):
    g, d = Generator(res, nz=16, ngf=8), Discriminator(res, ndf=8)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 3, res, res) and x.abs().max() <= 1
    assert d(x).logits.shape == (3,)


def test_dcgan_structure_and_init():
    g, d = build_models(ModelConfig(resolution=64, nz=100, ngf=64, ndf=64), seed=0)
    convs = [m for m in d.main if isinstance(m, torch.nn.Conv2d)]
    assert d.main[1].__class__ is torch.nn.LeakyReLU  # no BatchNorm after the first conv
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())
    assert isinstance(g.main[-1], torch.nn.Tanh)
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.001
    bn = torch.cat([m.weight for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 0.01 and 0.01 < bn.std().item() < 0.03
    # the classic 64x64 model's size
    assert sum(p.numel() for p in g.parameters()) == 3576704
    assert sum(p.numel() for p in d.parameters()) == 2765568


def test_same_seed_same_weights():
    a, _ = build_models(ModelConfig(resolution=32, ngf=8, ndf=8), seed=5)
    b, _ = build_models(ModelConfig(resolution=32, ngf=8, ndf=8), seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
