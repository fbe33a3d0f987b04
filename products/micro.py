"""micro (seed 004): landmarks on the apex frame; the apex magnified x alpha against the
onset (Eulerian, or Oh et al.'s learned network from a local state_dict,
`params.magnify`); TV-L1 flow onset -> magnified apex at FLOW224 x FLOW224; the apex
landmarks in that image. The Eulerian magnification and the resize to 224 run where
the flow does (`EulerianPair`: in the clip task, or on the GPU in its shard's flow
batch with the torch backend, with the same pixels); the learned magnifier runs on the
GPU in the clip task."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
    alpha, levels = params["magnify"]["alpha"], params["magnify"]["levels"]
    if not learned(params):  # magnified where the flow is computed: on the GPU with the torch backend
        pending = PendingFlow(on_c, ap_c, flow224_arrays, "micro_tvl1_ms", EulerianPair(alpha, levels, FLOW224))
    else:
        from stages.magnet import magnify_pair_learned

        t = time.perf_counter()
        s = LEARNED_SIZE
        mag = magnify_pair_learned(ctx.load_model(params["magnify"]["weights"]), on_c[:s, :s], ap_c[:s, :s], alpha)
        mag = np.pad(mag, ((0, CROP - s), (0, CROP - s), (0, 0)), mode="edge")
        small = shrink(on_c, FLOW224), shrink(to_uint8(mag), FLOW224)
        tm["magnify_ms"] = (time.perf_counter() - t) * 1e3
        pending = PendingFlow(small[0], small[1], flow224_arrays, "micro_tvl1_ms")
    return {"micro/apex_landmarks224": landmarks_to_crop(lm, ctx.box, FLOW224), PENDING: [pending]}


def to_uint8(img: np.ndarray) -> np.ndarray:
    """A magnified image (float, not clipped) as stored pixels: rounded half to even, clipped."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def shrink(img: np.ndarray, size: int) -> np.ndarray:
    """The feed's size x size image: OpenCV's area resize (the flow is computed at 224
    directly, half the TV-L1 cost of 310)."""
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class EulerianPair:
    """Seed 004's flow pair from the crops (a products.base.PairPrep): the apex magnified
    x alpha against the onset (linear Eulerian, `levels` Laplacian levels), rounded to
    uint8, and both crops shrunk to size x size by area. `one`: numpy/OpenCV
    (stages.temporal); `batch`: torch (stages.magnify_torch), the same pixels."""

    alpha: float
    levels: int
    size: int
    timing: str = "magnify_ms"

    def one(self, onset: np.ndarray, apex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mag = magnify_pair(onset.astype(np.float32), apex.astype(np.float32), self.alpha, self.levels)
        return shrink(onset, self.size), shrink(to_uint8(mag), self.size)

    def batch(self, onset, apex) -> tuple:
        from stages.magnify_torch import magnified_pairs

        return magnified_pairs(onset, apex, self.alpha, self.levels, self.size)


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
