"""SelfME's feed Dataset (seed 001)."""

from __future__ import annotations

import torch

from stages.temporal import amplify_motion
from training.feeds import FeedDataset


class SelfMEDataset(FeedDataset):
    """Seed 001: a random frame pair (2, 3, 72, 72) of the stored clip for motion learning
    (train; onset and apex-most frame at test), and the TV-L1 onset->apex flow (2, 310, 310)
    amplified by `gamma` (motion-field amplification, eq. 2: 1 in training, 2 at inference)."""

    method = "selfme"

    def __init__(self, *args, gamma: float = 1.0, **kw):
        super().__init__(*args, **kw)
        self.gamma = gamma

    def __getitem__(self, key):
        i, rng = self.draw(key)
        r = self.rows[i]
        clip = self.clip(r)
        if rng:
            a, b = sorted(rng.choice(len(clip), 2, replace=len(clip) < 2))
        else:
            a, b = 0, min(int(r["apex"]) - int(r["onset"]), len(clip) - 1)
        pair = torch.from_numpy(clip[[a, b]]).permute(0, 3, 1, 2).float() / 255.0
        flow = amplify_motion(self.array("pairs/flow_tvl1")[int(r["index"])], self.gamma)
        return {**self.base(r), "pair": pair, "flow": torch.from_numpy(flow).permute(2, 0, 1)}
