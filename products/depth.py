"""depth: the onset/apex depth maps cut with the colour crop box, zeros filled (seed 000
eq. 15-17, `params.depth`), resized to CROP x CROP, and their difference. Applies to
samples whose depth frames were found."""

from __future__ import annotations

import time

import cv2
import numpy as np

from products.base import Context, Product
from schemas.arrays import CROP
from stages.crop import apply_crop, cut
from stages.depth import DepthError, zero_fill
from stages.diff import frame_diff


def depth_crops(row: dict, read_depth, where, box: tuple, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset raw crop, onset filled CROPxCROP, apex filled CROPxCROP) uint16; `read_depth`
    and `where` take the manifest's relative paths."""
    out = []
    raw_on = None
    for key in ("onset_depth_path", "apex_depth_path"):
        d = read_depth(row[key])
        c = cut(d, box) if d.shape[0] >= box[3] and d.shape[1] >= box[2] else None
        if c is None:
            raise DepthError(f"{where(row[key])}: depth size {d.shape} does not hold the colour crop box {box}")
        if raw_on is None:
            raw_on = c
        try:
            filled = zero_fill(c, params["depth"]["fill"], params["depth"]["window"])
        except DepthError as e:
            raise DepthError(f"{where(row[key])}: {e}") from None
        out.append(apply_crop(filled, (0, 0, c.shape[1], c.shape[0]), CROP, cv2.INTER_AREA))
    return raw_on, out[0], out[1]


def compute(ctx: Context) -> dict:
    t = time.perf_counter()
    _, on_d, ap_d = depth_crops(ctx.row, ctx.read_depth, ctx.where, ctx.box, ctx.params)
    ctx.timings["depth_ms"] = (time.perf_counter() - t) * 1e3
    return {"pairs/onset_depth": on_d, "pairs/apex_depth": ap_d, "pairs/depth_diff": frame_diff(ap_d, on_d)}


def has_depth_frames(row: dict, has_depth: bool) -> bool:
    return has_depth and isinstance(row.get("onset_depth_path"), str)


PRODUCT = Product(
    "depth",
    "1",
    depends=("crop",),
    inputs=("onset_depth_path", "apex_depth_path"),
    params=("depth",),
    compute=compute,
    applies=has_depth_frames,
    description="zero-filled depth crops with the colour box, their difference",
)
