"""Cluster profiles: SLURM and PBS clusters built from catalog profiles (their job
scripts checked, nothing submitted), and the same code path on a LocalCluster end to end."""

import pytest

from pipeline.catalog import CatalogError, load_catalog
from pipeline.cluster import job_script, make_cluster, walltime_minutes
from tests.conftest import write_catalog

SLURM = {
    "kind": "slurm",
    "queue": "gpu",
    "account": "lab42",
    "cores": 8,
    "processes": 2,
    "memory": "32GB",
    "walltime": "02:00:00",
    "gpus": 1,
    "python": "/opt/mepipe/bin/python",
    "lifetime_margin_min": 10,
    "max_jobs": 3,
    "scheduler_host": "127.0.0.1",
}


def test_walltime():
    assert walltime_minutes("02:00:00") == 120 and walltime_minutes("1-00:30:00") == 1470
    with pytest.raises(ValueError, match="HH:MM:SS"):
        walltime_minutes("2h")


def test_slurm_job_script():
    s = job_script(SLURM)
    for want in (
        "#SBATCH -p gpu",
        "#SBATCH -A lab42",
        "--cpus-per-task=8",
        "#SBATCH -t 02:00:00",
        "#SBATCH --gres=gpu:1",
        "/opt/mepipe/bin/python -m distributed.cli.dask_worker",
        "--lifetime 110m",
        "--lifetime-stagger 4m",
        "--nworkers 2",
        "--resources GPU=1",
    ):
        assert want in s, want


def test_pbs_job_script():
    s = job_script({**SLURM, "kind": "pbs", "queue": "workq"})
    for want in (
        "#PBS -q workq",
        "#PBS -A lab42",
        "#PBS -l walltime=02:00:00",
        "ncpus=8",
        "#PBS -l ngpus=1",
        "--lifetime 110m",
    ):
        assert want in s, want


def test_adaptive_cluster_object_is_built_without_submitting():
    c = make_cluster(SLURM)
    try:
        assert c._adaptive is not None and c._adaptive.maximum == 3 * 2  # jobs x processes
    finally:
        c.close()


def test_profile_typos_name_the_key(tmp_path):
    p = write_catalog(tmp_path)
    p.write_text(p.read_text() + "clusters:\n  x:\n    kind: slurm\n    qeue: a\n")
    with pytest.raises(CatalogError, match=r"clusters\.x\.qeue: unknown key"):
        load_catalog(p)


@pytest.mark.slow
def test_local_profile_runs_the_pipeline(dataset_copy):
    from pipeline.runner import run

    root, catalog = dataset_copy
    catalog.write_text(catalog.read_text() + "clusters:\n  here:\n    kind: local\n    workers: 1\n")
    cat = load_catalog(catalog)
    res = run(cat, cat.dataset("t"), cluster="here", methods=["dvscl"], log=lambda *a: None, progress=False)
    assert res.committed and (res.manifest["status"] == "ok").all()


def _gpu_stage(x):
    return x


def test_gpu_stage_is_routed_to_gpu_workers_by_submit_resources():
    """Only a GPU stage asks for the GPU resource, and only when the profile has GPUs; a
    task submitted with it runs on the worker that declares a GPU, never on the other."""
    from dask.distributed import Client, LocalCluster, Worker

    from pipeline.cluster import gpu_resources
    from pipeline.params import resolve
    from pipeline.tasks import uses_gpu

    learned = resolve({"magnify": {"method": "learned"}}, "p")
    assert uses_gpu(("crop", "micro"), learned) and not uses_gpu(("crop", "flow"), learned)
    assert not uses_gpu(("micro",), resolve({"magnify": {"method": "eulerian"}}, "p"))
    assert gpu_resources(SLURM, True) == {"GPU": 1}
    assert gpu_resources(SLURM, False) is None
    assert gpu_resources({"kind": "local"}, True) is None  # no GPUs declared: run on the CPU

    async def add_gpu_worker(addr):
        return await Worker(addr, resources={"GPU": 1}, nthreads=1)

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as lc,
        Client(lc) as c,
    ):
        gpu_w = c.sync(add_gpu_worker, lc.scheduler_address)
        try:
            futs = [c.submit(_gpu_stage, i, resources=gpu_resources(SLURM, True), pure=False) for i in range(8)]
            cpu = [c.submit(_gpu_stage, i, pure=False) for i in range(8)]
            c.gather(futs + cpu)
            where = c.who_has(futs)
            assert all(list(ws) == [gpu_w.address] for ws in where.values()), where
        finally:
            c.sync(gpu_w.close)


def _listening(cluster) -> set:
    """The addresses the scheduler's dashboard (HTTP) server listens on."""
    return {sock.getsockname()[0] for sock in cluster.scheduler.http_server._sockets.values()}


def test_the_dashboard_listens_on_this_machine_only_unless_the_profile_says_otherwise():
    c = make_cluster({"kind": "local", "workers": 1})
    try:
        assert _listening(c) == {"127.0.0.1"}
    finally:
        c.close()
    c = make_cluster({"kind": "local", "workers": 1, "dashboard_address": "0.0.0.0:0"})
    try:
        assert _listening(c) == {"0.0.0.0"}  # asked for: every interface
    finally:
        c.close()
    from pipeline.cluster import cluster_kwargs

    assert cluster_kwargs(SLURM)["scheduler_options"]["dashboard_address"] == "127.0.0.1:0"
    assert cluster_kwargs({**SLURM, "dashboard_address": ":8787"})["scheduler_options"]["dashboard_address"] == ":8787"
