"""Class-rebalancing by replication (seed 000 table 6: 'half-oversampling' = positive x4,
surprise x1.5, others x1.5, negative x1)."""

from __future__ import annotations

import numpy as np
import torch

HALF_OVERSAMPLING = {"positive": 4.0, "surprise": 1.5, "others": 1.5, "negative": 1.0}
# class names of the 7-class schemes that the paper's 4 groups stand for
ALIASES = {"positive": ("positive", "happiness", "happy"), "others": ("others", "other")}


def factors_for(classes: list[str], factors: dict[str, float]) -> dict[str, float]:
    """Factors keyed by the scheme's class names (negative classes keep factor 1)."""
    out = {}
    for group, f in factors.items():
        for name in ALIASES.get(group, (group,)):
            if name in classes:
                out[name] = f
    return out


def replicate(labels, classes: list[str], factors: dict[str, float], seed: int = 0) -> np.ndarray:
    """Indices with every sample of class c repeated factor_c times (fractions drawn)."""
    mult = np.array([factors.get(classes[c], 1.0) for c in np.asarray(labels)])
    rng = np.random.default_rng(seed)
    reps = np.floor(mult).astype(int) + (rng.random(len(mult)) < mult % 1)
    return np.repeat(np.arange(len(mult)), reps)


class ReplicationSampler(torch.utils.data.Sampler):
    """Each epoch yields every index of class c floor(m_c) times plus once more with
    probability frac(m_c), shuffled (seeded per epoch). Classes missing from `factors`
    keep factor 1."""

    def __init__(self, labels, classes: list[str], factors: dict[str, float], seed: int = 0):
        self.labels = np.asarray(labels)
        self.mult = np.array([factors.get(classes[c], 1.0) if c >= 0 else 1.0 for c in self.labels])
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _indices(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + self.epoch)
        reps = np.floor(self.mult).astype(int) + (rng.random(len(self.mult)) < self.mult % 1)
        return rng.permutation(np.repeat(np.arange(len(self.labels)), reps))

    def __iter__(self):
        idx = self._indices()
        self.epoch += 1
        return iter(idx.tolist())

    def __len__(self):
        return int(np.round(self.mult.sum()))
