"""Crash tests on real runs of the command line (`mepipe batch` in a subprocess): the
driver killed with SIGKILL mid-commit, the driver dying right after the commit, a worker
process dying mid-task, a task that keeps failing, two concurrent runs. Each must leave
the store consistent (main at a complete version or the previous one, `verify` OK) and
the next run must end with exactly the expected sample set and the same values as a
clean run (compared through the write-time checksums)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.store import Store
from pipeline.verify import verify
from tests.conftest import REPO, write_catalog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small(small_demo_source, tmp_path_factory):
    """The trimmed demo and the checksums of a clean reference run of it."""
    return small_demo_source, reference_checksums(small_demo_source, tmp_path_factory.mktemp("crash_ref"))


def reference_checksums(root: Path, ref: Path):
    """The checksums table of a clean local `mepipe batch` run of the dataset at `root`."""
    p = batch(write_catalog(ref), root)
    assert p.returncode == 0, p.stdout + p.stderr
    return checksums(ref / "stores" / "t")


def batch(catalog: Path, root: Path, *extra, fault: str = "", fault_file: Path | None = None, wait: bool = True):
    env = dict(
        os.environ,
        MEPIPE_TEST_ROOT=str(root),
        MEPIPE_FAULT=fault,
        MEPIPE_FAULT_FILE=str(fault_file or catalog.parent / "fault"),
        PYTHONPATH=str(REPO),
    )
    cmd = [
        sys.executable,
        "-m",
        "mepipe.cli",
        "--catalog",
        str(catalog),
        "batch",
        "--dataset",
        "t",
        "--methods",
        "dvscl",
        "--workers",
        "2",
        *extra,
    ]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=catalog.parent)
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=catalog.parent,
        start_new_session=True,
    )


def checksums(store_path: Path) -> pd.DataFrame:
    st = Store(store_path, create=False)
    ck = st.table("checksums")
    return ck.sort_values(["sample_id", "array"]).reset_index(drop=True)


def wait_for(path: Path, proc, timeout=300):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"run ended before the fault point: {proc.stdout.read()}"
        assert time.time() - t0 < timeout, "fault point not reached"
        time.sleep(0.2)


def paused_at(point: str, catalog: Path, root: Path, flag: Path, *extra):
    """A `mepipe batch` run stopped alive (holding the store lock) at fault point `point`."""
    p = batch(catalog, root, *extra, fault=f"{point}:pause", fault_file=flag, wait=False)
    wait_for(flag, p)
    return p


def kill9(proc):
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local dask workers, no cleanup
    proc.wait(30)


def assert_consistent_and_complete(store_path: Path, ref: pd.DataFrame):
    st = Store(store_path, create=False)
    assert verify(st, log=lambda *a: None).ok
    assert list(st.repo.list_branches()) == ["main"]  # no scratch branch left
    pd.testing.assert_frame_equal(checksums(store_path), ref)  # same samples, same values as a clean run


def test_kill9_mid_commit_then_exit_after_commit_then_rerun(small, tmp_path):
    root, ref = small
    cat = write_catalog(tmp_path)
    store = tmp_path / "stores" / "t"
    # 1. SIGKILL while the driver holds the store lock with every shard written, just
    #    before the commit: nothing of this run may be visible
    flag = tmp_path / "at_commit"
    kill9(paused_at("before_commit", cat, root, flag))
    st = Store(store, create=False)
    assert st.table("manifest") is None  # main still at the empty store
    # 2. the driver dies between writing the commit and moving main to it
    p2 = batch(cat, root, fault="after_commit")
    assert p2.returncode == 137
    assert Store(store, create=False).table("manifest") is None
    # 3. a plain re-run completes: exactly the expected samples, same values as a clean run
    p3 = batch(cat, root)
    assert p3.returncode == 0, p3.stdout + p3.stderr
    assert_consistent_and_complete(store, ref)
    # 4. dying after main moved (before the scratch branch is deleted) loses nothing;
    #    the next run cleans up and finds nothing to do
    shutil.rmtree(store)
    p4 = batch(cat, root, fault="after_reset")
    assert p4.returncode == 137
    p5 = batch(cat, root)
    assert p5.returncode == 0 and "up to date: 0 samples recomputed" in p5.stdout, p5.stdout
    assert_consistent_and_complete(store, ref)


def test_killed_worker_and_failing_task(small, tmp_path):
    root, ref = small
    cat = write_catalog(tmp_path)
    store = tmp_path / "stores" / "t"
    sid = ref["sample_id"].iloc[0]
    # a worker process dies (os._exit) while processing one sample: dask reschedules it
    marker = tmp_path / "worker_killed"
    p = batch(cat, root, fault=f"clip:{sid}", fault_file=marker)
    assert marker.exists() and p.returncode == 0, p.stdout + p.stderr
    assert_consistent_and_complete(store, ref)
    # a task that fails every time: committed as excluded (task_failed), exit status 1 with
    # the sample named, and the next run retries it
    shutil.rmtree(store)
    p = batch(cat, root, fault=f"clip_error:{sid}")
    assert p.returncode == 1
    assert "FAILED: 1 sample task(s) failed" in p.stdout and sid in p.stdout and "injected failure" in p.stdout
    man = Store(store, create=False).table("manifest")
    assert man.set_index("sample_id").loc[sid, "reason"] == "task_failed"
    p = batch(cat, root)
    assert p.returncode == 0, p.stdout
    assert "1 to compute" in p.stdout
    assert_consistent_and_complete(store, ref)


def test_a_run_whose_tasks_all_fail_does_not_become_main(small, tmp_path):
    """Issue 15, item 4: every clip task failing is a failed run, not a version of zeros."""
    root, ref = small
    cat = write_catalog(tmp_path)
    store = tmp_path / "stores" / "t"
    p = batch(cat, root, fault="clip_error:*")
    assert p.returncode == 1, p.stdout + p.stderr
    import re

    assert re.search(r"FAILED run: (\d+) of the \1 clip task\(s\) this run computed failed", p.stdout), p.stdout
    assert "Nothing was committed to main" in p.stdout and "committed snapshot" not in p.stdout
    st = Store(store, create=False)
    assert st.table("manifest") is None  # main is still the empty initial version
    kept = [b for b in st.repo.list_branches() if b.startswith("run-")]
    assert len(kept) == 1 and kept[0] in p.stdout
    meta = st.repo.lookup_snapshot(st.repo.lookup_branch(kept[0])).metadata
    assert "failed after retries" in meta["failed_run"]
    # the next (healthy) run commits the real values and removes the kept branch
    p = batch(cat, root)
    assert p.returncode == 0, p.stdout
    assert [b for b in Store(store, create=False).repo.list_branches() if b.startswith("run-")] == []
    assert_consistent_and_complete(store, ref)


def test_two_concurrent_runs(small, tmp_path):
    root, ref = small
    cat = write_catalog(tmp_path)
    store = tmp_path / "stores" / "t"
    flag = tmp_path / "holding"
    first = paused_at("before_commit", cat, root, flag)
    second = batch(cat, root, "--wait", "0")
    assert second.returncode == 3
    assert "is locked by another run (pid" in second.stdout
    third = batch(cat, root, "--wait", "2")
    assert third.returncode == 3 and "after waiting 2 s" in third.stdout
    # a scheduled run waiting for the lock proceeds once the holder dies (here: SIGKILL)
    waiter = batch(cat, root, "--wait", "120", wait=False)
    time.sleep(3)
    kill9(first)
    out, _ = waiter.communicate(timeout=600)
    assert waiter.returncode == 0, out
    assert "waiting up to 120 s" in out
    assert_consistent_and_complete(store, ref)
    # every run wrote its own log file
    logs = sorted((tmp_path / "runs" / "t").glob("*/run.log"))
    assert len(logs) == 4
    assert any("is locked by another run" in f.read_text() for f in logs)


def test_killed_run_resumes_from_its_checkpoint(demo_source, tmp_path):
    """20 samples = 3 shards. With a checkpoint after every shard, a run killed (SIGKILL)
    right after its first checkpoint resumes: the next run computes only the samples of
    the other shards and ends with the same values as a run that was never killed."""
    cat = write_catalog(tmp_path)
    store = tmp_path / "stores" / "t"
    flag = tmp_path / "checkpointed"
    kill9(paused_at("after_checkpoint", cat, demo_source, flag, "--checkpoint-s", "0"))
    st = Store(store, create=False)
    assert st.table("manifest") is None  # nothing committed to main
    [branch] = [b for b in st.repo.list_branches() if b.startswith("run-")]
    ck = st.table("_checkpoint", st.repo.lookup_branch(branch))
    assert len(ck) == 8  # one shard made durable
    p2 = batch(cat, demo_source, "--checkpoint-s", "0")
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert "resuming killed run" in p2.stdout and "8 sample(s) already written" in p2.stdout
    st = Store(store, create=False)
    meta = st.repo.lookup_snapshot(st.head()).metadata
    assert meta["counts"]["resumed"] == 8 and meta["counts"]["ok"] == 20
    assert [v["message"] for v in st.versions()][0].startswith("preprocess t")  # one version, no checkpoints
    assert "tables/_checkpoint" not in st.group()
    assert verify(st, log=lambda *a: None).ok
    # the same values as an uninterrupted run
    clean = tmp_path / "clean"
    clean.mkdir()
    p3 = batch(write_catalog(clean), demo_source)
    assert p3.returncode == 0
    pd.testing.assert_frame_equal(checksums(store), checksums(clean / "stores" / "t"))
    assert st.table("manifest").equals(Store(clean / "stores" / "t", create=False).table("manifest"))
