"""FDP's feed Dataset (seed 003)."""

from __future__ import annotations

import numpy as np
import torch

from schemas.arrays import DI_FRAMES
from stages.temporal import dynamic_image, uniform_indices
from training.feeds import FeedDataset


class FDPDataset(FeedDataset):
    """Seed 003: frames (8, 3, 64, 64) float in [0, 1], sampled uniformly from the stored
    72x72 clip with a random offset (train) or none (test), random 64x64 crop + horizontal
    flip (train) or centre crop (test); dynamic_image (1, 64, 64) in [0, 1] of exactly
    those frames (gray), the reconstruction target."""

    method = "fdp"

    def __getitem__(self, key):
        i, rng = self.draw(key)
        r = self.rows[i]
        clip = self.clip(r)
        idx = uniform_indices(len(clip), DI_FRAMES, rng.random() if rng else 0.0)
        f = clip[idx]
        y0, x0 = rng.integers(0, 9, 2) if rng else (4, 4)
        f = f[:, y0 : y0 + 64, x0 : x0 + 64]
        if rng and rng.random() < 0.5:
            f = f[:, :, ::-1]
        gray = f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        di = dynamic_image(gray)
        x = torch.from_numpy(np.ascontiguousarray(f)).permute(0, 3, 1, 2).float() / 255.0
        return {**self.base(r), "frames": x, "dynamic_image": torch.from_numpy(di)[None]}
