"""Depth decoding conventions and zero-fill (seed 000 section 5.4.5, eq. 15-17).

Depth maps are 2-D uint16 arrays (H, W) in the sensor's units (about mm); 0 marks a
pixel where the camera measured nothing. Filling replaces only those zeros.
"""

from __future__ import annotations

import cv2
import numpy as np

FILL_METHODS = ("nearest", "min", "mean")


class DepthError(ValueError):
    """A depth map that cannot be used (wrong dtype/shape, no valid pixel)."""


def check_depth(depth: np.ndarray) -> None:
    if depth.ndim != 2:
        raise DepthError(f"depth must be 2-D (H, W), got shape {depth.shape}")
    if depth.dtype != np.uint16:
        raise DepthError(
            f"depth must be 16-bit (uint16), got {depth.dtype}: an 8-bit depth file loses the millimetre range"
        )


def zero_fill(depth: np.ndarray, method: str = "nearest", window: int = 5, max_iter: int = 50) -> np.ndarray:
    """Fill the zero pixels of a uint16 depth map; returns a new uint16 array (H, W).

    - ``min``  (eq. 15): zeros take the minimum of the non-zero pixels (the literal
      min(D) of a map with holes is 0, which would leave the holes in place).
    - ``mean`` (eq. 17): zeros take the mean of all non-zero pixels.
    - ``nearest`` (eq. 16, the paper's best): a zero takes the mean of the non-zero
      pixels in its ``window`` x ``window`` neighbourhood. Holes wider than the window
      are filled from their rim inwards by repeating the step with the pixels filled so
      far (at most ``max_iter`` passes, then the global mean).
    Filled values are rounded to the nearest integer.
    """
    check_depth(depth)
    if method not in FILL_METHODS:
        raise ValueError(f"unknown zero-fill method {method!r}; use one of {FILL_METHODS}")
    if window < 3 or window % 2 == 0:
        raise ValueError(f"zero-fill window must be an odd integer >= 3, got {window}")
    valid = depth > 0
    if not valid.any():
        raise DepthError("depth map has no valid (non-zero) pixel")
    out = depth.copy()
    if valid.all():
        return out
    if method == "min":
        out[~valid] = depth[valid].min()
        return out
    if method == "mean":
        out[~valid] = np.uint16(np.rint(depth[valid].mean(dtype=np.float64)))
        return out
    values = depth.astype(np.float64)
    known = valid.astype(np.float64)
    for _ in range(max_iter):
        s = cv2.boxFilter(values * known, -1, (window, window), normalize=False, borderType=cv2.BORDER_CONSTANT)
        n = cv2.boxFilter(known, -1, (window, window), normalize=False, borderType=cv2.BORDER_CONSTANT)
        todo = (known == 0) & (n > 0.5)
        values[todo] = s[todo] / n[todo]
        known[todo] = 1.0
        if known.all():
            break
    values[known == 0] = depth[valid].mean(dtype=np.float64)
    out[~valid] = np.rint(values[~valid]).astype(np.uint16)
    return out
