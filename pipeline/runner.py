"""The engine's run, as a short story of named phases:

    ingest -> screen -> plan -> execute (dask) -> assemble -> commit

ingest (pipeline.ingest) reads the sheets and folders into samples and exclusions;
screen (pipeline.screening) adds the AU-selected pairs of unlabelled recordings; plan
(pipeline.planning) decides per sample what to compute, keep or copy by the products'
fingerprints; execute (pipeline.execute) runs the clip tasks and shard writers on dask
into a scratch branch, checkpointed so a killed run resumes; assemble (pipeline.assemble)
builds the manifest, exclusions and checksums; commit (pipeline.commit) writes them with
the provenance and card and moves `main`. A run with nothing to do commits nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.assemble import Assembled, assemble
from pipeline.catalog import DEFAULT_GC_THRESHOLD_MB, Catalog, Dataset
from pipeline.commit import (
    CommittedButFailed,
    RunRecord,
    commit,
    delete_scratch_branch,
    keep_failed_run,
    write_run_folder,
)
from pipeline.execute import LazyClient, drop_scratch_branches, execute
from pipeline.gc import collect_if_worth_it
from pipeline.ingest import Ingested, ingest_all
from pipeline.params import resolve_flow_backend, workers_have_gpu
from pipeline.planning import (
    Previous,
    RunPlan,
    clip_lengths,
    fingerprint_scheme_note,
    label_inputs,
    new_version_reasons,
    plan_samples,
    ragged_layout,
    source_checksums,
)
from pipeline.screen_checkpoint import ScreenCheckpoint
from pipeline.screening import Screening
from pipeline.store import Store, one_line, stale_array_metadata, store_lock
from pipeline.tasks import check_models
from products import groups_for
from schemas.arrays import ARRAYS
from schemas.tables import LABELLED, MACRO


@dataclass
class RunResult:
    """What a run did; `provenance` is the committed version's metadata (with the mean
    stage timings), None when nothing was committed."""

    snapshot: str | None
    run_dir: Path
    recomputed: int
    copied: int
    kept: int
    excluded: pd.DataFrame
    manifest: pd.DataFrame
    timings: dict  # stage -> mean ms per clip computed
    committed: bool
    seconds: float
    provenance: dict | None = None
    failed_run: str | None = None  # why the run did not become `main` (too many failed tasks)
    kept_branch: str | None = None  # where its result stays for inspection

    @property
    def failed(self) -> list[str]:
        """Samples whose task failed after its retries (retried by the next run)."""
        e = self.excluded
        return [] if e is None or not len(e) else list(e.loc[e["stage"] == "task", "detail"])


@dataclass
class RunSettings:
    """How to run: identity, where to log, and the engine's knobs."""

    run_id: str
    run_dir: Path
    log: object = print
    progress: bool = True
    checkpoint_s: float = 120.0
    started: float = 0.0
    trust_model_files: bool = False  # accept model files whose sha256 differs from models.lock
    gc_threshold_mb: float = DEFAULT_GC_THRESHOLD_MB  # the dataset's catalog gc_threshold_mb

    @property
    def screen_checkpoint(self) -> ScreenCheckpoint:
        """The dataset's AU screening checkpoint (in its runs folder, beside this run's)."""
        return ScreenCheckpoint(self.run_dir.parent, self.log)


@dataclass
class Screened:
    """Samples and pre-task exclusions after screening (labelled + AU-selected)."""

    samples: pd.DataFrame
    exclusions: pd.DataFrame
    screening: Screening | None  # None: the dataset has no unlabelled recordings
    same_as_parent: bool  # the screening tables equal the parent version's


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


# sheet rows that could not be read as a sample (as opposed to rows read and then refused)
UNREADABLE_ROWS = {"unsafe_path", "frame_not_numeric", "merged_cell", "formula_without_value", "au_unparsable"}


class RunRefused(RuntimeError):
    """The input is too broken to make a version of (nothing is computed or committed)."""


def check_sheet_readable(got: Ingested, ds: Dataset) -> None:
    """A sheet whose rows mostly cannot be read (merged cells, formulas without values,
    a shifted header) would commit a version of a few samples: refuse instead."""
    e = got.exclusions
    at_ingest = e[(e["stage"] == "ingest") & e["ann_row"].notna()] if len(e) else e
    unreadable = at_ingest[at_ingest["reason"].isin(UNREADABLE_ROWS)] if len(at_ingest) else at_ingest
    s = got.samples
    total = (int(s["source"].isin((LABELLED, MACRO)).sum()) if len(s) else 0) + len(at_ingest)  # the sheets' rows
    if len(unreadable) and len(unreadable) / total > ds.max_failed_fraction:
        reasons = unreadable["reason"].value_counts().to_dict()
        raise RunRefused(
            f"{len(unreadable)} of the {total} annotation rows cannot be read as samples ({reasons}; more than "
            f"max_failed_fraction {ds.max_failed_fraction:.0%}), e.g. {unreadable['detail'].iloc[0]}. "
            "Not a version worth committing: fix the sheet (`mepipe plan` lists every row)"
        )


def ingest_phase(cat: Catalog, ds: Dataset, log) -> Ingested:
    """Read the dataset's sheets and folders (layout detected, repairs applied); a sheet
    whose rows mostly cannot be read stops the run (RunRefused)."""
    got = ingest_all(ds, cat, log)
    for name, found in got.layouts.items():
        log(f"[{name}] layout: {found.describe()}")
    log(
        f"[{ds.name}] {len(got.samples)} samples from the annotation, {len(got.exclusions)} rows excluded at ingest"
        + (f"; {sum(r['applied'] for r in got.repairs)} sheet repair(s) applied" if got.repairs else "")
    )
    check_sheet_readable(got, got.datasets[ds.name])
    return got


def previous_version(store: Store) -> Previous:
    """What `main` holds now, as the plan compares it."""
    parent = store.head()
    g = store.group(parent)
    return Previous(
        parent,
        store.table("manifest", parent),
        store.table("exclusions", parent),
        store.table("videos", parent),
        store.repo.lookup_snapshot(parent).metadata or {},
        {name: g[name].shape[0] for name in ARRAYS if name in g},
        tuple(stale_array_metadata(g)),
    )


def screen_phase(ds: Dataset, got: Ingested, store: Store, prev: Previous, get_client, s: RunSettings) -> Screened:
    """Add the AU-selected onset/apex pairs of the unlabelled recordings (if any)."""
    if not ds.unlabelled:
        return Screened(got.samples, got.exclusions, None, True)
    from pipeline.screening import screen

    scr = screen(
        ds,
        store.table("au_frames", prev.snapshot),
        prev.videos,
        get_client,
        log=s.log,
        progress=s.progress,
        trust_model_files=s.trust_model_files,
        checkpoint=s.screen_checkpoint,
    )
    samples = pd.concat([got.samples, scr.samples], ignore_index=True) if len(scr.samples) else got.samples
    exclusions = pd.concat([got.exclusions, scr.exclusions], ignore_index=True)
    same = not scr.recomputed and prev.videos is not None and set(prev.videos["video"]) == set(scr.videos["video"])
    return Screened(samples, exclusions, scr, same)


def plan_phase(
    ds: Dataset, got: Ingested, screened: Screened, prev: Previous, groups: tuple, s: RunSettings
) -> RunPlan:
    """Decide per sample what to compute, keep or copy; and whether anything is to do.
    A missing model file stops the run here, before any work."""
    lengths = clip_lengths(screened.samples, groups)
    starts, total_frames = ragged_layout(lengths)
    check_models(ds.params, groups, s.trust_model_files, s.log)
    plans = plan_samples(screened.samples, prev.manifest, ds.root(), ds, groups, starts)
    plan = RunPlan(
        prev.snapshot,
        screened.samples,
        screened.exclusions,
        groups,
        plans,
        lengths,
        starts,
        total_frames,
        source_checksums(ds, got.datasets),
        label_inputs(ds),
    )
    plan.reasons = new_version_reasons(plan, prev, screened.same_as_parent)
    return plan


def _up_to_date(store: Store, plan: RunPlan, prev: Previous, s: RunSettings, name: str) -> RunResult:
    drop_scratch_branches(store)
    s.screen_checkpoint.clear()  # main already holds every AU table
    s.log(f"[{name}] up to date: 0 samples recomputed ({plan.kept} unchanged) at snapshot {plan.parent}")
    secs = time.perf_counter() - s.started
    return RunResult(plan.parent, s.run_dir, 0, 0, plan.kept, prev.exclusions, prev.manifest, {}, False, secs)


def too_many_failures(plan: RunPlan, written, max_fraction: float) -> str | None:
    """Why this run must not become `main`: every clip task it ran failed, or more than
    `max_fraction` of them (catalog `max_failed_fraction`, default 0.5). None: fine."""
    ran = [p.index for p in plan.todo]
    failed = sum((written.infos.get(i) or {}).get("stage") == "task" for i in ran)
    if not ran or not failed:
        return None
    if failed == len(ran) or failed / len(ran) > max_fraction:
        return (
            f"{failed} of the {len(ran)} clip task(s) this run computed failed after retries "
            f"(limit: more than {max_fraction:.0%} or all; catalog max_failed_fraction)"
        )
    return None


def _failed_run(store, rec: RunRecord, plan: RunPlan, ex, tables: Assembled, why: str, s: RunSettings) -> RunResult:
    """Keep a failed run's result on its scratch branch, say so; `main` does not move."""
    snap, meta = keep_failed_run(rec, plan, ex, tables, why)
    s.log(
        f"[{rec.ds.name}] FAILED run: {why}. Nothing was committed to main (still snapshot {plan.parent}); "
        f"this run's result is kept as snapshot {snap} on branch {ex.branch} for inspection "
        f"(`mepipe versions show --ref {snap}`) until the next run"
    )
    secs = time.perf_counter() - s.started
    return RunResult(
        plan.parent, s.run_dir, len(plan.todo), len(plan.copies), plan.kept, tables.exclusions, tables.manifest,
        tables.stage_ms, False, secs, meta, failed_run=why, kept_branch=ex.branch,
    )  # fmt: skip


def _report(snap: str, plan: RunPlan, tables: Assembled, s: RunSettings, name: str) -> float:
    """Log what was committed; returns the run's seconds."""
    secs = time.perf_counter() - s.started
    n_ok = int((tables.manifest["status"] == "ok").sum())
    s.log(
        f"[{name}] committed snapshot {snap}: {n_ok}/{plan.n} samples ok, {len(tables.exclusions)} exclusions, "
        f"{len(plan.todo)} recomputed, {len(plan.copies)} copied, {plan.kept} unchanged ({secs:.1f} s)"
    )
    if tables.stage_ms:
        s.log("  stage ms/clip: " + ", ".join(f"{k[:-3]} {v:.0f}" for k, v in tables.stage_ms.items()))
    for r in tables.exclusions.itertuples():
        s.log(f"  excluded [{r.stage}/{r.reason}] {r.detail}")
    return secs


def _after_commit(store: Store, snap: str, meta: dict, plan: RunPlan, ex, tables: Assembled, s: RunSettings) -> dict:
    """Clean up and record once `main` has moved; a failure here is reported as what it
    is (CommittedButFailed: the version is committed), never as a run that left nothing."""
    step = "deleting the run's scratch branch"
    try:
        delete_scratch_branch(store, ex.branch)
        secs = _report(snap, plan, tables, s, meta["dataset"])
        summary = {"snapshot": snap, **meta, "stage_ms_per_clip": tables.stage_ms, "seconds": secs}
        step = f"writing the run folder {s.run_dir}"
        write_run_folder(s.run_dir, tables, summary)
    except Exception as e:
        raise CommittedButFailed(snap, step, e) from e
    _collect_garbage(store, s)
    return summary


def _collect_garbage(store: Store, s: RunSettings) -> None:
    """Collect what killed runs and amended commits left, once it is worth it; a failure
    is a warning (the version is committed and complete)."""
    try:
        collect_if_worth_it(store, s.gc_threshold_mb, s.log)
    except Exception as e:
        s.log(f"warning: garbage collection failed ({one_line(e)}); the version is committed")


def _run_locked(
    ds: Dataset, got: Ingested, store: Store, get_client: LazyClient, groups: tuple, s: RunSettings
) -> RunResult:
    """screen -> plan -> execute -> assemble -> commit, holding the store's lock."""
    prev = previous_version(store)
    screened = screen_phase(ds, got, store, prev, get_client, s)
    plan = plan_phase(ds, got, screened, prev, groups, s)
    if note := fingerprint_scheme_note(prev, ds.name):
        s.log(note)
    if plan.up_to_date:
        return _up_to_date(store, plan, prev, s, ds.name)
    s.log(
        f"[{ds.name}] {len(plan.todo)} to compute, {len(plan.copies)} to copy, {plan.kept} unchanged; "
        f"{get_client.workers} worker(s)"
    )
    if not plan.todo and not plan.copies:
        s.log(f"[{ds.name}] a new version of the tables, no array recomputed: {'; '.join(plan.reasons)}")
    ex = execute(store, plan, ds, get_client, s.run_id, s.log, s.checkpoint_s, s.progress)
    tables = assemble(plan, ex.written, ds.name, prev.exclusions, store.table("checksums", prev.snapshot))
    rec = RunRecord(s.run_id, ds, got, screened.screening)
    if why := too_many_failures(plan, ex.written, ds.max_failed_fraction):
        return _failed_run(store, rec, plan, ex, tables, why, s)
    snap, meta = commit(store, rec, plan, ex, tables)
    s.screen_checkpoint.clear()  # the version holds the AU tables now
    summary = _after_commit(store, snap, meta, plan, ex, tables, s)
    secs = summary["seconds"]
    return RunResult(
        snap,
        s.run_dir,
        len(plan.todo),
        len(plan.copies),
        plan.kept,
        tables.exclusions,
        tables.manifest,
        tables.stage_ms,
        True,
        secs,
        summary,
    )


def with_flow_backend(ds: Dataset, profile: dict | None, log=print) -> Dataset:
    """`ds` with params.tvl1.backend 'auto' resolved for this run's workers (said in the log)."""
    if ds.params["tvl1"]["backend"] != "auto":
        return ds
    gpu = workers_have_gpu(profile)
    params = resolve_flow_backend(ds.params, gpu)
    log(f"[{ds.name}] tvl1 backend auto: {params['tvl1']['backend']} (the workers {'have' if gpu else 'have no'} GPU)")
    return dataclasses.replace(ds, params=params)


def with_worker_logs(profile: dict, run_dir: Path) -> dict:
    """A batch profile whose worker jobs write their output files under the run's folder
    (`worker-logs/`) unless the profile names a `log_directory`; not the directory the
    run was started from (the repository, for `make preprocess`)."""
    if profile["kind"] == "local" or profile.get("log_directory"):
        return profile
    return {**profile, "log_directory": str(run_dir / "worker-logs")}


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
    trust_model_files: bool = False,
) -> RunResult:
    """Preprocess dataset `ds` into its store and commit one version (or nothing, if up to
    date). A store locked by another run is an error at once, or after `lock_wait` s.
    Written shards are checkpointed on the run's scratch branch every `checkpoint_s`
    seconds, so a killed run resumes from there instead of starting over. Model files
    whose sha256 differs from models.lock are refused unless `trust_model_files`."""
    run_id = run_id or new_run_id()
    s = RunSettings(
        run_id, cat.runs_root / ds.name / run_id, log, progress, checkpoint_s, time.perf_counter(), trust_model_files
    )
    s.run_dir.mkdir(parents=True, exist_ok=True)
    got = ingest_phase(cat, ds, log)
    profile = with_worker_logs(cat.cluster(cluster), s.run_dir) if cluster else None
    ds = with_flow_backend(got.datasets[ds.name], profile, log)  # with the layout ingest found
    s.gc_threshold_mb = ds.gc_threshold_mb
    get_client = LazyClient(workers, log, profile)
    try:
        with store_lock(cat.store_root / ds.name, wait=lock_wait, log=log):  # before a first run creates it
            store = Store(cat.store_root / ds.name)
            return _run_locked(ds, got, store, get_client, groups_for(methods, ds.has_depth), s)
    finally:
        get_client.close()
