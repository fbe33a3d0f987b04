"""Contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dual_view_infonce(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """Symmetric dual-view InfoNCE (seed 000 eq. 7-10): embeddings (N, D) of the two views
    of N samples, cosine similarity / tau; for sample i, the positive is the other view of
    i and the negatives are the other view of the N - 1 other samples; each direction is
    the mean over the samples (eq. 9) and the two directions (view 1 -> 2 and 2 -> 1) are
    summed (eq. 10)."""
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    logits = a @ b.t() / tau
    target = torch.arange(len(a), device=a.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)
