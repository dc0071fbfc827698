"""The GAN step itself: both networks learn, and G's step leaves D's gradients untouched."""

import torch
from accelerate import Accelerator

from facegan.config import ModelConfig
from facegan.models import build_models
from facegan.images import to_unit_range
from facegan.train.ema import EmaSchedule, make_ema
from facegan.train.step import GANStep


def make_step():
    acc = Accelerator(cpu=True)
    G, D = build_models(ModelConfig(resolution=16, nz=8, ngf=4, ndf=4), seed=0)
    oG, oD = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    G, D, oG, oD = acc.prepare(G, D, oG, oD)
    return GANStep(acc, G, D, oG, oD, make_ema(acc.unwrap_model(G)), EmaSchedule(0.5, 4), 8), G, D, oD


def test_g_step_leaves_no_gradient_in_d():
    step, G, D, oD = make_step()
    snapshot = {}
    real_step = oD.step

    def spy(*a, **k):  # D's gradients as the D step left them
        snapshot.update({n: p.grad.clone() for n, p in D.named_parameters()})
        return real_step(*a, **k)

    oD.step = spy
    step(torch.rand(4, 3, 16, 16) * 2 - 1)
    for n, p in D.named_parameters():
        assert torch.equal(p.grad, snapshot[n]), n  # the G step added nothing
        assert p.requires_grad is False  # and D stays frozen until the next D step
    assert all(p.grad is not None for p in G.parameters())


def test_ema_moves_towards_g():
    step, G, D, _ = make_step()
    before = [p.clone() for p in step.G_ema.parameters()]
    step(torch.rand(4, 3, 16, 16) * 2 - 1)
    for b, e, g in zip(before, step.G_ema.parameters(), G.parameters()):
        assert torch.allclose(e, 0.5 * b + 0.5 * g, atol=1e-6)


def test_to_unit_range_maps_and_flips():
    x = torch.arange(0, 256, dtype=torch.uint8).view(1, 1, 16, 16).expand(64, 3, 16, 16).contiguous()
    y = to_unit_range(x, torch.device("cpu"), flip=False)
    assert y.min() == -1 and y.max() == 1
    torch.manual_seed(0)
    z = to_unit_range(x, torch.device("cpu"), flip=True)
    flipped = [bool(torch.equal(z[i], y[i].flip(2))) for i in range(64)]
    assert 10 < sum(flipped) < 54  # about half, each one an exact mirror or untouched
    assert all(f or torch.equal(z[i], y[i]) for i, f in enumerate(flipped))
