"""Augmentations on batched tensors on the training device (seed 000 sec. 4.2: random
resized crop, horizontal flip, colour jitter, grayscale). The two views of a pair share
the geometric transform (their pixel grids are aligned); colour jitter and grayscale
touch the RGB view only."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


def crop_flip_theta(boxes, flips, h: int, w: int) -> torch.Tensor:
    """(N, 2, 3) affine matrices for F.affine_grid (align_corners=False) that resample the
    crop box (top, left, height, width) of an (h, w) image, mirrored where `flips`: output
    pixel centre u in [-1, 1] reads input x = (bw / w) u + (2 left + bw) / w - 1, i.e.
    pixel left + (j + 0.5) bw / S - 0.5 for output pixel j of S, as torchvision's resized
    crop (bilinear, no antialias) samples."""
    theta = torch.zeros(len(boxes), 2, 3, dtype=torch.float64)
    for n, ((top, left, bh, bw), flip) in enumerate(zip(boxes, flips)):
        theta[n, 0, 0] = -bw / w if flip else bw / w
        theta[n, 0, 2] = (2 * left + bw) / w - 1
        theta[n, 1, 1] = bh / h
        theta[n, 1, 2] = (2 * top + bh) / h - 1
    return theta.float()


def resample(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """x (N, C, H, W) resampled through `theta` (N, 2, 3) to (N, C, size, size), bilinear,
    edges clamped (one batched grid_sample on x's device)."""
    grid = F.affine_grid(theta.to(x.device), [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def augment_batch(
    rgb: torch.Tensor, view: torch.Tensor, size: int, g: torch.Generator, jitter: float = 0.4, p_gray: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb (N, 3, H, W), view (N, 1, H, W) float, on any device -> both (N, C, size, size)
    on that device: per sample a random resized crop (scale 0.5-1 of the area, aspect 3/4-4/3)
    and horizontal flip shared by the two views, colour jitter (per-channel and global
    gain in 1 +- `jitter`: brightness/saturation/contrast of a signed difference image) and
    grayscale with probability `p_gray` on the RGB view. The random parameters are drawn
    from `g` (a CPU generator) per sample, so they do not depend on the device; the
    pixels are resampled for the whole batch at once on the device. Unlike torchvision's
    per-image v2 transforms there is no antialiasing filter (crops are downscaled by at
    most 1.4x at the paper's sizes)."""
    n, _, h, w = rgb.shape
    boxes = [resized_crop_params(h, w, g) for _ in range(n)]
    flips = (torch.rand(n, generator=g) < 0.5).tolist()
    gains = 1 + jitter * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)
    contrast = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)
    gray = (torch.rand(n, 1, 1, 1, generator=g) < p_gray).float()
    theta = crop_flip_theta(boxes, flips, h, w)
    rgb, view = resample(rgb, theta, size), resample(view, theta, size)
    dev = rgb.device
    rgb = rgb * (gains * contrast).to(dev)
    gray = gray.to(dev)
    rgb = gray * rgb.mean(1, keepdim=True).expand_as(rgb) + (1 - gray) * rgb
    return rgb, view


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return TF.resize(x, [size, size], antialias=True)
