"""The base of every method's torch Dataset (training/<method>/feed.py): the samples of
one store version that have the method's feed arrays (schemas/feeds.py) written.

Everything is read through schemas/ names and the manifest. Which rows have their
arrays is the feed's to say (`Feed.unavailable`), never a manifest column named here.
The Zarr group opens lazily in each process, so a Dataset pickles cheaply into DataLoader
workers started with the `spawn` context (forked workers can hang on Icechunk). With
`cache_dir` (an argument; training.cache) the arrays are read from a local decoded copy
after the first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from schemas.feeds import FEEDS
from stages.labels import class_index
from training.cache import CachedGroup
from training.samplers import item_rng


class FeedDataset(Dataset):
    """The samples of `sources` ('labelled': annotated; 'selected': AU-selected, label -1)
    whose arrays this Dataset reads (`arrays()`, by default the whole feed of `method`)
    are written; labelled ones need an emotion of `scheme`. `rows`: their manifest rows
    (dicts, manifest order) with `label` (class index in `scheme` order); `skipped`:
    (sample_id, reason) of the others. A version: `snapshot`, or `tag`, or the latest."""

    method = ""  # the feed (schemas.feeds.FEEDS) and registry name

    def __init__(
        self,
        store_path: str | Path,
        scheme: dict,
        snapshot: str | None = None,
        sources: tuple = ("labelled",),
        train: bool = False,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        tag: str | None = None,
    ):
        from pipeline.store import Store  # the store is the pipeline's; only read here

        store = Store(store_path, create=False)
        self.store_path, self.cache_dir = str(store_path), cache_dir
        self.snapshot = snapshot or (store.repo.lookup_tag(tag) if tag else store.head())
        self.feed = FEEDS[self.method]
        g = store.group(self.snapshot)
        missing = [a for a in self.arrays() if a not in g]
        if missing:
            raise ValueError(self.missing_message(store_path, missing))
        man = store.table("manifest", self.snapshot)
        if man is None:
            raise FileNotFoundError(f"{store_path}: snapshot {self.snapshot} has no manifest")
        self.classes = list(scheme)
        self.rows, self.skipped = [], []
        for r in man.to_dict("records"):
            if r["source"] not in sources:
                continue
            why = self.feed.unavailable(r, self.arrays())
            if why:
                self.skipped.append((r["sample_id"], why))
                continue
            c = class_index(r["emotion"], scheme) if r["source"] == "labelled" else -1
            if c is None:
                self.skipped.append((r["sample_id"], f"emotion {r['emotion']!r} not in the label scheme"))
                continue
            r["label"] = c
            self.rows.append(r)
        self.train, self.seed = train, seed
        self._g, self._arrays = None, {}

    def draw(self, key) -> tuple[int, np.random.Generator | None]:
        """The row of `key` (an index, or an EpochSampler's (index, seed) pair) and the
        generator of its random augmentations: at test time none; in training the pair's
        seed (a new draw every epoch, the same in every worker and on resume), or for a
        plain index a fixed draw per sample."""
        return item_rng(key, self.train, self.seed)

    def arrays(self) -> tuple[str, ...]:
        """The store arrays this Dataset reads (and caches)."""
        return self.feed.arrays

    def missing_message(self, store_path, missing: list[str]) -> str:
        return f"{store_path}: feed {self.method!r} needs {missing}; run `make preprocess METHODS={self.method}` first"

    def __len__(self):
        return len(self.rows)

    def __getstate__(self):
        return {**self.__dict__, "_g": None, "_arrays": {}}

    def store_group(self):
        """The version's root group (opened once per process; through the feed cache when set)."""
        if self._g is None:
            from pipeline.store import Store

            self._g = CachedGroup(
                Store(self.store_path, create=False).group(self.snapshot), self.snapshot, self.arrays(), self.cache_dir
            )
        return self._g

    def array(self, name: str):
        """The array `name`, opened once per process (a per-item lookup re-reads its metadata)."""
        if name not in self._arrays:
            self._arrays[name] = self.store_group()[name]
        return self._arrays[name]

    def clip(self, r) -> np.ndarray:
        s, n = int(r["clip_start"]), int(r["clip_len"])
        return self.array("clips/frames72")[s : s + n]

    def base(self, r) -> dict:
        return {
            "label": torch.tensor(r["label"], dtype=torch.int64),
            "subject": r["subject"],
            "sample_id": r["sample_id"],
        }

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label"] for r in self.rows], dtype=np.int64)

    @property
    def subjects(self) -> list[str]:
        return [r["subject"] for r in self.rows]

    def samples(self) -> pd.DataFrame:
        """sample_id, subject, label of every row, in order (the LOSO runner's items)."""
        return pd.DataFrame(
            {"sample_id": [r["sample_id"] for r in self.rows], "subject": self.subjects, "label": self.labels}
        )


def au_list(r: dict) -> list[int]:
    """A manifest row's AUs as ints (none: an empty list)."""
    return [int(a) for a in (r["au_list"] if r["au_list"] is not None else [])]
