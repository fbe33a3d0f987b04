"""Landmark crop of seed 000 section 4.1.2.

The box comes from the 68 landmarks of the ONSET frame: left/right/bottom from the
landmark extremes, top from the brows raised by the mean brow-to-eye distance (the
forehead wrinkles of AU1/2 lie there), limited to ``max_brow_ext`` of the face height
so hair stays out. The box is made square around its centre (the output is square and
must not be stretched) and shifted to lie inside the image. The same box is applied to
the apex frame and to every modality.

Landmarks are (68, 2) float arrays of (x, y) pixel coordinates, iBUG/dlib order.
Boxes are (x0, y0, x1, y1) integer pixels, x1/y1 exclusive.
"""

from __future__ import annotations

import cv2
import numpy as np

RIGHT_BROW, LEFT_BROW = slice(17, 22), slice(22, 27)  # subject's right = image left
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)


def brow_extension(lm: np.ndarray) -> float:
    """Mean vertical distance (pixels) between each eye's centre and its brow's centre."""
    d_r = lm[RIGHT_EYE, 1].mean() - lm[RIGHT_BROW, 1].mean()
    d_l = lm[LEFT_EYE, 1].mean() - lm[LEFT_BROW, 1].mean()
    return float((d_r + d_l) / 2.0)


def crop_box(
    lm: np.ndarray, image_hw: tuple[int, int], max_brow_ext: float = 0.15, margin: float = 0.0
) -> tuple[int, int, int, int]:
    """Square crop box (x0, y0, x1, y1) from 68 landmarks inside an image of size (H, W)."""
    lm = np.asarray(lm, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"need finite (68, 2) landmarks, got {lm.shape}")
    h_img, w_img = image_hw
    brow_top = lm[17:27, 1].min()
    bottom = lm[:, 1].max()
    ext = min(max(brow_extension(lm), 0.0), max_brow_ext * (bottom - brow_top))
    x0, x1 = lm[:, 0].min(), lm[:, 0].max()
    y0, y1 = brow_top - ext, bottom
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    side = int(round(min(side, h_img, w_img)))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    bx0 = int(round(cx - side / 2.0))
    by0 = int(round(cy - side / 2.0))
    bx0 = min(max(bx0, 0), w_img - side)
    by0 = min(max(by0, 0), h_img - side)
    return bx0, by0, bx0 + side, by0 + side


def apply_crop(
    img: np.ndarray, box: tuple[int, int, int, int], size: int, interpolation: int = cv2.INTER_AREA
) -> np.ndarray:
    """Cut `box` out of `img` (H, W[, C]) and resize it to (size, size[, C])."""
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"crop box {box} outside an image of {w}x{h}")
    return cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=interpolation)


def cut(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box region of `img` at native resolution (a copy)."""
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1].copy()


def landmarks_to_crop(lm: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Map (68, 2) source-pixel landmarks into the (size x size) crop's pixel coordinates.

    Pixel centres sit at integer coordinates, as in OpenCV's resize:
    x' = (x - x0 + 0.5) * size / side - 0.5.
    """
    x0, y0, x1, _ = box
    scale = size / float(x1 - x0)
    return ((np.asarray(lm, np.float64) - [x0, y0] + 0.5) * scale - 0.5).astype(np.float32)
