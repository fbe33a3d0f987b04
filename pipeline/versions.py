"""Versions of a store: resolve a reference, show provenance, diff two versions, tag.

A reference is a tag name, a snapshot id, or 'main' (the latest version). Tags are
immutable: re-using a tag name is refused (Icechunk enforces it too).
"""

from __future__ import annotations

import json

import pandas as pd

from pipeline.store import Store, one_line, read_text_array
from schemas.arrays import ARRAYS
from schemas.tables import CARD


class VersionError(ValueError):
    pass


def resolve(store: Store, ref: str | None) -> str:
    """Snapshot id of `ref` (tag, snapshot id or 'main'; None = the store's head)."""
    if ref is None:
        return store.head()
    if ref == "main":
        return store.repo.lookup_branch("main")
    if ref in store.repo.list_tags():
        return store.repo.lookup_tag(ref)
    try:
        store.repo.lookup_snapshot(ref)
        return ref
    except Exception:
        raise VersionError(
            f"{store.path}: {ref!r} is neither a tag ({sorted(store.repo.list_tags())}) "
            "nor a snapshot id (see `mepipe versions list`)"
        ) from None


def tag(store: Store, name: str, ref: str | None = None) -> str:
    """Create tag `name` at `ref` (default: the latest version). Refuses an existing name."""
    if not name or any(c in name for c in "@/ \t"):
        raise VersionError(f"tag {name!r}: use letters, digits, '.', '-' or '_' (no '@', '/', spaces)")
    if name in store.repo.list_tags():
        raise VersionError(
            f"tag {name!r} already exists at {store.repo.lookup_tag(name)}; tags are immutable (choose a new name)"
        )
    snap = resolve(store, ref)
    if not store.repo.lookup_snapshot(snap).metadata:
        raise VersionError(
            f"{snap} is not a preprocessing version (no provenance); tag a version listed by `mepipe versions list`"
        )
    if store.remote:
        raise VersionError(f"{store.path}: a published store is read-only here; tag the local store it came from")
    try:
        store.repo.create_tag(name, snap)
    except Exception as e:  # e.g. a read-only folder
        raise VersionError(f"{store.path}: tag {name!r} could not be written ({one_line(e)})") from e
    return snap


def provenance(store: Store, ref: str | None = None) -> dict:
    snap = resolve(store, ref)
    info = store.repo.lookup_snapshot(snap)
    tags = sorted(t for t in store.repo.list_tags() if store.repo.lookup_tag(t) == snap)
    return {
        "snapshot": snap,
        "written_at": str(info.written_at),
        "message": info.message,
        "tags": tags,
        **(info.metadata or {}),
    }


def card(store: Store, ref: str | None = None) -> str:
    g = store.group(resolve(store, ref))
    if CARD not in g:
        raise VersionError(
            f"{store.path}@{ref or 'head'}: this version has no dataset card (made before cards existed)"
        )
    try:
        return read_text_array(g[CARD])
    except Exception as e:  # a damaged card chunk: say so, `mepipe verify` names the rest
        raise VersionError(
            f"{store.path}@{ref or 'head'}: the dataset card cannot be read ({one_line(e)}); run `mepipe verify`"
        ) from e


def _flat(d: dict, pre: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{pre}{k}."))
        else:
            out[f"{pre}{k}"] = v
    return out


def _chunk_diff(store: Store, sa: str, sb: str) -> tuple[dict, list]:
    """Chunks Icechunk rewrote per array between two versions on one line of history
    (either order); ({}, []) for the same version or unrelated ones."""
    if sa == sb:
        return {}, []
    for x, y in ((sa, sb), (sb, sa)):
        try:
            d = store.repo.diff(from_snapshot_id=x, to_snapshot_id=y)
        except Exception:
            continue
        return (
            {p.lstrip("/"): len(c) for p, c in d.updated_chunks.items() if p.lstrip("/") in ARRAYS},
            sorted(p.lstrip("/") for p in d.new_arrays if p.lstrip("/") in ARRAYS),
        )
    return {}, []


def diff(store: Store, a: str, b: str) -> dict:
    """What changed from version `a` to version `b`: samples added/removed, samples whose
    values changed (by checksum, per array), status changes, parameter and code changes,
    and the arrays Icechunk reports as rewritten."""
    sa, sb = resolve(store, a), resolve(store, b)
    pa_, pb = provenance(store, sa), provenance(store, sb)
    ma, mb = store.table("manifest", sa), store.table("manifest", sb)
    ma = ma if ma is not None else pd.DataFrame(columns=["sample_id", "status"])
    mb = mb if mb is not None else pd.DataFrame(columns=["sample_id", "status"])
    ida, idb = set(ma["sample_id"]), set(mb["sample_id"])
    st_a, st_b = dict(zip(ma["sample_id"], ma["status"])), dict(zip(mb["sample_id"], mb["status"]))
    status = {s: (st_a[s], st_b[s]) for s in sorted(ida & idb) if st_a[s] != st_b[s]}
    ca, cb = store.table("checksums", sa), store.table("checksums", sb)
    changed: dict[str, list[str]] = {}
    if ca is not None and cb is not None:
        ka = dict(zip(zip(ca["sample_id"], ca["array"]), ca["sha256"]))
        for sid, arr, h in zip(cb["sample_id"], cb["array"], cb["sha256"]):
            if sid in ida and ka.get((sid, arr), h) != h:
                changed.setdefault(arr, []).append(sid)
    fa, fb = _flat(pa_.get("params")), _flat(pb.get("params"))
    params = {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
    rewritten, new_arrays = _chunk_diff(store, sa, sb)
    return {
        "from": sa,
        "to": sb,
        "added": sorted(idb - ida),
        "removed": sorted(ida - idb),
        "status_changed": status,
        "values_changed": {k: sorted(v) for k, v in sorted(changed.items())},
        "params_changed": params,
        "code": (pa_.get("code_version"), pb.get("code_version")),
        "sources_changed": sorted(
            k
            for k in set(pa_.get("sources") or {}) | set(pb.get("sources") or {})
            if (pa_.get("sources") or {}).get(k) != (pb.get("sources") or {}).get(k)
        ),
        "chunks_rewritten": rewritten,
        "new_arrays": new_arrays,
    }


def format_diff(d: dict) -> str:
    out = [f"{d['from']} -> {d['to']}"]
    if d["code"][0] != d["code"][1]:
        out.append(f"code: {d['code'][0]} -> {d['code'][1]}")
    for k, (x, y) in d["params_changed"].items():
        out.append(f"param {k}: {json.dumps(x)} -> {json.dumps(y)}")
    for k in d["sources_changed"]:
        out.append(f"source file changed: {k}")
    out.append(f"samples: +{len(d['added'])} -{len(d['removed'])}, status changed {len(d['status_changed'])}")
    for s in d["added"][:20]:
        out.append(f"  + {s}")
    for s in d["removed"][:20]:
        out.append(f"  - {s}")
    for s, (x, y) in list(d["status_changed"].items())[:20]:
        out.append(f"  ~ {s}: {x} -> {y}")
    for arr, ids in d["values_changed"].items():
        out.append(
            f"values changed in {arr}: {len(ids)} sample(s): {', '.join(ids[:8])}" + (" ..." if len(ids) > 8 else "")
        )
    if d["new_arrays"]:
        out.append("new arrays: " + ", ".join(d["new_arrays"]))
    if d["chunks_rewritten"]:
        out.append("chunks rewritten: " + ", ".join(f"{k} {v}" for k, v in sorted(d["chunks_rewritten"].items())))
    if len(out) == 2 and not d["chunks_rewritten"]:
        out.append("no differences")
    return "\n".join(out)
