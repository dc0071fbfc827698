"""GAN losses on D's raw scores (logits), computed in fp32 so they are safe under autocast.

bce:   the DCGAN paper's loss, with the non-saturating G loss (G maximizes log D(G(z))).
hinge: Lim & Ye (2017), as used with spectral normalisation by Miyato et al. (2018) and BigGAN.
lsgan: least squares, Mao et al. (2017), with targets 1 (real) and 0 (fake).

One table, LOSSES, maps a name (train.loss) to its D and G losses; a new loss is one
register_loss call, and train.loss accepts it.

A conditional D's classifier head (model.d_condition *+aux, *+adc) adds its own terms to both
losses: conditional_head picks them once, from the parsed description (facegan.conditions).
"""

from typing import Callable, Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..conditions import Condition
from ..config.schema import accept_losses


class Loss(NamedTuple):
    """d(logits_real, logits_fake) -> scalar D loss; g(logits_fake) -> scalar G loss. Logits are
    (N,) raw scores in any float dtype; both return fp32 scalars."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


LOSSES: Dict[str, Loss] = {}
accept_losses(LOSSES)  # train.loss takes the names in this table, those registered later included


def register_loss(name: str, d: Callable, g: Callable) -> None:
    LOSSES[name] = Loss(d, g)


register_loss("bce",
              d=lambda real, fake: (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                                    + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))),
              g=lambda fake: F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))
register_loss("hinge",
              d=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
              g=lambda fake: -fake.mean())
register_loss("lsgan",
              d=lambda real, fake: 0.5 * ((real - 1.0).square().mean() + fake.square().mean()),
              g=lambda fake: 0.5 * (fake - 1.0).square().mean())


def _loss(kind: str) -> Loss:
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[kind]


def d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """D's loss for (N,) logits on real and generated images, in fp32. ValueError for an unknown kind."""
    return _loss(kind).d(logits_real.float(), logits_fake.float())


def g_loss(logits_fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """G's loss for (N,) logits of D on generated images, in fp32. ValueError for an unknown kind."""
    return _loss(kind).g(logits_fake.float())


def r1_penalty(logits_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |grad_x D(x)|^2 on real images (Mescheder et al., 2018). The graph
    is kept so the penalty's own gradient reaches D's weights."""
    (grad,) = torch.autograd.grad(logits_real.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def aux_loss(cond: Condition, logits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The auxiliary classifier's loss (AC-GAN) of its (N, C) logits against conditions c (N, C):
    binary cross-entropy per attribute (on = c > 0), or cross-entropy over the classes."""
    logits = logits.float()
    if cond.kind == "attributes":
        return nn.functional.binary_cross_entropy_with_logits(logits, (c > 0).float())
    return nn.functional.cross_entropy(logits, c.argmax(1))


def adc_loss(cond: Condition, logits: torch.Tensor, c: torch.Tensor, real: bool) -> torch.Tensor:
    """ADC-GAN's classifier loss (Hou et al. 2022) of its (N, adc_width) logits against conditions
    c (N, C), taken as real images' labels (real=True) or fakes' (real=False): cross-entropy over
    (label, source) per attribute (averaged over attributes), or over the 2K (class, source) pairs.
    D minimises it on reals (real=True) and fakes (real=False); G on fakes with real=True."""
    logits = logits.float()
    if cond.kind == "attributes":
        target = (c > 0).long() + (0 if real else 2)  # 0 off-real, 1 on-real, 2 off-fake, 3 on-fake
        return nn.functional.cross_entropy(logits.reshape(-1, cond.dim, 4).transpose(1, 2), target)
    return nn.functional.cross_entropy(logits, c.argmax(1) + (0 if real else cond.dim))


class ConditionalHead:
    """The terms a D classifier head adds to D's and G's losses, times train.aux_weight. Label
    logits are the head's (N, width) output (facegan.models.DOutput.labels); c are (N, C)
    conditions. reads_fakes: whether D's step also needs the head's verdict on fakes."""

    reads_fakes = False

    def __init__(self, cond: Condition, weight: float):
        self.cond, self.weight = cond, weight

    def d_term(self, labels_real, c_real, labels_fake, c_fake) -> torch.Tensor:
        raise NotImplementedError

    def g_term(self, labels_fake, c_fake) -> torch.Tensor:
        raise NotImplementedError


class AuxHead(ConditionalHead):
    """AC-GAN (Odena et al. 2017): D's classifier learns the labels of real images (labels_fake is
    not read); G makes the asked labels readable on its fakes."""

    def d_term(self, labels_real, c_real, labels_fake, c_fake):
        return self.weight * aux_loss(self.cond, labels_real, c_real)

    def g_term(self, labels_fake, c_fake):
        return self.weight * aux_loss(self.cond, labels_fake, c_fake)


class AdcHead(ConditionalHead):
    """ADC-GAN (Hou et al. 2022): D's classifier learns the labels of reals as real and of fakes as
    fake; G makes its fakes read as real images with the asked labels."""

    reads_fakes = True

    def d_term(self, labels_real, c_real, labels_fake, c_fake):
        return self.weight * (adc_loss(self.cond, labels_real, c_real, real=True)
                              + adc_loss(self.cond, labels_fake, c_fake, real=False))

    def g_term(self, labels_fake, c_fake):
        return self.weight * adc_loss(self.cond, labels_fake, c_fake, True)


HEADS = {"aux": AuxHead, "adc": AdcHead}  # facegan.conditions.D_HEADS -> its loss terms


def conditional_head(head: Optional[str], cond: Optional[Condition], weight: float) -> Optional[ConditionalHead]:
    """The loss terms of D's classifier head (DConditioning.head: aux, adc or None) for condition
    cond; None for a D without a head or an unconditional run (cond None)."""
    if cond is None or head is None:
        return None
    return HEADS[head](cond, weight)
