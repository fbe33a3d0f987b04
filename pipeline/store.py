"""The versioned store: one Icechunk repository per dataset.

- Arrays: Zarr v3, sharding codec, chunk = 1 sample, shard = SHARD_SAMPLES samples, one
  writer task per shard (see schemas.arrays).
- Tables: Parquet bytes stored inside the same repository as 1-D uint8 arrays under
  ``tables/<name>`` (attrs: format, sha256, rows), so a table is committed in the same
  transaction as the arrays it describes and is pinned to that snapshot.
- One run = one commit on ``main``: the run works on a scratch branch (layout commit,
  parallel writes through forked sessions, then `amend` into one commit) and ``main``
  is moved to it only at the end, so a killed run never leaves ``main`` half-written.
- LocalFileSystem storage allows one committer at a time: `lock()` takes a file lock.
"""

from __future__ import annotations

import atexit
import dataclasses
import fcntl
import gc
import hashlib
import io
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import icechunk as ic  # (pipeline/__init__.py sets ICECHUNK_LOG before any import of it)
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from schemas.arrays import ARRAYS, SAMPLE_ID_DESCRIPTION, bytes_dims, coordinate_paths

# Icechunk sessions and zarr groups left in reference cycles are otherwise collected
# during interpreter shutdown, where their native code can crash the process after its
# work is done (a segfault at exit: 8 in 270 runs of a script holding a Store here, 0 in
# 480 with the cycles collected first). Collected at exit instead, while the runtime is
# whole (atexit runs this before zarr's own clean-up, registered earlier).
atexit.register(gc.collect)

BRANCH = "main"


class StoreLockedError(RuntimeError):
    pass


class Store:
    """A dataset's store. `path` is a local folder or ``s3://bucket/prefix`` (a published
    store, read-only here), optionally with ``@<tag>``: then `head()` is that tag's
    snapshot, so every reader (training included) reads the tagged version."""

    def __init__(self, path: str | Path, create: bool = True):
        from pipeline.remote import icechunk_storage, is_remote, parse_url, split_tag

        base, self.ref_tag = split_tag(str(path))
        self.remote = is_remote(base)
        if self.remote:
            loc = parse_url(base)
            self.path = Path(loc.url)
            storage = icechunk_storage(loc)
            create = False
        else:
            self.path = Path(base)
            storage = ic.local_filesystem_storage(str(self.path))
        if ic.Repository.exists(storage):
            self.repo = ic.Repository.open(storage)
            if self.ref_tag and self.ref_tag not in self.repo.list_tags():
                raise KeyError(f"{base}: no tag {self.ref_tag!r}; tags: {sorted(self.repo.list_tags())}")
        elif self.remote:
            raise FileNotFoundError(f"no published store at {base}")
        elif create:
            self.path.mkdir(parents=True, exist_ok=True)
            self.repo = ic.Repository.create(storage)
            s = self.repo.writable_session(BRANCH)
            zarr.open_group(s.store, mode="w", attributes={"mepipe_store": 1})
            s.commit("create store")
        else:
            raise FileNotFoundError(f"no store at {self.path} (run `mepipe preprocess` first)")

    # -- locking -------------------------------------------------------------------
    def lock(self, wait: float = 0.0, log=print):
        """Hold the store's run lock (see `store_lock`); a published store is read-only."""
        if self.remote:
            raise StoreLockedError(f"{self.path} is a published store: read-only here")
        return store_lock(self.path, wait, log)

    # -- reading -------------------------------------------------------------------
    def head(self) -> str:
        """The snapshot readers get: the tag given with the path, else main's head."""
        if self.ref_tag:
            return self.repo.lookup_tag(self.ref_tag)
        return self.repo.lookup_branch(BRANCH)

    def session(self, snapshot_id: str | None = None, tag: str | None = None):
        if tag:
            return self.repo.readonly_session(tag=tag)
        if snapshot_id:
            return self.repo.readonly_session(snapshot_id=snapshot_id)
        return self.repo.readonly_session(snapshot_id=self.head())

    def group(self, snapshot_id: str | None = None, tag: str | None = None) -> zarr.Group:
        return zarr.open_group(self.session(snapshot_id, tag).store, mode="r")

    def table(self, name: str, snapshot_id: str | None = None, tag: str | None = None) -> pd.DataFrame | None:
        g = self.group(snapshot_id, tag)
        try:
            arr = g[f"tables/{name}"]
        except KeyError:
            return None
        return read_table_array(arr).to_pandas()

    def versions(self) -> list[dict]:
        out, tags = [], {}
        for t in sorted(self.repo.list_tags()):
            tags.setdefault(self.repo.lookup_tag(t), []).append(t)
        for s in self.repo.ancestry(snapshot_id=self.head()):
            out.append(
                {
                    "snapshot": s.id,
                    "written_at": s.written_at,
                    "message": s.message,
                    "metadata": s.metadata,
                    "tags": tags.get(s.id, []),
                }
            )
        return out

    def info(self, snapshot_id: str | None = None) -> dict:
        g = self.group(snapshot_id)
        arrays = {}
        for name in ARRAYS:
            try:
                a = g[name]
            except KeyError:
                continue
            arrays[name] = {
                "shape": a.shape,
                "dtype": str(a.dtype),
                "chunks": a.chunks,
                "shards": a.shards,
                "stored_bytes": a.nbytes_stored(),
            }
        man = self.table("manifest", snapshot_id)
        counts = man["status"].value_counts().to_dict() if man is not None else {}
        return {"arrays": arrays, "counts": counts}


def sample_sha(value, dtype: str) -> str:
    """sha256 of one sample's values as stored (C order, the array's dtype)."""
    return hashlib.sha256(np.ascontiguousarray(value, dtype=dtype).tobytes()).hexdigest()


def one_line(e: BaseException) -> str:
    """An error as one line, "Type: first line" (storage errors carry multi-line traces)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


@contextmanager
def store_lock(path: Path, wait: float = 0.0, log=print):
    """Hold the run lock of the store at `path` (a file beside it, so it can be taken
    before the store exists: two first runs do not both create it). A held lock is an
    error at once (wait=0) or after waiting up to `wait` seconds (scheduled runs). The
    OS releases it when the holder dies, `kill -9` included."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lockfile = path.parent / f"{path.name}.lock"
    fd = os.open(lockfile, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline, said = time.monotonic() + wait, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait:.0f} s" if wait else ""
                    raise StoreLockedError(
                        f"store {path} is locked by another run ({holder}){waited}; wait for it to finish"
                    ) from None
                if not said:
                    log(f"store {path} is locked by another run ({holder}); waiting up to {wait:.0f} s")
                    said = True
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)


def array_metadata_sha(arr) -> str:
    """sha256 of what an array says about itself (shape, dtype, attributes: units,
    description, dimension names ...): recorded at commit, re-checked by verify."""
    spec = {"shape": list(arr.shape), "dtype": str(arr.dtype), "attrs": dict(arr.attrs)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _write_bytes(group: zarr.Group, path: str, raw: bytes, attrs: dict) -> str:
    """Store `raw` as a 1-D uint8 array at `path` (replacing one there) with its sha256
    in the attributes; returns the sha256."""
    data = np.frombuffer(raw, dtype=np.uint8)
    sha = hashlib.sha256(raw).hexdigest()
    if path in group:
        del group[path]
    arr = group.create_array(
        path,
        shape=data.shape,
        dtype="uint8",
        chunks=(max(len(data), 1),),
        fill_value=0,
        dimension_names=bytes_dims(path),
    )
    arr[:] = data
    arr.attrs.update({**attrs, "sha256": sha})
    return sha


def _read_bytes(arr, what: str) -> bytes:
    """The bytes of a uint8 array written by `_write_bytes`, checked against its sha256."""
    data = arr[:].tobytes()
    want = arr.attrs.get("sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise IOError(f"{what}: checksum mismatch (stored {want})")
    return data


def write_text_array(group: zarr.Group, path: str, text: str) -> str:
    """Store UTF-8 text (the dataset card) as a uint8 array; returns its sha256."""
    return _write_bytes(group, path, text.encode(), {"format": "markdown"})


def read_text_array(arr) -> str:
    return _read_bytes(arr, arr.path).decode()


def write_table_array(group: zarr.Group, name: str, table: pa.Table) -> str:
    """Store `table` as Parquet bytes in ``tables/<name>``; returns the sha256."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return _write_bytes(
        group,
        f"tables/{name}",
        buf.getvalue(),
        {"format": "parquet", "rows": table.num_rows, "columns": table.schema.names},
    )


def read_table_array(arr) -> pa.Table:
    return pq.read_table(io.BytesIO(_read_bytes(arr, f"table {arr.path}")))


class StoreLayoutError(ValueError):
    pass


def set_dimension_names(arr, names: tuple[str, ...]) -> None:
    """Rewrite an existing array's metadata with `names` as its dimension_names (only its
    zarr.json changes: no chunk is read or written). Zarr has no public call for this;
    the array's own metadata writer is used."""
    from zarr.core.sync import sync

    sync(arr._async_array._save_metadata(dataclasses.replace(arr.metadata, dimension_names=names), False))


def stale_array_metadata(group: zarr.Group) -> list[str]:
    """The declared arrays in `group` whose dimension names or CF attributes differ from
    schemas/arrays.py (a store made before they were declared): a run writes them in a
    metadata-only version."""
    out = []
    for name, spec in ARRAYS.items():
        if name in group:
            a = group[name]
            if (
                a.metadata.dimension_names != spec.dimension_names
                or not spec.cf_attrs.items() <= a.attrs.asdict().items()
            ):
                out.append(name)
    return out + [c for c in coordinate_paths(group) if c not in group]


def sample_ids_in_order(manifest: pd.DataFrame) -> pd.Series:
    """The manifest's sample ids in row (`index`) order: what a group's coordinate holds."""
    return manifest.sort_values("index")["sample_id"]


def write_sample_ids(group: zarr.Group, manifest: pd.DataFrame) -> None:
    """(Re)write the sample-id coordinate of every group holding per-sample arrays: the
    manifest's sample_id of each row, in `index` order (schemas.arrays.SAMPLE_ID)."""
    ids = sample_ids_in_order(manifest).to_numpy(dtype=str)
    for path in coordinate_paths(group):
        a = group.create_array(
            path, shape=ids.shape, dtype=str, chunks=(max(len(ids), 1),), dimension_names=("sample",), overwrite=True
        )
        a[:] = ids
        a.attrs.update({"long_name": SAMPLE_ID_DESCRIPTION, "units": "1"})


def ensure_arrays(group: zarr.Group, names: list[str], n: int, attrs: dict) -> None:
    """Create the arrays `names` with n samples, or resize existing ones to n. An existing
    array whose per-sample shape or dtype differs from its declaration is refused
    (StoreLayoutError): a product's declared size changed, and its old values would be
    mixed with new ones of another size."""
    for name in names:
        spec = ARRAYS[name]
        if name in group:
            a = group[name]
            if tuple(a.shape[1:]) != tuple(spec.shape) or str(a.dtype) != spec.dtype:
                raise StoreLayoutError(
                    f"store array {name} holds per-sample shape {tuple(a.shape[1:])} {a.dtype}, but schemas/arrays.py "
                    f"now declares {tuple(spec.shape)} {spec.dtype}: a changed product size cannot be written into "
                    "this store; preprocess into a new store (another store_root, or move the old one away) or "
                    "revert the declaration"
                )
            if a.shape[0] != n:
                a.resize(spec.full_shape(n))
        else:
            a = group.create_array(
                name,
                shape=spec.full_shape(n),
                dtype=spec.dtype,
                chunks=spec.chunk_shape(),
                shards=spec.shard_shape(),
                fill_value=spec.fill_value,
                compressors=zarr.codecs.ZstdCodec(level=3),
                dimension_names=spec.dimension_names,
            )
        if a.metadata.dimension_names != spec.dimension_names:
            set_dimension_names(a, spec.dimension_names)  # a store made before arrays were named
            a = group[name]  # re-read: updating attributes rewrites the metadata the object holds
        a.attrs.update(
            {
                **spec.cf_attrs,
                "description": spec.description,
                "per_sample_shape": list(spec.shape),
                **spec.attrs,
                **attrs,
            }
        )
