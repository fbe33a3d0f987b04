"""The execute phase of a run: one task per clip on dask, one writer per shard, all
writing to the run's scratch branch, checkpointed so that a killed run resumes.

The scratch branch (`run-<run id>`) is laid out from the parent version, written through
forked sessions and made durable every `checkpoint_s` seconds with a table of what it
holds; a run killed in between finds it, keeps the samples whose fingerprints still
match and computes the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import deque
from dataclasses import dataclass, field

import pandas as pd
import zarr

from pipeline.catalog import Dataset
from pipeline.cluster import gpu_resources, max_threads
from pipeline.faults import fault_point
from pipeline.params import workers_have_gpu
from pipeline.planning import RunPlan, SamplePlan
from pipeline.shards import Slot, write_shard
from pipeline.store import Store, ensure_arrays, write_table_array
from pipeline.tasks import excluded_result, process_clip, shard_flows, uses_gpu
from schemas.arrays import ARRAYS, SHARD_SAMPLES
from schemas.tables import CHECKPOINT, CHECKPOINT_SCHEMA, conform

CHECKPOINT_TABLE = CHECKPOINT.removeprefix("tables/")
CLIPS_PER_THREAD = 4  # clip tasks in flight per thread the cluster can have (clip_window)
# dask's developer logs (the last messages of each connection, the scheduler's transitions,
# its profile cycles) keep 1000 entries by default; each message sent to a worker holds a
# task's arguments (a sample row, the parameters, a store session), so with that default
# the driver's memory grows with the run's first thousand tasks per worker. The engine
# keeps this many.
DASK_LOG_LENGTH = 50


def jsonable(o):
    """A JSON encoder's fallback: numpy scalars, tuples and paths as plain values."""
    return o.item() if hasattr(o, "item") else (list(o) if isinstance(o, tuple) else str(o))


class LazyClient:
    """A dask cluster started on first use (a run with nothing to do starts none): the
    LocalCluster of `workers` by default, or the catalog's cluster profile."""

    def __init__(self, workers: int, log=print, profile: dict | None = None):
        self.workers, self.log, self.client, self.profile = workers, log, None, profile
        self.config = None  # the dask settings of the client's lifetime (short_dask_logs)

    def __call__(self):
        if self.client is None:
            from dask.distributed import Client

            from pipeline.cluster import check_schedulable, make_cluster, wait_for_first_worker

            if self.profile:
                check_schedulable(self.profile)  # refused in seconds rather than waited on forever
            self.config = short_dask_logs()
            self.client = Client(make_cluster(self.profile, self.workers))
            kind = (self.profile or {}).get("kind", "local")
            self.log(f"dask dashboard: {self.client.dashboard_link} ({kind} cluster)")
            if kind != "local":
                wait_for_first_worker(self.client, self.profile)
        return self.client

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client.cluster.close()
            self.client = None
        if self.config is not None:
            self.config.__exit__(None, None, None)
            self.config = None


def short_dask_logs():
    """dask's developer logs bounded to DASK_LOG_LENGTH entries (a shorter length the
    user configured is kept) until the returned settings are exited."""
    import dask

    key = "distributed.admin.low-level-log-length"
    now = dask.config.get(key)
    return dask.config.set({key: DASK_LOG_LENGTH if now is None else min(now, DASK_LOG_LENGTH)})


@dataclass
class Written:
    """What the scratch branch holds for each sample written so far."""

    infos: dict = field(default_factory=dict)  # index -> task result without arrays (None: a copy)
    shas: dict = field(default_factory=dict)  # index -> {array: sha256 of the values written}

    def absorb(self, results: list) -> list:
        """Record finished writer results (fork, infos, shas); returns their forks."""
        for _, infos, shas in results:
            self.infos.update(dict(infos))
            self.shas.update(shas)
        return [fork for fork, _, _ in results]


@dataclass
class Executed:
    """The outcome of the execute phase: the scratch branch with every shard merged."""

    branch: str
    session: object  # writable Icechunk session on `branch`
    written: Written
    resumed: int  # samples a killed run had already written


def drop_scratch_branches(store: Store, keep: str | None = None) -> None:
    """Delete the scratch branches of killed runs (the caller holds the lock, so none is
    in use), except `keep` (the one being resumed)."""
    for b in store.repo.list_branches():
        if b.startswith("run-") and b != keep:
            store.repo.delete_branch(b)


def _checkpointed(store: Store, snap: str, plans: list[SamplePlan]) -> Written:
    """The samples a scratch branch's checkpoint table holds whose fingerprints still match."""
    ck = store.table(CHECKPOINT_TABLE, snap)
    done = Written()
    for r in [] if ck is None else ck.to_dict("records"):
        i = int(r["index"])
        if i < len(plans) and plans[i].action in ("compute", "copy"):
            if json.loads(r["fingerprints"]) == plans[i].fingerprints:
                done.infos[i] = json.loads(r["info"]) if r["info"] else None
                done.shas[i] = json.loads(r["shas"])
    return done


def find_resumable(store: Store, plan: RunPlan, log, name: str) -> tuple[str, Written] | None:
    """The scratch branch of a killed run laid out like this one, with what it holds."""
    key = plan.layout_key()
    for b in store.repo.list_branches():
        if not b.startswith("run-"):
            continue
        snap = store.repo.lookup_branch(b)
        meta = store.repo.lookup_snapshot(snap).metadata or {}
        if meta.get("checkpoint_layout") != key:
            continue
        done = _checkpointed(store, snap, plan.plans)
        log(
            f"[{name}] resuming killed run {meta.get('run_id')}: {len(done.infos)} sample(s) already written "
            f"(checkpoint of {meta.get('checkpoint_at')})"
        )
        return b, done
    return None


def new_scratch_branch(store: Store, plan: RunPlan, run_id: str, dataset: str) -> str:
    """Create the run's scratch branch on the parent with its arrays laid out."""
    branch = f"run-{run_id}"
    store.repo.create_branch(branch, plan.parent)
    s = store.repo.writable_session(branch)
    g = zarr.open_group(s.store, mode="a")
    names = plan.array_names
    ensure_arrays(g, [a for a in names if not ARRAYS[a].ragged], plan.n, {"dataset": dataset})
    ensure_arrays(g, [a for a in names if ARRAYS[a].ragged], plan.total_frames, {"dataset": dataset})
    g.attrs.update({"dataset": dataset, "layout": "one row per sample along axis 0; see tables/manifest"})
    s.commit("layout", allow_empty=True)
    return branch


def checkpoint(store: Store, session, branch: str, written: Written, plan: RunPlan, run_id: str):
    """Make what is merged into `session` durable on the scratch branch (amended in place,
    so the branch stays one commit above its parent) with the table of what it holds.
    Returns a new session on the branch."""
    idx = sorted(set(written.infos) | set(written.shas))
    table = pd.DataFrame(
        {
            "index": idx,
            "fingerprints": [json.dumps(plan.plans[i].fingerprints, sort_keys=True) for i in idx],
            "info": [
                None if written.infos.get(i) is None else json.dumps(written.infos[i], default=jsonable) for i in idx
            ],
            "shas": [json.dumps(written.shas.get(i, {}), sort_keys=True) for i in idx],
        }
    )
    g = zarr.open_group(session.store, mode="a")
    write_table_array(g, CHECKPOINT_TABLE, conform(table, CHECKPOINT_SCHEMA))
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    session.amend(
        f"checkpoint of run {run_id}: {len(idx)} samples written",
        metadata={"checkpoint_layout": plan.layout_key(), "run_id": run_id, "checkpoint_at": at},
    )
    return store.repo.writable_session(branch)


def clip_window(profile: dict | None, workers: int) -> int:
    """How many clip tasks a run keeps submitted and not yet finished: a few per thread
    the cluster can have at its largest (enough to keep every worker busy, and to show an
    adaptive batch cluster the work that makes it scale up), at least two shards' worth.
    The rest wait in the driver as plans, so the scheduler's state, the futures and the
    results held for unwritten shards stay bounded however many clips a run has."""
    return max(CLIPS_PER_THREAD * max_threads(profile, workers), 2 * SHARD_SAMPLES)


def failed_task(sample_id: str, exc: BaseException) -> dict:
    """The result standing for a clip task that failed after its retries."""
    detail = f"sample {sample_id}: task failed after retries: {type(exc).__name__}: {exc}"
    return excluded_result("task", "task_failed", detail, {})


class _Execution:
    """The dask side of one run: clip tasks, a writer per shard once its clips are done,
    periodic checkpoints. State lives here so each step is a short method."""

    def __init__(self, store, plan: RunPlan, ds: Dataset, client, profile, branch, written, run_id, log, in_flight):
        self.store, self.plan, self.ds, self.client, self.profile = store, plan, ds, client, profile
        self.in_flight = in_flight  # clip tasks submitted and not yet finished, at most (clip_window)
        self.branch, self.written, self.run_id, self.log = branch, written, run_id, log
        self.session = store.repo.writable_session(branch)
        self.unsaved: list = []  # writer results not yet merged into the session
        self.results: dict[int, object] = {}  # index -> clip future or failed-task result, until its shard is written
        self.writers: dict = {}  # writer future -> the sample indices it writes
        # torch TV-L1 on GPU workers: the clip tasks leave their flows pending and one task
        # per write shard computes them in batches on a GPU (tasks.shard_flows)
        self.defer_flows = ds.params["tvl1"]["backend"] == "torch" and workers_have_gpu(profile)

    def row(self, index: int) -> dict:
        """The sample row of array row `index`, as a clip task gets it (made when its task
        is submitted: the run holds the samples table, not a dict per sample)."""
        return self.plan.samples.iloc[[index]].to_dict("records")[0]

    def submit_clip(self, p: SamplePlan):
        """Submit the clip task of `p` (a partial recompute reuses the old crop box)."""
        box = angle = None
        if "crop" not in p.need:
            o = p.old
            box = (int(o["crop_x0"]), int(o["crop_y0"]), int(o["crop_x1"]), int(o["crop_y1"]))
            angle = float(o["eye_angle"])
        return self.client.submit(
            process_clip,
            self.row(p.index),
            str(self.ds.root()),
            self.ds.params,
            p.need,
            box,
            self.ds.has_depth,
            angle,
            self.defer_flows,
            retries=2,
            key=f"clip-{p.index}-{self.run_id}",
            resources=gpu_resources(self.profile, uses_gpu(p.need, self.ds.params, self.defer_flows)),
        )

    def slot(self, p: SamplePlan) -> Slot | None:
        """The writer's slot of `p` (None: nothing to write)."""
        if p.action not in ("compute", "copy"):
            return None
        return Slot(p.index, p.action, p.old_index, self.plan.region(p.index), p.old_region())

    def submit_writer(self, plans: list[SamplePlan], shard: int, ac) -> None:
        """Submit the writer of one shard to `ac` (nothing when none of its samples is
        written). The clip results go as a dict of futures, which dask resolves on the
        worker. Only `writers` and `ac` hold its future (see `run`)."""
        slots = [s for s in map(self.slot, plans) if s is not None]
        if not slots:
            return
        w = self.client.submit(
            write_shard,
            self.session.fork(),
            str(self.store.path),
            self.plan.parent,
            slots,
            self.plan.array_names,
            self.computed(plans, slots, shard),
            retries=2,
            key=f"shard-{shard}-{self.run_id}",
        )
        self.writers[w] = [s.index for s in slots]
        ac.add(w)

    def computed(self, plans: list[SamplePlan], slots: list[Slot], shard: int):
        """What the writer of a shard gets for its computed samples: their clip results
        (futures), or with deferred flows the future of one task computing the shard's
        flows in batches on a GPU worker (both resolve to {index: result} on the worker)."""
        results = {s.index: self.results[s.index] for s in slots if s.action == "compute"}
        if not self.defer_flows or not any({"flow", "micro"} & set(p.need) for p in plans):
            return results
        return self.client.submit(
            shard_flows,
            results,
            self.ds.params["tvl1"],
            retries=2,
            key=f"flows-{shard}-{self.run_id}",
            resources=gpu_resources(self.profile, True),
        )

    def clip_done(self, f, p: SamplePlan) -> None:
        """Keep a finished clip's future (or its failure, logged) for its shard's writer."""
        if f.status == "error":
            res = failed_task(self.plan.samples["sample_id"].iat[p.index], f.exception())
            self.log(res["detail"])
            self.results[p.index] = res
        else:
            self.results[p.index] = f

    def shard_done(self, f, more_to_come: bool, last_checkpoint: float, every_s: float) -> float:
        """Keep a written shard's fork for the next merge and let go of its clip results
        (dask frees a result when no client holds its future: worker memory stays bounded
        by the clips not yet written, however many a run has); checkpoint when it is
        time. Returns the time of the last checkpoint."""
        self.unsaved.append(f.result())
        for i in self.writers.pop(f):
            self.results.pop(i, None)
        if time.monotonic() - last_checkpoint < every_s or not more_to_come:
            return last_checkpoint
        self.session.merge(*self.written.absorb(self.unsaved))
        self.unsaved.clear()
        self.session = checkpoint(self.store, self.session, self.branch, self.written, self.plan, self.run_id)
        fault_point("after_checkpoint")
        return time.monotonic()

    def submit_clips(self, queue: deque, futs: dict, ac) -> None:
        """Submit clip tasks from the front of `queue` (array-row order, so shards fill
        one after another) until the window is full."""
        room = self.in_flight - len(futs)
        while queue and room > 0:
            p = queue.popleft()
            f = self.submit_clip(p)
            futs[f] = p
            ac.add(f)
            room -= 1

    def run(self, checkpoint_s: float, progress: bool) -> None:
        """Run every clip task and shard writer not already on the branch."""
        from dask.distributed import as_completed
        from tqdm import tqdm

        skip = self.written.infos
        queue = deque(p for p in self.plan.todo if p.index not in skip)
        by_shard: dict[int, list] = {}
        for p in self.plan.plans:
            if p.index not in skip:
                by_shard.setdefault(p.index // SHARD_SAMPLES, []).append(p)
        pending = {sh: {p.index for p in ps if p.action == "compute"} for sh, ps in by_shard.items()}
        ac, futs = as_completed(), {}
        bar = tqdm(total=len(queue), desc=f"{self.ds.name}: clips", unit="clip", disable=not progress)
        self.submit_clips(queue, futs, ac)
        for sh, pend in pending.items():
            if not pend:
                self.submit_writer(by_shard[sh], sh, ac)
        last_ck = time.monotonic()
        for f in ac:
            if f in self.writers:
                last_ck = self.shard_done(f, not ac.is_empty() or bool(queue), last_ck, checkpoint_s)
            else:
                p = futs.pop(f)  # from here only results[p.index] holds it, until its shard is written
                self.clip_done(f, p)
                bar.update(1)
                sh = p.index // SHARD_SAMPLES
                pending[sh].discard(p.index)
                if not pending[sh]:
                    self.submit_writer(by_shard[sh], sh, ac)
                self.submit_clips(queue, futs, ac)
            # let go of the future now, not when the next one completes: a written shard's
            # writer future kept its clips wanted, and a worker leaving meanwhile (walltime,
            # scancel) made dask compute both again (tests/test_slurm.py)
            del f
        bar.close()


def execute(
    store: Store,
    plan: RunPlan,
    ds: Dataset,
    get_client: LazyClient,
    run_id: str,
    log,
    checkpoint_s: float,
    progress: bool,
) -> Executed:
    """Write every planned sample to the run's scratch branch (resuming a killed run's
    branch laid out like this one) and merge the writers' sessions. Starts the dask
    cluster only when there is something to run."""
    found = find_resumable(store, plan, log, ds.name)
    drop_scratch_branches(store, keep=found[0] if found else None)
    branch, written = found if found else (new_scratch_branch(store, plan, run_id, ds.name), Written())
    resumed = len(written.infos)
    to_run = [p for p in plan.todo + plan.copies if p.index not in written.infos]
    client, profile = get_client() if to_run else None, get_client.profile
    window = clip_window(profile, get_client.workers)
    ex = _Execution(store, plan, ds, client, profile, branch, written, run_id, log, window)
    if to_run:
        ex.run(checkpoint_s, progress)
    forks = written.absorb(ex.unsaved)
    # a partial (e.g. depth-only) recompute keeps the other arrays of its row, which the
    # run branch inherits from the parent snapshot; a moved row is always recomputed whole.
    if forks:
        ex.session.merge(*forks)
    g = zarr.open_group(ex.session.store, mode="a")
    if CHECKPOINT in g:
        del g[CHECKPOINT]  # the checkpoint table belongs to the scratch branch only
    return Executed(branch, ex.session, written, resumed)
