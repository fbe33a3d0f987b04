"""flow: onset -> apex optical flow of the pair's crops: Dual TV-L1 (`params.tvl1`) and
Farnebäck (`params.farneback`), the TV-L1 flow's optical strain and magnitude."""

from __future__ import annotations

import time

import numpy as np

from products.base import Context, Product
from products.crop import pair_crops
from stages.flow import farneback, magnitude, strain, tvl1


def compute(ctx: Context) -> dict:
    on_c, ap_c = pair_crops(ctx)
    t = time.perf_counter()
    f = tvl1(on_c, ap_c, **ctx.params["tvl1"])
    ctx.timings["tvl1_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    fb = farneback(on_c, ap_c, **ctx.params["farneback"])
    ctx.timings["farneback_ms"] = (time.perf_counter() - t) * 1e3
    return {
        "pairs/flow_tvl1": f.astype(np.float16),
        "pairs/flow_farneback": fb.astype(np.float16),
        "pairs/strain_tvl1": strain(f).astype(np.float16),
        "pairs/flowmag_tvl1": magnitude(f).astype(np.float16),
    }


PRODUCT = Product(
    "flow",
    "1",
    depends=("crop",),
    inputs=(),
    params=("tvl1", "farneback"),
    compute=compute,
    description="TV-L1 and Farnebäck flow onset -> apex, strain, magnitude",
)
