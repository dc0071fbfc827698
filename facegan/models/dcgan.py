"""DCGAN (Radford et al., 2015), with the resolution setting the depth.

G: z (nz x 1 x 1) -> ConvTranspose to 4x4 -> [ConvTranspose(4, 2, 1), BatchNorm, ReLU]* -> tanh RGB.
D: mirror image: strided Conv, BatchNorm (not after the first layer), LeakyReLU(0.2), and a
final 4x4 Conv to one logit per image (no sigmoid: the losses take raw scores), returned as a
DOutput (the discriminator contract the training step reads, for every registered architecture).
D's normalisation (model.d_norm): `batch` is the paper's; `spectral` puts spectral normalisation
(Miyato et al., 2018) on every D convolution instead of BatchNorm, which bounds D's Lipschitz
constant and makes its output independent of the rest of the batch; `none` uses neither.
Channel width at a feature map of side r is width * min(8, resolution / (2r)): the classic
64x64 model (ngf*8 at 4x4 down to ngf at 32x32), extended to 16..512 without exploding widths.
Conditional models (model.condition; see facegan.conditions) take labels c (N, C) too:
G joins an embedding of c to z (or uses conditional BatchNorm), D adds a projection term on its
last features (or reads c as extra input channels).
"""

from typing import NamedTuple, Optional

import torch
from torch import nn

from ..conditions import Condition, DConditioning
from .layers import CondBatchNorm2d, adc_width
from .registry import ArchSpec, register_architecture

BANK = 1024  # condition vectors of training images a conditional G keeps (sampling draws from them)
EMBED = 64  # width of G's condition embedding (joined to z)


def _width(base: int, resolution: int, side: int) -> int:
    return base * min(8, resolution // (2 * side))


def _check(resolution: int):
    if resolution < 16 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 16, got {resolution}")


def assert_shape(t: torch.Tensor, shape: tuple, what: str) -> None:
    """Raise ValueError unless t has `shape` (None matches any size), as stylegan3's misc.assert_shape."""
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{what}: expected shape {want}, got {tuple(t.shape)}")


class Generator(nn.Module):
    """z (and c) -> images. forward takes z of shape (N, nz) or (N, nz, 1, 1), float, drawn from
    N(0, I) (see facegan.sampling.latents), and for a conditional G the condition c (N, C) (see
    facegan.conditions); returns (N, channels, resolution, resolution) in [-1, 1] (tanh).
    ValueError for any other shape, a missing c, or a resolution that is not a power of two >= 16."""

    def __init__(self, resolution: int = 64, nz: int = 100, ngf: int = 64, channels: int = 3,
                 condition: Condition = None, g_condition: str = "embed"):
        super().__init__()
        _check(resolution)
        self.resolution, self.nz, self.condition = resolution, nz, condition
        cdim = condition.dim if condition else 0
        cbn = condition is not None and g_condition == "cbn"
        embed = EMBED if condition is not None and not cbn else 0
        if condition is not None:
            self.register_buffer("label_bank", torch.zeros(BANK, cdim))  # see BANK
        self.embed = nn.Linear(cdim, embed, bias=False) if embed else None
        if self.embed is not None:  # an embedding as large as z's entries, not a 0.02-scale whisper
            self.embed.init_std = 1.0 / cdim ** 0.5

        def norm(ch):
            return CondBatchNorm2d(ch, cdim) if cbn else nn.BatchNorm2d(ch)

        c = _width(ngf, resolution, 4)
        layers = [nn.ConvTranspose2d(nz + embed, c, 4, 1, 0, bias=False), norm(c), nn.ReLU(True)]
        side = 4
        while side * 2 < resolution:
            c_out = _width(ngf, resolution, side * 2)
            layers += [nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=False), norm(c_out), nn.ReLU(True)]
            c, side = c_out, side * 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor = None) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        assert_shape(z, (None, self.nz, 1, 1), "Generator input z")
        if self.condition is None:
            return self.main(z)
        if c is None:
            raise ValueError("a conditional Generator needs c (see facegan.sampling.conditions_for)")
        assert_shape(c, (z.shape[0], self.condition.dim), "Generator condition c")
        c = c.to(z.dtype)
        x = torch.cat([z, self.embed(c)[:, :, None, None].to(z.dtype)], 1) if self.embed is not None else z
        for layer in self.main:
            x = layer(x, c) if isinstance(layer, CondBatchNorm2d) else layer(x)
        return x


D_NORMS = ("batch", "spectral", "none")
NO_CONDITIONING = DConditioning(None, None)  # an unconditional D: nothing reads c, no classifier head


class DOutput(NamedTuple):
    """What a discriminator returns, whatever its options. logits: (N,) raw real/fake scores (no
    sigmoid; the losses in facegan.train.losses take logits). labels: the classifier head's label
    logits, (N, C) for AC-GAN or (N, adc_width) for ADC-GAN, when asked for (labels=True) of a D
    with a head; else None."""

    logits: torch.Tensor
    labels: Optional[torch.Tensor] = None


class Discriminator(nn.Module):
    """images (and c) -> DOutput. forward takes (N, channels, resolution, resolution) in [-1, 1],
    and for a conditional D their conditions c (N, C); labels=True also runs the classifier head
    of a D that has one (d_condition *+aux, *+adc), on the same features. ValueError for any other
    shape or a missing c; d_condition is parsed by facegan.conditions.DConditioning."""

    def __init__(self, resolution: int = 64, ndf: int = 64, channels: int = 3, norm: str = "batch",
                 condition: Condition = None, d_condition: str = "projection"):
        super().__init__()
        _check(resolution)
        self.resolution, self.channels, self.condition = resolution, channels, condition
        if norm not in D_NORMS:
            raise ValueError(f"D norm must be one of {', '.join(D_NORMS)}, got {norm!r}")
        how = DConditioning.parse(d_condition) if condition is not None else NO_CONDITIONING
        self.concat = how.input == "concat"
        conv = _spectral_conv if norm == "spectral" else nn.Conv2d
        side = resolution // 2
        c = _width(ndf, resolution, side)
        c_in = channels + (condition.dim if self.concat else 0)
        layers = [conv(c_in, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        while side > 4:
            c_out = _width(ndf, resolution, side // 2)
            layers += [conv(c, c_out, 4, 2, 1, bias=False)]
            if norm == "batch":
                layers += [nn.BatchNorm2d(c_out)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c, side = c_out, side // 2
        # phi (every layer but the last: (N, c, 4, 4) features), then psi: one unconditional logit
        # (one Sequential, so state-dict keys are those of checkpoints written before conditioning)
        self.main = nn.Sequential(*layers, conv(c, 1, 4, 1, 0, bias=False))
        linear = _spectral_linear if norm == "spectral" else nn.Linear
        self.project = linear(condition.dim, c, bias=False) if how.input == "projection" else None
        self.classify = None
        if how.head is not None:  # AC-GAN's head predicts the labels; ADC-GAN's, (label, real/fake) pairs
            self.classify = linear(c, adc_width(condition) if how.head == "adc" else condition.dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor = None, labels: bool = False) -> DOutput:
        assert_shape(x, (None, self.channels, self.resolution, self.resolution), "Discriminator input")
        if self.condition is not None:
            if c is None:
                raise ValueError("a conditional Discriminator needs c, the labels of its images")
            assert_shape(c, (x.shape[0], self.condition.dim), "Discriminator condition c")
            c = c.to(x.dtype)
            if self.concat:  # c as constant feature maps beside the image (the classic cGAN D)
                x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        if self.project is None and self.classify is None:
            return DOutput(self.main(x).flatten())  # one logit per image
        h = self.main[:-1](x)
        logits = self.main[-1](h).flatten()
        pooled = h.sum((2, 3))
        if self.project is not None:  # Miyato & Koyama 2018: psi(phi(x)) + <E c, sum-pooled phi(x)>
            logits = logits + (self.project(c) * pooled).sum(1)
        if labels and self.classify is not None:
            return DOutput(logits, self.classify(pooled))
        return DOutput(logits)


def _spectral_conv(*args, **kwargs) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(nn.Conv2d(*args, **kwargs))


def _spectral_linear(*args, **kwargs) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(nn.Linear(*args, **kwargs))


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv (and condition embedding) weights N(0, 0.02); BatchNorm scale N(1, 0.02),
    shift 0; conditional BatchNorm's condition weights 0 (it starts as plain BatchNorm)."""
    for m in module.modules():
        if isinstance(m, nn.Linear) and getattr(m, "zero_init", False):
            with torch.no_grad():
                nn.init.zeros_(m.weight)
        elif isinstance(m, nn.Linear) and hasattr(m, "init_std"):
            with torch.no_grad():
                nn.init.normal_(m.weight, 0.0, m.init_std)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():  # under spectral norm, .weight is computed; init the original
                target = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
                nn.init.normal_(target, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


register_architecture(ArchSpec(
    "dcgan",
    generator=lambda a: Generator(a["resolution"], a["nz"], a["ngf"], a.get("channels", 3),
                                  Condition.from_json(a.get("condition")), a.get("g_condition", "embed")),
    discriminator=lambda a: Discriminator(a["resolution"], a["ndf"], a.get("channels", 3), a["d_norm"],
                                          Condition.from_json(a.get("condition")),
                                          a.get("d_condition", "projection")),
    keys=("ngf", "ndf", "d_norm"),
    defaults={"d_norm": "batch"},  # checkpoints written before model.d_norm existed
    init=init_weights))
