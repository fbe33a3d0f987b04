"""Frame differences apex - onset (seed 000 eq. 5-6), in dtypes that cannot overflow."""

from __future__ import annotations

import cv2
import numpy as np


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luma (ITU-R BT.601, OpenCV's weights)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def frame_diff(apex: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """apex - onset per pixel and channel.

    uint8 inputs give int16 (range [-255, 255]); uint16 inputs (depth) give int32
    (range [-65535, 65535]). Shapes must match.
    """
    if apex.shape != onset.shape:
        raise ValueError(f"apex shape {apex.shape} != onset shape {onset.shape}")
    if apex.dtype != onset.dtype:
        raise ValueError(f"apex dtype {apex.dtype} != onset dtype {onset.dtype}")
    wide = {np.dtype(np.uint8): np.int16, np.dtype(np.uint16): np.int32}.get(apex.dtype)
    if wide is None:
        raise ValueError(f"frame_diff expects uint8 or uint16 frames, got {apex.dtype}")
    return apex.astype(wide) - onset.astype(wide)
