"""Does a generator copy its training images? Nearest training neighbours of generated images, in
Inception feature space and in pixel space, against the same distances of unseen (val) images.

The test follows Meehan et al. 2020, "A Non-Parametric Test to Detect Data-Copying in Generative
Models" (AISTATS): a generator that generalises sits no closer to its training set than held-out
real images do; one that copies sits closer. Two numbers per space:

- Z_U, their Mann-Whitney statistic over all images (they also split space into cells; we report
  the global value): the rank-sum of generated-to-train nearest distances against val-to-train
  ones, standardised. Z_U << 0: generated images are closer to training data than unseen real
  images are; Z_U >> 0: farther (the usual case for an undertrained GAN).
- Per-image flags, to point at individual copies the global statistic averages away. A raw
  distance threshold misfires on blurry generators: an average-looking image is close to
  everything in pixel space (the mean image minimises the expected L2 distance), so an untrained
  generator's grey blobs sit nearer the training set than any real image. The flag therefore uses
  the normalised distance of Carlini et al. 2023 ("Extracting Training Data from Diffusion
  Models"): the distance to the nearest training image over the mean distance to the RATIO_M
  nearest, about 1 for an image equidistant to many training images, near 0 for a copy of one.
  A generated image is flagged when its ratio is below the j-th smallest of the V val images'
  ratios, j = max(1, round(0.01 V)): the 1st percentile (more isolated-close than 99% of unseen
  real images). If generated images behaved like unseen real ones (exchangeable with them), each
  would fall below that order statistic with probability j / (V + 1), and the flagged count would
  follow a beta-binomial law (the threshold is itself random); "looks copied" is said when the
  count is improbable under it (one-sided tail p < 0.001). Exact at any V, so a few hundred val
  images suffice.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

QUANTILE = 0.01  # per-image flag: a ratio below this quantile (an order statistic) of the val images' ratios
RATIO_M = 5  # the ratio's denominator: mean distance to this many nearest training images
P_COPIED = 1e-3  # binomial tail below which the flagged count is called copying
THUMB = 32  # pixel-space side: images are area-downscaled to THUMB x THUMB, values in [0, 1]


class FeaturesAndThumbnails(nn.Module):
    """Wraps a feature extractor: each uint8 (N, 3, H, W) batch gives (N, F + 3 * size * size) floats,
    the extractor's F features followed by an area-downscaled thumbnail in [0, 1]. One pass over the
    images then serves both spaces, and the rows stay aligned through facegan.eval.metrics.extract
    (which splits the work across processes and gathers it in order) and its caches."""

    def __init__(self, extractor: nn.Module, size: int = THUMB):
        super().__init__()
        self.inner, self.size = extractor, size
        self.dim = extractor.num_features
        self.num_features = self.dim + 3 * size * size
        self.extractor_id = f"{getattr(extractor, 'extractor_id', type(extractor).__name__)}+thumb{size}"

    @torch.no_grad()
    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        thumbs = F.interpolate(images_uint8.float() / 255.0, size=(self.size, self.size), mode="area")
        return torch.cat([self.inner(images_uint8).float(), thumbs.flatten(1)], dim=1)

    def split(self, rows: torch.Tensor):
        """(features (N, F), thumbnails (N, 3, size, size)) of rows this module produced."""
        return rows[:, :self.dim], rows[:, self.dim:].reshape(-1, 3, self.size, self.size)


def nearest(queries: torch.Tensor, base: torch.Tensor, k: int = 1, chunk: int = 1024):
    """(distances (Q, k), indices (Q, k)): the k nearest rows of base (B, D) to each query row (Q, D),
    Euclidean, in float64, nearest first, computed in chunks of queries."""
    base = base.double()
    dist, idx = [], []
    for i in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[i:i + chunk].double(), base)
        v, j = d.topk(min(k, base.shape[0]), dim=1, largest=False)
        dist.append(v)
        idx.append(j)
    return torch.cat(dist), torch.cat(idx)


def mann_whitney_z(x: torch.Tensor, y: torch.Tensor) -> float:
    """Standardised Mann-Whitney U of x against y: U counts pairs with x > y (ties half), so the
    value is negative when x tends to be smaller (Meehan et al.'s Z_U with x = generated distances)."""
    ys, xs = torch.sort(y.double()).values, x.double().contiguous()
    below = torch.searchsorted(ys, xs, right=False).double()
    at_or_below = torch.searchsorted(ys, xs, right=True).double()
    u = float((below + 0.5 * (at_or_below - below)).sum())
    m, n = x.numel(), y.numel()
    return (u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12)


def beta_binomial_tail(count: int, n: int, a: float, b: float) -> float:
    """P(X >= count) for X ~ BetaBinomial(n, a, b): X | p ~ Binomial(n, p), p ~ Beta(a, b)."""
    if count <= 0:
        return 1.0
    if count > n:
        return 0.0
    lg = lambda x: torch.lgamma(torch.as_tensor(x, dtype=torch.float64))  # noqa: E731
    ks = torch.arange(count, n + 1, dtype=torch.float64)
    logp = (lg(n + 1.0) - lg(ks + 1) - lg(n - ks + 1) + lg(ks + a) + lg(n - ks + b) - lg(n + a + b)
            - lg(a) - lg(b) + lg(a + b))
    return float(torch.logsumexp(logp, 0).exp().clamp(max=1.0))


@dataclass
class SpaceCheck:
    """The test in one space: distances, the threshold, flags and the verdict."""
    space: str
    gen_dist: torch.Tensor  # (G, k) nearest training distances of each generated image
    gen_idx: torch.Tensor  # (G, k) their training indices
    val_dist: torch.Tensor  # (V,) nearest training distance of each val image
    gen_ratio: torch.Tensor  # (G,) nearest distance over the mean of the RATIO_M nearest
    val_ratio: torch.Tensor  # (V,) the same for val images
    threshold: float  # on the ratio: the j-th smallest of val_ratio, j = max(1, round(QUANTILE * V))
    chance: float  # j / (V + 1): the flag rate of images that behave like unseen real ones
    flagged: torch.Tensor  # (G,) bool
    z_u: float
    p_value: float

    @property
    def copied(self) -> bool:
        return self.p_value < P_COPIED

    def summary(self) -> dict:
        q = torch.tensor([0.01, 0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
        pct = lambda d: {f"p{round(float(p) * 100)}": float(v) for p, v in zip(q, torch.quantile(d.double(), q))}  # noqa: E731
        return {"generated_to_train": pct(self.gen_dist[:, 0]), "val_to_train": pct(self.val_dist),
                "generated_ratio": pct(self.gen_ratio), "val_ratio": pct(self.val_ratio),
                "ratio_threshold": self.threshold, "flagged": int(self.flagged.sum()), "n_generated": len(self.flagged),
                "flag_rate_by_chance": self.chance, "p_value": self.p_value, "z_u": self.z_u, "copied": self.copied,
                "flagged_indices": self.flagged.nonzero().flatten().tolist()[:100]}


def copy_check(gen: torch.Tensor, train: torch.Tensor, val: torch.Tensor, space: str, k: int = 3) -> SpaceCheck:
    """Nearest-neighbour copy test of generated rows gen (G, D) against train (T, D), calibrated by
    val (V, D), held-out real rows of the same distribution. Raises ValueError when a set is empty."""
    if min(gen.shape[0], train.shape[0], val.shape[0]) == 0:
        raise ValueError("the copy check needs generated, training and val samples")
    gen_d, gen_i = nearest(gen, train, max(k, RATIO_M))
    val_d = nearest(val, train, RATIO_M)[0]
    gen_r, val_r = nearness_ratio(gen_d), nearness_ratio(val_d)
    v = len(val_r)
    j = max(1, round(QUANTILE * v))
    threshold = float(torch.sort(val_r).values[j - 1])
    flagged = gen_r < threshold
    return SpaceCheck(space, gen_d[:, :k], gen_i[:, :k], val_d[:, 0], gen_r, val_r, threshold, j / (v + 1), flagged,
                      mann_whitney_z(gen_d[:, 0], val_d[:, 0]),
                      beta_binomial_tail(int(flagged.sum()), len(flagged), j, v + 1 - j))


def nearness_ratio(dist: torch.Tensor) -> torch.Tensor:
    """(N,) d_1 / mean(d_1 .. d_m) of sorted nearest distances (N, m); 0 where all m are 0 (copies
    of an image the training set holds several times)."""
    mean = dist[:, :RATIO_M].mean(1)
    return torch.where(mean > 0, dist[:, 0] / mean.clamp(min=1e-300), torch.zeros_like(mean))


def distance_lines(checks) -> list:
    """One line per space: percentiles of generated-to-train against val-to-train nearest distances."""
    lines = []
    for c in checks:
        q = torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64)
        g, v = (torch.quantile(d.double(), q).tolist() for d in (c.gen_dist[:, 0], c.val_dist))
        lines.append(f"nearest training image, {c.space} distance p5/p50/p95: generated "
                     f"{g[0]:.4g}/{g[1]:.4g}/{g[2]:.4g}, val {v[0]:.4g}/{v[1]:.4g}/{v[2]:.4g}")
    return lines


def verdict(checks) -> str:
    """One line: whether anything looks copied, with the threshold used."""
    parts = []
    for c in checks:
        parts.append(f"{c.space}: {int(c.flagged.sum())}/{len(c.flagged)} flagged (nearest over mean of "
                     f"{RATIO_M} nearest train distances < {c.threshold:.3g}, the 1st percentile of val's; "
                     f"{c.chance:.1%} by chance, p = {c.p_value:.2g}), Z_U {c.z_u:+.1f}")
    copied = [c.space for c in checks if c.copied]
    head = (f"LOOKS COPIED in {' and '.join(copied)} space" if copied else "nothing looks copied")
    return f"memorization: {head} ({'; '.join(parts)})"


def figure(gen_thumbs, train_thumbs, checks, rows: int = 8, scale: int = 0):
    """A PIL image: one row per generated image (lowest nearness ratio in the first space first),
    the generated thumbnail, then its nearest training thumbnails in each space.
    Flagged generated images get a red frame."""
    from PIL import Image, ImageDraw

    first = checks[0]
    order = torch.argsort(first.gen_ratio)[:rows].tolist()
    s = gen_thumbs.shape[-1]
    scale = scale or max(1, 64 // s)
    cell, pad, gap, head = s * scale, 2, 10, 16
    k = first.gen_idx.shape[1]
    cols_x = [0]  # left edges: the generated column, then k neighbours per space after a gap
    for _ in checks:
        for i in range(k):
            cols_x.append(cols_x[-1] + cell + pad + (gap if i == 0 else 0))
    width = cols_x[-1] + cell + pad
    canvas = Image.new("RGB", (width, head + len(order) * (cell + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 2), "generated", fill="black")
    for j, c in enumerate(checks):
        draw.text((cols_x[1 + j * k] + 2, 2), f"nearest train ({c.space})", fill="black")

    def tile(t):
        arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(arr).resize((cell, cell), Image.Resampling.NEAREST)

    for r, g in enumerate(order):
        y = head + r * (cell + pad)
        canvas.paste(tile(gen_thumbs[g]), (0, y))
        if any(bool(c.flagged[g]) for c in checks):
            draw.rectangle([0, y, cell - 1, y + cell - 1], outline="red", width=2)
        for j, c in enumerate(checks):
            for i in range(k):
                canvas.paste(tile(train_thumbs[int(c.gen_idx[g, i])]), (cols_x[1 + j * k + i], y))
    return canvas
