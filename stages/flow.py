"""Optical flow between two frames, optical strain and flow magnitude.

Flows are float32 (H, W, 2) arrays of (u, v) in pixels with the OpenCV convention:
source = the first frame (onset), I_src(x, y) ~ I_dst(x + u, y + v).
"""

from __future__ import annotations

import cv2
import numpy as np

TVL1_DEFAULTS = {
    "tau": 0.25,
    "lambda_": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "innnerIterations": 30,
    "outerIterations": 10,
    "scaleStep": 0.8,
    "gamma": 0.0,
    "medianFiltering": 5,
}
FARNEBACK_DEFAULTS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}


def _gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        raise ValueError(f"flow expects uint8 frames, got {img.dtype}")
    return img


def tvl1(src: np.ndarray, dst: np.ndarray, backend: str = "opencv", **params) -> np.ndarray:
    """Dual TV-L1 flow from src to dst (uint8 (H, W, 3) RGB or (H, W) gray) -> float32
    (H, W, 2) (u, v) in pixels. backend 'opencv': cv2.optflow.DualTVL1OpticalFlow;
    'torch': the same algorithm in torch (stages.flow_torch), on CUDA when torch sees it."""
    p = {**TVL1_DEFAULTS, **params}
    if backend == "torch":
        return tvl1_batch(_gray(src)[None], _gray(dst)[None], **p)[0]
    if backend != "opencv":
        raise ValueError(f"tvl1 backend {backend!r}: expected 'opencv' or 'torch' ('auto' is resolved by the run)")
    algo = cv2.optflow.DualTVL1OpticalFlow_create(**p)
    return algo.calc(_gray(src), _gray(dst), None)


def tvl1_batch(src, dst, **params) -> np.ndarray:
    """Dual TV-L1 flows of a batch of pairs (uint8 (N, H, W) gray or (N, H, W, 3) RGB, one
    size; numpy arrays, or torch tensors computed on their device) -> float32 numpy
    (N, H, W, 2), by the torch implementation (stages.flow_torch): numpy input on CUDA
    when torch sees it, else on the CPU."""
    import torch

    from stages.flow_torch import tvl1_torch

    if isinstance(src, torch.Tensor):
        return tvl1_torch(src, dst, **params).cpu().numpy()
    return tvl1_torch(src, dst, device="cuda" if torch.cuda.is_available() else "cpu", **params)


def farneback(src: np.ndarray, dst: np.ndarray, **params) -> np.ndarray:
    """Gunnar Farnebäck's dense flow (cv2.calcOpticalFlowFarneback) from src to dst."""
    p = {**FARNEBACK_DEFAULTS, **params}
    return cv2.calcOpticalFlowFarneback(
        _gray(src),
        _gray(dst),
        None,
        p["pyr_scale"],
        p["levels"],
        p["winsize"],
        p["iterations"],
        p["poly_n"],
        p["poly_sigma"],
        0,
    )


def strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude sqrt(u_x^2 + v_y^2 + 0.5 (u_y + v_x)^2), central differences
    (one pixel spacing), float32 (H, W)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def magnitude(flow: np.ndarray) -> np.ndarray:
    return np.hypot(flow[..., 0], flow[..., 1]).astype(np.float32)


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Resize a flow field to (size, size) and scale its vectors by the same factors."""
    h, w = flow.shape[:2]
    out = cv2.resize(flow, (size, size), interpolation=cv2.INTER_AREA if size < w else cv2.INTER_LINEAR)
    out[..., 0] *= size / w
    out[..., 1] *= size / h
    return out


def flow_to_color(flow: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """Colour-wheel picture (H, W, 3) uint8 RGB: hue = direction, value = magnitude."""
    mag, ang = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    m = max_mag or max(float(np.percentile(mag, 99)), 1e-6)
    hsv = np.zeros((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (ang * 90 / np.pi).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / m * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
