"""DCGAN (Radford et al., 2015), with the resolution setting the depth.

G: z (nz x 1 x 1) -> ConvTranspose to 4x4 -> [ConvTranspose(4, 2, 1), BatchNorm, ReLU]* -> tanh RGB.
D: mirror image: strided Conv, BatchNorm (not after the first layer), LeakyReLU(0.2), and a
final 4x4 Conv to one logit per image (no sigmoid: the losses take raw scores).
D's normalisation (model.d_norm): `batch` is the paper's; `spectral` puts spectral normalisation
(Miyato et al., 2018) on every D convolution instead of BatchNorm, which bounds D's Lipschitz
constant and makes its output independent of the rest of the batch; `none` uses neither.
Channel width at a feature map of side r is width * min(8, resolution / (2r)): the classic
64x64 model (ngf*8 at 4x4 down to ngf at 32x32), extended to 16..512 without exploding widths.
"""

import torch
from torch import nn

from .registry import ArchSpec, register_architecture


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
    """z -> images. forward takes z of shape (N, nz) or (N, nz, 1, 1), float, drawn from N(0, I)
    (see facegan.latents), and returns (N, channels, resolution, resolution) in [-1, 1] (tanh).
    ValueError for any other shape, or a resolution that is not a power of two >= 16."""

    def __init__(self, resolution: int = 64, nz: int = 100, ngf: int = 64, channels: int = 3):
        super().__init__()
        _check(resolution)
        self.resolution, self.nz = resolution, nz
        c = _width(ngf, resolution, 4)
        layers = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        side = 4
        while side * 2 < resolution:
            c_out = _width(ngf, resolution, side * 2)
            layers += [nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
            c, side = c_out, side * 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        assert_shape(z, (None, self.nz, 1, 1), "Generator input z")
        return self.main(z)


D_NORMS = ("batch", "spectral", "none")


class Discriminator(nn.Module):
    """images -> logits. forward takes (N, channels, resolution, resolution) in [-1, 1] and
    returns (N,) raw scores (no sigmoid; the losses in facegan.train.losses take logits).
    ValueError for any other shape."""

    def __init__(self, resolution: int = 64, ndf: int = 64, channels: int = 3, norm: str = "batch"):
        super().__init__()
        _check(resolution)
        self.resolution, self.channels = resolution, channels
        if norm not in D_NORMS:
            raise ValueError(f"D norm must be one of {', '.join(D_NORMS)}, got {norm!r}")
        conv = _spectral_conv if norm == "spectral" else nn.Conv2d
        side = resolution // 2
        c = _width(ndf, resolution, side)
        layers = [conv(channels, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        while side > 4:
            c_out = _width(ndf, resolution, side // 2)
            layers += [conv(c, c_out, 4, 2, 1, bias=False)]
            if norm == "batch":
                layers += [nn.BatchNorm2d(c_out)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c, side = c_out, side // 2
        layers += [conv(c, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, (None, self.channels, self.resolution, self.resolution), "Discriminator input")
        return self.main(x).flatten()  # one logit per image


def _spectral_conv(*args, **kwargs) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(nn.Conv2d(*args, **kwargs))


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():  # under spectral norm, .weight is computed; init the original
                target = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
                nn.init.normal_(target, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


register_architecture(ArchSpec(
    "dcgan",
    generator=lambda a: Generator(a["resolution"], a["nz"], a["ngf"], a.get("channels", 3)),
    discriminator=lambda a: Discriminator(a["resolution"], a["ndf"], a.get("channels", 3), a["d_norm"]),
    keys=("ngf", "ndf", "d_norm"),
    defaults={"d_norm": "batch"},  # checkpoints written before model.d_norm existed
    init=init_weights))
