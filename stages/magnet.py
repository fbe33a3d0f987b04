"""Learning-based motion magnification network of Oh et al. (ECCV 2018), in torch.

Architecture as the paper's Fig. 2 describes it: an encoder that splits a frame into a
texture representation (1/4 resolution) and a shape representation (1/2 resolution), a
manipulator that magnifies the shape difference between two frames,
M = S_a + h(alpha * g(S_b - S_a)), and a decoder that rebuilds the frame from the
texture of frame b and the magnified shape. Frames are (N, 3, H, W) in [-1, 1], H and W
divisible by 4.

No weights ship and none are downloaded: the network is built from a local state_dict
with exactly this module layout (`MagNet().state_dict()` keys); the pipeline loads it
(params.magnify.method: learned, params.magnify.weights: <file>).
"""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 7, padding=3),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1),
            nn.ReLU(),
            *[ResBlock(32) for _ in range(3)],
        )
        self.texture = nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(), ResBlock(32), ResBlock(32))
        self.shape = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(), ResBlock(32), ResBlock(32))

    def forward(self, x):
        h = self.stem(x)
        return self.texture(h), self.shape(h)


class Manipulator(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.h = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), ResBlock(32))

    def forward(self, shape_a, shape_b, alpha):
        return shape_a + self.h(alpha * self.g(shape_b - shape_a))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up_texture = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU()
        )
        self.body = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), *[ResBlock(64) for _ in range(9)])
        self.out = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 3, 7, padding=3),
        )

    def forward(self, texture, shape):
        return self.out(self.body(torch.cat([self.up_texture(texture), shape], dim=1)))


class MagNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.manipulator, self.decoder = Encoder(), Manipulator(), Decoder()

    def forward(self, frame_a, frame_b, alpha: float):
        _, shape_a = self.encoder(frame_a)
        tex_b, shape_b = self.encoder(frame_b)
        return self.decoder(tex_b, self.manipulator(shape_a, shape_b, alpha))


def magnify_pair_learned(net: MagNet, onset, apex, alpha: float):
    """Magnified apex (H, W, 3) float32 in 0..255 from uint8 RGB onset/apex (H, W divisible by 4)."""
    import numpy as np

    dev = next(net.parameters()).device  # runs where the net is (a GPU worker's cuda, else CPU)

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float().to(dev) / 127.5 - 1.0

    with torch.no_grad():
        out = net.eval()(t(onset), t(apex), float(alpha))
    return ((out[0].permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).astype(np.float32)
