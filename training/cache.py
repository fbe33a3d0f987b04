"""A local, read-only copy of a version's feed arrays for training epochs.

Reading a sample from the store goes through Zarr's codec pipeline and Icechunk (about
2-3 ms per 310x310 pair on one core, most of it per-chunk overhead and zstd decoding),
which a training loop pays on every epoch. The cache decodes each array once, shard by
shard (the store's fastest read), into one uncompressed `.npy` file per array and serves
rows from a memory map: per-sample reads then cost a page-cache copy, faster than one
.npy file per sample.

The cache is keyed by the snapshot id, which names immutable content, so a cached array
can never be stale; it is filled under a file lock (one filler per array across
DataLoader workers and concurrent jobs) and published by an atomic rename, so a killed
fill leaves nothing half-written. Give a Dataset `cache_dir` to use it (an argument,
never read from the environment); its size is the arrays' uncompressed size (the store's
`info` shows it).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np

from schemas.arrays import ARRAYS, RAGGED_SHARD, SHARD_SAMPLES


def cached_array(group, name: str, snapshot: str, root: Path) -> np.ndarray:
    """The array `name` of `group` (a read-only Zarr group of `snapshot`) as a read-only
    memory map under `root`, filled on first use."""
    folder = root / snapshot
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name.replace("/", "__") + ".npy")
    if not path.is_file():
        fd = os.open(folder / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another process may be filling it
            if not path.is_file():
                _fill(group[name], name, path)
        finally:
            os.close(fd)
    return np.load(path, mmap_mode="r")


def _fill(src, name: str, path: Path) -> None:
    step = RAGGED_SHARD if ARRAYS[name].ragged else SHARD_SAMPLES
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=src.dtype, shape=src.shape)
    for lo in range(0, src.shape[0], step):  # whole shards: one request, no re-reads
        out[lo : lo + step] = src[lo : lo + step]
    out.flush()
    del out
    os.replace(tmp, path)


class CachedGroup:
    """A version's Zarr group whose feed arrays `names` come from the local cache when a
    cache folder is set (other names, and everything without a cache, from the store)."""

    def __init__(self, group, snapshot: str, names, cache_dir: str | Path | None = None):
        root = Path(cache_dir).expanduser() if cache_dir else None
        self.group = group
        self.local = {n: cached_array(group, n, snapshot, root) for n in names} if root else {}

    def __getitem__(self, name: str):
        return self.local[name] if name in self.local else self.group[name]

    def __contains__(self, name: str) -> bool:
        return name in self.group


def take_rows(arr, index: np.ndarray) -> np.ndarray:
    """Rows `index` (any order, repeats allowed) of a cached memory map (one copy) or of a
    Zarr array (one batched orthogonal read of the distinct rows)."""
    if isinstance(arr, np.ndarray):
        return arr[index]
    uniq, inv = np.unique(index, return_inverse=True)
    return arr.oindex[uniq][inv]
