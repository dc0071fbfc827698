"""Differentiable augmentation for D (Zhao et al., 2020, "DiffAugment"): the same random policy
is applied to real and generated images each time D sees them, and gradients flow through it to G,
so D cannot overfit a small dataset and G is not taught to make augmented-looking faces.

Policies, as in the paper's reference code: color (brightness, saturation, contrast),
translation (shift by up to 1/8 of the side, zero padding), cutout (a zeroed square of half the side).
Inputs are in [-1, 1]; every op works on a whole batch at once on the device.

train.augment=ada instead steers the augmentation of every image D sees by D's overfitting
(facegan.train.ada, with the pipeline of facegan.train.augment_pipe); it is not combined with
these policies.
"""

import torch
import torch.nn.functional as F

# config checks train.augment's text without importing train/; the names stay importable from here.
from ..config.augment_policy import ADA, POLICIES, parse_policy  # noqa: F401


def diff_augment(x: torch.Tensor, policy: tuple) -> torch.Tensor:
    for name in policy:
        x = _OPS[name](x)
    return x


def _color(x):
    n = x.shape[0]
    rand = lambda: torch.rand(n, 1, 1, 1, dtype=x.dtype, device=x.device)  # noqa: E731
    x = x + (rand() - 0.5)  # brightness (the paper's range, on [-1, 1] data as in its code)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand() * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (rand() + 0.5) + mean  # contrast


def _translation(x, ratio: float = 0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    # Index into a zero-padded copy: out[y, x] = in[y + dy, x + dx] (zero outside).
    src_y = (rows + dy).clamp(-1, h) + 1
    src_x = (cols + dx).clamp(-1, w) + 1
    padded = F.pad(x, [1, 1, 1, 1])
    flat = padded.flatten(2)  # (n, c, (h+2)*(w+2))
    index = (src_y * (w + 2) + src_x).flatten(1)  # (n, h*w)
    out = flat.gather(2, index.unsqueeze(1).expand(-1, x.shape[1], -1))
    return out.view_as(x).contiguous(memory_format=_format_of(x))


def _cutout(x, ratio: float = 0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    oy, ox = rows - cy + ch // 2, cols - cx + cw // 2  # position inside the square, if in it
    inside = (oy >= 0) & (oy < ch) & (ox >= 0) & (ox < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _format_of(x):
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and \
        not x.is_contiguous() else torch.contiguous_format


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}
