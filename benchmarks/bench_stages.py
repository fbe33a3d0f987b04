"""Per-stage cost on the demo clips and the engine's overhead, measured in one run.

    .venv/bin/python benchmarks/bench_stages.py [--workers 1 2] [--methods dvscl]

Prints ms per clip of each stage (serial, one process) with its ratio to the cost of
reading the two frames - the pair stages of seed 000 and every motion product - then
the whole pipeline on the 20 labelled demo clips from an empty store on 1 and 2
workers: parallel efficiency = t1 / (2 * t2), engine overhead = wall time / summed
stage time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.catalog import load_catalog  # noqa: E402
from pipeline.demo import ensure_demo  # noqa: E402
from pipeline.face_models import landmark_backend  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.io import read_depth, read_rgb  # noqa: E402
from pipeline.runner import run  # noqa: E402
from schemas.arrays import CROP  # noqa: E402
from stages.align import eye_angle, warp_face  # noqa: E402
from stages.crop import apply_crop, crop_box, cut  # noqa: E402
from stages.depth import zero_fill  # noqa: E402
from stages.diff import frame_diff, rgb_to_gray  # noqa: E402
from stages.flow import farneback, strain, tvl1  # noqa: E402
from stages.temporal import dynamic_image, magnify_pair, tim_interpolate, uniform_indices  # noqa: E402


def timeit(fn, reps=1):
    t = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return (time.perf_counter() - t) / reps * 1e3, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--methods", default="", help="comma-separated feeds for the pipeline runs (default all)")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # per-core numbers (the pipeline's tasks run OpenCV single-threaded too)
    repo = Path(__file__).resolve().parent.parent
    cat = load_catalog(repo / "catalog.yaml")
    ds = cat.dataset("demo")
    ensure_demo(ds, log=lambda *a: None)
    root = ds.root()
    samples, _ = ingest(ds)
    rows = samples.to_dict("records")
    dl, mp = landmark_backend("dlib"), landmark_backend("mediapipe")
    acc: dict[str, list] = {}

    def add(k, v):
        acc.setdefault(k, []).append(v)

    for r in rows:
        t, (on, ap_) = timeit(lambda: (read_rgb(root / r["onset_path"]), read_rgb(root / r["apex_path"])))
        add("read 2 colour frames", t)
        t, lm = timeit(lambda: dl(on))
        add("face+landmarks dlib", t)
        t, _ = timeit(lambda: mp(on))
        add("face+landmarks mediapipe", t)
        box = crop_box(lm, on.shape[:2])
        t, (oc, ac) = timeit(lambda: (apply_crop(on, box, CROP), apply_crop(ap_, box, CROP)), 5)
        add("crop 2 frames to 310", t)
        t, _ = timeit(lambda: (frame_diff(ac, oc), frame_diff(rgb_to_gray(ac), rgb_to_gray(oc))), 5)
        add("rgb + gray diff", t)
        t, (od, ad) = timeit(
            lambda: (read_depth(root / r["onset_depth_path"]), read_depth(root / r["apex_depth_path"]))
        )
        add("read 2 depth frames", t)
        for m in ("nearest", "min", "mean"):
            t, _ = timeit(lambda: (zero_fill(cut(od, box), m), zero_fill(cut(ad, box), m)), 3)
            add(f"zero-fill {m} (2 crops)", t)
        t, f = timeit(lambda: tvl1(oc, ac))
        add("TV-L1 onset->apex 310", t)
        t, _ = timeit(lambda: farneback(oc, ac), 3)
        add("Farneback onset->apex 310", t)
        t, _ = timeit(lambda: strain(f), 3)
        add("strain", t)
        t, mg = timeit(
            lambda: np.clip(magnify_pair(oc.astype(np.float32), ac.astype(np.float32), 3.0), 0, 255).astype(np.uint8), 3
        )
        add("magnify x3 (Eulerian, pair)", t)
        small = [cv2.resize(x, (224, 224), interpolation=cv2.INTER_AREA) for x in (oc, mg)]
        t, _ = timeit(lambda: tvl1(*small))
        add("TV-L1 magnified 224", t)
        ang = eye_angle(lm)
        t, seq = timeit(lambda: [read_rgb(root / p) for p in r["seq_paths"]])
        add(f"read clip ({len(seq)} frames)", t)
        t, (f72, f112) = timeit(
            lambda: (
                np.stack([warp_face(x, ang, box, 72) for x in seq]),
                np.stack([warp_face(x, ang, box, 112) for x in seq]),
            )
        )
        add("align clip to 72 + 112", t)
        t, _ = timeit(lambda: dynamic_image(np.stack([rgb_to_gray(x) for x in f72[uniform_indices(len(f72), 8)]])), 3)
        add("dynamic image (8 frames)", t)
        t, tim = timeit(lambda: tim_interpolate(f112, 16), 3)
        add("TIM to 16 frames", t)
        t, _ = timeit(lambda: [farneback(tim[k], tim[k + 1]) for k in range(15)])
        add("Farneback sequence (15 x 112)", t)
    base = np.mean(acc["read 2 colour frames"])
    print(f"\nStage cost on {len(rows)} demo clips (serial, one core), ms per clip:")
    print(f"{'stage':32s} {'ms/clip':>9s} {'x read':>8s}")
    for k, v in acc.items():
        print(f"{k:32s} {np.mean(v):9.2f} {np.mean(v) / base:8.2f}")
    default = (
        "read 2 colour frames",
        "face+landmarks dlib",
        "crop 2 frames to 310",
        "rgb + gray diff",
        "read 2 depth frames",
        "zero-fill nearest (2 crops)",
        "TV-L1 onset->apex 310",
        "Farneback onset->apex 310",
        "strain",
        "face+landmarks dlib",
        "magnify x3 (Eulerian, pair)",
        "TV-L1 magnified 224",
        "read clip",
        "align clip to 72 + 112",
        "dynamic image (8 frames)",
        "TIM to 16 frames",
        "Farneback sequence (15 x 112)",
    )
    stage_sum = sum(np.mean(v) for k, v in acc.items() if any(k.startswith(d) for d in default)) + np.mean(
        acc["face+landmarks dlib"]
    )  # the apex landmarks of seed 004: a second detection
    if args.methods:
        stage_sum = float("nan")
    print(f"{'sum of all default stages':32s} {stage_sum:9.2f}")
    tv, fb = np.mean(acc["TV-L1 onset->apex 310"]), np.mean(acc["Farneback onset->apex 310"])
    print(f"TV-L1 / Farneback per 310x310 pair: {tv / fb:.1f}x")

    walls = {}
    for w in args.workers:
        tmp = Path(tempfile.mkdtemp(prefix="mepipe-bench-"))
        text = (
            (repo / "catalog.yaml")
            .read_text()
            .replace("store_root: data/stores", f"store_root: {tmp}/stores")
            .replace("runs_root: data/runs", f"runs_root: {tmp}/runs")
            .replace("root_default: data/demo/casme3", f"root_default: {root}")
            .replace(
                "    unlabelled:                 # Part B stand-in: long recordings screened by AU intensity\n"
                "      frames_dir: part_B/data\n",
                "",
            )
        )  # the 20 labelled clips only
        (tmp / "catalog.yaml").write_text(text)
        c = load_catalog(tmp / "catalog.yaml")
        os.environ.pop(ds.root_env, None)
        t = time.perf_counter()
        methods = [m for m in args.methods.split(",") if m] or None
        res = run(c, c.dataset("demo"), workers=w, log=lambda *a: None, progress=False, methods=methods)
        walls[w] = time.perf_counter() - t
        print(
            f"\npipeline, {w} worker(s), empty store: {walls[w]:.2f} s wall for {res.recomputed} clips "
            f"= {walls[w] / len(rows) * 1e3:.0f} ms/clip; engine overhead (wall / (clips x summed stage "
            f"time / workers)) = {walls[w] / (len(rows) * stage_sum / 1e3 / w):.2f}"
        )
        t = time.perf_counter()
        run(c, c.dataset("demo"), workers=w, log=lambda *a: None, progress=False, methods=methods)
        print(f"  re-run with nothing changed: {time.perf_counter() - t:.2f} s")
        shutil.rmtree(tmp)
    if 1 in walls and 2 in walls:
        print(f"\nparallel efficiency 1 -> 2 workers: t1 / (2 t2) = {walls[1] / (2 * walls[2]):.2f}")


if __name__ == "__main__":
    main()
