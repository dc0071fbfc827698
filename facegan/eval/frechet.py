"""The Fréchet distance between two sets of features, the formula behind FID (Heusel et al. 2017,
"GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"):

    d^2 = |mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^(1/2))

torchmetrics' FrechetInceptionDistance takes the last term from the eigenvalues of the d x d
product S_r S_f (a general, non-symmetric eigenproblem: 8-13 s at d = 2048 on a busy 2-core CPU),
whatever the number of images. With fewer images than dimensions, which is every FID during
training and every bench score at n = 1000, the same term is a small symmetric problem: with
S = A^T A (A: one set's centred features / sqrt(n - 1)), the nonzero eigenvalues of S_a S_b are
those of the n_a x n_a matrix A S_b A^T, solved with eigvalsh. Same value to round-off
(tests/test_frechet.py checks it against torchmetrics), in a fraction of the time.
"""

import torch


def _centred(x: torch.Tensor):
    x = x.double()
    mu = x.mean(dim=0)
    return mu, x - mu


def trace_sqrt_product(a_centred: torch.Tensor, cov_b: torch.Tensor) -> torch.Tensor:
    """tr((S_a S_b)^(1/2)) for S_a the covariance of a_centred (n_a, d), S_b (d, d); float64.

    Eigenvalues a hair below 0 are round-off of a positive semi-definite matrix and count as 0."""
    a = a_centred / (a_centred.shape[0] - 1) ** 0.5
    gram = a @ cov_b @ a.T
    gram = (gram + gram.T) / 2  # exactly symmetric for eigvalsh
    return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().sum()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID's d^2 between the Gaussians fitted to real (N_r, D) and fake (N_f, D) features.

    Computed in float64; exact for any sizes, but the eigenproblem has the smaller set's size, so
    it is the faster form only while min(N_r, N_f) <= D (fid_kid uses torchmetrics above that).
    Raises ValueError with fewer than 2 rows on either side."""
    if min(real.shape[0], fake.shape[0]) < 2:
        raise ValueError("the Fréchet distance needs at least 2 feature rows on each side")
    mu_r, rc = _centred(real)
    mu_f, fc = _centred(fake)
    # The smaller set gives the smaller eigenproblem; tr((S_r S_f)^½) = tr((S_f S_r)^½).
    small, big = (rc, fc) if rc.shape[0] <= fc.shape[0] else (fc, rc)
    cov_big = big.T @ big / (big.shape[0] - 1)
    trace_small = small.square().sum() / (small.shape[0] - 1)
    d2 = (mu_r - mu_f).square().sum() + trace_small + cov_big.trace() - 2 * trace_sqrt_product(small, cov_big)
    return float(d2)


def fast_form_applies(n_real: int, n_fake: int, dim: int) -> bool:
    """Whether the n x n form is the smaller problem (fewer images on one side than dimensions)."""
    return min(n_real, n_fake) <= dim
