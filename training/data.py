"""The import path `training.data.PairDataset` that the dataset card (pipeline/card.py),
README's store section and docs/sharing.md print for readers of a version: DVSCL's feed
Dataset, which lives in training/dvscl/feed.py. New code imports it from there."""

from training.dvscl.feed import DVSCLDataset as PairDataset
from training.dvscl.feed import pair_tensors

__all__ = ["PairDataset", "pair_tensors"]
