"""`mepipe plan`: what a run would do on a dataset copy, without running it.

Reads the catalog, detects the copy's layout, runs ingest only (sheets parsed, folders
listed, image headers read: no frame is decoded) and reports the layout, the samples per
source and per class under every label scheme of the dataset, the exclusions by reason
with examples, the sheet repairs applied, the known-bad list's effect, the unlabelled
recordings found, and what a run would compute or reuse against the store's current
version. Writes the sample and exclusion tables as Parquet. The first thing to run on a
new copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.catalog import DEFAULT_MAX_DURATION_S, Catalog, Dataset
from pipeline.ingest import Ingested, ingest_all
from schemas.tables import EXCLUSION_SCHEMA, SAMPLE_SCHEMA, conform
from stages.adapters.annotated import LONG_NOTE
from stages.labels import OUTSIDE, class_counts


@dataclass
class PlanReport:
    got: Ingested
    counts: dict  # scheme -> class -> n (labelled samples)
    by_source: dict  # source -> n
    recordings: list  # unlabelled recordings found (subject/name, kind, frames)
    work: dict | None  # {compute, reuse, new, gone} against the store's head, None without a store
    samples_path: Path
    exclusions_path: Path


def make_plan(
    cat: Catalog, ds: Dataset, out: Path | None = None, log=lambda *a: None, methods: list[str] | None = None
) -> PlanReport:
    """Ingest `ds` (no decoding), compare with its store (for a run of `methods`' products,
    None = all) and write the tables. `out` is the samples file; the exclusions go beside
    it as <stem>.exclusions.parquet."""
    from pipeline.runner import with_flow_backend

    got = ingest_all(ds, cat, log)
    rds = with_flow_backend(got.datasets[ds.name], None, log)  # as a local run would resolve 'auto'
    s = got.samples
    labelled = s[s["source"] == "labelled"] if len(s) else s
    counts = class_counts(labelled["emotion"] if len(labelled) else [], rds.schemes or {ds.label_scheme: ds.scheme})
    recordings = _recordings(rds)
    work = _work(cat, rds, s, methods)
    out = Path(out) if out else cat.runs_root / ds.name / "plan" / "samples.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    ex_path = out.with_name(out.stem + ".exclusions.parquet")
    import pyarrow.parquet as pq

    pq.write_table(conform(s, SAMPLE_SCHEMA) if len(s) else SAMPLE_SCHEMA.empty_table(), out)
    pq.write_table(conform(got.exclusions, EXCLUSION_SCHEMA), ex_path)
    by_source = s["source"].value_counts().to_dict() if len(s) else {}
    return PlanReport(got, counts, by_source, recordings, work, out, ex_path)


def _recordings(ds: Dataset) -> list[dict]:
    """The unlabelled recordings (a run screens them for pairs; the plan only lists them)."""
    if not ds.unlabelled:
        return []
    from pipeline.screening import list_recordings

    return [
        {"video": f"{r['subject']}/{r['name']}", "kind": r["kind"], "frames": r["n_frames"], "error": r.get("error")}
        for r in list_recordings(ds)
    ]


def _work(cat: Catalog, ds: Dataset, samples: pd.DataFrame, methods: list[str] | None) -> dict | None:
    """Samples a run would compute or reuse, by the store's current manifest and the
    samples' fingerprints (input file checksums + parameters); None without a store."""
    from pipeline.store import Store

    path = cat.store_root / ds.name
    if not path.exists() or not len(samples):
        return None
    from pipeline.planning import clip_lengths, plan_samples, ragged_layout
    from products import groups_for

    st = Store(path, create=False)
    old = st.table("manifest", st.head())
    groups = groups_for(methods, ds.has_depth)
    starts, _ = ragged_layout(clip_lengths(samples, groups))
    plans = plan_samples(samples, old, ds.root(), ds, groups, starts)
    ids = set(samples["sample_id"])
    old_ids = set(old["sample_id"]) if old is not None else set()
    acts = pd.Series([p.action for p in plans]).value_counts().to_dict()
    return {
        "compute": acts.get("compute", 0),
        "reuse": acts.get("keep", 0) + acts.get("copy", 0),
        "excluded_before": acts.get("excluded", 0),
        "new": len(ids - old_ids),
        "gone": len(old_ids - ids),
    }


def _print_composite(got: Ingested, out) -> None:
    """How the official list of a composite matched each part of the copy."""
    for part, rep in got.composite.items():
        out(
            f"  official list, {part}: {rep['matched']}/{rep['in_list']} listed clips found"
            + (f"; {rep.get('skipped')}" if rep.get("skipped") else "")
            + (f"; {len(rep['missing'])} missing, e.g. {rep['missing'][0]}" if rep["missing"] else "")
            + (
                f"; {len(rep['mapping_would_add'])} more the emotion mapping would add (not used), e.g. "
                f"{rep['mapping_would_add'][0]}"
                if rep["mapping_would_add"]
                else ""
            )
        )


def _print_repairs(got: Ingested, out) -> None:
    """The sheet repairs of the catalog: applied or already in the sheet, with sources."""
    if not got.repairs:
        return
    done = [r for r in got.repairs if r["applied"]]
    out(f"  sheet repairs: {len(done)} applied, {len(got.repairs) - len(done)} already in the sheet")
    for r in got.repairs:
        state = "applied" if r["applied"] else f"not needed ({r.get('why')})"
        out(
            f"      {r['file']} row {r['row']} {r['column']}: {r['old']!r} -> {r['new']!r} [{state}] "
            f"source: {r['source']}"
        )


def print_plan(ds: Dataset, p: PlanReport, examples: int = 3, out=print) -> None:
    got = p.got
    out(f"plan {ds.name} ({ds.adapter}) at {ds.root()}")
    for name, found in got.layouts.items():
        out(f"  layout ({name}): {found.describe()}")
    total = sum(p.by_source.values())
    out(
        f"  samples: {total}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(p.by_source.items())) + ")" if p.by_source else "")
    )
    for scheme, counts in p.counts.items():
        cls = ", ".join(f"{k} {v}" for k, v in counts.items() if k != OUTSIDE)
        out(f"  classes under {scheme}: {cls}" + (f"; {counts[OUTSIDE]} not in the scheme" if counts[OUTSIDE] else ""))
    if got.macro is not None:
        out(f"  {got.macro.describe()}")
    _print_composite(got, out)
    _print_repairs(got, out)
    for name, kb in got.known_bad.items():
        out(
            f"  known-bad list {kb['file']} ({name}): {kb['listed']} listed frames, {kb['on_list']} sample(s) on it "
            + (
                "excluded (exclude_known_bad: true)"
                if kb["excluded"]
                else f"kept and noted (exclude_known_bad: false; true would leave {total - kb['on_list']})"
            )
        )
    s = got.samples
    long = s[s["note"].fillna("").str.contains(LONG_NOTE + " ", regex=False)] if len(s) else s
    if len(long):
        out(
            f"  {len(long)} sample(s) longer than a micro-expression's {DEFAULT_MAX_DURATION_S:g} s kept by "
            f"max_duration_s {ds.max_duration_s:g}, e.g. "
            + ", ".join(
                f"row {r.ann_row} {r.subject}/{r.clip} {r.onset}..{r.offset}" for r in long.head(examples).itertuples()
            )
        )
    ex = got.exclusions
    out(f"  excluded at ingest: {len(ex)}")
    for reason, grp in sorted(ex.groupby("reason"), key=lambda kv: -len(kv[1])) if len(ex) else []:
        out(f"    {reason}: {len(grp)}")
        for d in grp["detail"].head(examples):
            out(f"        {d}")
    if p.recordings:
        n = sum(r["frames"] or 0 for r in p.recordings)
        out(f"  unlabelled recordings: {len(p.recordings)} ({n} frames) to screen by AU intensity at run time")
    if p.work is None:
        out("  a run would compute every sample (no store yet)")
    else:
        w = p.work
        out(
            f"  a run would compute {w['compute']} sample(s) and reuse {w['reuse']} ({w['new']} new, "
            f"{w['gone']} gone since the store's current version)"
        )
    out(f"  tables: {p.samples_path}, {p.exclusions_path}")
