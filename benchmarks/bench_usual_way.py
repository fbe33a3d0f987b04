"""The pipeline against "the usual way" published ME code preprocesses data, same clips, one run.

    .venv/bin/python benchmarks/bench_usual_way.py [--demo PATH] [--skip-single-thread]

"The usual way" is `usual_way()` below: a plain sequential script in the style of
published micro-expression repositories (read the label sheet with pandas, loop over its
rows, cv2.imread the frames, dlib HOG detector + 68-point predictor, crop on the
landmarks, resize to 310x310, differences, depth crop + zero-fill, TV-L1 with
cv2.optflow, then per-sample PNG and .npy files in a folder). It calls nothing from
pipeline/ or stages/: every step is written out here, as such a script would have it.

Product set. No method set of schemas.feeds gives exactly crop + depth + TV-L1: DVSCL
needs the `crop` and `depth` groups, SelfME the `flow` group (TV-L1, and with it
Farnebäck, strain and flow magnitude) and the `clip` group (aligned 72x72 clip; the group
also makes the dynamic images, TIM-16 at 112 and the Farnebäck sequence). So the pipeline
runs with methods=["dvscl", "selfme"] (groups crop, depth, flow, clip) and the usual-way
script computes the same products of those four groups, with the same parameters
(pipeline.params.DEFAULTS, read once for the numbers only) and stores them in the same
dtypes. After the runs, every usual-way product is compared with the store's array.

Measured in the same run: the usual way (1 process, OpenCV's default threads, as a script
gets them; and pinned to 1 thread), its re-run (it recomputes everything), the pipeline's
run() on an empty store with 2 and 1 workers (cluster start, model load, tasks, shard
writes, commit) and its re-run with nothing changed; summed stage times from the run's
own timings; bytes on disk of the PNG/.npy folder and of the store folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.catalog import load_catalog  # noqa: E402
from pipeline.demo import ANNOTATION, generate, is_complete  # noqa: E402
from pipeline.params import DEFAULTS  # noqa: E402
from pipeline.runner import run  # noqa: E402
from pipeline.store import Store  # noqa: E402
from products import groups_for  # noqa: E402

METHODS = ["dvscl", "selfme"]


# ====================================================================== the usual way
# the OpenCV arguments only (params.tvl1 also names the implementation, `backend`)
TVL1_NUMBERS = {k: v for k, v in DEFAULTS["tvl1"].items() if k != "backend"}


def usual_way(data_root, out_dir, tvl1_params, farneback_params, depth_window=5):
    """Sequential preprocessing in the style of published ME code. Returns (n clips,
    seconds per part). Writes <out_dir>/<subject>_<clip>_<onset>_<apex>/..."""
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")  # the package's own helper needs pkg_resources
    predictor_path = os.path.join(os.path.dirname(spec.origin), "models", "shape_predictor_68_face_landmarks.dat")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(predictor_path)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**tvl1_params)
    fb = farneback_params
    t_part = {k: 0.0 for k in ("read", "face", "crop+diff", "depth", "flow", "clip", "write")}

    def tic():
        return time.perf_counter()

    def landmarks(img_bgr):
        rgb = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB)
        rects = detector(rgb, 1)
        if len(rects) == 0:
            return None
        rect = max(rects, key=lambda r: r.width() * r.height())
        shape = predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def get_box(lm, h, w, max_brow_ext=0.15):
        lm = lm.astype(np.float64)
        brow_top, bottom = lm[17:27, 1].min(), lm[:, 1].max()
        ext = ((lm[36:42, 1].mean() - lm[17:22, 1].mean()) + (lm[42:48, 1].mean() - lm[22:27, 1].mean())) / 2
        ext = min(max(ext, 0.0), max_brow_ext * (bottom - brow_top))
        x0, x1, y0, y1 = lm[:, 0].min(), lm[:, 0].max(), brow_top - ext, bottom
        side = round(min(max(x1 - x0, y1 - y0), h, w))
        bx = min(max(round((x0 + x1) / 2 - side / 2), 0), w - side)
        by = min(max(round((y0 + y1) / 2 - side / 2), 0), h - side)
        return bx, by, bx + side, by + side

    def fill_zeros(d, win):
        valid = d > 0
        out = d.copy()
        if valid.all():
            return out
        vals, known = d.astype(np.float64), valid.astype(np.float64)
        for _ in range(50):
            s = cv2.boxFilter(vals * known, -1, (win, win), normalize=False, borderType=cv2.BORDER_CONSTANT)
            n = cv2.boxFilter(known, -1, (win, win), normalize=False, borderType=cv2.BORDER_CONSTANT)
            todo = (known == 0) & (n > 0.5)
            vals[todo] = s[todo] / n[todo]
            known[todo] = 1.0
            if known.all():
                break
        vals[known == 0] = d[valid].mean(dtype=np.float64)
        out[~valid] = np.rint(vals[~valid]).astype(np.uint16)
        return out

    def farneback(a, b):
        ga = a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
        gb = b if b.ndim == 2 else cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
        return cv2.calcOpticalFlowFarneback(
            ga,
            gb,
            None,
            fb["pyr_scale"],
            fb["levels"],
            fb["winsize"],
            fb["iterations"],
            fb["poly_n"],
            fb["poly_sigma"],
            0,
        )

    def dyn_image(frames):
        T = len(frames)
        H = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, T + 1))])
        t = np.arange(1, T + 1)
        alpha = 2.0 * (T - t + 1) - (T + 1) * (H[T] - H[t - 1])
        d = np.tensordot(alpha, np.asarray(frames, np.float64), axes=(0, 0))
        return ((d - d.min()) / (d.max() - d.min()) if d.max() > d.min() else np.zeros_like(d)).astype(np.float32)

    def tim(frames, m):
        n = len(frames)
        flat = frames.reshape(n, -1).astype(np.float64)
        mean = flat.mean(axis=0)
        k = np.arange(1, n)[:, None]

        def Y(tt):
            return np.sin(np.pi * k * tt[None, :] / n + np.pi * (n - k) / (2 * n))

        A = Y(np.linspace(1, n, m)).T @ np.linalg.pinv(Y(np.arange(1, n + 1, dtype=np.float64)).T)
        out = A @ (flat - mean) + mean
        return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape((m, *frames.shape[1:]))

    ann = pd.read_excel(os.path.join(data_root, ANNOTATION), sheet_name="label")
    frames_dir = os.path.join(data_root, "part_A", "data")
    count = 0
    for _, row in ann.iterrows():
        subj, clip = str(row["Subject"]), str(row["Filename"])
        onset, apex, offset = int(row["Onset"]), int(row["Apex"]), int(row["Offset"])
        if apex < onset:  # one such row in the sheet
            continue
        if offset == 0:
            offset = apex + (apex - onset)
        color = os.path.join(frames_dir, subj, clip, "color")
        depth = os.path.join(frames_dir, subj, clip, "depth")
        t = tic()
        on = cv2.imread(os.path.join(color, f"{onset}.jpg"))
        ap = cv2.imread(os.path.join(color, f"{apex}.jpg"))
        t_part["read"] += tic() - t
        t = tic()
        lm = landmarks(on)
        t_part["face"] += tic() - t
        if lm is None:
            print(f"no face: {subj}/{clip} {onset}")
            continue
        t = tic()
        h, w = on.shape[:2]
        x0, y0, x1, y1 = get_box(lm, h, w)
        on_c = cv2.resize(on[y0:y1, x0:x1], (310, 310), interpolation=cv2.INTER_AREA)
        ap_c = cv2.resize(ap[y0:y1, x0:x1], (310, 310), interpolation=cv2.INTER_AREA)
        lm_c = ((lm.astype(np.float64) - [x0, y0] + 0.5) * 310 / (x1 - x0) - 0.5).astype(np.float32)
        rgb_diff = ap_c.astype(np.int16) - on_c.astype(np.int16)
        on_g, ap_g = cv2.cvtColor(on_c, cv2.COLOR_BGR2GRAY), cv2.cvtColor(ap_c, cv2.COLOR_BGR2GRAY)
        gray_diff = ap_g.astype(np.int16) - on_g.astype(np.int16)
        t_part["crop+diff"] += tic() - t
        t = tic()
        dd = []
        for n in (onset, apex):
            d = cv2.imread(os.path.join(depth, f"{n}.png"), cv2.IMREAD_UNCHANGED)[y0:y1, x0:x1]
            dd.append(cv2.resize(fill_zeros(d, depth_window), (310, 310), interpolation=cv2.INTER_AREA))
        depth_diff = dd[1].astype(np.int32) - dd[0].astype(np.int32)
        t_part["depth"] += tic() - t
        t = tic()
        flow = tvl1.calc(on_g, ap_g, None)
        flow_fb = farneback(on_g, ap_g)
        u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
        u_y, u_x = np.gradient(u)
        v_y, v_x = np.gradient(v)
        strain = np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2)
        mag = np.hypot(flow[..., 0], flow[..., 1])
        t_part["flow"] += tic() - t
        t = tic()  # the whole clip, aligned with the onset's eye line and box
        le, re = lm[36:42].astype(np.float64).mean(0), lm[42:48].astype(np.float64).mean(0)
        angle = float(np.degrees(np.arctan2(re[1] - le[1], re[0] - le[0])))
        M = cv2.getRotationMatrix2D(((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0), angle, 1.0)
        f72, f112 = [], []
        for n in range(onset, offset + 1):
            img = cv2.imread(os.path.join(color, f"{n}.jpg"))
            rot = cv2.warpAffine(
                img, M, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )[y0:y1, x0:x1]
            f72.append(cv2.resize(rot, (72, 72), interpolation=cv2.INTER_AREA))
            f112.append(cv2.resize(rot, (112, 112), interpolation=cv2.INTER_AREA))
        f72, f112 = np.stack(f72), np.stack(f112)
        pick = f72[np.minimum((np.arange(8) * len(f72) / 8).astype(np.int64), len(f72) - 1)]
        di = dyn_image(np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in pick]))
        di_rgb = dyn_image(pick[..., ::-1])  # RGB channel order, as the method's code expects
        tim16 = tim(f112, 16)
        flow16 = np.stack([farneback(tim16[k], tim16[k + 1]) for k in range(15)])
        t_part["clip"] += tic() - t
        t = tic()
        out = os.path.join(out_dir, f"{subj}_{clip}_{onset}_{apex}")
        os.makedirs(os.path.join(out, "frames72"), exist_ok=True)
        os.makedirs(os.path.join(out, "tim16"), exist_ok=True)
        cv2.imwrite(os.path.join(out, "onset.png"), on_c)
        cv2.imwrite(os.path.join(out, "apex.png"), ap_c)
        cv2.imwrite(os.path.join(out, "onset_depth.png"), dd[0])
        cv2.imwrite(os.path.join(out, "apex_depth.png"), dd[1])
        np.save(os.path.join(out, "onset_landmarks.npy"), lm_c)
        np.save(os.path.join(out, "rgb_diff.npy"), rgb_diff[..., ::-1])  # RGB order
        np.save(os.path.join(out, "gray_diff.npy"), gray_diff)
        np.save(os.path.join(out, "depth_diff.npy"), depth_diff)
        np.save(os.path.join(out, "flow_tvl1.npy"), flow.astype(np.float16))
        np.save(os.path.join(out, "flow_farneback.npy"), flow_fb.astype(np.float16))
        np.save(os.path.join(out, "strain_tvl1.npy"), strain.astype(np.float16))
        np.save(os.path.join(out, "flowmag_tvl1.npy"), mag.astype(np.float16))
        for i, f in enumerate(f72):
            cv2.imwrite(os.path.join(out, "frames72", f"{i:03d}.png"), f)
        for i, f in enumerate(tim16):
            cv2.imwrite(os.path.join(out, "tim16", f"{i:02d}.png"), f)
        np.save(os.path.join(out, "dynamic_image.npy"), di.astype(np.float16))
        np.save(os.path.join(out, "dynamic_image_rgb.npy"), di_rgb.astype(np.float16))
        np.save(os.path.join(out, "flow16.npy"), flow16.astype(np.float16))
        t_part["write"] += tic() - t
        count += 1
    return count, t_part


# ====================================================================== measurement
def disk_bytes(folder: Path) -> tuple[int, int, int]:
    """(sum of file sizes, bytes of allocated blocks, number of files)."""
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_blocks * 512 for p in files), len(files)


def bench_catalog(repo: Path, tmp: Path, demo_root: Path):
    text = (
        (repo / "catalog.yaml")
        .read_text()
        .replace("store_root: data/stores", f"store_root: {tmp}/stores")
        .replace("runs_root: data/runs", f"runs_root: {tmp}/runs")
        .replace("root_default: data/demo/casme3", f"root_default: {demo_root}")
        .replace(
            "    unlabelled:                 # Part B stand-in: long recordings screened by AU intensity\n"
            "      frames_dir: part_B/data\n",
            "",
        )
    )  # the 20 labelled clips only, as the usual way
    if text.count(str(tmp)) != 2 or str(demo_root) not in text or "part_B/data\n    params" in text:
        raise RuntimeError("catalog.yaml changed: the benchmark's catalog rewrite no longer applies")
    (tmp / "catalog.yaml").write_text(text)
    return load_catalog(tmp / "catalog.yaml")


def compare(store_path: Path, usual_dir: Path) -> list[tuple[str, str]]:
    """Each usual-way product against the store's array, over every sample."""
    st = Store(store_path, create=False)
    g, man = st.group(), st.table("manifest")
    png = {
        "pairs/onset_rgb": "onset.png",
        "pairs/apex_rgb": "apex.png",
        "pairs/onset_depth": "onset_depth.png",
        "pairs/apex_depth": "apex_depth.png",
    }
    npy = {
        a: a.split("/")[1] + ".npy"
        for a in (
            "pairs/onset_landmarks",
            "pairs/rgb_diff",
            "pairs/gray_diff",
            "pairs/depth_diff",
            "pairs/flow_tvl1",
            "pairs/flow_farneback",
            "pairs/strain_tvl1",
            "pairs/flowmag_tvl1",
            "fdp/dynamic_image",
            "fdp/dynamic_image_rgb",
        )
    }
    npy["attrcl/flow16"] = "flow16.npy"
    worst: dict[str, float] = {}

    def note(name, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            worst[name] = float("inf")
            return
        worst[name] = max(worst.get(name, 0.0), float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))

    def rgb(path):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        return img[..., ::-1] if img.ndim == 3 else img

    for r in man[man["status"] == "ok"].itertuples():
        d = usual_dir / f"{r.subject}_{r.clip}_{r.onset}_{r.apex}"
        i = int(r.index)
        for a, f in png.items():
            note(a, g[a][i], rgb(d / f))
        for a, f in npy.items():
            note(a, g[a][i], np.load(d / f))
        s, n = int(r.clip_start), int(r.clip_len)
        note(
            "clips/frames72",
            g["clips/frames72"][s : s + n],
            np.stack([rgb(p) for p in sorted((d / "frames72").iterdir())]),
        )
        note("attrcl/rgb16", g["attrcl/rgb16"][i], np.stack([rgb(p) for p in sorted((d / "tim16").iterdir())]))
    return [(k, "identical" if v == 0 else f"max |diff| {v:.3g}") for k, v in worst.items()]


def scaled_demo(demo: Path, out: Path, clips: int) -> Path:
    """The demo's Part A repeated to `clips` sheet rows (bench_memory.repeated_demo: new
    subjects of hard-linked files), with the demo's other top-level files."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_memory import repeated_demo

    rows = repeated_demo(demo, out, clips)
    for f in demo.iterdir():
        if f.is_file() and not (out / f.name).exists():
            shutil.copy2(f, out / f.name)
    print(f"scaled demo: {rows} sheet rows in {out}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--demo",
        default="",
        help="demo dataset folder (default: the catalog's demo root if generated, "
        "else a cached copy in the temp dir, generated on first use)",
    )
    ap.add_argument("--skip-single-thread", action="store_true", help="skip the usual way pinned to 1 OpenCV thread")
    ap.add_argument(
        "--clips", type=int, default=0, help="repeat the demo's Part A to this many sheet rows (0: the demo as is)"
    )
    ap.add_argument(
        "--workers", type=int, nargs=2, default=[2, 1], metavar=("MANY", "FEW"), help="the two pipeline runs"
    )
    ap.add_argument("--tvl1-backend", default="opencv", choices=("opencv", "torch", "auto"), help="params.tvl1.backend")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parent.parent
    if args.demo:
        demo = Path(args.demo)
    elif is_complete(repo / "data/demo/casme3") and not os.environ.get("MEPIPE_DEMO_ROOT"):
        demo = repo / "data/demo/casme3"
    else:
        demo = Path(tempfile.gettempdir()) / "mepipe-bench-usual-demo"
    if not is_complete(demo):
        t = time.perf_counter()
        generate(demo, log=lambda *a: None)
        print(f"demo generated in {demo} ({time.perf_counter() - t:.1f} s)")
    os.environ.pop("MEPIPE_DEMO_ROOT", None)
    tmp = Path(tempfile.mkdtemp(prefix="mepipe-bench-usual-"))
    if args.clips:
        demo = scaled_demo(demo, tmp / "scaled", args.clips)
    many, few = args.workers
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=repo, check=False
    ).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "pipeline", "stages", "schemas"],
        check=False,
        capture_output=True,
        text=True,
        cwd=repo,
    ).stdout.split("\n")
    dirty = [ln[3:] for ln in dirty if ln.strip()]
    print(
        f"{dt.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, load average at start "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; demo {demo}; code {head.strip()}"
        + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")
    )
    print(
        "\nUsual way (usual_way() in this file, a plain sequential script, 1 process), per annotation row: "
        "cv2.imread onset/apex, dlib HOG + 68 points (face-recognition-models), landmark crop -> 310x310, RGB/gray apex-onset, depth "
        "crop + nearest zero-fill + depth diff, TV-L1 + Farnebäck + strain + magnitude, aligned clip 72x72 + "
        "dynamic images + TIM-16 (112) + Farnebäck sequence; PNG (images) + .npy (the rest, store dtypes) "
        "per sample."
    )
    print(
        f"Pipeline: run(methods={METHODS}) -> groups {groups_for(METHODS, True)}: the same products, in one "
        "Icechunk/Zarr store (+ manifest/exclusions/checksums tables, provenance), dask LocalCluster."
    )
    try:
        default_threads = cv2.getNumThreads()
        uw = tmp / "usual"
        t = time.perf_counter()
        n, parts = usual_way(str(demo), str(uw), TVL1_NUMBERS, DEFAULTS["farneback"], DEFAULTS["depth"]["window"])
        t_usual = time.perf_counter() - t
        t = time.perf_counter()
        usual_way(str(demo), str(uw), TVL1_NUMBERS, DEFAULTS["farneback"], DEFAULTS["depth"]["window"])
        t_usual_rerun = time.perf_counter() - t
        t_usual1 = parts1 = None
        if not args.skip_single_thread:
            cv2.setNumThreads(1)
            t = time.perf_counter()
            _, parts1 = usual_way(
                str(demo), str(tmp / "usual-1t"), TVL1_NUMBERS, DEFAULTS["farneback"], DEFAULTS["depth"]["window"]
            )
            t_usual1 = time.perf_counter() - t
            cv2.setNumThreads(default_threads)
            shutil.rmtree(tmp / "usual-1t")
        print(
            f"\nusual way, {n} clips, OpenCV default threads ({default_threads}): {t_usual:.2f} s "
            f"({t_usual / n * 1e3:.0f} ms/clip); re-run (recomputes everything): {t_usual_rerun:.2f} s"
        )
        print("  ms/clip: " + ", ".join(f"{k} {v / n * 1e3:.0f}" for k, v in parts.items()))
        if t_usual1 is not None:
            print(f"usual way, OpenCV pinned to 1 thread: {t_usual1:.2f} s ({t_usual1 / n * 1e3:.0f} ms/clip)")
            print("  ms/clip: " + ", ".join(f"{k} {v / n * 1e3:.0f}" for k, v in parts1.items()))

        walls, reruns, stage = {}, {}, {}
        for w in (many, few):
            wd = tmp / f"pipe-w{w}"
            wd.mkdir()
            c = bench_catalog(repo, wd, demo)
            ds = c.dataset("demo")
            ds = dataclasses.replace(
                ds, params={**ds.params, "tvl1": {**ds.params["tvl1"], "backend": args.tvl1_backend}}
            )
            t = time.perf_counter()
            res = run(c, ds, workers=w, log=lambda *a: None, progress=False, methods=METHODS)
            walls[w] = time.perf_counter() - t
            if res.recomputed != n:
                raise RuntimeError(
                    f"pipeline computed {res.recomputed} clips, {len(res.excluded)} exclusions; the usual way {n} clips"
                )
            stage[w] = sum(res.timings.values())
            t = time.perf_counter()
            again = run(c, ds, workers=w, log=lambda *a: None, progress=False, methods=METHODS)
            reruns[w] = time.perf_counter() - t
            assert again.recomputed == 0 and not again.committed
            print(
                f"\npipeline, {w} worker(s), tvl1 backend {args.tvl1_backend}, empty store: {walls[w]:.2f} s ({walls[w] / n * 1e3:.0f} ms/clip); "
                f"summed stage time {stage[w]:.0f} ms/clip ("
                + ", ".join(f"{k[:-3]} {v:.0f}" for k, v in res.timings.items())
                + f"); engine overhead "
                f"wall / (clips x stage sum / workers) = {walls[w] / (n * stage[w] / 1e3 / w):.2f}; "
                f"re-run with nothing changed {reruns[w]:.2f} s"
            )
            if w == many:
                store_bytes = disk_bytes(wd / "stores" / "demo")
                checks = compare(wd / "stores" / "demo", uw)
                # run() writes a shard once per sample and Icechunk keeps every superseded shard
                # object until garbage collection (the pipeline runs none): what the version uses
                t = time.perf_counter()
                Store(wd / "stores" / "demo", create=False).repo.garbage_collect(dt.datetime.now(dt.UTC))
                t_gc = time.perf_counter() - t
                live_bytes = disk_bytes(wd / "stores" / "demo")
            else:
                shutil.rmtree(wd)
        usual_bytes = disk_bytes(uw)
        usual_compute = sum(v for k, v in parts.items() if k != "write")

        print("\nproducts, usual way vs store (every sample):")
        for k, v in checks:
            print(f"  {k:28s} {v}")
        print(f"\n{'':46s} {'usual way':>16s} {'pipeline':>22s}")
        rows = [
            ("wall, first run (s)", f"{t_usual:.2f}", f"{walls[many]:.2f} ({many} w)"),
            ("", f"{t_usual1:.2f} (1 thr)" if t_usual1 else "", f"{walls[few]:.2f} ({few} w)"),
            ("re-run, nothing changed (s)", f"{t_usual_rerun:.2f}", f"{reruns[many]:.2f}"),
            (
                "compute ms/clip (usual: w/o writes; pipe: stages)",
                f"{usual_compute / n * 1e3:.0f}",
                f"{stage[many]:.0f} ({many} w) / {stage[few]:.0f} ({few} w)",
            ),
            ("output files", f"{usual_bytes[2]}", f"{store_bytes[2]}"),
            ("output bytes (file sizes, MB)", f"{usual_bytes[0] / 1e6:.1f}", f"{store_bytes[0] / 1e6:.1f}"),
            ("output on disk (allocated blocks, MB)", f"{usual_bytes[1] / 1e6:.1f}", f"{store_bytes[1] / 1e6:.1f}"),
            ("store after Icechunk garbage_collect: files", "", f"{live_bytes[2]}"),
            ("  file sizes / on disk (MB)", "", f"{live_bytes[0] / 1e6:.1f} / {live_bytes[1] / 1e6:.1f}"),
        ]
        for a, b, c_ in rows:
            print(f"{a:46s} {b:>16s} {c_:>22s}")
        print(
            f"\nspeed-up usual / pipeline({many} workers) = {t_usual / walls[many]:.2f}"
            + (f" (against the usual way on 1 OpenCV thread: {t_usual1 / walls[many]:.2f})" if t_usual1 else "")
        )
        print(f"parallel efficiency t{few} / ({many // few} t{many}) = {few * walls[few] / (many * walls[many]):.2f}")
        print(
            f"engine overhead wall / (clips x stage sum / workers): {walls[few] / (n * stage[few] / 1e3 / few):.2f} on "
            f"{few}, {walls[many] / (n * stage[many] / 1e3 / many):.2f} on {many}; usual way wall / compute "
            f"{t_usual / usual_compute:.2f}"
        )
        print(
            f"re-run with nothing changed: usual {t_usual_rerun:.2f} s, pipeline {reruns[many]:.2f} s "
            f"({t_usual_rerun / reruns[many]:.0f}x)"
        )
        print(
            f"bytes: store / usual folder = {store_bytes[0] / usual_bytes[0]:.2f} (file sizes), "
            f"{store_bytes[1] / usual_bytes[1]:.2f} (on disk), as run() leaves it; after garbage_collect "
            f"({t_gc:.2f} s) {live_bytes[0] / usual_bytes[0]:.2f} / {live_bytes[1] / usual_bytes[1]:.2f}: "
            f"{(store_bytes[0] - live_bytes[0]) / store_bytes[0]:.0%} of the store folder was superseded "
            "shard objects"
        )
        print(f"load average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
