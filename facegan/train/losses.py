"""GAN losses on D's raw scores (logits), computed in fp32 so they are safe under autocast.

bce:   the DCGAN paper's loss, with the non-saturating G loss (G maximizes log D(G(z))).
hinge: Lim & Ye (2017), as used with spectral normalisation by Miyato et al. (2018) and BigGAN.
lsgan: least squares, Mao et al. (2017), with targets 1 (real) and 0 (fake).
"""

import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge", "lsgan")


def d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    real, fake = logits_real.float(), logits_fake.float()
    if kind == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1.0).square().mean() + fake.square().mean())
    raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")


def g_loss(logits_fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    fake = logits_fake.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "hinge":
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1.0).square().mean()
    raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")


def r1_penalty(logits_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |grad_x D(x)|^2 on real images (Mescheder et al., 2018). The graph
    is kept so the penalty's own gradient reaches D's weights."""
    (grad,) = torch.autograd.grad(logits_real.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()
