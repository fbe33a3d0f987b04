"""DVSCL's feed Dataset (seed 000): the apex - onset differences of a pair, two views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.cache import take_rows
from training.feeds import FeedDataset

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


class DVSCLDataset(FeedDataset):
    """Onset/apex pairs of one store version.

    Items: dict with
      rgb_diff  float32 (3, 310, 310), apex - onset in 8-bit intensity units / 255, in [-1, 1]
      view_diff float32 (1, 310, 310), depth: apex - onset in sensor units (about mm);
                gray: apex - onset luma / 255
      label     int64 class index in `scheme` order; -1 for unlabelled (AU-selected, macro) pairs
      subject   str
      sample_id str
    `sources`: ('labelled',) for supervised use; schemas.tables.SOURCES for DVSCL's
    pretraining set (annotated pairs, pairs selected by AU screening, Part A
    macro-expressions). The arrays read
    are the RGB difference and the `view`'s; samples without them (excluded, or no depth
    for this sample) are left out and listed in `skipped`.
    """

    method = "dvscl"

    def __init__(self, store_path: str | Path, scheme: dict[str, list[str]], view: str = "depth", **kw):
        if view not in VIEWS:
            raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
        self.view = view
        super().__init__(store_path, scheme, **kw)

    def arrays(self) -> tuple[str, ...]:
        return (RGB_DIFF, VIEWS[self.view])

    def missing_message(self, store_path, missing: list[str]) -> str:
        if missing == [VIEWS["depth"]]:
            return f"{store_path}: this dataset has no depth; use view='gray'"
        return super().missing_message(store_path, missing)

    def __getitems__(self, ids: list[int]) -> list[dict]:
        """Batched read (DataLoader calls this with a whole batch): one concurrent
        orthogonal selection per array instead of one request per sample."""
        ids = [self.draw(key)[0] for key in ids]
        rows = np.array([int(self.rows[i]["index"]) for i in ids])
        rgb, v = (take_rows(self.array(n), rows) for n in self.arrays())
        return [self._item(i, rgb[k], v[k]) for k, i in enumerate(ids)]

    def _item(self, i: int, rgb: np.ndarray, v: np.ndarray) -> dict:
        return {**pair_tensors(rgb, v, self.view), **self.base(self.rows[i])}

    def __getitem__(self, key) -> dict:
        i = self.draw(key)[0]
        index = int(self.rows[i]["index"])
        return self._item(i, self.array(RGB_DIFF)[index], self.array(VIEWS[self.view])[index])
