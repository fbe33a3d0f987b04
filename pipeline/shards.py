"""Writing one write shard of a run's arrays: runs on a dask worker.

A writer task owns whole shards (SHARD_SAMPLES samples, and the whole shards of the
ragged arrays that hold their clips), so writers never touch the same object; each
writes through its own forked session, merged by the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from pipeline.faults import trace
from pipeline.store import Store, sample_sha
from products.base import PENDING
from schemas.arrays import ARRAYS


@dataclass
class Slot:
    """One sample of a shard: `compute` (its arrays are the clip task's result) or `copy`
    (from row `old_index` of the parent version). region / old_region: (start, length) of
    its clip in the ragged arrays now / in the parent (None without clip products)."""

    index: int
    action: str
    old_index: int | None
    region: tuple | None
    old_region: tuple | None


class ShardBuffer:
    """The values one writer task puts into its shard, written with one call per array:
    a shard written sample by sample would store a new shard object per sample (Icechunk
    keeps every superseded one until garbage collection) and re-encode it each time."""

    def __init__(self):
        self.rows: dict[str, dict[int, np.ndarray]] = {}  # array -> first row -> rows

    def put(self, name: str, index: int, value, region: tuple | None) -> str | None:
        """Buffer one sample's value; returns the sha256 of what will be written."""
        spec = ARRAYS[name]
        value = np.asarray(value, dtype=spec.dtype)
        if spec.ragged:
            if region is None or not region[1]:
                return None
            self.rows.setdefault(name, {})[region[0]] = value
        else:
            self.rows.setdefault(name, {})[index] = value[None]
        return sample_sha(value, spec.dtype)

    def flush(self, group) -> None:
        """Write each array's buffered rows as one block (rows of the region this run
        keeps are read back first, so they are written unchanged)."""
        for name, parts in self.rows.items():
            starts = sorted(parts)
            lo, hi = starts[0], max(s + len(parts[s]) for s in starts)
            covered = sum(len(p) for p in parts.values()) == hi - lo and all(
                a + len(parts[a]) == b for a, b in zip(starts, starts[1:])
            )
            if covered:
                block = np.concatenate([parts[s] for s in starts])
            else:
                block = np.asarray(group[name][lo:hi])
                for s in starts:
                    block[s - lo : s - lo + len(parts[s])] = parts[s]
            group[name][lo:hi] = block


def _zeros(name: str, region: tuple | None) -> np.ndarray:
    """The value an excluded sample's row holds in array `name`."""
    spec = ARRAYS[name]
    n = region[1] if spec.ragged and region else 1
    return np.zeros((n, *spec.shape) if spec.ragged else spec.shape, spec.dtype)


def _put_computed(buf: ShardBuffer, slot: Slot, res: dict, array_names: list[str]) -> dict:
    """Buffer a computed sample's arrays (zeros for an excluded one); returns the shas."""
    if res["status"] == "ok":
        if PENDING in res["arrays"]:  # an engine error: never store a sample without its flows
            raise RuntimeError(f"sample row {slot.index}: its TV-L1 flows were never computed (still pending)")
        return {name: buf.put(name, slot.index, arr, slot.region) for name, arr in res["arrays"].items()}
    return {name: buf.put(name, slot.index, _zeros(name, slot.region), slot.region) for name in array_names}


def _put_copied(buf: ShardBuffer, slot: Slot, array_names: list[str], old_group) -> dict:
    """Buffer a moved sample's arrays read from its old row; returns the shas."""
    shas = {}
    for name in array_names:
        if name not in old_group:
            continue
        if not ARRAYS[name].ragged:
            shas[name] = buf.put(name, slot.index, old_group[name][slot.old_index], None)
        elif slot.old_region is not None and slot.region is not None:
            lo, n = slot.old_region
            shas[name] = buf.put(name, slot.index, old_group[name][lo : lo + n], slot.region)
    return shas


def write_shard(
    fork, store_path: str, parent: str | None, slots: list[Slot], array_names: list[str], computed: dict[int, dict]
):
    """Write the slots of one shard through the forked session `fork`; `computed`: the
    clip task results of its `compute` slots, by index. Returns (fork, infos, shas):
    infos = [(index, task result without arrays, or None for a copy)], shas[index] =
    {array: sha256 of the values written}."""
    group = zarr.open_group(fork.store, mode="r+")
    buf = ShardBuffer()
    old_group = None
    infos, shas = [], {}
    for slot in slots:
        if slot.action == "compute":
            res = computed[slot.index]
            shas[slot.index] = _put_computed(buf, slot, res, array_names)
            infos.append((slot.index, {k: v for k, v in res.items() if k != "arrays"}))
        elif slot.action == "copy":
            if old_group is None:
                old_group = Store(store_path, create=False).group(parent)
            shas[slot.index] = _put_copied(buf, slot, array_names, old_group)
            infos.append((slot.index, None))
    buf.flush(group)
    trace("wrote " + ",".join(str(s.index) for s in slots))  # the cluster tests only (MEPIPE_TRACE)
    return fork, infos, {i: {k: v for k, v in d.items() if v} for i, d in shas.items()}
