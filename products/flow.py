"""flow: onset -> apex optical flow of the pair's crops: Dual TV-L1 (`params.tvl1`) and
Farnebäck (`params.farneback`), the TV-L1 flow's optical strain and magnitude."""

from __future__ import annotations

import time

import numpy as np

from products.base import PENDING, Context, PendingFlow, Product
from products.crop import pair_crops
from stages.flow import farneback, magnitude, strain


def tvl1_arrays(f: np.ndarray) -> dict:
    """The group's arrays of the onset -> apex TV-L1 flow f (310, 310, 2) float32."""
    return {
        "pairs/flow_tvl1": f.astype(np.float16),
        "pairs/strain_tvl1": strain(f).astype(np.float16),
        "pairs/flowmag_tvl1": magnitude(f).astype(np.float16),
    }


def compute(ctx: Context) -> dict:
    """Farnebäck now; the TV-L1 flow of the crops is left to the engine (PendingFlow)."""
    on_c, ap_c = pair_crops(ctx)
    t = time.perf_counter()
    fb = farneback(on_c, ap_c, **ctx.params["farneback"])
    ctx.timings["farneback_ms"] = (time.perf_counter() - t) * 1e3
    return {"pairs/flow_farneback": fb.astype(np.float16), PENDING: [PendingFlow(on_c, ap_c, tvl1_arrays, "tvl1_ms")]}


PRODUCT = Product(
    "flow",
    "1",
    depends=("crop",),
    inputs=(),
    params=("tvl1", "farneback"),
    compute=compute,
    gpu=lambda params: params["tvl1"]["backend"] == "torch",
    description="TV-L1 and Farnebäck flow onset -> apex, strain, magnitude",
)
