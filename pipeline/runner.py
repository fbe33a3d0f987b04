"""The engine: plan what to (re)compute, run one task per clip on dask, write shards, commit.

Re-running is cheap: each sample's product groups carry fingerprints (pipeline.fingerprint);
a group is recomputed only when its fingerprint changed. Samples that moved to another
array row (the sample table changed) are copied from the previous snapshot, not
recomputed. Excluded samples keep their row, are never written, and are listed in the
exclusions table with a reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

import pipeline
from pipeline.card import dataset_card
from pipeline.catalog import Catalog, Dataset
from pipeline.cluster import gpu_resources
from pipeline.faults import fault_point
from pipeline.fingerprint import sample_fingerprints
from pipeline.ingest import Ingested, ingest_all
from pipeline.io import sha256_file
from pipeline.store import BRANCH, Store, ensure_arrays, sample_sha, write_table_array, write_text_array
from pipeline.tasks import GROUP_VERSIONS, process_clip, uses_gpu
from products import FINGERPRINT_SCHEME, REGISTRY, groups_for
from schemas.arrays import ARRAYS, RAGGED_SHARD, SHARD_SAMPLES, arrays_of_group
from schemas.tables import (
    AU_FRAME_SCHEMA,
    CARD,
    CHECKPOINT,
    CHECKPOINT_SCHEMA,
    CHECKSUM_SCHEMA,
    EXCLUSION_SCHEMA,
    MANIFEST_SCHEMA,
    VIDEO_SCHEMA,
    conform,
)
from stages.labels import class_counts


def code_version() -> str:
    """Package version + git commit; '.dirty' when the code that makes products
    (pipeline/, stages/, schemas/) differs from that commit."""
    here = Path(pipeline.__file__).parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here, timeout=5
        ).stdout.strip()
        dirty = (
            sha
            and subprocess.run(
                ["git", "diff", "--quiet", "HEAD", "--", "pipeline", "stages", "schemas"], cwd=here.parent, timeout=5
            ).returncode
            == 1
        )
    except Exception:
        sha, dirty = "", False
    return f"{pipeline.__version__}" + (f"+g{sha}" if sha else "") + (".dirty" if dirty else "")


def source_checksums(ds: Dataset, resolved: dict) -> dict[str, str]:
    """sha256 of the source annotation files (and known-bad lists) of `ds`, by path
    relative to its root; a composite lists each present part's files. `resolved`:
    the datasets as ingest found them (Ingested.datasets; a part without a root is not
    there: skipped and said at ingest)."""
    out = {}
    parts = [resolved[p] for p in ds.parts if p in resolved] if ds.parts else [resolved[ds.name]]
    for d in parts:
        for key in ("annotation", "known_bad"):
            if not getattr(d, key, None):
                continue
            f = d.file(key)
            out[(f"{d.name}:" if ds.parts else "") + getattr(d, key)] = sha256_file(f)
        if d.repairs:  # a catalog repair edits the sheet as much as the file itself
            out[(f"{d.name}:" if ds.parts else "") + "catalog:repairs"] = hashlib.sha256(
                json.dumps(d.repairs, sort_keys=True, default=str).encode()
            ).hexdigest()
    if ds.official_list is not None:
        out["official_list:" + ds.official_list.name] = sha256_file(ds.official_list)
    return out


def _checksums(plans: list, rows: list[dict], old: pd.DataFrame | None, new: dict[int, dict[str, str]]) -> pd.DataFrame:
    """The checksums table of this version: values written now, plus the old rows of
    samples (and arrays) that stayed where they were and were not rewritten."""
    old_by = {} if old is None else {sid: dict(zip(d["array"], d["sha256"])) for sid, d in old.groupby("sample_id")}
    out = []
    for p in plans:
        sid = rows[p.index]["sample_id"]
        shas = {}
        if p.old is not None and int(p.old["index"]) == p.index:
            shas.update(old_by.get(sid, {}))
        shas.update(new.get(p.index, {}))
        out += [{"sample_id": sid, "index": p.index, "array": a, "sha256": h} for a, h in sorted(shas.items())]
    return pd.DataFrame(out, columns=["sample_id", "index", "array", "sha256"])


def _layout_key(parent: str, n: int, total_frames: int, names: list[str], groups: tuple) -> str:
    """Identifies what a run's scratch branch was laid out for (same parent, sample count,
    ragged size, arrays): only such a branch can be resumed."""
    spec = {"parent": parent, "n": n, "total_frames": total_frames, "names": sorted(names), "groups": list(groups)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass
class Resumed:
    branch: str
    done: dict  # index -> {"info": task result without arrays (None: a copy), "shas": {...}}


def _resumable(store: Store, layout_key: str, plans: list, log, name: str) -> Resumed | None:
    """The scratch branch of a killed run laid out like this one, with the samples its
    checkpoints hold whose fingerprints still match (the others are recomputed)."""
    for b in store.repo.list_branches():
        if not b.startswith("run-"):
            continue
        snap = store.repo.lookup_branch(b)
        meta = store.repo.lookup_snapshot(snap).metadata or {}
        if meta.get("checkpoint_layout") != layout_key:
            continue
        ck = store.table(CHECKPOINT.removeprefix("tables/"), snap)
        done = {}
        for r in [] if ck is None else ck.to_dict("records"):
            i = int(r["index"])
            if i < len(plans) and plans[i].action in ("compute", "copy") and json.loads(r["fps"]) == plans[i].fps:
                done[i] = {"info": json.loads(r["info"]) if r["info"] else None, "shas": json.loads(r["shas"])}
        log(
            f"[{name}] resuming killed run {meta.get('run_id')}: {len(done)} sample(s) already written "
            f"(checkpoint of {meta.get('checkpoint_at')})"
        )
        return Resumed(b, done)
    return None


def ingest_provenance(got: Ingested, ds: Dataset, manifest: pd.DataFrame) -> dict:
    """What ingest decided, for the commit's provenance and the card: the layouts it
    detected, the sheet repairs (with sources), the known-bad list's effect and the
    per-class counts of the ok labelled samples under every label scheme of `ds`."""
    ok = manifest[(manifest["status"] == "ok") & (manifest["source"] == "labelled")] if len(manifest) else manifest
    return {
        "layout": {k: v.describe() for k, v in got.layouts.items()},
        "repairs": _plain(got.repairs),
        "known_bad": _plain(got.known_bad),
        "composite_list": _plain(got.composite) if got.composite else None,
        "class_counts": class_counts(ok["emotion"] if len(ok) else [], ds.schemes or {ds.label_scheme: ds.scheme}),
    }


def _jsonable(o):
    return o.item() if hasattr(o, "item") else (list(o) if isinstance(o, tuple) else str(o))


def _plain(o):
    """`o` as plain JSON values (numpy scalars, tuples and paths converted)."""
    return json.loads(json.dumps(o, default=_jsonable))


def _drop_scratch_branches(store: Store, keep: str | None = None) -> None:
    """Delete the scratch branches of killed runs (the caller holds the lock, so none is
    in use), except `keep` (the one being resumed)."""
    for b in store.repo.list_branches():
        if b.startswith("run-") and b != keep:
            store.repo.delete_branch(b)


def _absorb(written: list, slot_info: dict, new_shas: dict) -> list:
    """Record the results of finished writer tasks; returns their forks (to merge)."""
    for _, infos, shas in written:
        for index, info in infos:
            slot_info[index] = info
        new_shas.update(shas)
    forks = [fork for fork, _, _ in written]
    written.clear()
    return forks


def _checkpoint(
    store: Store,
    session,
    branch: str,
    unsaved: list,
    slot_info: dict,
    new_shas: dict,
    plans: list,
    layout_key: str,
    run_id: str,
):
    """Make the shards written so far durable on the scratch branch (amended in place,
    so the branch stays one commit above its parent) with the table of what they hold.
    Returns a new session on the branch."""
    session.merge(*_absorb(unsaved, slot_info, new_shas))
    idx = sorted(set(slot_info) | set(new_shas))
    table = pd.DataFrame(
        {
            "index": idx,
            "fps": [json.dumps(plans[i].fps, sort_keys=True) for i in idx],
            "info": [None if slot_info.get(i) is None else json.dumps(slot_info[i], default=_jsonable) for i in idx],
            "shas": [json.dumps(new_shas.get(i, {}), sort_keys=True) for i in idx],
        }
    )
    g = zarr.open_group(session.store, mode="a")
    write_table_array(g, CHECKPOINT.removeprefix("tables/"), conform(table, CHECKPOINT_SCHEMA))
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    session.amend(
        f"checkpoint of run {run_id}: {len(idx)} samples written",
        metadata={"checkpoint_layout": layout_key, "run_id": run_id, "checkpoint_at": at},
    )
    return store.repo.writable_session(branch)


@dataclass
class Plan:
    index: int
    action: str  # 'compute' | 'keep' | 'copy' | 'excluded'
    need: tuple = ()
    old_index: int | None = None
    old: dict | None = None
    fps: dict = field(default_factory=dict)


@dataclass
class RunResult:
    snapshot: str | None
    run_dir: Path
    recomputed: int
    copied: int
    kept: int
    excluded: pd.DataFrame
    manifest: pd.DataFrame
    timings: dict
    committed: bool
    seconds: float

    @property
    def failed(self) -> list[str]:
        """Samples whose task failed after its retries (retried by the next run)."""
        e = self.excluded
        return [] if e is None or not len(e) else list(e.loc[e["stage"] == "task", "detail"])


PRE_STAGES = ("ingest", "screen", "select")  # exclusions decided before any clip task runs


def _ingest_keys(excl: pd.DataFrame) -> set:
    e = excl[excl["stage"].isin(PRE_STAGES)]
    return set(zip(e["sample_id"].fillna(""), e["ann_file"].fillna(""), e["ann_row"].fillna(-1), e["reason"]))


def _array_names(groups) -> list[str]:
    return [s.name for g in groups for s in arrays_of_group(g)]


def _nz(v):
    """Parquet nulls come back as None or NaN; a fingerprint is a str or None."""
    return v if isinstance(v, str) else None


def _seq_len(row) -> int:
    seq = row.get("seq_paths")
    return 0 if seq is None or isinstance(seq, float) else len(seq)


def ragged_layout(lengths: list[int]) -> tuple[list[int], int]:
    """(start of each sample, total rows) of the ragged clip arrays. The samples of one
    write shard (SHARD_SAMPLES consecutive samples) are contiguous and their region starts
    on a RAGGED_SHARD boundary, so each write task owns whole shards of the ragged arrays
    too (the padding between regions is never written and costs no storage)."""
    starts, pos = [], 0
    for i, n in enumerate(lengths):
        if i % SHARD_SAMPLES == 0:
            pos = -(-pos // RAGGED_SHARD) * RAGGED_SHARD
        starts.append(pos)
        pos += n
    return starts, -(-pos // RAGGED_SHARD) * RAGGED_SHARD


def _say_fingerprint_scheme(store: Store, parent: str, old: pd.DataFrame | None, log, name: str) -> None:
    """A store made before fingerprints came from the products' declarations recomputes
    every product once: say so, and why, before the work starts."""
    if old is None or not len(old):
        return
    was = (store.repo.lookup_snapshot(parent).metadata or {}).get("fingerprint_scheme", "1")
    if was != FINGERPRINT_SCHEME:
        log(
            f"[{name}] the store's current version has fingerprints of scheme {was}; this code derives them from "
            f"the products' declarations (scheme {FINGERPRINT_SCHEME}: declared parameters, input files, "
            "upstream products, array shapes): every product of every sample is recomputed once (values that "
            "do not change are written again unchanged)"
        )


def plan_samples(
    samples: pd.DataFrame, old: pd.DataFrame | None, root: Path, ds: Dataset, groups: tuple, starts: list[int]
) -> list[Plan]:
    """What to do for each sample: compute (which groups), keep, copy from its old row, or
    keep excluded. Unchanged fingerprints (and row) mean no work."""
    old_by_id = {} if old is None else {r["sample_id"]: r for r in old.to_dict("records")}
    plans = []
    for i, row in enumerate(samples.to_dict("records")):
        fps = sample_fingerprints(row, root, ds.params, ds.has_depth)
        o = old_by_id.get(row["sample_id"])
        if o is None:
            plans.append(Plan(i, "compute", groups, fps=fps))
            continue
        same = {g: _nz(o.get(f"fp_{g}")) == fps[g] for g in groups}
        if (
            "clip" in groups
            and o.get("clip_start") is not None
            and not pd.isna(o.get("clip_start"))
            and int(o["clip_start"]) != starts[i]
        ):
            same["clip"] = False  # its ragged region moved: rewrite it
        moved = int(o["index"]) != i
        if o["status"] == "excluded" and o.get("reason") == "task_failed":
            plans.append(Plan(i, "compute", groups, fps=fps))  # a crashed task is retried next run
            continue
        if all(same.values()):
            if o["status"] == "excluded":
                plans.append(Plan(i, "excluded", old=o, fps=fps))
            elif not moved:
                plans.append(Plan(i, "keep", old=o, fps=fps))
            else:
                plans.append(Plan(i, "copy", old_index=int(o["index"]), old=o, fps=fps))
        elif (
            same["crop"]
            and o["status"] == "ok"
            and not moved
            and isinstance(o.get("eye_angle"), float)
            and not np.isnan(o["eye_angle"])
        ):
            changed = tuple(g for g in groups if not same[g])
            plans.append(Plan(i, "compute", changed, old_index=int(o["index"]), old=o, fps=fps))
        else:
            plans.append(Plan(i, "compute", groups, fps=fps))
    return plans


class _ShardBuffer:
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
        for name, parts in self.rows.items():
            starts = sorted(parts)
            lo, hi = starts[0], max(s + len(parts[s]) for s in starts)
            covered = sum(len(p) for p in parts.values()) == hi - lo and all(
                a + len(parts[a]) == b for a, b in zip(starts, starts[1:])
            )
            if covered:
                block = np.concatenate([parts[s] for s in starts])
            else:  # rows of the region this run keeps: read them back first
                block = np.asarray(group[name][lo:hi])
                for s in starts:
                    block[s - lo : s - lo + len(parts[s])] = parts[s]
            group[name][lo:hi] = block


def write_shard(fork, store_path: str, parent: str | None, slots: list, array_names: list[str]):
    """Write the slots of one shard (this task owns the whole shard, and the whole shards
    of the ragged arrays that hold its samples' clips). Runs on a worker.

    slots: (index, action, payload, region, old_region): 'compute' (payload = process_clip
    result), 'copy' (payload = old index). region = (clip_start, clip_len) of the ragged
    arrays (None without clip products). Returns (fork, infos, shas): shas[index] =
    {array: sha256 of the values written}.
    """
    group = zarr.open_group(fork.store, mode="r+")
    buf = _ShardBuffer()
    old_group = None
    infos, shas = [], {}
    for index, action, payload, region, old_region in slots:
        sh = shas.setdefault(index, {})
        if action == "compute":
            res = payload
            if res["status"] == "ok":
                for name, arr in res["arrays"].items():
                    sh[name] = buf.put(name, index, arr, region)
            else:
                for name in array_names:
                    spec = ARRAYS[name]
                    n = region[1] if spec.ragged and region else 1
                    zero = np.zeros((n, *spec.shape) if spec.ragged else spec.shape, spec.dtype)
                    sh[name] = buf.put(name, index, zero, region)
            infos.append((index, {k: v for k, v in res.items() if k != "arrays"}))
        elif action == "copy":
            if old_group is None:
                old_group = Store(store_path, create=False).group(parent)
            for name in array_names:
                if name not in old_group:
                    continue
                if ARRAYS[name].ragged:
                    if old_region is not None and region is not None:
                        sh[name] = buf.put(
                            name, index, old_group[name][old_region[0] : old_region[0] + old_region[1]], region
                        )
                else:
                    sh[name] = buf.put(name, index, old_group[name][payload], None)
            infos.append((index, None))
    buf.flush(group)
    return fork, infos, {i: {k: v for k, v in d.items() if v} for i, d in shas.items()}


class LazyClient:
    """A dask cluster started on first use (a run with nothing to do starts none): the
    LocalCluster of `workers` by default, or the catalog's cluster profile."""

    def __init__(self, workers: int, log=print, profile: dict | None = None):
        self.workers, self.log, self.client, self.profile = workers, log, None, profile

    def __call__(self):
        if self.client is None:
            from dask.distributed import Client

            from pipeline.cluster import make_cluster

            self.client = Client(make_cluster(self.profile, self.workers))
            kind = (self.profile or {}).get("kind", "local")
            self.log(f"dask dashboard: {self.client.dashboard_link} ({kind} cluster)")
        return self.client

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client.cluster.close()
            self.client = None


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def run(
    cat: Catalog,
    ds: Dataset,
    workers: int = 2,
    log=print,
    progress: bool = True,
    methods: list[str] | None = None,
    cluster: str | None = None,
    lock_wait: float = 0.0,
    run_id: str | None = None,
    checkpoint_s: float = 120.0,
) -> RunResult:
    """Preprocess dataset `ds` into its store and commit one version (or nothing, if up to
    date). A store locked by another run is an error at once, or after `lock_wait` s.
    Written shards are checkpointed on the run's scratch branch every `checkpoint_s`
    seconds, so a killed run resumes from there instead of starting over."""
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    run_dir = cat.runs_root / ds.name / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    root = ds.root()
    got = ingest_all(ds, cat, log)
    ds = got.datasets[ds.name]  # with the layout ingest found
    for name, found in got.layouts.items():
        log(f"[{name}] layout: {found.describe()}")
    samples, excl_ingest = got.samples, got.exclusions
    log(
        f"[{ds.name}] {len(samples)} samples from the annotation, {len(excl_ingest)} rows excluded at ingest"
        + (f"; {sum(r['applied'] for r in got.repairs)} sheet repair(s) applied" if got.repairs else "")
    )
    store = Store(cat.store_root / ds.name)
    get_client = LazyClient(workers, log, cat.cluster(cluster) if cluster else None)
    try:
        with store.lock(wait=lock_wait, log=log):
            return _run_locked(
                cat,
                ds,
                store,
                root,
                samples,
                excl_ingest,
                get_client,
                run_id,
                run_dir,
                t0,
                checkpoint_s,
                log,
                progress,
                groups_for(methods, ds.has_depth),
                got,
            )
    finally:
        get_client.close()


def _run_locked(
    cat,
    ds,
    store,
    root,
    samples,
    excl_ingest,
    get_client,
    run_id,
    run_dir,
    t0,
    checkpoint_s,
    log,
    progress,
    groups,
    got: Ingested,
):
    parent = store.head()
    old = store.table("manifest", parent)
    old_excl = store.table("exclusions", parent)
    scr = None
    if ds.unlabelled:
        from pipeline.screening import screen

        scr = screen(
            ds, store.table("au_frames", parent), store.table("videos", parent), get_client, log=log, progress=progress
        )
        samples = pd.concat([samples, scr.samples], ignore_index=True) if len(scr.samples) else samples
        excl_ingest = pd.concat([excl_ingest, scr.exclusions], ignore_index=True)
    n = len(samples)
    lengths = [_seq_len(r) for r in samples.to_dict("records")] if "clip" in groups else [0] * n
    starts, total_frames = ragged_layout(lengths)
    from pipeline.tasks import check_models

    check_models(ds.params, groups)  # a missing model stops the run before any work
    plans = plan_samples(samples, old, root, ds, groups, starts)
    _say_fingerprint_scheme(store, parent, old, log, ds.name)
    names = _array_names(groups)
    todo = [p for p in plans if p.action == "compute"]
    copies = [p for p in plans if p.action == "copy"]
    kept = sum(p.action in ("keep", "excluded") for p in plans)
    g_head = store.group(parent)
    want_rows = {name: (total_frames if ARRAYS[name].ragged else n) for name in names}
    arrays_ok = all(name in g_head and g_head[name].shape[0] == want_rows[name] for name in names)
    same_excl = old_excl is not None and _ingest_keys(old_excl) == _ingest_keys(excl_ingest)
    screen_same = scr is None or (
        not scr.recomputed
        and store.table("videos", parent) is not None
        and set(store.table("videos", parent)["video"]) == set(scr.videos["video"])
    )
    # an annotation edit that changes no frame (a label, AU or note) still needs new tables
    sources = source_checksums(ds, got.datasets)
    same_sources = (store.repo.lookup_snapshot(parent).metadata or {}).get("sources") == sources
    if (
        not todo
        and not copies
        and arrays_ok
        and old is not None
        and len(old) == n
        and same_excl
        and screen_same
        and same_sources
    ):
        _drop_scratch_branches(store)
        log(f"[{ds.name}] up to date: 0 samples recomputed ({kept} unchanged) at snapshot {parent}")
        return RunResult(parent, run_dir, 0, 0, kept, old_excl, old, {}, False, time.perf_counter() - t0)
    log(f"[{ds.name}] {len(todo)} to compute, {len(copies)} to copy, {kept} unchanged; {get_client.workers} worker(s)")

    layout_key = _layout_key(parent, n, total_frames, names, groups)
    resumed = _resumable(store, layout_key, plans, log, ds.name)
    _drop_scratch_branches(store, keep=resumed.branch if resumed else None)
    if resumed is None:
        branch = f"run-{run_id}"
        store.repo.create_branch(branch, parent)
        s = store.repo.writable_session(branch)
        g = zarr.open_group(s.store, mode="a")
        ensure_arrays(g, [a for a in names if not ARRAYS[a].ragged], n, {"dataset": ds.name})
        ensure_arrays(g, [a for a in names if ARRAYS[a].ragged], total_frames, {"dataset": ds.name})
        g.attrs.update({"dataset": ds.name, "layout": "one row per sample along axis 0; see tables/manifest"})
        s.commit("layout", allow_empty=True)
        done_before: dict[int, dict] = {}
    else:
        branch, done_before = resumed.branch, resumed.done
    session = store.repo.writable_session(branch)

    rows = samples.to_dict("records")
    timings: list[dict] = []
    slot_info: dict[int, dict | None] = {i: d["info"] for i, d in done_before.items()}
    new_shas: dict[int, dict[str, str]] = {i: d["shas"] for i, d in done_before.items()}
    unsaved = []
    to_run = [p for p in todo + copies if p.index not in done_before]
    client = get_client() if to_run else None
    if client is not None:
        params = ds.params
        futs = {}
        for p in todo:
            if p.index in done_before:
                continue
            box = angle = None
            if "crop" not in p.need:
                o = p.old
                box = (int(o["crop_x0"]), int(o["crop_y0"]), int(o["crop_x1"]), int(o["crop_y1"]))
                angle = float(o["eye_angle"])
            f = client.submit(
                process_clip,
                rows[p.index],
                str(root),
                params,
                p.need,
                box,
                ds.has_depth,
                angle,
                retries=2,
                key=f"clip-{p.index}-{run_id}",
                resources=gpu_resources(get_client.profile, uses_gpu(p.need, params)),
            )
            futs[f] = p
        by_shard: dict[int, list] = {}
        for p in plans:
            if p.index not in done_before:
                by_shard.setdefault(p.index // SHARD_SAMPLES, []).append(p)
        pending = {sh: {p.index for p in ps if p.action == "compute"} for sh, ps in by_shard.items()}
        done: dict[int, object] = {}
        writers = set()

        def submit_writer(sh):
            slots = []
            for p in by_shard[sh]:
                region = (starts[p.index], lengths[p.index]) if "clip" in groups else None
                old_region = None
                if p.old is not None and not pd.isna(p.old.get("clip_start")) and not pd.isna(p.old.get("clip_len")):
                    old_region = (int(p.old["clip_start"]), int(p.old["clip_len"]))
                if p.action == "compute":
                    slots.append((p.index, "compute", done[p.index], region, old_region))
                elif p.action == "copy":
                    slots.append((p.index, "copy", p.old_index, region, old_region))
            if not slots:
                return
            w = client.submit(
                write_shard,
                session.fork(),
                str(store.path),
                parent,
                slots,
                names,
                retries=2,
                key=f"shard-{sh}-{run_id}",
            )
            writers.add(w)
            ac.add(w)

        from dask.distributed import as_completed
        from tqdm import tqdm

        ac = as_completed(list(futs))
        for sh, pend in pending.items():
            if not pend:
                submit_writer(sh)
        bar = tqdm(total=len(futs), desc=f"{ds.name}: clips", unit="clip", disable=not progress)
        last_ck = time.monotonic()
        for f in ac:
            if f in writers:  # a shard is written: its fork waits for the next checkpoint
                fork, infos, shas = f.result()
                unsaved.append((fork, infos, shas))
                if time.monotonic() - last_ck >= checkpoint_s and not ac.is_empty():
                    session = _checkpoint(
                        store, session, branch, unsaved, slot_info, new_shas, plans, layout_key, run_id
                    )
                    fault_point("after_checkpoint")
                    last_ck = time.monotonic()
                continue
            p = futs[f]
            if f.status == "error":
                exc = f.exception()
                detail = f"sample {rows[p.index]['sample_id']}: task failed after retries: {type(exc).__name__}: {exc}"
                log(detail)
                done[p.index] = {
                    "status": "excluded",
                    "stage": "task",
                    "reason": "task_failed",
                    "detail": detail,
                    "arrays": {},
                    "timings": {},
                }
            else:
                done[p.index] = f
            bar.update(1)
            sh = p.index // SHARD_SAMPLES
            pending[sh].discard(p.index)
            if not pending[sh]:
                submit_writer(sh)
        bar.close()
    forks = _absorb(unsaved, slot_info, new_shas)

    # a partial (e.g. depth-only) recompute keeps the other arrays of its row, which the
    # run branch inherits from the parent snapshot; a moved row is always recomputed whole.
    if forks:
        session.merge(*forks)
    g = zarr.open_group(session.store, mode="a")
    if CHECKPOINT in g:
        del g[CHECKPOINT]  # the checkpoint table belongs to the scratch branch only

    man_rows, excl_rows = [], []
    for p in plans:
        r = dict(rows[p.index])
        r["index"] = p.index
        for gname in REGISTRY:  # a group this run did not compute keeps its old fingerprint (if the row stayed)
            keep_old = gname not in groups and p.old is not None and int(p.old["index"]) == p.index
            r[f"fp_{gname}"] = (
                _nz(p.old.get(f"fp_{gname}")) if keep_old else (p.fps[gname] if gname in groups else None)
            )
        if "clip" in groups:
            r["clip_start"], r["clip_len"] = starts[p.index], lengths[p.index]
        elif p.old is not None and int(p.old["index"]) == p.index:
            r["clip_start"], r["clip_len"] = p.old.get("clip_start"), p.old.get("clip_len")
        info = slot_info.get(p.index) if p.action == "compute" else None
        src = p.old if p.action != "compute" else None
        if info is not None:
            timings.append(info.get("timings", {}))
            if info["status"] == "ok":
                box = info["box"]
                backend = info["landmark_backend"] or (p.old or {}).get("landmark_backend")
                angle = info.get("eye_angle")
                if angle is None and p.old is not None:
                    angle = p.old.get("eye_angle")
                r.update(
                    {
                        "status": "ok",
                        "reason": None,
                        "landmark_backend": backend,
                        "eye_angle": angle,
                        "crop_x0": box[0],
                        "crop_y0": box[1],
                        "crop_x1": box[2],
                        "crop_y1": box[3],
                    }
                )
            else:
                r.update({"status": "excluded", "reason": info["reason"]})
                excl_rows.append(
                    {
                        "sample_id": r["sample_id"],
                        "dataset": ds.name,
                        "ann_file": r["ann_file"],
                        "ann_row": r["ann_row"],
                        "stage": info["stage"],
                        "reason": info["reason"],
                        "detail": info["detail"],
                    }
                )
        elif src is not None:
            for k in ("status", "reason", "landmark_backend", "eye_angle", "crop_x0", "crop_y0", "crop_x1", "crop_y1"):
                r[k] = src.get(k)
            if src["status"] == "excluded" and old_excl is not None:
                prev = old_excl[old_excl["sample_id"] == r["sample_id"]]
                excl_rows.extend(prev.to_dict("records"))
        else:
            raise RuntimeError(f"sample {r['sample_id']}: no result was written (engine bug)")
        man_rows.append(r)
    manifest = pd.DataFrame(man_rows)
    for c in ("crop_x0", "crop_y0", "crop_x1", "crop_y1"):
        manifest[c] = (manifest[c] if c in manifest else pd.Series([None] * len(manifest))).astype("Int32")
    exclusions = pd.concat([excl_ingest, pd.DataFrame(excl_rows, columns=excl_ingest.columns)], ignore_index=True)
    checksums = _checksums(plans, rows, store.table("checksums", parent), new_shas)
    g = zarr.open_group(session.store, mode="a")
    man_sha = write_table_array(g, "manifest", conform(manifest, MANIFEST_SCHEMA))
    ck_sha = write_table_array(g, "checksums", conform(checksums, CHECKSUM_SCHEMA))
    ex_sha = write_table_array(g, "exclusions", conform(exclusions, EXCLUSION_SCHEMA))
    table_shas = {"manifest": man_sha, "exclusions": ex_sha, "checksums": ck_sha}
    if scr is not None:
        table_shas["au_frames"] = write_table_array(g, "au_frames", conform(scr.au_frames, AU_FRAME_SCHEMA))
        table_shas["videos"] = write_table_array(g, "videos", conform(scr.videos, VIDEO_SCHEMA))
    n_ok = int((manifest["status"] == "ok").sum())
    meta = {
        "run_id": run_id,
        "dataset": ds.name,
        "code_version": code_version(),
        "group_versions": GROUP_VERSIONS,
        "fingerprint_scheme": FINGERPRINT_SCHEME,
        "groups": list(groups),
        "params": ds.params,
        "adapter": ds.adapter,
        "annotation_sha256": sha256_file(ds.file("annotation")) if ds.annotation else None,
        "sources": sources,
        "fps": ds.fps,
        "label_scheme": ds.label_scheme,
        "landmark_backends": sorted({b for b in manifest.get("landmark_backend", pd.Series()).dropna()}),
        "exclusion_reasons": {
            f"{k[0]}/{k[1]}": int(v) for k, v in exclusions.groupby(["stage", "reason"]).size().items()
        },
        "counts": {
            "samples": n,
            "ok": n_ok,
            "excluded_in_arrays": n - n_ok,
            "excluded_at_ingest": len(excl_ingest),
            "recomputed": len(todo),
            "copied": len(copies),
            "unchanged": kept,
            "resumed": len(done_before),
        },
        "tables": table_shas,
        "au_estimator": None
        if scr is None
        else {
            "name": ds.params["au"]["estimator"],
            "phi": ds.params["au"]["phi"],
            "videos_estimated": scr.recomputed,
            **scr.timings,
        },
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **ingest_provenance(got, ds, manifest),
    }
    meta["card_sha256"] = write_text_array(
        g,
        CARD,
        dataset_card(meta, ds.scheme, ds.description, {a: g[a].shape for a in ARRAYS if a in g}, manifest, exclusions),
    )
    fault_point("before_commit")
    snap = session.amend(f"preprocess {ds.name}: {len(todo)} computed, {n_ok}/{n} ok", metadata=meta)
    fault_point("after_commit")
    store.repo.reset_branch(BRANCH, snap, from_snapshot_id=parent)
    fault_point("after_reset")
    store.repo.delete_branch(branch)
    tm = pd.DataFrame(timings)
    stage_ms = {c: float(tm[c].mean()) for c in tm.columns} if len(tm) else {}
    secs = time.perf_counter() - t0
    manifest.to_parquet(run_dir / "manifest.parquet")
    exclusions.to_parquet(run_dir / "exclusions.parquet")
    summary = {"snapshot": snap, **meta, "stage_ms_per_clip": stage_ms, "seconds": secs}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log(
        f"[{ds.name}] committed snapshot {snap}: {n_ok}/{n} samples ok, {len(exclusions)} exclusions, "
        f"{len(todo)} recomputed, {len(copies)} copied, {kept} unchanged ({secs:.1f} s)"
    )
    if stage_ms:
        log("  stage ms/clip: " + ", ".join(f"{k[:-3]} {v:.0f}" for k, v in stage_ms.items()))
    for r in exclusions.itertuples():
        log(f"  excluded [{r.stage}/{r.reason}] {r.detail}")
    return RunResult(snap, run_dir, len(todo), len(copies), kept, exclusions, manifest, stage_ms, True, secs)
