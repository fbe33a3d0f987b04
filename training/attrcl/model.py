"""AttrCL (seed 002): two unshared 3D-ResNet10 streams (RGB clip, Farnebäck flow
sequence) -> 128-d each, concatenated to z_m (eq. 1); the AU description's text
embedding projected to z_a (eq. 2); cross-modal contrastive loss (eq. 3-5) and a
classifier on each branch (eq. 6-7); L = (1 - alpha)(L_theta + L_phi) + alpha L_theta,phi
(eq. 8). Inference uses the video network only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video.resnet import BasicBlock, BasicStem, Conv3DSimple, VideoResNet


def resnet10_3d(in_channels: int, dim: int = 128) -> nn.Module:
    """3D ResNet-10: BasicBlock x [1, 1, 1, 1] (torchvision's VideoResNet), `dim` outputs."""
    net = VideoResNet(BasicBlock, [Conv3DSimple] * 4, [1, 1, 1, 1], BasicStem, num_classes=dim)
    if in_channels != 3:
        net.stem[0] = nn.Conv3d(in_channels, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
    return net


class AttrCL(nn.Module):
    def __init__(self, n_classes: int, text_dim: int = 384, dim: int = 128):
        super().__init__()
        self.rgb, self.flow = resnet10_3d(3, dim), resnet10_3d(2, dim)
        self.text = nn.Sequential(nn.Linear(text_dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, 2 * dim))
        self.cls_v, self.cls_t = nn.Linear(2 * dim, n_classes), nn.Linear(2 * dim, n_classes)

    def video(self, rgb, flow):
        """rgb (N, 3, T, H, W), flow (N, 2, T', H, W) -> z_m (N, 256)."""
        return torch.cat([self.rgb(rgb), self.flow(flow)], dim=1)

    def forward(self, rgb, flow, text_emb=None):
        zm = self.video(rgb, flow)
        out = {"z_m": zm, "logits_v": self.cls_v(zm)}
        if text_emb is not None:
            za = self.text(text_emb)
            out.update({"z_a": za, "logits_t": self.cls_t(za)})
        return out


def cross_modal_loss(zm: torch.Tensor, za: torch.Tensor) -> torch.Tensor:
    """Eq. 3-5: d(v, t) = exp(cos(z_m, z_a)); for each video the matched text is the
    positive and the other texts of the batch the negatives:
    -mean_i log d(v_i, t_i) / (d(v_i, t_i) + sum_{j != i} d(v_i, t_j))."""
    cos = F.normalize(zm, dim=1) @ F.normalize(za, dim=1).t()
    return F.cross_entropy(cos, torch.arange(len(zm), device=zm.device))


def attrcl_loss(out: dict, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 8."""
    ce = F.cross_entropy(out["logits_v"], y) + F.cross_entropy(out["logits_t"], y)
    return (1 - alpha) * ce + alpha * cross_modal_loss(out["z_m"], out["z_a"])
