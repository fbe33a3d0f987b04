"""Issue 17, item 3: the cluster mode against a real SLURM scheduler (a single-node cluster
started by `tools/slurm-single-node up`, as `make test-cluster` does): a run through real
sbatch worker jobs commits what a LocalCluster run commits, and a profile SLURM would
never schedule fails in seconds with one line naming why, instead of waiting forever."""

import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.test_crash import batch, checksums, small  # noqa: F401 (fixture)


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
