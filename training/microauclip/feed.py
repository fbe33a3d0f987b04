"""MicroAUCLIP's feed Dataset (seed 004)."""

from __future__ import annotations

import numpy as np
import torch

from training.feeds import FeedDataset, au_list


class MicroAUCLIPDataset(FeedDataset):
    """Seed 004: flow (2, 224, 224) pixels of the magnified onset->apex flow; landmarks
    (68, 2) apex landmarks in that image; au_list."""

    method = "microauclip"

    def __getitem__(self, key):
        r = self.rows[self.draw(key)[0]]
        k = int(r["index"])
        flow = torch.from_numpy(self.array("micro/flow224")[k].astype(np.float32)).permute(2, 0, 1)
        lm = torch.from_numpy(self.array("micro/apex_landmarks224")[k])
        return {**self.base(r), "flow": flow, "landmarks": lm, "au_list": au_list(r)}
