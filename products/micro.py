"""micro (seed 004): landmarks on the apex frame; the apex magnified x alpha against the
onset (Eulerian, or Oh et al.'s learned network from a local state_dict,
`params.magnify`); TV-L1 flow onset -> magnified apex at FLOW224 x FLOW224; the apex
landmarks in that image. The learned magnifier is the one GPU stage."""

from __future__ import annotations

import time

import cv2
import numpy as np

from products.base import PENDING, Context, Excluded, PendingFlow, Product
from products.crop import pair_crops
from schemas.arrays import CROP, FLOW224
from stages.crop import landmarks_to_crop
from stages.temporal import magnify_pair

LEARNED_SIZE = CROP - CROP % 4  # the learned network needs sides divisible by 4 (308 for 310)


def learned(params: dict) -> bool:
    return params["magnify"]["method"] == "learned"


def model_file(params: dict) -> str | None:
    """The learned magnifier's local weights (declared: part of the fingerprint, checked
    before any work)."""
    return params["magnify"]["weights"] if learned(params) else None


def compute(ctx: Context) -> dict | Excluded:
    on_c, ap_c = pair_crops(ctx)
    params, tm = ctx.params, ctx.timings
    t = time.perf_counter()
    lm = ctx.landmarks(params["face"], ctx.state["apex"])
    tm["apex_face_ms"] = (time.perf_counter() - t) * 1e3
    if lm is None:
        return Excluded(
            "micro",
            "no_face_apex",
            f"no face found on the apex frame {ctx.where(ctx.row['apex_path'])} (needed for seed 004's landmarks)",
        )
    t = time.perf_counter()
    alpha = params["magnify"]["alpha"]
    if learned(params):
        from stages.magnet import magnify_pair_learned

        s = LEARNED_SIZE
        mag = magnify_pair_learned(ctx.load_model(params["magnify"]["weights"]), on_c[:s, :s], ap_c[:s, :s], alpha)
        mag = np.pad(mag, ((0, CROP - s), (0, CROP - s), (0, 0)), mode="edge")
    else:
        mag = magnify_pair(on_c.astype(np.float32), ap_c.astype(np.float32), alpha, params["magnify"]["levels"])
    mag = np.clip(np.rint(mag), 0, 255).astype(np.uint8)
    tm["magnify_ms"] = (time.perf_counter() - t) * 1e3
    # flow computed at the feed's 224x224 directly (half the TV-L1 cost of 310), by the engine
    small = [cv2.resize(x, (FLOW224, FLOW224), interpolation=cv2.INTER_AREA) for x in (on_c, mag)]
    return {
        "micro/apex_landmarks224": landmarks_to_crop(lm, ctx.box, FLOW224),
        PENDING: [PendingFlow(small[0], small[1], flow224_arrays, "micro_tvl1_ms")],
    }


def flow224_arrays(f: np.ndarray) -> dict:
    """The group's array of the onset -> magnified apex flow f (224, 224, 2) float32."""
    return {"micro/flow224": f.astype(np.float16)}


PRODUCT = Product(
    "micro",
    "2",
    depends=("crop",),
    inputs=("apex_path",),
    params=("face", "magnify", "tvl1"),
    compute=compute,
    model=model_file,
    gpu=lambda params: learned(params) or params["tvl1"]["backend"] == "torch",
    description="flow of the x alpha magnified pair at 224 + apex landmarks (seed 004)",
)
