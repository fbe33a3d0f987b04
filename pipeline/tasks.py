"""The per-clip work a dask worker runs: read frames, call the stages, return arrays.

A clip either yields its arrays or an exclusion (stage, reason, readable detail naming
the file); unexpected errors propagate so the engine can retry and then report them.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.faults import clip_fault
from pipeline.io import FrameReadError, read_depth, read_rgb
from pipeline.models import landmark_backend_for
from schemas.arrays import ALIGN, CROP, DI_FRAMES, FLOW224, TIM_FRAMES, TIM_SIZE
from stages.align import eye_angle, warp_faces
from stages.crop import apply_crop, crop_box, cut, landmarks_to_crop
from stages.depth import DepthError, zero_fill
from stages.diff import frame_diff, rgb_to_gray
from stages.flow import farneback, magnitude, strain, tvl1
from stages.temporal import dynamic_image, magnify_pair, tim_interpolate, uniform_indices

# Bump a group's version when its code changes what it writes: the fingerprint changes
# and the store recomputes exactly those products.
GROUP_VERSIONS = {"crop": "1", "depth": "1", "flow": "1", "micro": "2", "clip": "1"}


def _excluded(stage: str, reason: str, detail: str, timings: dict) -> dict:
    return {"status": "excluded", "stage": stage, "reason": reason, "detail": detail,
            "arrays": {}, "timings": timings}


def compute_crop(row: dict, root: Path, params: dict, timings: dict) -> dict:
    t = time.perf_counter()
    onset = read_rgb(root / row["onset_path"])
    apex = read_rgb(root / row["apex_path"])
    timings["read_ms"] = (time.perf_counter() - t) * 1e3
    if onset.shape != apex.shape:
        raise FrameReadError(f"{root / row['apex_path']}: size {apex.shape[:2]} differs from onset "
                             f"frame {row['onset_path']} {onset.shape[:2]}")
    t = time.perf_counter()
    fp = params["face"]
    lm = landmark_backend_for(fp)(onset)
    timings["face_ms"] = (time.perf_counter() - t) * 1e3
    if lm is None:
        return None
    t = time.perf_counter()
    box = crop_box(lm, onset.shape[:2], **params["crop"])
    on_c = apply_crop(onset, box, CROP)
    ap_c = apply_crop(apex, box, CROP)
    timings["crop_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    arrays = {
        "pairs/onset_rgb": on_c, "pairs/apex_rgb": ap_c,
        "pairs/onset_landmarks": landmarks_to_crop(lm, box, CROP),
        "pairs/rgb_diff": frame_diff(ap_c, on_c),
        "pairs/gray_diff": frame_diff(rgb_to_gray(ap_c), rgb_to_gray(on_c)),
    }
    timings["diff_ms"] = (time.perf_counter() - t) * 1e3
    return {"box": box, "arrays": arrays, "landmark_backend": fp["backend"],
            # rounded to the manifest's float32 so a later partial recompute uses the same angle
            "eye_angle": float(np.float32(eye_angle(lm))),
            "crops": (on_c, ap_c), "apex": apex}


def recrop(row: dict, root: Path, box: tuple, timings: dict) -> dict:
    """The stored crop box applied again (a product downstream of the crop changed)."""
    t = time.perf_counter()
    apex = read_rgb(root / row["apex_path"])
    crops = (apply_crop(read_rgb(root / row["onset_path"]), box, CROP), apply_crop(apex, box, CROP))
    timings["read_ms"] = (time.perf_counter() - t) * 1e3
    return {"crops": crops, "apex": apex}


def compute_flow(on_c: np.ndarray, ap_c: np.ndarray, params: dict, timings: dict) -> dict:
    t = time.perf_counter()
    f = tvl1(on_c, ap_c, **params["tvl1"])
    timings["tvl1_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    fb = farneback(on_c, ap_c, **params["farneback"])
    timings["farneback_ms"] = (time.perf_counter() - t) * 1e3
    return {"pairs/flow_tvl1": f.astype(np.float16), "pairs/flow_farneback": fb.astype(np.float16),
            "pairs/strain_tvl1": strain(f).astype(np.float16), "pairs/flowmag_tvl1": magnitude(f).astype(np.float16)}


class MagnifierMissing(RuntimeError):
    pass


def check_magnifier(params: dict) -> None:
    """Learning-based magnification (Oh et al. 2018) is an optional local model."""
    m = params["magnify"]
    if m["method"] == "learned":
        w = Path(m["weights"]) if m["weights"] else None
        if w is None or not w.is_file():
            raise MagnifierMissing(
                f"params.magnify.method: learned needs the weights of Oh et al.'s magnification network as a "
                f"local file (params.magnify.weights = {m['weights']!r} does not exist); nothing is downloaded. "
                "The file is a torch state_dict of stages.magnet.MagNet. Use method: eulerian otherwise")
        learned_magnifier(str(w))   # loads once per process; a wrong file fails here, before any work


_MAGNETS: dict = {}


def uses_gpu(need: tuple, params: dict) -> bool:
    """Whether a clip task with these product groups has a GPU stage: the learned
    magnifier (seed 004 with params.magnify.method = learned). Everything else is CPU."""
    return "micro" in need and params["magnify"]["method"] == "learned"


def learned_magnifier(path: str):
    if path not in _MAGNETS:
        import torch

        from stages.magnet import MagNet

        net = MagNet()
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as e:
            raise MagnifierMissing(f"{path}: not a state_dict of stages.magnet.MagNet ({e})") from e
        _MAGNETS[path] = net.eval().to("cuda" if torch.cuda.is_available() else "cpu")
    return _MAGNETS[path]


def compute_micro(on_c, ap_c, apex_full, box, params, timings) -> dict | None:
    """Seed 004: landmarks on the apex frame; x alpha magnified onset -> apex; TV-L1; 224."""
    check_magnifier(params)
    t = time.perf_counter()
    lm = landmark_backend_for(params["face"])(apex_full)
    timings["apex_face_ms"] = (time.perf_counter() - t) * 1e3
    if lm is None:
        return None
    t = time.perf_counter()
    if params["magnify"]["method"] == "learned":
        from stages.magnet import magnify_pair_learned

        mag = magnify_pair_learned(learned_magnifier(params["magnify"]["weights"]), on_c[:308, :308], ap_c[:308, :308],
                                   params["magnify"]["alpha"])
        mag = np.pad(mag, ((0, CROP - 308), (0, CROP - 308), (0, 0)), mode="edge")   # 310 is not divisible by 4
    else:
        mag = magnify_pair(on_c.astype(np.float32), ap_c.astype(np.float32), params["magnify"]["alpha"],
                           params["magnify"]["levels"])
    mag = np.clip(np.rint(mag), 0, 255).astype(np.uint8)
    timings["magnify_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()   # flow computed at the feed's 224x224 directly (half the TV-L1 cost of 310)
    small = [cv2.resize(x, (FLOW224, FLOW224), interpolation=cv2.INTER_AREA) for x in (on_c, mag)]
    f = tvl1(small[0], small[1], **params["tvl1"])
    timings["micro_tvl1_ms"] = (time.perf_counter() - t) * 1e3
    return {"micro/flow224": f.astype(np.float16), "micro/apex_landmarks224": landmarks_to_crop(lm, box, FLOW224)}


def compute_clip(row: dict, root: Path, box: tuple, angle: float, params: dict, timings: dict) -> dict:
    """Whole clip onset..offset: aligned 72x72 frames (ragged), dynamic images of 8 uniform
    frames, TIM to 16 frames of 112x112 and the Farnebäck flow between them."""
    t = time.perf_counter()
    seq = list(row["seq_paths"])
    f72, f112 = [], []
    for ref in seq:
        img = read_rgb(root / ref)
        a72, a112 = warp_faces(img, angle, box, (ALIGN, TIM_SIZE))
        f72.append(a72)
        f112.append(a112)
    f72, f112 = np.stack(f72), np.stack(f112)
    timings["clip_read_align_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    pick = f72[uniform_indices(len(f72), DI_FRAMES)]
    gray = np.stack([rgb_to_gray(f) for f in pick])
    tim = tim_interpolate(f112, TIM_FRAMES)
    flows = np.stack([farneback(tim[k], tim[k + 1], **params["farneback"]) for k in range(TIM_FRAMES - 1)])
    timings["clip_products_ms"] = (time.perf_counter() - t) * 1e3
    return {"clips/frames72": f72, "fdp/dynamic_image": dynamic_image(gray).astype(np.float16),
            "fdp/dynamic_image_rgb": dynamic_image(pick).astype(np.float16),
            "attrcl/rgb16": tim, "attrcl/flow16": flows.astype(np.float16)}


def depth_crops(row: dict, root: Path, box: tuple, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset raw crop, onset filled 310x310, apex filled 310x310)."""
    out = []
    raw_on = None
    for key in ("onset_depth_path", "apex_depth_path"):
        d = read_depth(root / row[key])
        c = cut(d, box) if d.shape[0] >= box[3] and d.shape[1] >= box[2] else None
        if c is None:
            raise DepthError(f"{root / row[key]}: depth size {d.shape} does not hold the colour crop box {box}")
        if raw_on is None:
            raw_on = c
        try:
            filled = zero_fill(c, params["depth"]["fill"], params["depth"]["window"])
        except DepthError as e:
            raise DepthError(f"{root / row[key]}: {e}") from None
        out.append(apply_crop(filled, (0, 0, c.shape[1], c.shape[0]), CROP, cv2.INTER_AREA))
    return raw_on, out[0], out[1]


def compute_depth(row: dict, root: Path, box: tuple, params: dict, timings: dict) -> dict:
    t = time.perf_counter()
    _, on_d, ap_d = depth_crops(row, root, box, params)
    timings["depth_ms"] = (time.perf_counter() - t) * 1e3
    return {"pairs/onset_depth": on_d, "pairs/apex_depth": ap_d, "pairs/depth_diff": frame_diff(ap_d, on_d)}


def process_clip(row: dict, root: str, params: dict, need: tuple, box: tuple | None,
                 has_depth: bool, angle: float | None = None) -> dict:
    """Compute the product groups in `need` ('crop', 'depth', 'flow', 'micro', 'clip') for
    one sample.

    `box` and `angle` are the stored crop box and eye angle when 'crop' itself is not
    recomputed. Returns {status, arrays, box, landmark_backend, eye_angle, timings} or an
    exclusion dict.
    """
    clip_fault(row["sample_id"])   # crash tests only (MEPIPE_FAULT); a no-op otherwise
    cv2.setNumThreads(1)   # one task per core: the engine parallelises across clips, not inside OpenCV
    root = Path(root)
    timings: dict = {}
    arrays: dict = {}
    backend = None
    try:
        pair = None
        if "crop" in need:
            res = compute_crop(row, root, params, timings)
            if res is None:
                return _excluded("face", "no_face", f"no face found on the onset frame {root / row['onset_path']} "
                                 f"(backend {params['face']['backend']})", timings)
            box, backend, angle = res["box"], res["landmark_backend"], res["eye_angle"]
            arrays.update(res["arrays"])
            pair = res
        box = tuple(int(v) for v in box)
        if has_depth and "depth" in need and isinstance(row.get("onset_depth_path"), str):
            arrays.update(compute_depth(row, root, box, params, timings))
        if {"flow", "micro"} & set(need) and pair is None:
            pair = recrop(row, root, box, timings)
        if "flow" in need:
            arrays.update(compute_flow(*pair["crops"], params, timings))
        if "micro" in need:
            micro = compute_micro(*pair["crops"], pair["apex"], box, params, timings)
            if micro is None:
                return _excluded("micro", "no_face_apex", f"no face found on the apex frame {root / row['apex_path']} "
                                 f"(needed for seed 004's landmarks)", timings)
            arrays.update(micro)
        if "clip" in need:
            arrays.update(compute_clip(row, root, box, angle, params, timings))
    except DepthError as e:
        return _excluded("depth", "depth_unusable", str(e), timings)
    except FrameReadError as e:
        return _excluded("read", "frame_unreadable", str(e), timings)
    return {"status": "ok", "arrays": arrays, "box": box, "landmark_backend": backend,
            "eye_angle": angle, "timings": timings}
