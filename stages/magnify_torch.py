"""Eulerian magnification of onset/apex pairs, and the INTER_AREA resize after it, in
plain torch on a batch of pairs of one size (CUDA or CPU).

The same operations and float32 arithmetic as the OpenCV/numpy versions the clip task
uses (`stages.temporal.magnify_pair`, `cv2.resize(..., INTER_AREA)`), so that moving the
magnification to a GPU worker beside the torch TV-L1 (issue 18) does not change what is
stored. What OpenCV 4.x computes (modules/imgproc/src/pyramids.cpp, resize.cpp):

- `cv2.pyrDown` (float32): 5x5 Gaussian [1 4 6 4 1]^2 / 256, reflect-101 borders, every
  second row and column kept. Inner columns take the SIMD order
  ((s-2 + s+2) + (s-1 + s+1) * 4) + s0 * 6, the first column, the last one before the
  right border and the right border the scalar order ((s0 * 6 + (s-1 + s+1) * 4) + s-2)
  + s+2; rows likewise, with the scalar order for the elements after the row's last
  full SIMD vector (`_CV_LANES` floats). These orders matter only in the last bit.
- `cv2.pyrUp` (float32, to a given size): zeros inserted, the same kernel x 4,
  reflect-101 borders on the doubled grid, cropped to the size.
- `cv2.resize` INTER_AREA of uint8 at a non-integer ratio: each output pixel is the
  area-weighted mean of the source pixels it covers (OpenCV's computeResizeAreaTab
  weights, float32), summed tap by tap along x, then along y, rounded half to even.

Bit-identical to OpenCV's results, on the CPU, for an OpenCV build whose baseline SIMD
is 4 floats (SSE on x86-64, as the opencv-python wheels; NEON on ARM); with another
build the pyramids agree to float32 rounding, so a rounded magnified pixel may differ by
one level. On CUDA every step is the same elementwise float32 arithmetic (one
operation per kernel, so nothing is fused); that it gives the same pixels there is
what `benchmarks/gpu_flow.sh`'s "px differ" column measures, not yet run on a GPU. Images are float32 (N, C, H, W) tensors in this module's pyramid functions;
`magnified_pairs` and `resize_area` take and return uint8 (N, H, W, C) channel-last.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from stages.temporal import magnify_pair

_CV_LANES = 4  # float32 lanes of the SIMD vectors OpenCV's pyramids.cpp is built for (SSE/NEON baseline)


def _reflect101(i: np.ndarray, n: int) -> np.ndarray:
    """OpenCV's borderInterpolate(i, n, BORDER_REFLECT_101) for integer positions i."""
    if n == 1:
        return np.zeros_like(i)
    i = np.mod(i, 2 * n - 2)
    return np.where(i >= n, 2 * n - 2 - i, i)


def _taps(x: torch.Tensor, centres: np.ndarray, dim: int) -> list[torch.Tensor]:
    """The five taps (centre - 2 .. centre + 2, reflect-101) of `x` along `dim` (-1 or -2)."""
    n = x.shape[dim]
    idx = torch.as_tensor(np.stack([_reflect101(centres + k, n) for k in range(-2, 3)]), device=x.device)
    return [x.index_select(dim, i) for i in idx]


def _down_simd(t: list[torch.Tensor]) -> torch.Tensor:
    return ((t[0] + t[4]) + (t[1] + t[3]) * 4) + t[2] * 6


def _down_scalar(t: list[torch.Tensor]) -> torch.Tensor:
    return ((t[2] * 6 + (t[1] + t[3]) * 4) + t[0]) + t[4]


def _down_rows_simd(t: list[torch.Tensor]) -> torch.Tensor:
    return ((t[1] + t[3]) + t[2]) * 4 + ((t[0] + t[4]) + (t[2] + t[2]))


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown of each image: float32 (N, 3, H, W) -> (N, 3, (H + 1) // 2, (W + 1) // 2)
    (three channels: the last-bit rounding follows OpenCV's 3-channel code)."""
    if x.shape[1] != 3:
        raise ValueError(f"pyr_down: expected (N, 3, H, W) images, got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    dh, dw = (h + 1) // 2, (w + 1) // 2
    cols = _taps(x, 2 * np.arange(dw), -1)
    row = _down_simd(cols)
    # the columns OpenCV computes with its scalar code: the first, the last inner one
    # (its SIMD loop stops one pixel early) and those from the right border on
    width0 = min(int((w - 3) / 2) + 1, dw)  # C's division, truncated toward zero
    scalar = sorted({0, width0 - 1, *range(width0, dw)} & set(range(dw)))
    if scalar:
        idx = torch.as_tensor(scalar, device=x.device)
        row[..., idx] = _down_scalar([c.index_select(-1, idx) for c in cols])
    rows = _taps(row, 2 * np.arange(dh), -2)
    out = _down_rows_simd(rows)
    # the elements after the last full SIMD vector of an output row (row-major, channels last)
    c = x.shape[1]
    tail = range(_CV_LANES * (dw * c // _CV_LANES), dw * c)
    if tail:
        cols = sorted({e // c for e in tail})
        in_tail = [[(j * c + ch) in tail for j in cols] for ch in range(c)]  # (channel, column)
        cols_t, chan = torch.as_tensor(cols, device=x.device), torch.as_tensor(in_tail, device=x.device)
        scal = _down_scalar([r.index_select(-1, cols_t) for r in rows])
        out[..., cols_t] = torch.where(chan[:, None, :], scal, out.index_select(-1, cols_t))
    return out * (1.0 / 256)


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.pyrUp(x, dstsize=(W, H)) of each image: float32 (N, C, h, w) -> (N, C, H, W)
    with H in (2h - 1, 2h) and W in (2w - 1, 2w)."""
    h, w = x.shape[-2:]
    H, W = size
    if H not in (2 * h - 1, 2 * h) or W not in (2 * w - 1, 2 * w):
        raise ValueError(f"pyr_up: size {size} is not twice {(h, w)} (or one less)")
    even, odd = _up_columns(x)
    row = torch.stack([even, odd], -1).flatten(-2)  # (N, C, h, 2w)
    up = torch.as_tensor(_reflect101(np.arange(-1, h + 1) * 2, 2 * h) // 2, device=x.device)
    r = row.index_select(-2, up)
    r0, r1, r2 = r[..., :-2, :], r[..., 1:-1, :], r[..., 2:, :]
    d0 = ((r1 * 6 + r0) + r2) * (1.0 / 64)
    d1 = (r1 + r2) * (1.0 / 16)
    return torch.stack([d0, d1], -2).flatten(-3, -2)[..., :H, :W]


def _up_columns(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The even and odd columns of the doubled grid, filtered along x (before /64)."""
    w = x.shape[-1]
    if w == 1:
        return x * 8, x * 8
    first = x[..., :1] * 6 + x[..., 1:2] * 2
    inner = (x[..., :-2] + x[..., 1:-1] * 6) + x[..., 2:]
    last = x[..., -2:-1] + x[..., -1:] * 7
    even = torch.cat([first, inner, last], -1)
    odd = torch.cat([(x[..., :-1] + x[..., 1:]) * 4, x[..., -1:] * 8], -1)
    return even, odd


def up_to(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """pyr_up of g to the size of `like` (one level finer)."""
    return pyr_up(g, tuple(like.shape[-2:]))


def magnify(onset: torch.Tensor, apex: torch.Tensor, alpha: float, levels: int, lambda_c: float | None = None):
    """Linear Eulerian magnification of onset -> apex with the onset as the reference:
    `stages.temporal.magnify_pair` with this module's pyramid steps. float32 (N, 3, H, W)
    -> the magnified apexes, float32, same shape, not clipped."""
    return magnify_pair(onset, apex, alpha, levels, lambda_c, down=pyr_down, up=up_to)


@lru_cache(maxsize=16)
def _area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_AREA weights along one axis (computeResizeAreaTab): (taps, n_out)
    source indices and float32 weights, in OpenCV's summation order, padded with weight 0."""
    scale = n_in / n_out
    per_out: list[list[tuple[int, np.float32]]] = []
    for d in range(n_out):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, n_in - f1)
        s2 = min(math.floor(f2), n_in - 1)
        s1 = min(math.ceil(f1), s2)
        taps = []
        if s1 - f1 > 1e-3:
            taps.append((s1 - 1, np.float32((s1 - f1) / cell)))
        taps += [(s, np.float32(1.0 / cell)) for s in range(s1, s2)]
        if f2 - s2 > 1e-3:
            taps.append((s2, np.float32(min(min(f2 - s2, 1.0), cell) / cell)))
        per_out.append(taps)
    k = max(len(t) for t in per_out)
    idx, wts = np.zeros((k, n_out), np.int64), np.zeros((k, n_out), np.float32)
    for d, taps in enumerate(per_out):
        for j, (s, a) in enumerate(taps):
            idx[j, d], wts[j, d] = s, a
    return idx, wts


def resize_area(x: torch.Tensor, size: int) -> torch.Tensor:
    """cv2.resize(img, (size, size), interpolation=INTER_AREA) of each uint8 (N, H, W, C)
    image, for sizes no larger than the image and not an integer fraction of both sides
    (OpenCV's general area path) -> uint8 (N, size, size, C)."""
    n, h, w, _ = x.shape
    if size > min(h, w) or (h % size == 0 and w % size == 0):
        raise ValueError(f"resize_area: {size} must be at most {(h, w)} and not divide both (OpenCV's general path)")
    img = x.permute(0, 3, 1, 2).to(torch.float32)
    buf = _weighted_sum(img, *_area_taps(w, size), dim=-1, weight_first=False)
    out = _weighted_sum(buf, *_area_taps(h, size), dim=-2, weight_first=True)
    return torch.round(out).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _weighted_sum(x: torch.Tensor, idx: np.ndarray, wts: np.ndarray, dim: int, weight_first: bool) -> torch.Tensor:
    """sum_k x[idx[k]] * w[k] along `dim`, added tap by tap (OpenCV's order: S * alpha
    along x, beta * buf along y)."""
    idx_t, wts_t = torch.as_tensor(idx, device=x.device), torch.as_tensor(wts, device=x.device)
    total = None
    for i, w in zip(idx_t, wts_t):
        w = w[:, None] if dim == -2 else w
        src = x.index_select(dim, i)
        term = w * src if weight_first else src * w
        total = term if total is None else total + term
    return total


def magnified_pairs(
    onset: torch.Tensor, apex: torch.Tensor, alpha: float, levels: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 004's flow input for a batch: the apex magnified against the onset, rounded to
    uint8, and both resized to size x size by area. onset, apex: uint8 (N, H, W, 3) on the
    device to compute on -> (onset_small, magnified_small) uint8 (N, size, size, 3) there."""
    on, ap = (t.permute(0, 3, 1, 2).to(torch.float32) for t in (onset, apex))
    mag = torch.round(magnify(on, ap, alpha, levels)).clamp(0, 255).to(torch.uint8)
    return resize_area(onset, size), resize_area(mag.permute(0, 2, 3, 1), size)
