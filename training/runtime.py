"""The one device / seed / precision set-up every trainer starts with."""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass

import numpy as np
import torch

# "fp32": no autocast. "bf16": torch.autocast to bfloat16 (no loss scaling needed, so it
# runs on CPU and GPU alike); fp16 would need a gradient scaler and is not offered.
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def manual_seed(seed: int) -> None:
    """Seed torch (CPU and every GPU), numpy's legacy global generator and `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@dataclass(frozen=True)
class Runtime:
    device: str  # "cuda" or "cpu" (what .to() and the summaries take)
    precision: str = "fp32"

    def autocast(self):
        """The context the forward passes run in: autocast to the precision's dtype, or nothing for fp32."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=dtype)


def setup(device: str | None = None, seed: int | None = None, precision: str = "fp32") -> Runtime:
    """`device` (default: cuda when available, else cpu), every generator seeded with `seed`
    (None: left as they are), and the autocast of `precision` (PRECISIONS)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: unknown; known: {', '.join(PRECISIONS)}")
    if seed is not None:
        manual_seed(seed)
    return Runtime(device or ("cuda" if torch.cuda.is_available() else "cpu"), precision)


def start(configs: dict, config: str, device: str | None, precision: str | None) -> tuple[dict, Runtime]:
    """What every trainer does first: its config `config` of `configs`, and the runtime
    for `device` seeded with the config's seed, in `precision` (else the config's, else fp32)."""
    cfg = configs[config]
    return cfg, setup(device, cfg["seed"], precision or cfg.get("precision", "fp32"))


def stream_seed(*keys: int | str) -> int:
    """The seed of the random stream named by `keys` (ints or strings, e.g. run seed, fold,
    epoch, purpose): numpy's SeedSequence of the keys, so streams with different keys are
    independent and a stream is the same on every machine, worker layout and resume.
    Returns an int in [0, 2**63)."""
    entropy = [
        k if isinstance(k, int) else int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little") for k in keys
    ]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def torch_generator(*keys: int | str) -> torch.Generator:
    """A CPU torch.Generator seeded with stream_seed(*keys) (random parameters are drawn
    on the CPU, so they are the same whatever device the computation runs on)."""
    return torch.Generator().manual_seed(stream_seed(*keys))
