"""DVSCL (seed 000): one ResNet18 encoder shared by both views (the 1-channel depth/gray
difference is replicated to 3 channels so every weight is shared), a linear projection
to 128-d, symmetric dual-view InfoNCE (training.losses), and a linear probe on the frozen
512-d features for recognition (sec. 5.2.2)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class DVSCLEncoder(nn.Module):
    def __init__(self, dim: int = 128, weights: str | None = None, log=print):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        self.loaded = None
        if weights:
            from training.weights import load_weights

            self.loaded = load_weights(net, weights, "ResNet18")
            log(self.loaded.describe("ResNet18"))
        else:
            log("ResNet18: random initialisation (no local weights given; nothing is downloaded)")
        net.fc = nn.Identity()
        self.backbone = net
        self.head = nn.Linear(512, dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) -> (N, 512)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
