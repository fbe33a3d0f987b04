"""Epoch checkpoints that make a resumed run equal an uninterrupted one (issue 16, item 7).

A checkpoint holds, after a finished epoch, the state of every object that changes while
training (model, optimiser, scheduler: anything with `state_dict`) and of every global
random generator (torch's CPU and CUDA generators, numpy's legacy generator, Python's
`random`). Everything else random in an epoch is drawn from streams named by (seed, fold,
epoch) (training.runtime.stream_seed, training.samplers.EpochSampler), so it needs no
saving: a run killed in the middle of epoch e resumes from the end of epoch e - 1 and
draws epoch e exactly as the uninterrupted run did.

Files are written whole or not at all (a temporary file, then a rename) and read with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
    """Every global random generator's state, in types `weights_only` loading accepts."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "python": random.getstate(),
    }


def restore_rng(state: dict) -> None:
    """Set every global random generator to `state` (rng_state's)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])


class EpochCheckpoint:
    """The checkpoint file `path` of one training loop (a fold, a pretraining) over the
    stateful `objects` ({name: object with state_dict/load_state_dict}).

        ck = EpochCheckpoint(out / "checkpoints" / "fold_003.pt", model=model, opt=opt)
        for epoch in range(ck.resume(device), epochs):
            ...                     # one epoch
            ck.save(epoch + 1)
        ck.discard()                # when the loop's result is kept elsewhere
    """

    def __init__(self, path: str | Path, **objects):
        self.path, self.objects = Path(path), objects

    def resume(self, device: str | torch.device = "cpu") -> int:
        """Restore the objects and generators from the file; the number of finished epochs
        (0 when there is no file)."""
        if not self.path.is_file():
            return 0
        st = torch.load(self.path, map_location=device, weights_only=True)
        for name, obj in self.objects.items():
            obj.load_state_dict(st["objects"][name])
        restore_rng(st["rng"])
        return int(st["epochs"])

    def save(self, epochs: int) -> None:
        """Write the state after `epochs` finished epochs (whole or not at all)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.part")
        state = {"epochs": epochs, "rng": rng_state(), "objects": {n: o.state_dict() for n, o in self.objects.items()}}
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
