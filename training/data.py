"""torch Datasets over a store version (never re-preprocessing).

`PairDataset` serves seed 000's input: the apex - onset differences of a labelled pair,
as (rgb_diff, second_view_diff, label, subject). Reads go through the array names of
schemas/ and the manifest; the Zarr group is opened lazily in each process, so the
Dataset pickles cheaply into DataLoader workers started with the `spawn` context
(forked workers can hang on Icechunk). With `cache_dir` (or $MEPIPE_FEED_CACHE) the feed
arrays are read from a local decoded copy after the first use (training.cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stages.labels import class_index
from training.cache import CachedGroup, take_rows

VIEWS = {"depth": "pairs/depth_diff", "gray": "pairs/gray_diff"}
RGB_DIFF = "pairs/rgb_diff"


def pair_tensors(rgb: np.ndarray, v: np.ndarray, view: str) -> dict:
    """Stored differences -> the model's tensors: rgb_diff (3, H, W) / 255, view_diff
    (1, H, W) (gray / 255; depth in sensor units)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(v)).float()
    if view == "gray":
        y = y.div_(255.0)
    return {"rgb_diff": x.contiguous(), "view_diff": y[None]}


class PairDataset(Dataset):
    """Labelled onset/apex pairs of one store version.

    Items: dict with
      rgb_diff  float32 (3, 310, 310), apex - onset in 8-bit intensity units / 255, in [-1, 1]
      view_diff float32 (1, 310, 310), depth: apex - onset in sensor units (about mm);
                gray: apex - onset luma / 255
      label     int64 class index in `scheme` order; -1 for AU-selected (unlabelled) pairs
      subject   str
      sample_id str
    `sources`: ('labelled',) for supervised use; ('labelled', 'selected') for DVSCL's
    pretraining set (annotated pairs + pairs selected by AU screening).
    Samples that are excluded, lack the view's modality, or (labelled ones) have an
    emotion outside the scheme are left out; `self.skipped` lists them with the reason.
    """

    def __init__(
        self,
        store_path: str | Path,
        scheme: dict[str, list[str]],
        view: str = "depth",
        snapshot: str | None = None,
        tag: str | None = None,
        sources: tuple[str, ...] = ("labelled",),
        cache_dir: str | Path | None = None,
    ):
        from pipeline.store import Store  # the store is the pipeline's; only read here

        if view not in VIEWS:
            raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
        self.store_path, self.cache_dir = str(store_path), cache_dir
        store = Store(store_path, create=False)
        self.snapshot = snapshot or (store.repo.lookup_tag(tag) if tag else store.head())
        man = store.table("manifest", self.snapshot)
        if man is None:
            raise FileNotFoundError(f"{store_path}: snapshot {self.snapshot} has no manifest")
        if view == "depth" and VIEWS["depth"] not in store.group(self.snapshot):
            raise ValueError(f"{store_path}: this dataset has no depth; use view='gray'")
        self.view = view
        self.classes = list(scheme)
        self.skipped = []
        keep = []
        for r in man.to_dict("records"):
            if r["source"] not in sources:
                continue
            if r["status"] != "ok":
                self.skipped.append((r["sample_id"], f"excluded: {r['reason']}"))
                continue
            if view == "depth" and not isinstance(r.get("onset_depth_path"), str):
                self.skipped.append((r["sample_id"], "no depth for this sample"))
                continue
            c = class_index(r["emotion"], scheme) if r["source"] == "labelled" else -1
            if c is None:
                self.skipped.append((r["sample_id"], f"emotion {r['emotion']!r} not in the label scheme"))
                continue
            keep.append((int(r["index"]), c, r["subject"], r["sample_id"]))
        self.items = keep
        self._group = None

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_group"] = None
        st.pop("_arrays", None)
        return st

    def _g(self):
        if self._group is None:
            from pipeline.store import Store

            names = (RGB_DIFF, VIEWS[self.view])
            self._group = CachedGroup(
                Store(self.store_path, create=False).group(self.snapshot), self.snapshot, names, self.cache_dir
            )
            # open each array once: a per-item lookup re-reads its metadata (half the cost)
            self._arrays = {n: self._group[n] for n in names}
        return self._group

    def __getitems__(self, ids: list[int]) -> list[dict]:
        """Batched read (DataLoader calls this with a whole batch): one concurrent
        orthogonal selection per array instead of one request per sample."""
        self._g()
        rows = np.array([self.items[i][0] for i in ids])
        rgb, v = (take_rows(self._arrays[n], rows) for n in (RGB_DIFF, VIEWS[self.view]))
        return [self._item(i, rgb[k], v[k]) for k, i in enumerate(ids)]

    def _item(self, i: int, rgb: np.ndarray, v: np.ndarray) -> dict:
        _, label, subject, sid = self.items[i]
        return {
            **pair_tensors(rgb, v, self.view),
            "label": torch.tensor(label, dtype=torch.int64),
            "subject": subject,
            "sample_id": sid,
        }

    @property
    def labels(self) -> np.ndarray:
        return np.array([c for _, c, _, _ in self.items], dtype=np.int64)

    @property
    def subjects(self) -> list[str]:
        return [s for _, _, s, _ in self.items]

    def __getitem__(self, i: int) -> dict:
        index = self.items[i][0]
        self._g()
        return self._item(i, self._arrays[RGB_DIFF][index], self._arrays[VIEWS[self.view]][index])
