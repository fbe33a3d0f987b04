"""The plan phase of a run: what to do with each sample, and whether anything is to do.

Each sample's products carry fingerprints (pipeline.fingerprint, derived from the
products' declarations); a product is recomputed only when its fingerprint changed.
Samples that moved to another array row are copied from the previous snapshot, not
recomputed; excluded samples keep their row and their exclusion.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.catalog import Dataset
from pipeline.fingerprint import sample_fingerprints
from pipeline.io import sha256_file
from products import FINGERPRINT_SCHEME
from schemas.arrays import ARRAYS, RAGGED_SHARD, SHARD_SAMPLES, arrays_of_group

PRE_STAGES = ("ingest", "screen", "select")  # exclusions decided before any clip task runs
CHECKPOINT_FORMAT = 2  # the scratch branch's checkpoint table (2: column `fingerprints`)


@dataclass
class SamplePlan:
    """What a run does with one sample (its array row `index`)."""

    index: int
    action: str  # 'compute' | 'keep' | 'copy' | 'excluded'
    need: tuple = ()  # the products to compute
    old_index: int | None = None  # its row in the previous version (copy / partial recompute)
    old: dict | None = None  # its manifest row in the previous version
    fingerprints: dict = field(default_factory=dict)  # product -> fingerprint now

    @property
    def stayed(self) -> bool:
        """It holds the same array row as in the previous version."""
        return self.old is not None and int(self.old["index"]) == self.index

    def old_region(self) -> tuple[int, int] | None:
        """(start, length) of its clip in the previous version's ragged arrays."""
        o = self.old
        if o is None or pd.isna(o.get("clip_start")) or pd.isna(o.get("clip_len")):
            return None
        return int(o["clip_start"]), int(o["clip_len"])


@dataclass
class RunPlan:
    """The plan of one run against the store's current version `parent`."""

    parent: str
    samples: pd.DataFrame  # SAMPLE_SCHEMA rows (labelled + selected), one per array row
    exclusions: pd.DataFrame  # decided before any clip task (ingest, screen, select)
    groups: tuple  # the products this run makes
    plans: list[SamplePlan]
    lengths: list[int]  # clip frames per sample (0 without clip products)
    starts: list[int]  # first row of each sample's clip in the ragged arrays
    total_frames: int  # rows of the ragged arrays
    sources: dict  # source file -> sha256 (annotation sheets, lists, repairs)
    labels: str  # label_inputs(ds): the catalog's label schemes
    reasons: list = field(default_factory=list)  # why a new version is written (empty: up to date)

    @property
    def up_to_date(self) -> bool:
        return not self.reasons

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def todo(self) -> list[SamplePlan]:
        return [p for p in self.plans if p.action == "compute"]

    @property
    def copies(self) -> list[SamplePlan]:
        return [p for p in self.plans if p.action == "copy"]

    @property
    def kept(self) -> int:
        return sum(p.action in ("keep", "excluded") for p in self.plans)

    @property
    def array_names(self) -> list[str]:
        return [s.name for g in self.groups for s in arrays_of_group(g)]

    def region(self, index: int) -> tuple[int, int] | None:
        """(start, length) of sample `index`'s clip in the ragged arrays (None without clips)."""
        return (self.starts[index], self.lengths[index]) if "clip" in self.groups else None

    def layout_key(self) -> str:
        """Identifies what a run's scratch branch was laid out for (same parent, sample
        count, ragged size, arrays, checkpoint format): only such a branch is resumed."""
        spec = {
            "parent": self.parent,
            "n": self.n,
            "total_frames": self.total_frames,
            "names": sorted(self.array_names),
            "groups": list(self.groups),
            "checkpoint_format": CHECKPOINT_FORMAT,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def seq_len(row) -> int:
    """Frames of a sample's clip (0 when it lists none)."""
    seq = row.get("seq_paths")
    return 0 if seq is None or isinstance(seq, float) else len(seq)


def clip_lengths(samples: pd.DataFrame, groups: tuple) -> list[int]:
    """Frames each sample's clip takes in the ragged arrays (all 0 without clip products)."""
    if "clip" not in groups:
        return [0] * len(samples)
    return [seq_len(r) for r in samples.to_dict("records")]


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


def _nz(v):
    """Parquet nulls come back as None or NaN; a fingerprint is a str or None."""
    return v if isinstance(v, str) else None


def old_fingerprint(old: dict | None, product: str) -> str | None:
    """The fingerprint a previous manifest row holds for `product` (None: not made)."""
    return None if old is None else _nz(old.get(f"fp_{product}"))


def _crop_reusable(o: dict, moved: bool) -> bool:
    """The previous crop box and eye angle of an ok sample that kept its row can be reused."""
    angle = o.get("eye_angle")
    return o["status"] == "ok" and not moved and isinstance(angle, float) and not np.isnan(angle)


def plan_sample(i: int, fingerprints: dict, o: dict | None, groups: tuple, start: int) -> SamplePlan:
    """What to do with sample `i` whose fingerprints are `fingerprints`, given its previous
    manifest row `o` (None: new) and the start of its clip region now."""
    if o is None or (o["status"] == "excluded" and o.get("reason") == "task_failed"):
        return SamplePlan(i, "compute", groups, fingerprints=fingerprints)  # new, or a crashed task retried
    same = {g: old_fingerprint(o, g) == fingerprints[g] for g in groups}
    if "clip" in groups and not pd.isna(o.get("clip_start")) and int(o["clip_start"]) != start:
        same["clip"] = False  # its ragged region moved: rewrite it
    moved = int(o["index"]) != i
    if all(same.values()):
        if o["status"] == "excluded":
            return SamplePlan(i, "excluded", old=o, fingerprints=fingerprints)
        if not moved:
            return SamplePlan(i, "keep", old=o, fingerprints=fingerprints)
        return SamplePlan(i, "copy", old_index=int(o["index"]), old=o, fingerprints=fingerprints)
    if same["crop"] and _crop_reusable(o, moved):
        changed = tuple(g for g in groups if not same[g])
        return SamplePlan(i, "compute", changed, old_index=int(o["index"]), old=o, fingerprints=fingerprints)
    return SamplePlan(i, "compute", groups, fingerprints=fingerprints)


def plan_samples(
    samples: pd.DataFrame, old: pd.DataFrame | None, root: Path, ds: Dataset, groups: tuple, starts: list[int]
) -> list[SamplePlan]:
    """What to do for each sample: compute (which products), keep, copy from its old row,
    or keep excluded. Unchanged fingerprints (and row) mean no work."""
    old_by_id = {} if old is None else {r["sample_id"]: r for r in old.to_dict("records")}
    return [
        plan_sample(
            i,
            sample_fingerprints(row, root, ds.params, ds.has_depth),
            old_by_id.get(row["sample_id"]),
            groups,
            starts[i],
        )
        for i, row in enumerate(samples.to_dict("records"))
    ]


def source_checksums(ds: Dataset, resolved: dict) -> dict[str, str]:
    """sha256 of the source annotation files (and known-bad lists) of `ds`, by path
    relative to its root; a composite lists each present part's files. `resolved`:
    the datasets as ingest found them (Ingested.datasets; a part without a root is not
    there: skipped and said at ingest)."""
    out = {}
    parts = [resolved[p] for p in ds.parts if p in resolved] if ds.parts else [resolved[ds.name]]
    for d in parts:
        prefix = f"{d.name}:" if ds.parts else ""
        for key in ("annotation", "known_bad", "macro_annotation"):
            if getattr(d, key, None):
                out[prefix + getattr(d, key)] = sha256_file(d.file(key))
        for key in ("repairs", "macro_repairs"):  # a catalog repair edits the sheet as much as the file itself
            if getattr(d, key, None):
                out[prefix + f"catalog:{key}"] = hashlib.sha256(
                    json.dumps(getattr(d, key), sort_keys=True, default=str).encode()
                ).hexdigest()
    if ds.official_list is not None:
        out["official_list:" + ds.official_list.name] = sha256_file(ds.official_list)
    return out


def _pre_task_keys(excl: pd.DataFrame) -> set:
    """The exclusions decided before any clip task, as comparable keys."""
    e = excl[excl["stage"].isin(PRE_STAGES)]
    return set(zip(e["sample_id"].fillna(""), e["ann_file"].fillna(""), e["ann_row"].fillna(-1), e["reason"]))


@dataclass
class Previous:
    """What the store's current version holds that the plan compares against."""

    snapshot: str
    manifest: pd.DataFrame | None
    exclusions: pd.DataFrame | None
    videos: pd.DataFrame | None
    metadata: dict
    array_rows: dict  # array name -> rows it holds
    stale_metadata: tuple = ()  # arrays whose dimension names / CF attributes are not the declared ones


def label_inputs(ds: Dataset) -> str:
    """sha256 of what the catalog says about labels beyond each sample's row: the label
    scheme and every scheme counted (class -> emotion words)."""
    spec = {"label_scheme": ds.label_scheme, "schemes": ds.schemes or {ds.label_scheme: ds.scheme}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _sample_columns_differ(old: pd.DataFrame, samples: pd.DataFrame) -> list[str]:
    """The sample columns (SAMPLE_SCHEMA: emotion, fps, AUs, paths, notes...) whose values
    the previous manifest holds differently from this ingest."""
    from schemas.tables import SAMPLE_SCHEMA, conform

    if len(old) != len(samples) or set(old["sample_id"]) != set(samples["sample_id"]):
        return ["sample_id"]
    names = [n for n in SAMPLE_SCHEMA.names if n in old.columns or n in samples.columns]

    def table(df):
        return conform(df.reindex(columns=names).sort_values("sample_id").reset_index(drop=True), SAMPLE_SCHEMA)

    a, b = table(old), table(samples)
    return [n for n in SAMPLE_SCHEMA.names if not a.column(n).equals(b.column(n))]


def new_version_reasons(plan: RunPlan, prev: Previous, screened_same: bool) -> list[str]:
    """Why a run must write a new version (empty: the current one is exactly what it
    would write). Besides samples to compute or copy: arrays laid out for other samples,
    other pre-task exclusions, another screening, other source files, sample columns the
    catalog or sheet changed without changing a frame (emotion via synonyms, fps, a
    repair, a note) and other label schemes - those make a new version of the tables
    without recomputing arrays."""
    if plan.todo or plan.copies:
        return [f"{len(plan.todo)} sample(s) to compute, {len(plan.copies)} to copy"]
    if prev.manifest is None or prev.exclusions is None:
        return ["no previous version"]
    want = {a: (plan.total_frames if ARRAYS[a].ragged else plan.n) for a in plan.array_names}
    checks = [
        (all(prev.array_rows.get(a) == rows for a, rows in want.items()), "the arrays are laid out for other samples"),
        (_pre_task_keys(prev.exclusions) == _pre_task_keys(plan.exclusions), "other rows excluded before any task"),
        (screened_same, "the AU screening changed"),
        (prev.metadata.get("sources") == plan.sources, "the annotation files or repairs changed"),
        (
            prev.metadata.get("labels_sha256") == plan.labels,
            "the catalog's label schemes changed"
            if "labels_sha256" in prev.metadata
            else "the current version does not record its label schemes (made before they were compared)",
        ),
    ]
    reasons = [why for same, why in checks if not same]
    stale = [a for a in prev.stale_metadata if a in plan.array_names]
    if stale:
        reasons.append(
            f"{len(stale)} array(s) lack their declared dimension names or CF attributes (e.g. {stale[0]}): "
            "a metadata-only version, nothing recomputed"
        )
    cols = _sample_columns_differ(prev.manifest, plan.samples)
    if cols:
        reasons.append(f"sample columns changed: {', '.join(cols)}")
    return reasons


def fingerprint_scheme_note(prev: Previous, name: str) -> str | None:
    """Why every product recomputes once on a store made before fingerprints came from
    the products' declarations (None when the scheme is current or the store is new)."""
    if prev.manifest is None or not len(prev.manifest):
        return None
    was = prev.metadata.get("fingerprint_scheme", "1")
    if was == FINGERPRINT_SCHEME:
        return None
    return (
        f"[{name}] the store's current version has fingerprints of scheme {was}; this code derives them from "
        f"the products' declarations (scheme {FINGERPRINT_SCHEME}: declared parameters, input files, "
        "upstream products, array shapes): every product of every sample is recomputed once (values that "
        "do not change are written again unchanged)"
    )
