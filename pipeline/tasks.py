"""The per-clip work a dask worker runs: read frames, call the stages, return arrays.

A clip either yields its arrays or an exclusion (stage, reason, readable detail naming
the file); unexpected errors propagate so the engine can retry and then report them.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.io import FrameReadError, read_depth, read_rgb
from pipeline.models import landmark_backend_for
from schemas.arrays import CROP
from stages.crop import apply_crop, crop_box, cut, landmarks_to_crop
from stages.depth import DepthError, zero_fill
from stages.diff import frame_diff, rgb_to_gray

# Bump a group's version when its code changes what it writes: the fingerprint changes
# and the store recomputes exactly those products.
GROUP_VERSIONS = {"crop": "1", "depth": "1"}


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
    return {"box": box, "arrays": arrays, "landmark_backend": fp["backend"]}


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
                 has_depth: bool) -> dict:
    """Compute the product groups in `need` ('crop', 'depth') for one sample.

    `box` is the stored crop box when only 'depth' is recomputed. Returns
    {status, arrays, box, landmark_backend, timings} or an exclusion dict.
    """
    root = Path(root)
    timings: dict = {}
    arrays: dict = {}
    backend = None
    try:
        if "crop" in need:
            res = compute_crop(row, root, params, timings)
            if res is None:
                return _excluded("face", "no_face", f"no face found on the onset frame {root / row['onset_path']} "
                                 f"(backend {params['face']['backend']})", timings)
            box, backend = res["box"], res["landmark_backend"]
            arrays.update(res["arrays"])
        if has_depth and "depth" in need and isinstance(row.get("onset_depth_path"), str):
            arrays.update(compute_depth(row, root, tuple(box), params, timings))
    except DepthError as e:
        return _excluded("depth", "depth_unusable", str(e), timings)
    except FrameReadError as e:
        return _excluded("read", "frame_unreadable", str(e), timings)
    return {"status": "ok", "arrays": arrays, "box": tuple(int(v) for v in box),
            "landmark_backend": backend, "timings": timings}
