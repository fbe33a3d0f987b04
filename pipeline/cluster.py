"""Where the dask workers run: a LocalCluster (the default), or a SLURM / PBS cluster
built with dask-jobqueue from a named profile in catalog.yaml (`clusters:`).

Workers retire before the job's walltime (`--lifetime` = walltime - margin, with
`--lifetime-stagger` so they do not all leave at once); the cluster scales adaptively
between the profile's job limits; `job_script()` shows what would be submitted.
"""

from __future__ import annotations

import re

KINDS = ("local", "slurm", "pbs")
# key -> (type, required)
PROFILE_KEYS = {
    "kind": (str, True),
    "queue": (str, False),
    "account": (str, False),
    "cores": (int, False),
    "processes": (int, False),
    "memory": (str, False),
    "walltime": (str, False),
    "gpus": (int, False),
    "python": (str, False),
    "min_jobs": (int, False),
    "max_jobs": (int, False),
    "lifetime_margin_min": (int, False),
    "stagger_min": (int, False),
    "job_extra_directives": (list, False),
    "scheduler_host": (str, False),
    "workers": (int, False),
    "dashboard_address": (str, False),
    "start_timeout_s": (int, False),  # how long a run waits for its first worker job to start
    "log_directory": (str, False),  # the worker jobs' output files (default: <run folder>/worker-logs)
}
DEFAULT_START_TIMEOUT_S = 600
DEFAULT_CORES = 4  # threads per batch job when a profile names no `cores`
DEFAULT_MAX_JOBS = 4  # batch jobs at most when a profile names no `max_jobs`


class ClusterUnschedulable(RuntimeError):
    """A profile whose worker jobs the scheduler refuses or never starts (one line: why)."""


# the dask dashboard shows task keys, sample ids and logs: this machine only, unless a
# profile asks otherwise (e.g. dashboard_address: ":8787" on a trusted network)
DASHBOARD_ADDRESS = "127.0.0.1:0"


def walltime_minutes(walltime: str) -> int:
    """'HH:MM:SS' or 'D-HH:MM:SS' -> minutes."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2}):(\d{2})", walltime.strip())
    if not m:
        raise ValueError(f"walltime {walltime!r}: expected HH:MM:SS or D-HH:MM:SS")
    d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    return d * 1440 + h * 60 + mi + (1 if s else 0)


def cluster_kwargs(p: dict) -> dict:
    """dask-jobqueue keyword arguments of a slurm/pbs profile."""
    walltime = p.get("walltime", "01:00:00")
    life = walltime_minutes(walltime) - p.get("lifetime_margin_min", 10)
    if life < 1:
        raise ValueError(f"walltime {walltime} leaves no time after the lifetime margin")
    extra = list(p.get("job_extra_directives", []))
    if p.get("gpus"):
        extra.append(f"--gres=gpu:{p['gpus']}" if p["kind"] == "slurm" else f"-l ngpus={p['gpus']}")
    kw = {
        "log_directory": p.get("log_directory"),
        "queue": p.get("queue"),
        "account": p.get("account"),
        "cores": p.get("cores", DEFAULT_CORES),
        "processes": p.get("processes", 1),
        "memory": p.get("memory", "8GB"),
        "walltime": walltime,
        "job_extra_directives": extra,
        "worker_extra_args": ["--lifetime", f"{life}m", "--lifetime-stagger", f"{p.get('stagger_min', 4)}m"],
        "scheduler_options": {
            "dashboard_address": p.get("dashboard_address", DASHBOARD_ADDRESS),
            **({"host": p["scheduler_host"]} if p.get("scheduler_host") else {}),
        },
    }
    if p.get("gpus"):  # GPU work is routed with worker resources on client.submit (not graph annotations)
        kw["worker_extra_args"] += ["--resources", f"GPU={p['gpus']}"]
    if p.get("python"):
        kw["python"] = p["python"]
    return kw


def gpu_resources(profile: dict | None, uses_gpu: bool) -> dict | None:
    """dask resources for a task: {"GPU": 1} when the task's stage runs on a GPU and the
    cluster's workers declare GPUs (profile `gpus`), else None (a CPU task, or no GPUs to
    wait for: the stage then runs on the CPU). Given to `client.submit(resources=...)`,
    not as a graph annotation (graph optimisation drops those)."""
    return {"GPU": 1} if uses_gpu and (profile or {}).get("gpus") else None


def local_workers(profile: dict, workers: int) -> int:
    """The worker processes (one thread each) of a local profile: its `workers`, else the
    run's `--workers`."""
    return int(profile.get("workers", workers))


def max_threads(profile: dict | None, workers: int = 2) -> int:
    """The most worker threads the cluster of `profile` can have at once (None: the
    LocalCluster of `workers`, one thread each; a batch profile: `max_jobs` jobs of
    `cores` threads)."""
    p = profile or {"kind": "local"}
    if p["kind"] == "local":
        return local_workers(p, workers)
    return int(p.get("max_jobs", DEFAULT_MAX_JOBS)) * int(p.get("cores", DEFAULT_CORES))


def make_cluster(profile: dict | None, workers: int = 2):
    """A started cluster for `profile` (None = the default LocalCluster of `workers`)."""
    p = profile or {"kind": "local"}
    if p["kind"] == "local":
        from dask.distributed import LocalCluster

        return LocalCluster(
            n_workers=local_workers(p, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=p.get("dashboard_address", DASHBOARD_ADDRESS),
            silence_logs=40,
            resources={"GPU": p["gpus"]} if p.get("gpus") else None,
        )
    if p["kind"] == "slurm":
        from dask_jobqueue import SLURMCluster as C
    elif p["kind"] == "pbs":
        from dask_jobqueue import PBSCluster as C
    else:
        raise ValueError(f"cluster kind {p['kind']!r}; use one of {KINDS}")
    cluster = C(**cluster_kwargs(p))
    # at least one job: a cluster is started only when a run has tasks, and its first worker
    # is waited for (wait_for_first_worker) before they are submitted
    cluster.adapt(minimum_jobs=max(1, p.get("min_jobs", 0)), maximum_jobs=p.get("max_jobs", DEFAULT_MAX_JOBS))
    return cluster


def check_schedulable(profile: dict) -> None:
    """Ask SLURM whether it would ever run the profile's worker job (`sbatch --test-only`
    of its job script): too many cores or too much memory for any node, an unknown
    partition or account, GPUs on a cluster without them are refused here, in seconds,
    instead of a run waiting forever for workers. PBS and local profiles are not checked."""
    import shutil
    import subprocess

    if profile["kind"] != "slurm":
        return
    name = profile.get("name", "slurm")
    if shutil.which("sbatch") is None:
        raise ClusterUnschedulable(f"cluster profile {name!r}: no sbatch on this machine (is this a SLURM login node?)")
    done = subprocess.run(
        ["sbatch", "--test-only"], input=job_script(profile), capture_output=True, text=True, timeout=60
    )
    if done.returncode:
        why = [x for x in done.stderr.strip().splitlines() if x.strip()] or [f"sbatch exit status {done.returncode}"]
        raise ClusterUnschedulable(f"cluster profile {name!r}: SLURM would not run its worker job: {why[-1].strip()}")


def wait_for_first_worker(client, profile: dict) -> None:
    """Wait until a worker has joined (a job started), at most the profile's
    `start_timeout_s`; then a ClusterUnschedulable naming the wait (and SLURM's reason
    for the pending jobs, where squeue says) instead of a run that hangs silently."""
    import subprocess

    timeout = profile.get("start_timeout_s", DEFAULT_START_TIMEOUT_S)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        reason = ""
        if profile["kind"] == "slurm":
            q = subprocess.run(["squeue", "--me", "-h", "-o", "%r"], capture_output=True, text=True)
            reasons = sorted(set(q.stdout.split()))
            reason = f" (squeue: pending, reason {', '.join(reasons)})" if reasons else ""
        raise ClusterUnschedulable(
            f"cluster profile {profile.get('name', profile['kind'])!r}: no worker started within {timeout} s{reason}"
        ) from None


def job_script(profile: dict) -> str:
    """The batch script a slurm/pbs profile would submit (nothing is submitted)."""
    if profile["kind"] == "local":
        return "# profile 'local': no batch job (a LocalCluster on this machine)\n"
    from dask_jobqueue import PBSCluster, SLURMCluster

    C = SLURMCluster if profile["kind"] == "slurm" else PBSCluster
    c = C(**cluster_kwargs(profile))
    try:
        return c.job_script()
    finally:
        c.close()
