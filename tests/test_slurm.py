"""Issue 17, item 3: the cluster mode against a real SLURM scheduler (a single-node cluster
started by `tools/slurm-single-node up`, as `make test-cluster` does): a run through real
sbatch worker jobs commits what a LocalCluster run commits, and a profile SLURM would
never schedule fails in seconds with one line naming why, instead of waiting forever."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.store import Store
from tests.test_crash import REPO, batch, checksums, reference_checksums, small  # noqa: F401 (fixture)


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not _slurm_answers(),
        reason="no SLURM answers here: `make test-cluster` starts a single-node one (tools/slurm-single-node, root)",
    ),
]


def _catalog_with(tmp_path, profile: str):
    from tests.conftest import write_catalog

    cat = write_catalog(tmp_path)
    cat.write_text(cat.read_text() + "clusters:\n  test:\n" + "".join(f"    {x}\n" for x in profile.splitlines()))
    return cat


WORKING = f"""kind: slurm
queue: debug
cores: 1
processes: 1
memory: 2GB
walltime: "00:30:00"
lifetime_margin_min: 5
max_jobs: 2
start_timeout_s: 180
python: {sys.executable}"""


def test_a_run_through_real_sbatch_jobs_commits_what_a_local_run_commits(small, tmp_path):  # noqa: F811
    root, want = small
    cat = _catalog_with(tmp_path, WORKING)
    p = batch(cat, root, "--cluster", "test")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "(slurm cluster)" in p.stdout + p.stderr
    pd.testing.assert_frame_equal(checksums(tmp_path / "stores" / "t"), want)
    logs = list((tmp_path / "runs" / "t").glob("*/worker-logs/*.err"))  # under the run folder, not the cwd
    assert logs and not list(tmp_path.glob("slurm-*.out")), logs
    deadline = time.time() + 60  # the run's close cancels its worker jobs
    while time.time() < deadline and subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        time.sleep(1)
    assert not subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize(
    "change, why",
    [
        ("cores: 64", "More processors requested than permitted"),
        ("queue: no-such-partition", "invalid partition"),
        ("gpus: 1", "Invalid generic resource"),
    ],
)
def test_a_profile_slurm_cannot_schedule_fails_in_seconds_naming_why(small, tmp_path, change, why):  # noqa: F811
    root, _ = small
    key = change.split(":")[0]
    profile = "\n".join([x for x in WORKING.splitlines() if not x.startswith(key + ":")] + [change])
    cat = _catalog_with(tmp_path, profile)
    t0 = time.time()
    p = batch(cat, root, "--cluster", "test")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-3000:]
    assert time.time() - t0 < 120
    line = next(x for x in out.splitlines() if "FAILED" in x)
    assert "cluster profile 'test': SLURM would not run its worker job" in line and why.lower() in line.lower(), line
    assert not subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip()  # nothing left queued


# --- faults against the real scheduler: a cancelled worker job, walltime retirement, SIGTERM,
# jobs left pending, `mepipe batch` as a job itself ---------------------------------------


@pytest.fixture(scope="module")
def medium(demo_source, tmp_path_factory):
    """The demo's first 24 annotation rows (3 write shards of 8) and a LocalCluster run's checksums."""
    from tests.conftest import trimmed_demo

    root = trimmed_demo(demo_source, tmp_path_factory.mktemp("medium_demo"), 24)
    return root, reference_checksums(root, tmp_path_factory.mktemp("medium_ref"))


def jobs() -> dict[str, str]:
    """Job id -> state of every job in the queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    return dict(x.split() for x in out.splitlines() if x.strip())


def wait_until(what, timeout: float, proc=None, every: float = 0.5):
    t0 = time.time()
    while not (got := what()):
        assert proc is None or proc.poll() is None, "the run ended first: " + proc.stdout.read()[-3000:]
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(every)
    return got


def traced(folder) -> list[tuple[float, str, str]]:
    """(time, event, what) of every traced clip start and shard write (pipeline/faults.py)."""
    lines = [x.split(" ", 2) for f in sorted(folder.glob("*.log")) for x in f.read_text().splitlines()]
    return sorted((float(t), e, w) for t, e, w in lines)


def written_then_recomputed(events, store) -> tuple[dict, list, list]:
    """(clip runs per sample id, samples written more than once, samples whose clip ran again
    after their shard was written: work a departing worker should not have lost)."""
    man = Store(store, create=False).table("manifest")
    sid = dict(zip(man["index"], man["sample_id"]))
    runs: dict[str, list[float]] = {}
    writes: dict[str, list[float]] = {}
    for t, e, what in events:
        if e == "clip":
            runs.setdefault(what, []).append(t)
        else:
            for i in what.split(","):
                writes.setdefault(sid[int(i)], []).append(t)
    twice = sorted(s for s, w in writes.items() if len(w) > 1)
    lost = sorted(s for s, w in writes.items() if max(runs.get(s, [0])) > min(w))
    assert set(writes) == set(sid.values()), "every sample written"
    return {s: len(r) for s, r in runs.items()}, twice, lost


def test_a_cancelled_worker_job_costs_only_its_unwritten_clips(medium, tmp_path, monkeypatch):
    root, want = medium
    monkeypatch.setenv("MEPIPE_TRACE", str(tmp_path))
    cat = _catalog_with(tmp_path, WORKING)
    p = batch(cat, root, "--cluster", "test", fault="slow:2", wait=False)
    wait_until(lambda: any(e == "wrote" for _, e, _ in traced(tmp_path)), 300, p)
    running = wait_until(lambda: [j for j, s in jobs().items() if s == "RUNNING"], 60, p)
    cancelled_at = time.time()
    subprocess.run(["scancel", running[-1]], check=True)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out[-3000:]
    pd.testing.assert_frame_equal(checksums(tmp_path / "stores" / "t"), want)
    runs, twice, lost = written_then_recomputed(traced(tmp_path), tmp_path / "stores" / "t")
    assert not twice and not lost, (twice, lost)
    events = traced(tmp_path)
    before = {w for t, e, w in events if e == "wrote" and t < cancelled_at}
    assert before, "a shard was written before the cancel (the check above is not empty)"
    print(f"cancelled job {running[-1]}: {sum(runs.values())} clip runs for {len(runs)} clips")


def test_workers_retiring_at_their_walltime_are_replaced_and_lose_nothing(medium, tmp_path, monkeypatch):
    root, want = medium
    monkeypatch.setenv("MEPIPE_TRACE", str(tmp_path))
    profile = WORKING.replace('walltime: "00:30:00"', 'walltime: "00:02:00"').replace(
        "lifetime_margin_min: 5", "lifetime_margin_min: 1\nstagger_min: 0"
    )  # workers retire after 1 min, the run takes longer
    cat = _catalog_with(tmp_path, profile)
    seen: set[str] = set()
    p = batch(cat, root, "--cluster", "test", fault="slow:8", wait=False)
    while p.poll() is None:
        seen |= set(jobs())
        time.sleep(1)
    out = p.stdout.read()
    assert p.returncode == 0, out[-3000:]
    pd.testing.assert_frame_equal(checksums(tmp_path / "stores" / "t"), want)
    assert len(seen) >= 3, f"retired workers' jobs were replaced: jobs {sorted(seen)}"
    runs, twice, lost = written_then_recomputed(traced(tmp_path), tmp_path / "stores" / "t")
    assert not twice and not lost, (twice, lost)
    print(f"walltime run: jobs {sorted(seen)}; {sum(runs.values())} clip runs for {len(runs)} clips")


def test_sigterm_stops_the_run_and_cancels_its_jobs(small, tmp_path):  # noqa: F811
    root, want = small
    cat = _catalog_with(tmp_path, WORKING)
    p = batch(cat, root, "--cluster", "test", fault="slow:3", wait=False)
    wait_until(lambda: "RUNNING" in jobs().values(), 120, p)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=90)
    assert p.returncode == 128 + signal.SIGTERM, out[-3000:]
    assert "stopped by SIGTERM: nothing committed (main unchanged)" in out, out[-3000:]
    wait_until(lambda: not jobs(), 30)  # its worker jobs are cancelled, none left pending
    q = batch(write_catalog_like(cat), root)  # the lock is free; the next run commits the reference
    assert q.returncode == 0, q.stdout[-3000:] + q.stderr[-3000:]
    pd.testing.assert_frame_equal(checksums(tmp_path / "stores" / "t"), want)


def write_catalog_like(cat):
    """The same catalog without its cluster profile (a local run on the same store)."""
    text = cat.read_text().split("clusters:\n")[0]
    cat.write_text(text)
    return cat


def test_jobs_pending_in_a_down_partition_are_not_resubmitted_and_the_run_stops(small, tmp_path):  # noqa: F811
    """Figure: worker jobs submitted per minute while they pend (dask-jobqueue issue 498 was
    11 jobs in 45 s with several worker processes per job)."""
    root, _ = small
    cat = _catalog_with(tmp_path, WORKING.replace("start_timeout_s: 180", "start_timeout_s: 60"))
    partition = "debug"
    subprocess.run(["scontrol", "update", f"PartitionName={partition}", "State=DOWN"], check=True)
    seen: set[str] = set()
    try:
        t0 = time.time()
        p = batch(cat, root, "--cluster", "test", wait=False)
        while p.poll() is None:
            seen |= set(jobs())
            time.sleep(0.5)
        secs = time.time() - t0
    finally:
        subprocess.run(["scontrol", "update", f"PartitionName={partition}", "State=UP"], check=True)
    out = p.stdout.read()
    assert p.returncode == 1, out[-3000:]
    line = next(x for x in out.splitlines() if "FAILED" in x)
    assert "no worker started within 60 s (squeue: pending, reason PartitionDown)" in line, line
    assert 1 <= len(seen) <= 2, f"jobs submitted while pending: {sorted(seen)}"
    assert not jobs()
    print(f"pending: {len(seen)} job(s) submitted in {secs:.0f} s ({60 * len(seen) / secs:.1f} per minute)")


def test_mepipe_batch_runs_as_an_sbatch_job(small, tmp_path):  # noqa: F811
    """tools/mepipe-batch.sbatch, as a user submits it (the partition, memory and cores given
    on the sbatch command line override the script's #SBATCH lines)."""
    import os

    from tests.conftest import write_catalog

    root, want = small
    cat = write_catalog(tmp_path)
    mepipe = Path(sys.executable).parent / "mepipe"
    env = dict(os.environ, MEPIPE_TEST_ROOT=str(root), MEPIPE=str(mepipe), CATALOG=str(cat))
    cmd = ["sbatch", "--wait", "-p", "debug", "-c", "1", "--mem=2G", "--time=00:10:00", "--chdir", str(tmp_path)]
    done = subprocess.run(
        [*cmd, str(REPO / "tools" / "mepipe-batch.sbatch"), "t", "--methods", "dvscl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    job_out = "".join(f.read_text() for f in tmp_path.glob("mepipe-batch-*.out"))
    assert done.returncode == 0, done.stdout + done.stderr + job_out[-3000:]
    assert "[t] committed snapshot" in job_out, job_out[-3000:]
    pd.testing.assert_frame_equal(checksums(tmp_path / "stores" / "t"), want)
