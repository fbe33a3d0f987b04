"""`mepipe verify`: re-read a version and check it against what was recorded at write time.

Checks (each problem names the array, sample and row):
- the dataset card and every array's metadata (shape, dtype, units, description) against
  the sha256 the commit recorded in the snapshot metadata (versions from before that
  record are checked without it);
- every table's bytes against the sha256 in its attributes (manifest, exclusions, ...);
- manifest vs arrays: one array row per manifest row, ids unique, `index` = 0..n-1,
  ragged clip regions inside their arrays;
- every recorded (sample, array) value against its sha256 in the `checksums` table. A
  shard whose bytes were damaged on disk fails to decode or decodes to other values:
  both are reported with the array and sample (and, for undecodable data, the error).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.store import Store, array_metadata_sha, one_line, read_text_array, sample_ids_in_order, sample_sha
from schemas.arrays import ARRAYS, SHARD_SAMPLES, coordinate_paths
from schemas.tables import CARD, TABLES


@dataclass
class VerifyReport:
    snapshot: str
    checked: int = 0  # (sample, array) values compared
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_layout(g, man: pd.DataFrame, problems: list) -> None:
    """Unique sample ids, index 0..n-1, every array sized for the manifest."""
    n = len(man)
    if man["sample_id"].duplicated().any():
        problems.append(
            f"manifest: duplicated sample ids {sorted(man.loc[man['sample_id'].duplicated(), 'sample_id'])[:5]}"
        )
    if sorted(man["index"].astype(int)) != list(range(n)):
        problems.append("manifest: index column is not 0..n-1")
    for name, spec in ARRAYS.items():
        if name not in g:
            continue
        rows = g[name].shape[0]
        if spec.ragged:
            if "clip_len" in man:
                end = (man["clip_start"].fillna(0) + man["clip_len"].fillna(0)).max() if n else 0
                if end > rows:
                    problems.append(f"{name}: clip regions reach row {int(end)} but the array has {rows}")
        elif rows != n:
            problems.append(f"{name}: {rows} rows but the manifest has {n} samples")
    _check_sample_ids(g, man, problems)


def _check_sample_ids(g, man: pd.DataFrame, problems: list) -> None:
    """Each group's sample-id coordinate (where the version has one) lists the manifest's
    sample ids in index order."""
    ids = sample_ids_in_order(man).tolist()
    for path in coordinate_paths(g):
        if path in g and g[path][:].tolist() != ids:
            problems.append(f"{path}: the sample ids differ from the manifest's (row = index)")


def _check_array(name: str, arr, grp: pd.DataFrame, region: dict, rep: VerifyReport) -> None:
    """Re-read each sample's values of one array and compare with the recorded sha256."""
    spec = ARRAYS.get(name)
    for sid, idx, want in zip(grp["sample_id"], grp["index"], grp["sha256"]):
        where = f"{name} sample {sid} (row {idx}, shard {int(idx) // SHARD_SAMPLES})"
        try:
            if spec is not None and spec.ragged:
                start, ln = region[sid]
                where = f"{name} sample {sid} (frames {int(start)}..{int(start) + int(ln) - 1})"
                value = arr[int(start) : int(start) + int(ln)]
            else:
                value = arr[int(idx)]
        except Exception as e:
            rep.problems.append(f"{where}: cannot be read ({one_line(e)})")
            continue
        rep.checked += 1
        if sample_sha(np.asarray(value), str(arr.dtype)) != want:
            rep.problems.append(f"{where}: values differ from the checksum recorded at write time")


def _check_recorded(g, meta: dict, problems: list) -> None:
    """The dataset card and each array's metadata (shape, dtype, units, description...)
    against the sha256 the commit recorded in the snapshot's metadata."""
    want = meta.get("card_sha256")
    if want:
        try:
            got = hashlib.sha256(read_text_array(g[CARD]).encode()).hexdigest() if CARD in g else None
        except Exception as e:
            got = f"unreadable ({one_line(e)})"
        if got != want:
            problems.append(f"{CARD}: the dataset card is {got or 'missing'}, not the card recorded at commit ({want})")
    for name, sha in (meta.get("arrays_sha256") or {}).items():
        if name not in g:
            problems.append(f"{name}: recorded at commit but missing from the version")
        elif array_metadata_sha(g[name]) != sha:
            problems.append(f"{name}: its metadata (shape, dtype, attributes) differs from what the commit recorded")


def verify(store: Store, snapshot: str | None = None, log=print) -> VerifyReport:
    """Re-read a version: tables decode and match their sha256, the card and the arrays'
    metadata match what the commit recorded, the arrays fit the manifest, and every
    sample's values match the checksums recorded at write time. A version that cannot
    be opened at all is one problem naming the error."""
    snap = snapshot or store.head()
    rep = VerifyReport(snap)
    try:
        g = store.group(snap)
        meta = store.repo.lookup_snapshot(snap).metadata or {}
    except Exception as e:
        rep.problems.append(f"version {snap} of {store.path} cannot be opened: {one_line(e)}")
        return rep
    _check_recorded(g, meta, rep.problems)
    tables = {}
    for name in TABLES:
        try:
            tables[name] = store.table(name, snap)
        except Exception as e:  # checksum mismatch or undecodable Parquet
            rep.problems.append(f"table {name}: {one_line(e)}")
    man, ck = tables.get("manifest"), tables.get("checksums")
    if man is None:
        rep.problems.append("no manifest table: not a preprocessing version")
        return rep
    _check_layout(g, man, rep.problems)
    if ck is None:
        rep.problems.append("no checksums table (version written before checksums were recorded)")
        return rep
    unknown = set(ck["sample_id"]) - set(man["sample_id"])
    if unknown:
        rep.problems.append(f"checksums name samples the manifest lacks: {sorted(unknown)[:5]}")
    region = {r["sample_id"]: (r.get("clip_start"), r.get("clip_len")) for r in man.to_dict("records")}
    for name, grp in ck.groupby("array"):
        if name not in g:
            rep.problems.append(f"{name}: recorded in checksums but missing from the version")
            continue
        _check_array(name, g[name], grp, region, rep)
    log(f"verified {store.path} @ {snap}: {rep.checked} sample arrays, {len(rep.problems)} problem(s)")
    return rep
