"""The contract of a product: one declared unit of per-sample work (Kedro's node, timm's
registry entry), one file each in products/.

A product says what it is (name, version), what it reads (the products it builds on,
the manifest fields whose files it reads, the parameter stages it uses), what it
writes (the arrays of schemas.arrays whose `group` is its name), when it applies to a
sample, whether it needs a GPU or a model file, and how it computes: `compute(ctx)`
calls stages/ and returns {array name: per-sample array} or an Excluded. Its
fingerprint is derived from that declaration alone (`fingerprint`), so a changed
parameter, input file, version, dependency or declared array shape recomputes it by
construction.

Products are pure of I/O: frames, depth maps, landmarks and model files reach them
through the Context the engine builds (pipeline/tasks.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from schemas.arrays import ArraySpec, arrays_of_group

FINGERPRINT_SCHEME = "2"  # 2: fingerprints derived from the products' declarations (issue 14)
# parameters added after stores were made, left out of a fingerprint at the value those
# stores were computed with, so that their fingerprints (and arrays) stay valid
FINGERPRINT_OMITS = {("tvl1", "backend"): "opencv"}


def fingerprint_params(params: dict, stages: tuple) -> dict:
    """The parameters of `stages` as a fingerprint sees them (FINGERPRINT_OMITS left out)."""
    return {k: {p: v for p, v in params[k].items() if FINGERPRINT_OMITS.get((k, p), object()) != v} for k in stages}


@dataclass(frozen=True)
class Excluded:
    """Why a sample has no arrays of a product: stage, reason code, a message naming the file."""

    stage: str
    reason: str
    detail: str


# the key of a product's result listing the TV-L1 flows it still needs (PendingFlow)
PENDING = "_pending_flows"


class PairPrep(Protocol):
    """What turns a pending flow's (src, dst) into the pair the flow is computed on (seed
    004: magnify the apex, shrink both), in two implementations that give the same
    pixels: `one` with numpy/OpenCV for one pair in the clip task, `batch` with torch for
    uint8 (N, H, W, C) tensors on the device of the shard's flow batch. Hashable and
    compared by value: the engine batches the pairs of equal preps together. `timing`
    is the ctx.timings key of its ms."""

    timing: str

    def one(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def batch(self, src, dst) -> tuple: ...


@dataclass(frozen=True)
class PendingFlow:
    """A TV-L1 flow src -> dst a product needs, computed by the engine after the products:
    at once in the clip task (`params.tvl1.backend` opencv, or torch without a GPU), or
    with the other samples' of its write shard in one batch on a GPU. `prepare`, when
    set, makes the flow's pair from (src, dst) first, where the flow is computed (on
    the GPU with it). `finish(flow)` maps the float32 (H, W, 2) flow (u, v in pixels) to
    the product's arrays; `timing` is the ctx.timings key of its ms. src, dst: uint8
    (H, W, 3) RGB or (H, W) gray, one size."""

    src: np.ndarray
    dst: np.ndarray
    finish: Callable[[np.ndarray], dict]
    timing: str
    prepare: PairPrep | None = None


@dataclass
class Context:
    """What a product's compute sees of one sample. Filled by the engine: `row` (the
    manifest row), `params` (all stage parameters), `timings` (ms per step, written by
    the products), and the I/O callbacks; `box`/`angle` are the stored crop box and eye
    angle when the crop product is not recomputed (crop sets them otherwise), `state`
    holds what one product hands the next (the crops of the pair, the full apex frame)."""

    row: dict
    params: dict
    read_rgb: Callable[[str], np.ndarray]  # path relative to the dataset root -> (H, W, 3) uint8
    read_depth: Callable[[str], np.ndarray]  # -> (H, W) uint16
    landmarks: Callable[[dict, np.ndarray], np.ndarray | None]  # (face params, RGB) -> (68, 2) or None
    load_model: Callable[[str], object]  # a model file a product declared -> loaded model
    where: Callable[[str], str] = str  # path relative to the root -> as messages name it
    box: tuple | None = None
    angle: float | None = None
    landmark_backend: str | None = None
    timings: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Product:
    """A declared product. `params` are the keys of the stage-parameter mapping it reads;
    `inputs` the manifest fields whose files it reads (a field may hold a list of paths);
    `applies(row, has_depth)` whether a sample gets it at all; `model(params)` the local
    model file it needs (None: none); `gpu(params)` whether its task wants a GPU worker."""

    name: str
    version: str
    depends: tuple
    inputs: tuple
    params: tuple
    compute: Callable[[Context], dict | Excluded]
    applies: Callable[[dict, bool], bool] = lambda row, has_depth: True
    model: Callable[[dict], str | None] = lambda params: None
    gpu: Callable[[dict], bool] = lambda params: False
    description: str = ""

    @property
    def arrays(self) -> list[ArraySpec]:
        return arrays_of_group(self.name)

    def fingerprint(
        self, row: dict, params: dict, has_depth: bool, file_hash: Callable[[str], str], upstream: dict
    ) -> str | None:
        """sha256 (32 hex) of the declaration as it applies to `row`: name, version, the
        declared parameters, the checksums of the declared input files, the upstream
        products' fingerprints, the declared arrays' per-sample shapes and dtypes and the
        checksum of a declared model file. None when the product does not apply."""
        if not self.applies(row, has_depth):
            return None
        files = []
        for key in self.inputs:
            v = row.get(key)
            refs = list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v]
            files.append([file_hash(r) if isinstance(r, str) else None for r in refs])
        model = self.model(params)
        doc = [
            FINGERPRINT_SCHEME,
            self.name,
            self.version,
            fingerprint_params(params, self.params),
            files,
            [upstream[d] for d in self.depends],
            {a.name: [list(a.shape), a.dtype] for a in self.arrays},
            file_hash(model) if model else None,
        ]
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:32]
