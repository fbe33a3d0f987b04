"""Similarity-transform face alignment (rotation levelling the eyes + uniform scale +
translation) onto a square canvas, from 68 landmarks and the crop box of stages.crop."""

from __future__ import annotations

import cv2
import numpy as np


def eye_angle(lm: np.ndarray) -> float:
    """Angle (degrees) of the line from the right-eye centre (image left) to the left one."""
    lm = np.asarray(lm, np.float64)
    le, re = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    return float(np.degrees(np.arctan2(re[1] - le[1], re[0] - le[0])))


def _rotation(lm, box):
    """lm: (68, 2) landmarks, or the eye angle in degrees directly."""
    x0, y0, x1, y1 = box
    angle = float(lm) if np.isscalar(lm) else eye_angle(lm)
    return cv2.getRotationMatrix2D(((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0), angle, 1.0)


def similarity_matrix(lm: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """2x3 matrix of `warp_face` for points: rotate about the box centre so the eye line is
    horizontal, then map the box onto the (size x size) canvas (pixel centres as cv2.resize)."""
    x0, y0, x1, _ = box
    s = size / float(x1 - x0)
    S = np.array([[s, 0, (0.5 - x0) * s - 0.5], [0, s, (0.5 - y0) * s - 0.5], [0, 0, 1]])
    R = np.vstack([_rotation(lm, box), [0, 0, 1]])
    return (S @ R)[:2]


def warp_face(img: np.ndarray, lm: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Aligned (size x size) face: rotate about the box centre to level the eyes (bilinear),
    then cut the box and resize it with area averaging (no aliasing when shrinking).
    `lm` is the (68, 2) landmarks or their eye angle (degrees); a clip uses its onset's."""

    return warp_faces(img, lm, box, (size,))[0]


def warp_faces(img: np.ndarray, lm: np.ndarray, box: tuple[int, int, int, int], sizes: tuple) -> list:
    """`warp_face` at several output sizes from one rotation of the frame (the same values
    as separate calls, at the cost of one warp)."""
    from stages.crop import apply_crop

    rot = cv2.warpAffine(
        img, _rotation(lm, box), (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return [apply_crop(rot, box, s) for s in sizes]


def transform_points(pts: np.ndarray, M: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, np.float64)
    return (p @ M[:, :2].T + M[:, 2]).astype(np.float32)
