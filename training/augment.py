"""Augmentations on tensors (seed 000 sec. 4.2: random resized crop, horizontal flip,
colour jitter, grayscale). The two views of a pair share the geometric transform (their
pixel grids are aligned); colour jitter and grayscale touch the RGB view only."""

from __future__ import annotations

import math

import torch
import torchvision.transforms.v2.functional as TF


def resized_crop_params(h: int, w: int, g: torch.Generator, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)):
    area = h * w
    for _ in range(10):
        a = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=g).item())
        logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(1, generator=g).item()
        r = math.exp(logr)
        cw, ch = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            return top, left, ch, cw
    return 0, 0, h, w


def augment_pair(
    rgb: torch.Tensor, view: torch.Tensor, size: int, g: torch.Generator, jitter: float = 0.4, p_gray: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb (3, H, W), view (1, H, W) float -> both (C, size, size), same crop and flip."""
    top, left, h, w = resized_crop_params(rgb.shape[-2], rgb.shape[-1], g)
    rgb = TF.resized_crop(rgb, top, left, h, w, [size, size], antialias=True)
    view = TF.resized_crop(view, top, left, h, w, [size, size], antialias=True)
    if torch.rand(1, generator=g).item() < 0.5:
        rgb, view = rgb.flip(-1), view.flip(-1)
    # colour jitter on a signed difference image: per-channel gain (brightness/saturation of
    # the change) and a global contrast gain
    gains = 1 + jitter * (2 * torch.rand(3, 1, 1, generator=g) - 1)
    rgb = rgb * gains * (1 + jitter * (2 * torch.rand(1, generator=g).item() - 1))
    if torch.rand(1, generator=g).item() < p_gray:
        rgb = rgb.mean(0, keepdim=True).expand(3, -1, -1)
    return rgb.contiguous(), view.contiguous()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return TF.resize(x, [size, size], antialias=True)
