"""ADA's augmentation pipeline for D (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data"; stylegan2-ada-pytorch training/augment.py): the "bgc" set it uses for faces plus
cutout, each transform applied to each image independently with probability p.

Geometric (one warp for all of them): x-flip, 90-degree rotations, integer translation (1/8 of the
side), isotropic scaling, rotation (before and after anisotropic scaling, each with the
probability that makes "any rotation" p), anisotropic scaling, fractional translation. Their
matrices are multiplied into one per image, then applied as ADA does: reflection padding, 2x
upsampling with the sym6 wavelet low-pass filter, bilinear affine_grid/grid_sample, filtered 2x
downsampling. Color (one 4x4 matrix per image on RGB in [-1, 1], so 0 is mid grey): brightness,
contrast, luma flip, hue rotation about the luma axis, saturation. Then cutout (a zeroed square of
half the side).

Every transform is differentiable in the image, so G's gradient flows through it, and every one is
invertible as a distribution (Bora et al. 2018): as long as p stays below about 0.8 D cannot tell
a clean image from an augmented one, so G is never pushed to make rotated, tinted or upside-down
faces. G itself never sees the pipeline: only D's inputs go through it (facegan.train.step.GANStep);
the sample grids and the EMA generator do not (tests/test_ada.py checks both).

Written here in plain torch rather than taken from kornia.augmentation (0.9), which was weighed:
it has per-image probabilities, a p that can be set between steps and gradients to the input, but
ADA's set would take several of its geometric transforms, each resampling the image where ADA
resamples once; it has no luma flip and no rotation of hue about the luma axis; its brightness
clamps to [0, 1] (not invertible, no gradient at the clamp); its scale and rotation distributions
are not ADA's; and it draws from the global RNG with no generator argument, as this module does.
Here the images a transform leaves alone (its coin said no) pass through unchanged, and p = 0
skips all work (the identity, bit for bit). Random numbers come from torch's global RNG, which the
checkpoint saves per rank, so a resumed run draws the same augmentations as an uninterrupted one.
"""

import math

import torch
import torch.nn.functional as F

# Orthogonal low-pass filter of the sym6 wavelet (ADA's Hz_geom): up- then downsampling with it
# gives the image back, so an integer shift is exact; a flip or a quarter turn meets the filter
# mirrored, a slight low-pass (about 0.03 on smooth images in [-1, 1]), as in ADA.
SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

TRANSFORMS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
              "brightness", "contrast", "lumaflip", "hue", "saturation", "cutout")

# ADA's defaults for the bgc set (stylegan2-ada-pytorch AugmentPipe.__init__), and cutout's size.
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD, CUTOUT_SIZE = 0.2, 0.5, 1.0, 1.0, 0.5


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    """(N, R, C) from rows of (N,) tensors and plain numbers."""
    n = like.shape[0]
    elems = [e if torch.is_tensor(e) else torch.full((n,), float(e), device=like.device) for row in rows for e in row]
    return torch.stack(elems, dim=-1).reshape(n, len(rows), len(rows[0]))


def _translate2d(tx, ty, like):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale2d(sx, sy, like):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate2d(theta, like):
    return _matrix([[torch.cos(theta), -torch.sin(theta), 0], [torch.sin(theta), torch.cos(theta), 0],
                    [0, 0, 1]], like)


def _rotate3d(v, theta, like):
    """Rotation by theta (N,) about the unit axis v (3,) (Rodrigues), in homogeneous 4x4."""
    vx, vy, vz = (float(a) for a in v[:3])
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                    [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                    [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                    [0, 0, 0, 1]], like)


def _coin(n, p, device):
    """(N,) bool: which images a transform applied with probability p touches."""
    return torch.rand(n, device=device) < p


MATMUL_MAX = 256  # sides up to this resample as two matrix products (measured 1.5-5x faster on CPU)
_MATRICES = {}


def _upsample2x(x, f, matmul=None):
    """stylegan2-ada-pytorch's upsample2d(x, f, up=2) for a separable filter f (taps,) of even
    length: zero insertion, filtering with gain 4 (2 per axis), same centring. Done as transposed
    convolutions (the zeros are never multiplied), or for sides up to MATMUL_MAX (matmul None) as
    the same linear map per axis in matrix form: U_h^T x U_w."""
    n, c, h, w = x.shape
    if matmul if matmul is not None else max(h, w) <= MATMUL_MAX:
        return _axis_matrix("up", h, f, 0).t() @ (x @ _axis_matrix("up", w, f, 0))
    k, cut = f * 2, (len(f) - 2) // 2
    y = F.conv_transpose2d(x.reshape(n * c, 1, h, w), k.view(1, 1, 1, -1), stride=(1, 2))[:, :, :, cut:-cut]
    y = F.conv_transpose2d(y, k.view(1, 1, -1, 1), stride=(2, 1))[:, :, cut:-cut, :]
    return y.reshape(n, c, 2 * h, 2 * w)


def _downsample2x(x, f, crop: int, matmul=None):
    """stylegan2-ada-pytorch's downsample2d(x, f, down=2, padding=-crop, flip_filter=True) for a
    separable filter f of even length: crop, filter, keep every second pixel (strided, so only
    the kept pixels are computed); as matrices for sides up to MATMUL_MAX (matmul None)."""
    n, c, h, w = x.shape
    if matmul if matmul is not None else max(h, w) <= MATMUL_MAX:
        return _axis_matrix("down", h, f, crop).t() @ (x @ _axis_matrix("down", w, f, crop))
    edge = crop - (len(f) - 2) // 2
    y = x.reshape(n * c, 1, h, w)[:, :, edge:h - edge, edge:w - edge]
    y = F.conv2d(y, f.view(1, 1, 1, -1), stride=(1, 2))
    y = F.conv2d(y, f.view(1, 1, -1, 1), stride=(2, 1))
    return y.reshape(n, c, y.shape[2], y.shape[3])


def _axis_matrix(kind: str, size: int, f, crop: int):
    """(size, out) matrix of the convolution path along one axis, built by running it on the
    identity (so both paths are one definition); cached per size and device."""
    key = (kind, size, crop, f.device, f.dtype)
    if key not in _MATRICES:
        if len(_MATRICES) >= 256:  # the padded side varies with each batch's transforms: bound the cache
            _MATRICES.clear()
        eye = torch.eye(size, dtype=f.dtype, device=f.device).view(size, 1, 1, size)
        if kind == "up":
            k, cut = f * 2, (len(f) - 2) // 2
            _MATRICES[key] = F.conv_transpose2d(eye, k.view(1, 1, 1, -1), stride=(1, 2))[:, 0, 0, cut:-cut]
        else:
            edge = crop - (len(f) - 2) // 2
            _MATRICES[key] = F.conv2d(eye[..., edge:size - edge], f.view(1, 1, 1, -1), stride=(1, 2))[:, 0, 0, :]
    return _MATRICES[key]


class AugmentPipe:
    """pipe(images, p) -> augmented images: (N, C, H, W) float in [-1, 1] (C = 3 for the color
    transforms) in, the same shape, dtype and memory format out, differentiable in the images.
    Each transform named in TRANSFORMS is drawn per image with probability p (0 <= p <= 1); a
    transform given False is never applied (for tests and ablations). p = 0 returns the input
    itself. Draws from torch's global RNG on the images' device."""

    def __init__(self, **enabled):
        unknown = sorted(set(enabled) - set(TRANSFORMS))
        if unknown:
            raise ValueError(f"unknown transform {', '.join(unknown)}; choose from {', '.join(TRANSFORMS)}")
        self.on = {t: bool(enabled.get(t, True)) for t in TRANSFORMS}
        self._filters = {}

    def _filter(self, device):
        if device not in self._filters:
            f = torch.tensor(SYM6, dtype=torch.float32, device=device)
            self._filters[device] = f / f.sum()
        return self._filters[device]

    def __call__(self, images: torch.Tensor, p: float) -> torch.Tensor:
        if p <= 0:
            return images
        fmt = (torch.channels_last if images.is_contiguous(memory_format=torch.channels_last)
               and not images.is_contiguous() else torch.contiguous_format)
        # fp32 whatever autocast would pick: the matrices and the resampling want it (ADA runs fp32)
        with torch.autocast(images.device.type, enabled=False):
            x = images.float().contiguous()
            x = self._geometric(x, p)
            x = self._color(x, p)
            x = self._cutout(x, p)
        return x.to(images.dtype).contiguous(memory_format=fmt)

    # ------------------------------------------------------------ geometric

    def _geometric_matrix(self, x, p):
        """(N, 3, 3) inverse transforms, output pixel -> input pixel, centred coordinates."""
        n, _, h, w = x.shape
        dev, on = x.device, self.on
        G = torch.eye(3, device=dev).repeat(n, 1, 1)
        if on["xflip"]:
            i = torch.floor(torch.rand(n, device=dev) * 2)
            i = torch.where(_coin(n, p, dev), i, torch.zeros_like(i))
            G = G @ _scale2d(1 - 2 * i, 1, x)
        if on["rotate90"]:
            i = torch.floor(torch.rand(n, device=dev) * 4)
            i = torch.where(_coin(n, p, dev), i, torch.zeros_like(i))
            G = G @ _rotate2d(math.pi / 2 * i, x)
        if on["xint"]:
            t = (torch.rand(n, 2, device=dev) * 2 - 1) * XINT_MAX
            t = torch.where(_coin(n, p, dev)[:, None], t, torch.zeros_like(t))
            G = G @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h), x)
        if on["scale"]:
            s = torch.exp2(torch.randn(n, device=dev) * SCALE_STD)
            s = torch.where(_coin(n, p, dev), s, torch.ones_like(s))
            G = G @ _scale2d(1 / s, 1 / s, x)
        p_rot = 1 - math.sqrt(max(0.0, 1 - p))  # P(pre-rotation or post-rotation) = p
        if on["rotate"]:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * ROTATE_MAX
            theta = torch.where(_coin(n, p_rot, dev), theta, torch.zeros_like(theta))
            G = G @ _rotate2d(theta, x)
        if on["aniso"]:
            s = torch.exp2(torch.randn(n, device=dev) * ANISO_STD)
            s = torch.where(_coin(n, p, dev), s, torch.ones_like(s))
            G = G @ _scale2d(1 / s, s, x)
        if on["rotate"]:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * ROTATE_MAX
            theta = torch.where(_coin(n, p_rot, dev), theta, torch.zeros_like(theta))
            G = G @ _rotate2d(theta, x)
        if on["xfrac"]:
            t = torch.randn(n, 2, device=dev) * XFRAC_STD
            t = torch.where(_coin(n, p, dev)[:, None], t, torch.zeros_like(t))
            G = G @ _translate2d(-t[:, 0] * w, -t[:, 1] * h, x)
        return G

    def _geometric(self, x, p):
        if not any(self.on[t] for t in TRANSFORMS[:7]):
            return x
        G = self._geometric_matrix(x, p)
        moved = (G != torch.eye(3, device=x.device)).flatten(1).any(1).nonzero().flatten()
        if len(moved) == 0:
            return x
        warped = self._warp(x.index_select(0, moved), G.index_select(0, moved))
        return x.index_copy(0, moved, warped)  # the others pass through untouched

    def _warp(self, x, G):
        """ADA's execution of the inverse transforms G (N, 3, 3) on x (N, C, H, W)."""
        n, c, h, w = x.shape
        dev = x.device
        f = self._filter(dev)
        pad = len(SYM6) // 4
        # Reflection padding wide enough for every image's corners, as ADA computes it.
        cx, cy = (w - 1) / 2, (h - 1) / 2
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=dev)
        cp = G @ corners.t()  # (N, 3, 4)
        margin = cp[:, :2, :].permute(1, 0, 2).flatten(1)  # (2, N * 4)
        margin = torch.cat([-margin, margin]).max(dim=1).values  # x0, y0, x1, y1
        margin = margin + torch.tensor([pad * 2 - cx, pad * 2 - cy] * 2, device=dev)
        margin = margin.clamp(min=0).minimum(torch.tensor([w - 1, h - 1] * 2, device=dev, dtype=margin.dtype))
        mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().tolist())
        x = F.pad(x, [mx0, mx1, my0, my1], mode="reflect")
        one = torch.ones(n, device=dev)
        G = _translate2d(one * (mx0 - mx1) / 2, one * (my0 - my1) / 2, x) @ G
        # Upsample 2x, warp at the doubled resolution, low-pass and downsample back.
        x = _upsample2x(x, f)
        G = _scale2d(2 * one, 2 * one, x) @ G @ _scale2d(0.5 * one, 0.5 * one, x)
        G = _translate2d(-0.5 * one, -0.5 * one, x) @ G @ _translate2d(0.5 * one, 0.5 * one, x)
        out_h, out_w = (h + pad * 2) * 2, (w + pad * 2) * 2
        G = (_scale2d(2 / x.shape[3] * one, 2 / x.shape[2] * one, x) @ G
             @ _scale2d(out_w / 2 * one, out_h / 2 * one, x))
        grid = F.affine_grid(G[:, :2, :], [n, c, out_h, out_w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return _downsample2x(x, f, crop=pad * 2)

    # ------------------------------------------------------------ color and cutout

    def _color(self, x, p):
        if not any(self.on[t] for t in TRANSFORMS[7:12]) or x.shape[1] != 3:
            return x
        n = x.shape[0]
        dev, on = x.device, self.on
        eye = torch.eye(4, device=dev)
        C = eye.repeat(n, 1, 1)
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # the luma axis
        vv = torch.outer(v, v)
        if on["brightness"]:
            b = torch.randn(n, device=dev) * BRIGHTNESS_STD
            b = torch.where(_coin(n, p, dev), b, torch.zeros_like(b))
            C = _matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], x) @ C
        if on["contrast"]:
            s = torch.exp2(torch.randn(n, device=dev) * CONTRAST_STD)
            s = torch.where(_coin(n, p, dev), s, torch.ones_like(s))
            C = _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], x) @ C
        if on["lumaflip"]:
            i = torch.floor(torch.rand(n, device=dev) * 2)
            i = torch.where(_coin(n, p, dev), i, torch.zeros_like(i))
            C = (eye - 2 * vv * i[:, None, None]) @ C  # Householder reflection of the luma axis
        if on["hue"]:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * HUE_MAX
            theta = torch.where(_coin(n, p, dev), theta, torch.zeros_like(theta))
            C = _rotate3d(v, theta, x) @ C
        if on["saturation"]:
            s = torch.exp2(torch.randn(n, device=dev) * SATURATION_STD)
            s = torch.where(_coin(n, p, dev), s, torch.ones_like(s))
            C = (eye + (eye - vv) * (s - 1)[:, None, None]) @ C  # = vv + (I - vv) s; exactly I at s = 1
        changed = (C != eye).flatten(1).any(1).nonzero().flatten()
        if len(changed) == 0:
            return x
        C = C.index_select(0, changed)
        sub = x.index_select(0, changed)
        flat = sub.reshape(len(changed), 3, -1)
        out = (C[:, :3, :3] @ flat + C[:, :3, 3:]).reshape(sub.shape)
        return x.index_copy(0, changed, out)

    def _cutout(self, x, p):
        if not self.on["cutout"]:
            return x
        n, _, h, w = x.shape
        dev = x.device
        size = torch.where(_coin(n, p, dev), torch.full((n,), CUTOUT_SIZE, device=dev), torch.zeros(n, device=dev))
        center = torch.rand(n, 2, device=dev)
        cols = (torch.arange(w, device=dev) + 0.5) / w
        rows = (torch.arange(h, device=dev) + 0.5) / h
        out_x = (cols[None, :] - center[:, :1]).abs() >= size[:, None] / 2  # (N, W)
        out_y = (rows[None, :] - center[:, 1:]).abs() >= size[:, None] / 2  # (N, H)
        keep = out_x[:, None, :] | out_y[:, :, None]  # (N, H, W): outside the square
        return x * keep[:, None].to(x.dtype)
