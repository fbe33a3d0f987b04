"""AttrCL's feed Dataset (seed 002)."""

from __future__ import annotations

import numpy as np
import torch

from training.feeds import FeedDataset, au_list


class AttrCLDataset(FeedDataset):
    """Seed 002: rgb (3, 16, 112, 112) in [0, 1]; flow (2, 15, 112, 112) pixels; AU list."""

    method = "attrcl"

    def __getitem__(self, key):
        r = self.rows[self.draw(key)[0]]
        k = int(r["index"])
        rgb = torch.from_numpy(self.array("attrcl/rgb16")[k]).permute(3, 0, 1, 2).float() / 255.0
        flow = torch.from_numpy(self.array("attrcl/flow16")[k].astype(np.float32)).permute(3, 0, 1, 2)
        return {**self.base(r), "rgb": rgb, "flow": flow, "au_list": au_list(r)}
