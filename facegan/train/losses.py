"""The DCGAN losses on logits. BCE-with-logits is safe under autocast (BCELoss is not)."""

import torch
import torch.nn.functional as F


def d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    real = F.binary_cross_entropy_with_logits(logits_real.float(), torch.ones_like(logits_real, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(logits_fake.float(), torch.zeros_like(logits_fake, dtype=torch.float32))
    return real + fake


def g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating: G maximizes log D(G(z))."""
    return F.binary_cross_entropy_with_logits(logits_fake.float(), torch.ones_like(logits_fake, dtype=torch.float32))
