"""Epoch order and per-item draws (EpochSampler), and class-rebalancing by replication
(seed 000 table 6: 'half-oversampling' = positive x4, surprise x1.5, others x1.5,
negative x1)."""

from __future__ import annotations

import numpy as np
import torch

from training.runtime import stream_seed

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


def multipliers(labels, classes: list[str], factors: dict[str, float]) -> np.ndarray:
    """Each sample's replication factor: its class's (1 for classes not in `factors` and
    for unlabelled samples, label -1)."""
    return np.array([factors.get(classes[c], 1.0) if c >= 0 else 1.0 for c in np.asarray(labels)], dtype=float)


def repeat_counts(mult: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How often each sample is taken: floor(m), plus once more with probability frac(m)."""
    return np.floor(mult).astype(int) + (rng.random(len(mult)) < mult % 1)


def replicate(labels, classes: list[str], factors: dict[str, float], seed: int = 0) -> np.ndarray:
    """Indices with every sample of class c repeated factor_c times (fractions drawn)."""
    mult = multipliers(labels, classes, factors)
    return np.repeat(np.arange(len(mult)), repeat_counts(mult, np.random.default_rng(seed)))


def split_key(key) -> tuple[int, int | None]:
    """(index, draw seed) of a Dataset key: a plain index (no seed: test-time reads) or an
    EpochSampler's (index, seed) pair."""
    if isinstance(key, tuple | list):
        return int(key[0]), int(key[1])
    return int(key), None


def item_rng(key, train: bool, seed: int) -> tuple[int, np.random.Generator | None]:
    """The index of a Dataset key and the generator of its random augmentations: none at
    test time (`train` false); in training the key's seed (an EpochSampler key: a new draw
    every epoch, the same in every worker process and on resume) or, for a plain index,
    a fixed draw per sample from the Dataset's `seed`."""
    i, s = split_key(key)
    if not train:
        return i, None
    return i, np.random.default_rng(s if s is not None else stream_seed(seed, i))


class EpochSampler(torch.utils.data.Sampler):
    """The keys of one epoch: `indices` (each of class c repeated floor(m_c) times plus
    once with probability frac(m_c), with `factors`) in a random order, each paired with
    its own draw seed for the Dataset's random augmentations.

    Everything is drawn from the stream (*stream, epoch) (training.runtime.stream_seed),
    so an epoch's order and augmentations depend only on the run's seed keys (seed, fold)
    and the epoch number: different every epoch, the same in every DataLoader worker
    layout (persistent or not) and on a resumed run. Call `set_epoch` before each epoch.
    Yields (index, seed) pairs; `batches` splits them for loops without a DataLoader."""

    def __init__(self, indices, stream: tuple, labels=None, classes=None, factors: dict | None = None):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.stream, self.epoch = tuple(stream), 0
        self.mult = (
            multipliers(np.asarray(labels)[self.indices], classes, factors) if factors else np.ones(len(self.indices))
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def keys(self) -> list[tuple[int, int]]:
        rng = np.random.default_rng(stream_seed(*self.stream, self.epoch))
        order = rng.permutation(np.repeat(self.indices, repeat_counts(self.mult, rng)))
        seeds = rng.integers(0, 2**63 - 1, len(order), dtype=np.int64)
        return list(zip(order.tolist(), seeds.tolist()))

    def batches(self, batch: int, drop_last: bool = False) -> list[list[tuple[int, int]]]:
        keys = self.keys()
        stop = len(keys) - len(keys) % batch if drop_last and len(keys) >= batch else len(keys)
        return [keys[i : i + batch] for i in range(0, stop, batch)]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())
