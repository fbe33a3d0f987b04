"""The commit phase of a run: the version's tables, provenance and card written to the
scratch branch, amended into one commit, `main` moved to it, the run folder written.

`main` moves only at the very end (`reset_branch`), so a run killed before that leaves
the previous version as it was.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import zarr

import pipeline
from pipeline.assemble import Assembled
from pipeline.card import dataset_card
from pipeline.catalog import Dataset
from pipeline.execute import Executed, jsonable
from pipeline.faults import fault_point
from pipeline.ingest import Ingested
from pipeline.io import sha256_file
from pipeline.planning import RunPlan
from pipeline.screening import Screening
from pipeline.store import (
    BRANCH,
    Store,
    array_metadata_sha,
    write_sample_ids,
    write_table_array,
    write_text_array,
)
from pipeline.tasks import GROUP_VERSIONS
from products import FINGERPRINT_SCHEME
from schemas.arrays import ARRAYS
from schemas.tables import (
    AU_FRAME_SCHEMA,
    CARD,
    CHECKSUM_SCHEMA,
    EXCLUSION_SCHEMA,
    MANIFEST_SCHEMA,
    VIDEO_SCHEMA,
    conform,
)
from stages.labels import class_counts


def code_version() -> str:
    """Package version + git commit; '.dirty' when the code that makes products
    (pipeline/, stages/, schemas/, products/) differs from that commit."""
    here = Path(pipeline.__file__).parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here, timeout=5
        ).stdout.strip()
        dirty = (
            sha
            and subprocess.run(
                ["git", "diff", "--quiet", "HEAD", "--", "pipeline", "stages", "schemas", "products"],
                cwd=here.parent,
                timeout=5,
            ).returncode
            == 1
        )
    except Exception:
        sha, dirty = "", False
    return f"{pipeline.__version__}" + (f"+g{sha}" if sha else "") + (".dirty" if dirty else "")


def plain(o):
    """`o` as plain JSON values (numpy scalars, tuples and paths converted)."""
    return json.loads(json.dumps(o, default=jsonable))


def ingest_provenance(got: Ingested, ds: Dataset, manifest: pd.DataFrame) -> dict:
    """What ingest decided, for the commit's provenance and the card: the layouts it
    detected, the sheet repairs (with sources), the known-bad list's effect and the
    per-class counts of the ok labelled samples under every label scheme of `ds`."""
    ok = manifest[(manifest["status"] == "ok") & (manifest["source"] == "labelled")] if len(manifest) else manifest
    return {
        "layout": {k: v.describe() for k, v in got.layouts.items()},
        "repairs": plain(got.repairs),
        "known_bad": plain(got.known_bad),
        "composite_list": plain(got.composite) if got.composite else None,
        "class_counts": class_counts(ok["emotion"] if len(ok) else [], ds.schemes or {ds.label_scheme: ds.scheme}),
    }


def _counts(plan: RunPlan, ex: Executed, manifest: pd.DataFrame) -> dict:
    n_ok = int((manifest["status"] == "ok").sum())
    return {
        "samples": plan.n,
        "ok": n_ok,
        "excluded_in_arrays": plan.n - n_ok,
        "excluded_at_ingest": len(plan.exclusions),  # before any task: ingest, screen, select
        "recomputed": len(plan.todo),
        "copied": len(plan.copies),
        "unchanged": plan.kept,
        "resumed": ex.resumed,
    }


def _au_estimator(ds: Dataset, scr: Screening | None) -> dict | None:
    if scr is None:
        return None
    au = ds.params["au"]
    return {"name": au["estimator"], "phi": au["phi"], "videos_estimated": scr.recomputed, **scr.timings}


@dataclass
class RunRecord:
    """Who made the version and from what: the run's identity and its inputs."""

    run_id: str
    ds: Dataset
    got: Ingested
    screening: Screening | None


def provenance(rec: RunRecord, plan: RunPlan, ex: Executed, tables: Assembled, table_shas: dict) -> dict:
    """The version's metadata: code, parameters, sources, counts, tables, environment."""
    ds, manifest, exclusions = rec.ds, tables.manifest, tables.exclusions
    return {
        "run_id": rec.run_id,
        "dataset": ds.name,
        "code_version": code_version(),
        "group_versions": GROUP_VERSIONS,
        "fingerprint_scheme": FINGERPRINT_SCHEME,
        "groups": list(plan.groups),
        "params": ds.params,
        "adapter": ds.adapter,
        "annotation_sha256": sha256_file(ds.file("annotation")) if ds.annotation else None,
        "sources": plan.sources,
        "labels_sha256": plan.labels,
        "fps": ds.fps,
        "label_scheme": ds.label_scheme,
        "landmark_backends": sorted({b for b in manifest.get("landmark_backend", pd.Series()).dropna()}),
        "exclusion_reasons": {
            f"{k[0]}/{k[1]}": int(v) for k, v in exclusions.groupby(["stage", "reason"]).size().items()
        },
        "counts": _counts(plan, ex, manifest),
        "tables": table_shas,
        "au_estimator": _au_estimator(ds, rec.screening),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **ingest_provenance(rec.got, ds, manifest),
    }


def write_tables(g: zarr.Group, tables: Assembled, scr: Screening | None) -> dict[str, str]:
    """Write the version's tables into the scratch branch; returns their sha256."""
    shas = {
        "manifest": write_table_array(g, "manifest", conform(tables.manifest, MANIFEST_SCHEMA)),
        "exclusions": write_table_array(g, "exclusions", conform(tables.exclusions, EXCLUSION_SCHEMA)),
        "checksums": write_table_array(g, "checksums", conform(tables.checksums, CHECKSUM_SCHEMA)),
    }
    if scr is not None:
        shas["au_frames"] = write_table_array(g, "au_frames", conform(scr.au_frames, AU_FRAME_SCHEMA))
        shas["videos"] = write_table_array(g, "videos", conform(scr.videos, VIDEO_SCHEMA))
    return shas


def _write_version(rec: RunRecord, plan: RunPlan, ex: Executed, tables: Assembled, extra: dict) -> tuple[str, dict]:
    """Write tables, provenance (+ `extra`) and card to the scratch branch and amend it
    into one commit; returns (snapshot, provenance). `main` is not touched."""
    g = zarr.open_group(ex.session.store, mode="a")
    meta = {**provenance(rec, plan, ex, tables, write_tables(g, tables, rec.screening)), **extra}
    write_sample_ids(g, tables.manifest)  # the xarray coordinate of each group
    shapes = {a: g[a].shape for a in ARRAYS if a in g}
    card = dataset_card(meta, rec.ds.scheme, rec.ds.description, shapes, tables.manifest, tables.exclusions)
    meta["card_sha256"] = write_text_array(g, CARD, card)
    meta["arrays_sha256"] = {a: array_metadata_sha(g[a]) for a in ARRAYS if a in g}  # verify re-checks them
    n_ok = meta["counts"]["ok"]
    fault_point("before_commit")
    msg = f"preprocess {rec.ds.name}: {len(plan.todo)} computed, {n_ok}/{plan.n} ok"
    snap = ex.session.amend(msg + (" (FAILED run, not main)" if extra.get("failed_run") else ""), metadata=meta)
    return snap, meta


def keep_failed_run(rec: RunRecord, plan: RunPlan, ex: Executed, tables: Assembled, why: str) -> tuple[str, dict]:
    """A failed run's result, committed on its scratch branch only (for inspection with
    `mepipe versions show --ref <snapshot>`); `main` stays where it was. The next run
    deletes the branch."""
    return _write_version(rec, plan, ex, tables, {"failed_run": why})


def commit(store: Store, rec: RunRecord, plan: RunPlan, ex: Executed, tables: Assembled) -> tuple[str, dict]:
    """Write tables, provenance and card; amend the scratch branch into one commit and
    move `main` to it (the last step: before it, nothing of the run is visible). Returns
    (snapshot, provenance)."""
    snap, meta = _write_version(rec, plan, ex, tables, {})
    fault_point("after_commit")
    store.repo.reset_branch(BRANCH, snap, from_snapshot_id=plan.parent)
    fault_point("after_reset")
    return snap, meta


class CommittedButFailed(RuntimeError):
    """`main` moved to `snapshot` (the version is complete), then a later step failed."""

    def __init__(self, snapshot: str, step: str, error: BaseException):
        super().__init__(f"committed snapshot {snapshot}; then {step} failed: {type(error).__name__}: {error}")
        self.snapshot, self.step, self.error = snapshot, step, error


def delete_scratch_branch(store: Store, branch: str) -> None:
    """The run's scratch branch, no longer needed once `main` points at its commit."""
    store.repo.delete_branch(branch)


def write_run_folder(run_dir: Path, tables: Assembled, summary: dict) -> None:
    """The run folder's copy of the tables and summary (for people and scripts; the
    store is the record)."""
    tables.manifest.to_parquet(run_dir / "manifest.parquet")
    tables.exclusions.to_parquet(run_dir / "exclusions.parquet")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
