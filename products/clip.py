"""clip: the whole clip onset..offset (`seq_paths`): every frame aligned by the onset's
eye angle and crop box to ALIGN x ALIGN (ragged) and TIM_SIZE; dynamic images of
DI_FRAMES uniformly sampled frames (seed 003); TIM to TIM_FRAMES frames and the
Farnebäck flow between consecutive ones (seed 002, `params.farneback`)."""

from __future__ import annotations

import time

import numpy as np

from products.base import Context, Product
from schemas.arrays import ALIGN, DI_FRAMES, TIM_FRAMES, TIM_SIZE
from stages.align import warp_faces
from stages.diff import rgb_to_gray
from stages.flow import farneback
from stages.temporal import dynamic_image, tim_interpolate, uniform_indices


def compute(ctx: Context) -> dict:
    t = time.perf_counter()
    f72, f112 = [], []
    for ref in list(ctx.row["seq_paths"]):
        a72, a112 = warp_faces(ctx.read_rgb(ref), ctx.angle, ctx.box, (ALIGN, TIM_SIZE))
        f72.append(a72)
        f112.append(a112)
    f72, f112 = np.stack(f72), np.stack(f112)
    ctx.timings["clip_read_align_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    pick = f72[uniform_indices(len(f72), DI_FRAMES)]
    gray = np.stack([rgb_to_gray(f) for f in pick])
    tim = tim_interpolate(f112, TIM_FRAMES)
    flows = np.stack([farneback(tim[k], tim[k + 1], **ctx.params["farneback"]) for k in range(TIM_FRAMES - 1)])
    ctx.timings["clip_products_ms"] = (time.perf_counter() - t) * 1e3
    return {
        "clips/frames72": f72,
        "fdp/dynamic_image": dynamic_image(gray).astype(np.float16),
        "fdp/dynamic_image_rgb": dynamic_image(pick).astype(np.float16),
        "attrcl/rgb16": tim,
        "attrcl/flow16": flows.astype(np.float16),
    }


PRODUCT = Product(
    "clip",
    "1",
    depends=("crop",),
    inputs=("seq_paths",),
    params=("farneback",),
    compute=compute,
    description="aligned whole clips, dynamic images, TIM frames and their flow",
)
