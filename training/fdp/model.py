"""FDP (seed 003): local-global feature-aware transformer per frame, rank scorer,
3D-convolution temporal pooling, MER head and dynamic-image construction decoder.

What the paper leaves open and this module chooses (all parameters of `FDPConfig`):
- stage widths/heads: the paper gives N_S = 4, N_L = 2, N_G = 1 and 14.82 M parameters,
  not the widths; the default widths (96, 192, 384, 480) give 14.86 M for the whole model
  (12.67 M in the frame backbone).
- temporal pooling: the last stage's 2-D feature maps of the t frames are stacked in
  time order, (C, t, h, w), and a Conv3d with kernel (t, 1, 1) pools them.
- DIC module: F^(d) is projected to 16 channels and upsampled to the input size, then
  4 encoder blocks (conv-BN-LeakyReLU-maxpool) and 4 decoder blocks (deconv, conv-BN-
  LeakyReLU) with additive skips, 1x1 conv, sigmoid.
- rank target K(k) = c k with a fixed c (a learnable c would let u collapse to 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class FDPConfig:
    widths: tuple = (96, 192, 384, 480)
    heads: tuple = (2, 4, 8, 8)
    n_local: int = 2
    n_global: int = 1
    stem: int = 32
    mlp_ratio: int = 2
    t: int = 8
    size: int = 64
    d_channels: int = 256
    rank_c: float = 1.0


class MHConv(nn.Module):
    """Multi-head convolution: the channels split into h heads, each a conv3x3-BN-ReLU
    (a grouped convolution), then a pointwise convolution fuses the heads."""

    def __init__(self, c: int, heads: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=heads, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return self.pw(F.relu(self.bn(self.conv(x))))


class MLP(nn.Module):
    def __init__(self, c: int, r: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c, c * r, 1), nn.GELU(), nn.Conv2d(c * r, c, 1))

    def forward(self, x):
        return self.net(x)


class LocalAggregator(nn.Module):
    def __init__(self, c, heads, r):
        super().__init__()
        self.mhc, self.mlp = MHConv(c, heads), MLP(c, r)

    def forward(self, x):
        x = x + self.mhc(x)
        return x + self.mlp(x)


class MHSA(nn.Module):
    """Multi-head self-attention over the spatial positions (eq. 1-3)."""

    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(c, 3 * c)
        self.fc = nn.Linear(c, c)

    def forward(self, x):
        n, c, h, w = x.shape
        tok = x.flatten(2).transpose(1, 2)  # (n, hw, c)
        q, k, v = self.qkv(tok).reshape(n, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / (c // self.heads) ** 0.5, dim=-1) @ v
        out = self.fc(a.transpose(1, 2).reshape(n, h * w, c))
        return out.transpose(1, 2).reshape(n, c, h, w)


class GlobalAggregator(nn.Module):
    def __init__(self, c, heads, r):
        super().__init__()
        self.pw = nn.Conv2d(c, c, 1)
        self.attn, self.mhc, self.mlp = MHSA(c, heads), MHConv(c, heads), MLP(c, r)

    def forward(self, x):
        x = self.pw(x)
        x = x + self.attn(x)
        x = x + self.mhc(x)
        return x + self.mlp(x)


class LGTransformer(nn.Module):
    """Conv stem + N_S stages (patch embedding, N_L local, N_G global aggregators) + BN."""

    def __init__(self, cfg: FDPConfig):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, padding=1, bias=False), nn.BatchNorm2d(cfg.stem), nn.ReLU())
        stages, c_in = [], cfg.stem
        for c, h in zip(cfg.widths, cfg.heads):
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(c),  # patch embedding
                    *[LocalAggregator(c, h, cfg.mlp_ratio) for _ in range(cfg.n_local)],
                    *[GlobalAggregator(c, h, cfg.mlp_ratio) for _ in range(cfg.n_global)],
                )
            )
            c_in = c
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(c_in)

    def forward(self, x):
        """(N, 3, H, W) -> feature maps (N, C, H/16, W/16) (GAP of them = F_k)."""
        return self.bn(self.stages(self.stem(x)))


def enc_block(ci, co):
    return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.LeakyReLU(0.2))


class DICDecoder(nn.Module):
    def __init__(self, c_in: int, size: int, ch=(16, 32, 64, 128, 256)):
        super().__init__()
        self.size = size
        self.proj = nn.Conv2d(c_in, ch[0], 1)
        self.enc = nn.ModuleList([enc_block(ch[i], ch[i + 1]) for i in range(4)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i + 1], 2, stride=2) for i in reversed(range(4))])
        self.dec = nn.ModuleList([enc_block(ch[i + 1], ch[i]) for i in reversed(range(4))])
        self.out = nn.Conv2d(ch[0], 1, 1)

    def forward(self, fd):
        x = F.interpolate(self.proj(fd), size=(self.size, self.size), mode="bilinear", align_corners=False)
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        for up, d, s in zip(self.up, self.dec, reversed(skips)):
            x = d(up(x) + s)  # additive skip (Fig. 3)
        return torch.sigmoid(self.out(x))


class FDP(nn.Module):
    def __init__(self, n_classes: int, cfg: FDPConfig = FDPConfig()):
        super().__init__()
        self.cfg = cfg
        self.backbone = LGTransformer(cfg)
        c = cfg.widths[-1]
        self.u = nn.Linear(c, 1, bias=False)  # rank scorer S(x) = u^T x
        self.pool = nn.Conv3d(c, cfg.d_channels, kernel_size=(cfg.t, 1, 1))  # temporal pooling
        self.mer = nn.Sequential(nn.Flatten(), nn.Linear(cfg.d_channels, 256), nn.ReLU(), nn.Linear(256, n_classes))
        self.dic = DICDecoder(cfg.d_channels, cfg.size)

    def forward(self, frames):
        """frames (N, t, 3, H, W) -> logits (N, classes), dynamic image (N, 1, H, W), rank scores (N, t)."""
        n, t = frames.shape[:2]
        maps = self.backbone(frames.flatten(0, 1))  # (N t, C, h, w)
        fk = maps.mean((2, 3)).reshape(n, t, -1)  # F_k (head: BN + GAP)
        scores = self.u(fk).squeeze(-1)
        vol = maps.reshape(n, t, *maps.shape[1:]).transpose(1, 2)  # (N, C, t, h, w)
        fd = self.pool(vol).squeeze(2)  # F^(d): (N, D, h, w)
        logits = self.mer(F.adaptive_max_pool2d(fd, 1))
        return logits, self.dic(fd), scores


def rank_loss(scores: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Eq. 5: sum_k |K(k) - S(F_k)| with K(k) = c k, averaged over the batch."""
    k = torch.arange(scores.shape[1], device=scores.device, dtype=scores.dtype)
    return (c * k - scores).abs().sum(1).mean()


def fdp_loss(logits, di_pred, scores, y, di_true, lambda_d=100.0, lambda_r=0.1, c=1.0):
    """Eq. 8: L = L_MER + lambda_d L_DIC + lambda_r L_rank."""
    return F.cross_entropy(logits, y) + lambda_d * F.mse_loss(di_pred, di_true) + lambda_r * rank_loss(scores, c)


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
