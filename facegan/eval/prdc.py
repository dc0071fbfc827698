"""Precision, recall, density and coverage of generated features against real ones.

Precision and recall: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models" (k-NN balls around each sample approximate the support of its distribution).
Density and coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
Models" (the same balls, counted so that outliers among the real samples matter less).
Definitions and k = 5 as in the authors' `prdc` package (clovaai/generative-evaluation-prdc), which
the tests use as the reference; computed here in torch, in row chunks, so n in the tens of thousands
fits in memory and no scikit-learn is needed at run time.
"""

import torch

K = 5  # nearest neighbours for the radii, as both papers use


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def knn_radii(x: torch.Tensor, k: int = K, chunk: int = 1024) -> torch.Tensor:
    """(N,) Euclidean distance from each row of x (N, D) to its k-th nearest other row (the row
    itself, at distance 0, is not counted, as in prdc). Raises ValueError when N <= k."""
    if x.shape[0] <= k:
        raise ValueError(f"{x.shape[0]} samples: k-nearest-neighbour radii need more than k = {k}")
    out = torch.empty(x.shape[0], dtype=x.dtype)
    for s in _chunks(x.shape[0], chunk):
        d = torch.cdist(x[s], x)
        out[s] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return out


@torch.no_grad()
def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = K, chunk: int = 1024) -> dict:
    """{'precision', 'recall', 'density', 'coverage'} (floats) of fake (M, D) against real (N, D).

    precision: fraction of fake samples inside some real sample's k-NN ball (fidelity).
    recall:    fraction of real samples inside some fake sample's k-NN ball (diversity).
    density:   mean over fake samples of the number of real balls containing it, divided by k
               (about 1 for matching distributions; above 1 where fakes crowd dense real regions).
    coverage:  fraction of real samples whose own k-NN ball holds at least one fake sample.
    A point is inside a ball when its distance is strictly below the radius, as in prdc.
    Features are compared in float64 (near-ties at a radius then agree with the reference).
    Raises ValueError when either set has k or fewer samples or the widths differ.
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) features, got {tuple(real.shape)} and {tuple(fake.shape)}")
    real, fake = real.double().cpu(), fake.double().cpu()
    r_real, r_fake = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    in_real_balls = torch.zeros(fake.shape[0], dtype=torch.float64)  # per fake: real balls holding it
    real_covered = torch.zeros(real.shape[0], dtype=torch.bool)
    real_recalled = torch.zeros(real.shape[0], dtype=torch.bool)
    for s in _chunks(real.shape[0], chunk):
        d = torch.cdist(real[s], fake)  # (chunk, M)
        inside = d < r_real[s, None]
        in_real_balls += inside.sum(0)
        real_covered[s] = d.min(1).values < r_real[s]
        real_recalled[s] = (d < r_fake[None, :]).any(1)
    return {"precision": float((in_real_balls > 0).double().mean()),
            "recall": float(real_recalled.double().mean()),
            "density": float(in_real_balls.mean() / k),
            "coverage": float(real_covered.double().mean())}
