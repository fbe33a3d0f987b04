"""Peak memory of a run against its number of clips (issue 17, item 2): flat, not growing.

    .venv/bin/python benchmarks/bench_memory.py [--clips 80 800] [--methods dvscl] [--workers 2]

The demo's Part A (21 annotation rows, 3 subjects) is repeated until it has at least N
clips: each repetition is a new subject whose folder holds hard links to one of the demo
subjects' files (no disk cost, not symlinks: ingest refuses those as loops) and whose sheet rows are the demo's with that subject, so every
clip is a real sample with its own id and the same cost as the demo's. The data is made
here; each size then runs in a process of its own with the CLI's process settings
(`import mepipe`: Arrow on the system allocator) - `run()` on an empty store, LocalCluster
of --workers - while a sampler reads every 0.2 s the resident memory (RSS) of that
driver (the dask client and scheduler) and of each worker process. Printed per size:
clips, seconds, the driver's peak RSS and the largest worker's peak RSS, and the ratio of
each to the smallest size's.

Before the runner let go of a clip's result once its shard was written, the client held
every clip future until the run ended (357 MB for the demo's 79 clips), so worker memory
grew with the number of clips.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mepipe  # noqa: E402,F401  the CLI's process settings, before pyarrow loads

SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"


def repeated_demo(demo: Path, out: Path, clips: int) -> int:
    """The demo's Part A repeated to at least `clips` sheet rows; returns the row count."""
    import pandas as pd

    sheet = pd.read_excel(demo / SHEET, sheet_name="label")
    (out / "part_A" / "data").mkdir(parents=True)
    subjects = sorted(sheet["Subject"].unique())
    for s in subjects:
        shutil.copytree(demo / "part_A" / "data" / s, out / "part_A" / "data" / s, copy_function=os.link)
    parts, rep = [sheet], 1
    while sum(map(len, parts)) < clips:
        for s in subjects:
            new = f"spNO.{1000 * rep + int(s.split('.')[1])}"
            shutil.copytree(demo / "part_A" / "data" / s, out / "part_A" / "data" / new, copy_function=os.link)
            parts.append(sheet[sheet["Subject"] == s].assign(Subject=new))
        rep += 1
    rows = pd.concat(parts, ignore_index=True).head(clips)
    with pd.ExcelWriter(out / SHEET) as w:
        rows.to_excel(w, sheet_name="label", index=False)
    return len(rows)


def sample_rss(stop: threading.Event, peaks: dict) -> None:
    """Peak RSS (MB) of this process ('client') and of each descendant worker process."""
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        peaks["client"] = max(peaks.get("client", 0), me.memory_info().rss / 2**20)
        for p in me.children(recursive=True):
            try:
                if "nanny" in " ".join(p.cmdline()).lower():
                    continue
                peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
        stop.wait(0.2)


def demo_root() -> Path:
    """The demo dataset's folder (generated on first use)."""
    from pipeline.catalog import load_catalog
    from pipeline.demo import ensure_demo

    demo_cat = load_catalog(ROOT / "catalog.yaml")
    ensure_demo(demo_cat.dataset("demo"), log=lambda *a: None)
    return demo_cat.dataset("demo").root()


def one_size(root: Path, methods: list[str], workers: int, checkpoint_s: float = 120.0) -> dict:
    """Run the repeated demo at `root` once into a new store; its seconds and peak memory."""
    from pipeline.catalog import load_catalog
    from pipeline.runner import run
    from tests.conftest import write_catalog  # the suite's catalog of a CAS(ME)^3 Part A copy

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEPIPE_BENCH_MEMORY_ROOT"] = str(root)
        cat = load_catalog(write_catalog(Path(tmp), env="MEPIPE_BENCH_MEMORY_ROOT"))  # dataset t
        peaks: dict = {}
        stop = threading.Event()
        t = threading.Thread(target=sample_rss, args=(stop, peaks), daemon=True)
        t.start()
        t0 = time.perf_counter()
        res = run(
            cat,
            cat.dataset("t"),
            workers=workers,
            log=lambda *a: None,
            progress=False,
            methods=methods,
            checkpoint_s=checkpoint_s,
        )
        secs = time.perf_counter() - t0
        stop.set()
        t.join()
    workers_mb = [v for k, v in peaks.items() if k != "client"]
    return {
        "samples": int((res.manifest["status"] == "ok").sum()),
        "seconds": round(secs, 1),
        "client_mb": round(peaks["client"], 1),
        "worker_mb": round(max(workers_mb), 1) if workers_mb else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, nargs="+", default=[80, 800])
    ap.add_argument("--methods", default="dvscl", help="comma-separated feeds (default dvscl: crop + depth)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--checkpoint-s", type=float, default=120.0, help="the run's checkpoint interval (as mepipe's)")
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # run the data at this folder, print JSON
    a = ap.parse_args()
    methods = [m for m in a.methods.split(",") if m]
    if a.one:
        print(json.dumps(one_size(a.one, methods, a.workers, a.checkpoint_s)))
        return
    rows, demo = [], demo_root()
    for n in a.clips:  # one process per size: a peak is not carried over, nor the making of the data
        with tempfile.TemporaryDirectory() as tmp:
            n_rows = repeated_demo(demo, Path(tmp) / "data", n)
            cmd = [sys.executable, __file__, "--one", str(Path(tmp) / "data"), "--methods", a.methods]
            cmd += ["--workers", str(a.workers), "--checkpoint-s", str(a.checkpoint_s)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append({"rows": n_rows, **json.loads(out.strip().splitlines()[-1])})
    base = rows[0]
    print(f"methods {a.methods}, {a.workers} LocalCluster workers, checkpoint every {a.checkpoint_s} s")
    print("sheet rows | ok samples | seconds | client peak MB (ratio) | largest worker peak MB (ratio)")
    for r in rows:
        c, w = r["client_mb"] / base["client_mb"], r["worker_mb"] / base["worker_mb"]
        print(
            f"{r['rows']:>10} | {r['samples']:>10} | {r['seconds']:>7} | {r['client_mb']:>8} ({c:.2f}) | "
            f"{r['worker_mb']:>8} ({w:.2f})"
        )


if __name__ == "__main__":
    main()
