"""Issue 17, item 2: a run lets go of each clip's result as soon as its shard is written,
so what workers hold is bounded by the clips not yet written, not by the run's size."""

import pytest

from pipeline import execute
from pipeline.catalog import load_catalog
from pipeline.runner import run
from schemas.arrays import SHARD_SAMPLES


@pytest.mark.slow
def test_clip_results_are_released_as_each_shard_is_written(dataset_copy, monkeypatch):
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    seen = []
    real = execute._Execution.shard_done

    def watched(self, f, *a):
        written = list(self.writers[f])
        out = real(self, f, *a)
        seen.append((written, set(self.results), set(self.writers)))
        return out

    monkeypatch.setattr(execute._Execution, "shard_done", watched)
    held = []
    real_run = execute._Execution.run

    def run_and_look(self, *a):
        real_run(self, *a)
        held.append((dict(self.results), dict(self.writers)))

    monkeypatch.setattr(execute._Execution, "run", run_and_look)
    res = run(cat, cat.dataset("t"), workers=1, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed and res.recomputed == 20
    assert len(seen) == -(-20 // SHARD_SAMPLES)  # one writer per shard
    done: set = set()
    for written, results, _ in seen:
        done |= set(written)
        assert not results & done  # no written clip's result is held any more
    assert held == [({}, {})]  # nothing held when the run's tasks are over


@pytest.mark.slow
def test_no_more_clip_tasks_are_in_flight_than_the_window(dataset_copy, monkeypatch):
    """Clip tasks are submitted in array-row order as earlier ones finish, never more than
    the window at once (the rest wait as plans in the driver), and the run commits every
    sample as usual."""
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    monkeypatch.setattr(execute, "clip_window", lambda profile, workers: 3)
    in_flight, most, order = [0], [0], []
    real_submit, real_done = execute._Execution.submit_clip, execute._Execution.clip_done

    def submit(self, p):
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        order.append(p.index)
        return real_submit(self, p)

    def done(self, f, p):
        in_flight[0] -= 1
        return real_done(self, f, p)

    monkeypatch.setattr(execute._Execution, "submit_clip", submit)
    monkeypatch.setattr(execute._Execution, "clip_done", done)
    res = run(cat, cat.dataset("t"), workers=2, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed and res.recomputed == 20 and (res.manifest["status"] == "ok").sum() + len(res.failed) == 20
    assert most[0] == 3 and order == sorted(order) and len(order) == 20


def test_the_window_covers_the_largest_cluster_and_two_shards():
    """A few tasks per thread the cluster can have at its largest (so an adaptive batch
    cluster sees the work that makes it scale up), never less than two shards."""
    assert execute.clip_window(None, 2) == 2 * SHARD_SAMPLES  # 2 local workers: the floor
    assert execute.clip_window({"kind": "local", "workers": 16}, 2) == execute.CLIPS_PER_THREAD * 16
    slurm = {"kind": "slurm", "cores": 16, "max_jobs": 20}
    assert execute.clip_window(slurm, 2) == execute.CLIPS_PER_THREAD * 16 * 20


@pytest.mark.slow
def test_dask_developer_logs_are_short_while_the_run_holds_its_cluster(dataset_copy, monkeypatch):
    """dask keeps the last messages of each connection (each holding a task's sample row,
    parameters and store session), the scheduler's transitions and profile cycles: 1000
    entries by default. The run's cluster keeps DASK_LOG_LENGTH, and the setting is
    restored when the run ends."""
    import dask

    key = "distributed.admin.low-level-log-length"
    before = dask.config.get(key)
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    seen = {}
    real_close = execute.LazyClient.close

    def close(self):
        if self.client is not None:
            sched = self.client.cluster.scheduler
            seen["streams"] = [bs.recent_message_log.maxlen for bs in sched.stream_comms.values()]
            seen["transitions"] = sched.transition_log.maxlen
            seen["during"] = dask.config.get(key)
        real_close(self)

    monkeypatch.setattr(execute.LazyClient, "close", close)
    res = run(cat, cat.dataset("t"), workers=2, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed
    assert seen["streams"] and set(seen["streams"]) == {execute.DASK_LOG_LENGTH}
    assert seen["transitions"] == seen["during"] == execute.DASK_LOG_LENGTH
    assert dask.config.get(key) == before == 1000  # dask's default, back after the run


@pytest.mark.parametrize("env, pool", [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_cli_puts_arrow_on_the_system_allocator_unless_told_otherwise(env, pool):
    """`mepipe` (importing the package) sets Arrow's pool before pyarrow loads: the
    system allocator, or the pool ARROW_DEFAULT_MEMORY_POOL names."""
    import os
    import subprocess
    import sys

    e = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env:
        e["ARROW_DEFAULT_MEMORY_POOL"] = env
    code = "import mepipe.cli, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == pool


@pytest.mark.slow
def test_a_written_shard_leaves_nothing_on_the_scheduler_for_a_departing_worker_to_redo(dataset_copy, monkeypatch):
    """Once a shard's writer has been absorbed, its future is let go at once (not when the
    next future completes): by the next clip's completion the scheduler has forgotten the
    writer and its clips. A writer still wanted kept its clips' recipe too, and a worker
    leaving meanwhile (walltime, scancel) made dask compute both again - found by the
    SLURM walltime test when submission order changed."""
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    to_check, seen = [], []
    real_done, real_shard = execute._Execution.clip_done, execute._Execution.shard_done

    def shard_done(self, f, *a):
        to_check.append(list(self.writers[f]))
        return real_shard(self, f, *a)

    def clip_done(self, f, p):
        tasks = self.client.cluster.scheduler.tasks
        while to_check:
            idx = to_check.pop()
            keys = [f"shard-{idx[0] // SHARD_SAMPLES}-{self.run_id}"] + [f"clip-{i}-{self.run_id}" for i in idx]
            seen.append({k: tasks[k].state if k in tasks else "forgotten" for k in keys})
        return real_done(self, f, p)

    monkeypatch.setattr(execute._Execution, "shard_done", shard_done)
    monkeypatch.setattr(execute._Execution, "clip_done", clip_done)
    res = run(cat, cat.dataset("t"), workers=2, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed and seen  # at least one shard was written before the last clip finished
    assert all(set(s.values()) == {"forgotten"} for s in seen), seen
