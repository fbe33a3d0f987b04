"""Synthetic micro-movements and depth for the demo dataset (pure functions).

A movement is a sum of Gaussian-weighted local displacements placed on 68-point
landmarks; a frame at time t is the base frame warped by profile(t) x displacement, so
onset/apex/offset are known exactly. Displacements are in pixels (x right, y down).
"""

from __future__ import annotations

import cv2
import numpy as np

# kind -> (emotion, AU string, [(landmark indices, (dx, dy) unit direction)])
MOVEMENTS: dict[str, tuple[str, str, list]] = {
    "brow_raise": ("surprise", "1+2", [((17, 18, 19, 20, 21), (0.0, -1.0)), ((22, 23, 24, 25, 26), (0.0, -1.0))]),
    "lip_corner_pull": ("happy", "12", [((48,), (-0.7, -0.7)), ((54,), (0.7, -0.7))]),
    "brow_lower": ("disgust", "4", [((19, 20, 21), (0.5, 0.85)), ((22, 23, 24), (-0.5, 0.85))]),
    "lip_corner_depress": ("sad", "15", [((48,), (-0.3, 0.95)), ((54,), (0.3, 0.95))]),
}


def temporal_profile(t: np.ndarray | float, onset: int, apex: int, offset: int) -> np.ndarray:
    """Raised-cosine intensity in [0, 1]: 0 up to onset, 1 at apex, 0 from offset on."""
    t = np.asarray(t, dtype=np.float64)
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - onset) / max(apex - onset, 1), 0, 1))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - apex) / max(offset - apex, 1), 0, 1))
    return np.where(t <= apex, up, down)


def displacement_field(
    hw: tuple[int, int], landmarks: np.ndarray, kind: str, amplitude: float, sigma: float
) -> np.ndarray:
    """(H, W, 2) float32 displacement (pixels) of movement `kind` at full intensity.

    Each named landmark carries a Gaussian bump of width `sigma` (pixels); a part
    (e.g. a brow) moves by max over its landmarks' bumps, so the whole part moves by
    `amplitude` while points a few sigma away (the eyes under a raised brow) stay put.
    """
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w, 2), np.float32)
    for idx, (dx, dy) in MOVEMENTS[kind][2]:
        g = np.zeros((h, w), np.float32)
        for i in idx:
            c = np.asarray(landmarks, np.float32)[i]
            g = np.maximum(g, np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2.0 * sigma**2)))
        field[..., 0] += amplitude * dx * g
        field[..., 1] += amplitude * dy * g
    return field


def warp(img: np.ndarray, field: np.ndarray, scale: float, nearest: bool = False) -> np.ndarray:
    """Move image content by `scale` x `field` (backward mapping, first-order inverse)."""
    if scale == 0.0:
        return img.copy()
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mx = (xx - scale * field[..., 0]).astype(np.float32)
    my = (yy - scale * field[..., 1]).astype(np.float32)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.remap(img, mx, my, interp, borderMode=cv2.BORDER_REPLICATE)


def synthetic_depth(
    hw: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator, n_holes: int = 6
) -> np.ndarray:
    """(H, W) uint16 depth in mm: a rounded face in front of a wall, with zero holes.

    The face is an ellipsoid fitted to the landmark extent (nearest point ~650 mm, nose
    ~25 mm closer), the wall at 1400 mm; holes: the image border strip and `n_holes`
    random ellipses set to 0, as a structured-light camera leaves them.
    """
    h, w = hw
    lm = np.asarray(landmarks, np.float64)
    cx, cy = lm[:, 0].mean(), lm[:, 1].mean()
    ax = max(np.ptp(lm[:, 0]) * 0.6, 8.0)
    ay = max(np.ptp(lm[:, 1]) * 0.75, 8.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r2 = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2
    depth = np.full((h, w), 1400.0)
    face = r2 < 1.0
    depth[face] = 650.0 + 90.0 * r2[face]
    nose = lm[30]
    depth -= 25.0 * np.exp(-((xx - nose[0]) ** 2 + (yy - nose[1]) ** 2) / (2 * (ax * 0.15) ** 2))
    # sensor noise in 4x4 blocks (structured-light depth is blocky; keeps the PNGs small)
    coarse = rng.normal(0.0, 1.5, size=((h + 3) // 4, (w + 3) // 4))
    depth += np.kron(coarse, np.ones((4, 4)))[:h, :w]
    out = np.clip(np.rint(depth), 1, 65535).astype(np.uint16)
    out[:, :6] = 0
    out[:, -6:] = 0
    x0, x1 = int(lm[:, 0].min()), int(lm[:, 0].max())
    y0, y1 = int(lm[:, 1].min()), int(lm[:, 1].max())
    for k in range(n_holes):
        if k % 2 == 0:
            c = (int(rng.integers(x0, x1)), int(rng.integers(y0, y1)))
        else:
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(3, 14)), int(rng.integers(3, 10)))
        cv2.ellipse(out, c, axes, float(rng.uniform(0, 180)), 0, 360, 0, -1)
    return out
