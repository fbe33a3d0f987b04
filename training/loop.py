"""The small pieces every training loop shares."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm


def shuffled_batches(indices, batch: int, rng: np.random.Generator, desc: str, progress: bool = True):
    """Yield the index arrays of one epoch: `indices` in a seeded random order, `batch` at a
    time, with a progress bar."""
    order = rng.permutation(np.asarray(indices))
    for i in tqdm(range(0, len(order), batch), desc=desc, disable=not progress, leave=False):
        yield order[i : i + batch]


def step(opt, loss) -> None:
    """One optimiser step on `loss`."""
    opt.zero_grad()
    loss.backward()
    opt.step()
