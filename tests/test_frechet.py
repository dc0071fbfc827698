"""FID's formula as facegan computes it with fewer images than dimensions (facegan/eval/frechet.py)
against torchmetrics' own: the same value to round-off, on either side being the smaller set."""

import pytest
import torch
from torchmetrics.image.fid import _compute_fid

from facegan.eval.frechet import fast_form_applies, frechet_distance
from facegan.eval.metrics import fid_kid


def torchmetrics_fid(real, fake):
    real, fake = real.double(), fake.double()
    return float(_compute_fid(real.mean(0), torch.cov(real.T), fake.mean(0), torch.cov(fake.T)))


def features(n, d, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d ** 0.5  # correlated dimensions, as Inception's are
    return (torch.randn(n, d, generator=g) @ mix) * scale + shift


@pytest.mark.parametrize("n_real,n_fake,d", [(20, 20, 256), (40, 15, 256), (15, 60, 256), (300, 200, 64)])
def test_matches_torchmetrics(n_real, n_fake, d):
    real = features(n_real, d, seed=1)
    fake = features(n_fake, d, seed=2, scale=1.3, shift=0.2)
    ours, theirs = frechet_distance(real, fake), torchmetrics_fid(real, fake)
    assert theirs > 1.0
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert frechet_distance(fake, real) == pytest.approx(ours, rel=1e-9)  # symmetric


def test_a_set_against_itself_is_zero_and_two_rows_are_enough():
    x = features(30, 128, seed=3)
    assert abs(frechet_distance(x, x)) < 1e-6
    assert frechet_distance(x[:2], x[2:4]) > 0
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(x[:1], x)


def test_fid_kid_takes_the_small_form_below_d_and_torchmetrics_above():
    assert fast_form_applies(1000, 50000, 2048) and not fast_form_applies(3000, 3000, 2048)
    below = (features(24, 64, seed=4), features(30, 64, seed=5, shift=0.5))
    above = (features(200, 16, seed=6), features(150, 16, seed=7, shift=0.5))
    for real, fake in (below, above):
        assert fid_kid(real, fake, ("fid",))["fid"] == pytest.approx(torchmetrics_fid(real, fake), rel=1e-6)
