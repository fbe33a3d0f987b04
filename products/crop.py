"""crop: the onset/apex pair cut on the onset frame's landmarks (seed 000 sec. 4.1.2).

Reads the onset and apex frames; 68 landmarks on the onset frame define the box (brow
edge extended, `params.crop`), both frames are cut at the same pixel positions and
resized to CROP x CROP; writes the crops, the onset landmarks in crop coordinates and
the apex - onset differences (RGB and gray, seed 000 eq. 5-6). Sets the context's box,
eye angle and landmark backend for the products that build on it.
"""

from __future__ import annotations

import time

import numpy as np

from products.base import Context, Excluded, Product
from schemas.arrays import CROP
from stages.align import eye_angle
from stages.crop import apply_crop, crop_box, landmarks_to_crop
from stages.diff import frame_diff, rgb_to_gray


class SizeMismatch(ValueError):
    """Onset and apex frames of one sample differ in size (raised as a frame read problem)."""


def compute(ctx: Context) -> dict | Excluded:
    row, params, tm = ctx.row, ctx.params, ctx.timings
    t = time.perf_counter()
    onset = ctx.read_rgb(row["onset_path"])
    apex = ctx.read_rgb(row["apex_path"])
    tm["read_ms"] = (time.perf_counter() - t) * 1e3
    if onset.shape != apex.shape:
        raise SizeMismatch(
            f"{ctx.where(row['apex_path'])}: size {apex.shape[:2]} differs from onset "
            f"frame {row['onset_path']} {onset.shape[:2]}"
        )
    t = time.perf_counter()
    lm = ctx.landmarks(params["face"], onset)
    tm["face_ms"] = (time.perf_counter() - t) * 1e3
    if lm is None:
        return Excluded(
            "face",
            "no_face",
            f"no face found on the onset frame {ctx.where(row['onset_path'])} (backend {params['face']['backend']})",
        )
    t = time.perf_counter()
    box = crop_box(lm, onset.shape[:2], **params["crop"])
    on_c = apply_crop(onset, box, CROP)
    ap_c = apply_crop(apex, box, CROP)
    tm["crop_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    arrays = {
        "pairs/onset_rgb": on_c,
        "pairs/apex_rgb": ap_c,
        "pairs/onset_landmarks": landmarks_to_crop(lm, box, CROP),
        "pairs/rgb_diff": frame_diff(ap_c, on_c),
        "pairs/gray_diff": frame_diff(rgb_to_gray(ap_c), rgb_to_gray(on_c)),
    }
    tm["diff_ms"] = (time.perf_counter() - t) * 1e3
    ctx.box = tuple(int(v) for v in box)
    # rounded to the manifest's float32 so a later partial recompute uses the same angle
    ctx.angle = float(np.float32(eye_angle(lm)))
    ctx.landmark_backend = params["face"]["backend"]
    ctx.state.update(crops=(on_c, ap_c), apex=apex)
    return arrays


def pair_crops(ctx: Context) -> tuple:
    """(onset crop, apex crop) of the sample: the crop product's, or the stored box applied
    again when only a product downstream of the crop is recomputed."""
    if "crops" not in ctx.state:
        t = time.perf_counter()
        apex = ctx.read_rgb(ctx.row["apex_path"])
        crops = (apply_crop(ctx.read_rgb(ctx.row["onset_path"]), ctx.box, CROP), apply_crop(apex, ctx.box, CROP))
        ctx.timings["read_ms"] = (time.perf_counter() - t) * 1e3
        ctx.state.update(crops=crops, apex=apex)
    return ctx.state["crops"]


PRODUCT = Product(
    "crop",
    "1",
    depends=(),
    inputs=("onset_path", "apex_path"),
    params=("face", "crop"),
    compute=compute,
    description="onset/apex crops on the onset landmarks, their differences",
)
