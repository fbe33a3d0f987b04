"""torch Datasets of the five method feeds (schemas/feeds.py), read from a store version.

Shapes are the ones the method cards state; everything is read through schemas/ names
and the manifest. Like PairDataset, the Zarr group opens lazily per process (use the
`spawn` DataLoader context).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from schemas.arrays import DI_FRAMES
from schemas.feeds import FEEDS
from stages.labels import class_index
from stages.temporal import amplify_motion, dynamic_image, uniform_indices
from training.cache import CachedGroup


class FeedDataset(Dataset):
    """Common part: ok samples of the wanted sources whose feed arrays exist."""

    method = ""

    def __init__(
        self,
        store_path: str | Path,
        scheme: dict,
        snapshot: str | None = None,
        sources: tuple = ("labelled",),
        train: bool = False,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ):
        from pipeline.store import Store

        store = Store(store_path, create=False)
        self.store_path, self.snapshot = str(store_path), snapshot or store.head()
        self.cache_dir = cache_dir
        g = store.group(self.snapshot)
        missing = [a for a in FEEDS[self.method].arrays if a not in g]
        if missing:
            raise ValueError(
                f"{store_path}: feed {self.method!r} needs {missing}; run `make preprocess METHODS={self.method}` first"
            )
        man = store.table("manifest", self.snapshot)
        self.classes = list(scheme)
        self.rows, self.skipped = [], []
        for r in man.to_dict("records"):
            if r["source"] not in sources:
                continue
            if r["status"] != "ok" or not isinstance(r.get(f"fp_{self.group}"), str):
                self.skipped.append((r["sample_id"], r["reason"] or f"no {self.group} products"))
                continue
            c = class_index(r["emotion"], scheme) if r["source"] == "labelled" else -1
            if c is None:
                self.skipped.append((r["sample_id"], f"emotion {r['emotion']!r} not in the label scheme"))
                continue
            r["label"] = c
            self.rows.append(r)
        self.train, self.rng = train, np.random.default_rng(seed)
        self._g = None

    group = "clip"

    def __len__(self):
        return len(self.rows)

    def __getstate__(self):
        return {**self.__dict__, "_g": None}

    def store_group(self):
        """The version's root group (opened once per process; through the feed cache when set)."""
        if self._g is None:
            from pipeline.store import Store

            self._g = CachedGroup(
                Store(self.store_path, create=False).group(self.snapshot),
                self.snapshot,
                FEEDS[self.method].arrays,
                self.cache_dir,
            )
        return self._g

    def clip(self, r) -> np.ndarray:
        s, n = int(r["clip_start"]), int(r["clip_len"])
        return self.store_group()["clips/frames72"][s : s + n]

    def base(self, r) -> dict:
        return {
            "label": torch.tensor(r["label"], dtype=torch.int64),
            "subject": r["subject"],
            "sample_id": r["sample_id"],
        }


class FDPDataset(FeedDataset):
    """Seed 003: frames (8, 3, 64, 64) float in [0, 1], sampled uniformly from the stored
    72x72 clip with a random offset (train) or none (test), random 64x64 crop + horizontal
    flip (train) or centre crop (test); dynamic_image (1, 64, 64) in [0, 1] of exactly
    those frames (gray), the reconstruction target."""

    method, group = "fdp", "clip"

    def __getitem__(self, i):
        r = self.rows[i]
        clip = self.clip(r)
        idx = uniform_indices(len(clip), DI_FRAMES, self.rng.random() if self.train else 0.0)
        f = clip[idx]
        y0, x0 = self.rng.integers(0, 9, 2) if self.train else (4, 4)
        f = f[:, y0 : y0 + 64, x0 : x0 + 64]
        if self.train and self.rng.random() < 0.5:
            f = f[:, :, ::-1]
        gray = f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        di = dynamic_image(gray)
        x = torch.from_numpy(np.ascontiguousarray(f)).permute(0, 3, 1, 2).float() / 255.0
        return {**self.base(r), "frames": x, "dynamic_image": torch.from_numpy(di)[None]}


class AttrCLDataset(FeedDataset):
    """Seed 002: rgb (3, 16, 112, 112) in [0, 1]; flow (2, 15, 112, 112) pixels; AU list."""

    method, group = "attrcl", "clip"

    def __getitem__(self, i):
        r = self.rows[i]
        g = self.store_group()
        rgb = torch.from_numpy(g["attrcl/rgb16"][int(r["index"])]).permute(3, 0, 1, 2).float() / 255.0
        flow = torch.from_numpy(g["attrcl/flow16"][int(r["index"])].astype(np.float32)).permute(3, 0, 1, 2)
        return {
            **self.base(r),
            "rgb": rgb,
            "flow": flow,
            "au_list": [int(a) for a in (r["au_list"] if r["au_list"] is not None else [])],
        }


class MicroAUCLIPDataset(FeedDataset):
    """Seed 004: flow (2, 224, 224) pixels of the magnified onset->apex flow; landmarks
    (68, 2) apex landmarks in that image; au_list."""

    method, group = "microauclip", "micro"

    def __getitem__(self, i):
        r = self.rows[i]
        g, k = self.store_group(), int(r["index"])
        flow = torch.from_numpy(g["micro/flow224"][k].astype(np.float32)).permute(2, 0, 1)
        lm = torch.from_numpy(g["micro/apex_landmarks224"][k])
        return {
            **self.base(r),
            "flow": flow,
            "landmarks": lm,
            "au_list": [int(a) for a in (r["au_list"] if r["au_list"] is not None else [])],
        }


class SelfMEDataset(FeedDataset):
    """Seed 001: a random frame pair (2, 3, 72, 72) of the stored clip for motion learning
    (train; onset and apex-most frame at test), and the TV-L1 onset->apex flow (2, 310, 310)
    amplified by `gamma` (motion-field amplification, eq. 2: 1 in training, 2 at inference)."""

    method, group = "selfme", "clip"

    def __init__(self, *args, gamma: float = 1.0, **kw):
        super().__init__(*args, **kw)
        self.gamma = gamma

    def __getitem__(self, i):
        r = self.rows[i]
        clip = self.clip(r)
        if self.train:
            a, b = sorted(self.rng.choice(len(clip), 2, replace=len(clip) < 2))
        else:
            a, b = 0, min(int(r["apex"]) - int(r["onset"]), len(clip) - 1)
        pair = torch.from_numpy(clip[[a, b]]).permute(0, 3, 1, 2).float() / 255.0
        flow = amplify_motion(self.store_group()["pairs/flow_tvl1"][int(r["index"])], self.gamma)
        return {**self.base(r), "pair": pair, "flow": torch.from_numpy(flow).permute(2, 0, 1)}


DATASETS = {"fdp": FDPDataset, "attrcl": AttrCLDataset, "microauclip": MicroAUCLIPDataset, "selfme": SelfMEDataset}
