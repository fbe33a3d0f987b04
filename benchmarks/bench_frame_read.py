"""What the strict JPEG check costs a frame read (issue 15, item 7).

    .venv/bin/python benchmarks/bench_frame_read.py

Reads the demo's colour frames (640x360 JPEG) three ways in one run: OpenCV's imdecode
alone (the pixels), the strict check alone (libjpeg-turbo via simplejpeg at 1/8 scale,
corrupt-data warnings as errors), and `pipeline.io.read_rgb` (header size check + strict
check + imdecode); prints ms per frame and the ratio of read_rgb to imdecode alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.catalog import load_catalog  # noqa: E402
from pipeline.demo import ensure_demo  # noqa: E402
from pipeline.io import read_rgb  # noqa: E402


def per_frame_ms(fn, items, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1e3


def main() -> None:
    import simplejpeg

    cat = load_catalog(Path(__file__).resolve().parent.parent / "catalog.yaml")
    ds = cat.dataset("demo")
    ensure_demo(ds, log=lambda *a: None)
    paths = sorted((ds.root() / ds.frames_dir).rglob("color/*.jpg"))[:400]
    blobs = [p.read_bytes() for p in paths]
    cv2.setNumThreads(1)
    decode = per_frame_ms(lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), blobs)
    strict = per_frame_ms(lambda b: simplejpeg.decode_jpeg(b, strict=True, min_factor=8), blobs)
    full = per_frame_ms(read_rgb, paths)
    print(f"{len(paths)} demo frames (640x360 JPEG), one thread, best of 3")
    print(f"  cv2.imdecode alone          {decode:6.2f} ms/frame")
    print(f"  strict check alone          {strict:6.2f} ms/frame")
    print(f"  read_rgb (file + both)      {full:6.2f} ms/frame   = {full / decode:.2f}x imdecode alone")


if __name__ == "__main__":
    main()
