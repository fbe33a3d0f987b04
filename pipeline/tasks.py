"""The per-clip task a dask worker runs: build the products' Context (frame and depth
readers, landmark backends, model files: the I/O), run the registered products a
sample needs, return their arrays or an exclusion.

A clip either yields its arrays or an exclusion (stage, reason, readable detail naming
the file); unexpected errors propagate so the engine can retry and then report them.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.face_models import landmark_backend_for
from pipeline.faults import clip_fault, trace
from pipeline.io import FrameReadError, read_depth, read_rgb
from products import REGISTRY, Context, Excluded, versions
from products.base import PENDING, PendingFlow
from products.crop import SizeMismatch
from products.depth import depth_crops as _depth_crops
from stages.depth import DepthError
from stages.flow import tvl1, tvl1_batch

# Bump a product's version (products/<name>.py) when its code changes what it writes:
# the fingerprint changes and the store recomputes exactly those products.
GROUP_VERSIONS = versions()


def excluded_result(stage: str, reason: str, detail: str, timings: dict) -> dict:
    """A clip task's result for a sample it excludes (or that failed): no arrays."""
    return {"status": "excluded", "stage": stage, "reason": reason, "detail": detail, "arrays": {}, "timings": timings}


class MagnifierMissing(RuntimeError):
    pass


def check_landmark_model(params: dict, trust: bool = False, log=print) -> None:
    """The dlib predictor (when params.face.backend is dlib) is the file models.lock pins
    (a user's own file via MEPIPE_DLIB_PREDICTOR needs --trust-model-files)."""
    from pipeline.face_models import dlib_predictor_path
    from pipeline.model_trust import check_pinned

    if params["face"]["backend"] == "dlib":
        check_pinned(dlib_predictor_path(), "dlib/shape_predictor_68_face_landmarks.dat", trust, log)


def check_models(params: dict, need, trust: bool = False, log=print) -> None:
    """Every model file a needed product declares is a local file that loads, and the
    landmark model is the pinned one; checked before any work (learning-based
    magnification, Oh et al. 2018, is optional)."""
    if need:
        check_landmark_model(params, trust, log)
    for name in need:
        path = REGISTRY[name].model(params)
        if path is None:
            continue
        if not path or not Path(path).is_file():
            raise MagnifierMissing(
                f"params.magnify.method: learned needs the weights of Oh et al.'s magnification network as a "
                f"local file (params.magnify.weights = {path!r} does not exist); nothing is downloaded. "
                "The file is a torch state_dict of stages.magnet.MagNet. Use method: eulerian otherwise"
            )
        learned_magnifier(str(path))  # loads once per process; a wrong file fails here, before any work


def check_magnifier(params: dict) -> None:
    check_models(params, ["micro"])


_MAGNETS: dict = {}


def uses_gpu(need: tuple, params: dict, defer_flows: bool = False) -> bool:
    """Whether a clip task with these products has a GPU stage (a product declaring one:
    the learned magnifier of seed 004, TV-L1 with the torch backend). With `defer_flows`
    the TV-L1 flows run in their write shard's batch task instead (`shard_flows`), so
    they do not make the clip task a GPU one."""
    if defer_flows:
        params = {**params, "tvl1": {**params["tvl1"], "backend": "opencv"}}
    return any(REGISTRY[n].gpu(params) for n in need)


def one_thread_per_task(torch_too: bool) -> None:
    """One task per core: the engine parallelises across clips, not inside OpenCV (or
    torch, whose spinning pool on a busy core costs more than it gives)."""
    cv2.setNumThreads(1)
    if torch_too:
        import torch

        torch.set_num_threads(1)


def flows_now(pending: list[PendingFlow], tvl1_params: dict, timings: dict) -> dict:
    """Compute a sample's pending TV-L1 flows one by one (params.tvl1, its backend
    included), each pair prepared first where a product asks; returns the arrays their
    products make of them."""
    out = {}
    for pf in pending:
        src, dst = pf.src, pf.dst
        if pf.prepare is not None:
            t = time.perf_counter()
            src, dst = pf.prepare.one(src, dst)
            timings[pf.prepare.timing] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        out.update(pf.finish(tvl1(src, dst, **tvl1_params)))
        timings[pf.timing] = (time.perf_counter() - t) * 1e3
    return out


def _without_pending(res: dict) -> dict:
    """A copy of a clip result without its pending flows (the worker's stored result is
    not changed: a retried batch task reads it again)."""
    arrays = {k: v for k, v in res.get("arrays", {}).items() if k != PENDING}
    return {**res, "arrays": arrays, "timings": dict(res.get("timings", {}))}


def shard_flows(results: dict, tvl1_params: dict) -> dict:
    """The clip results of one write shard (index -> result) with their pending TV-L1
    flows computed by the torch backend in one batch per kind of pair (the 310x310 crops;
    seed 004's pairs, magnified and shrunk to 224x224 in the same batch first), on CUDA
    when this worker has it. Each sample's timings are its share of its batch's (the
    upload to the device counted in the prep's, or in the flow's without one)."""
    import torch

    one_thread_per_task(torch_too=True)
    p = {k: v for k, v in tvl1_params.items() if k != "backend"}
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = {i: _without_pending(r) for i, r in results.items()}
    batches: dict[tuple, list] = {}
    for i, r in results.items():
        for pf in r.get("arrays", {}).get(PENDING, []) if r.get("status") == "ok" else []:
            batches.setdefault((pf.src.shape, pf.dst.shape, pf.prepare), []).append((i, pf))
    for (_, _, prep), batch in batches.items():
        t = time.perf_counter()  # the upload counts to the first step on the device
        src, dst = (
            torch.from_numpy(np.stack([getattr(pf, side) for _, pf in batch])).to(dev) for side in ("src", "dst")
        )
        if prep is not None:
            src, dst = prep.batch(src, dst)
            prep_ms = _synchronised_ms(t, dev) / len(batch)
            t = time.perf_counter()
        flows = tvl1_batch(src, dst, **p)
        ms = (time.perf_counter() - t) * 1e3 / len(batch)
        trace(f"flow_batch {len(batch)}x{src.shape[1]}")  # tests only (MEPIPE_TRACE)
        for (i, pf), f in zip(batch, flows):
            out[i]["arrays"].update(pf.finish(f))
            out[i]["timings"][pf.timing] = ms
            if prep is not None:
                out[i]["timings"][prep.timing] = prep_ms
    return out


def _synchronised_ms(start: float, dev) -> float:
    """Milliseconds since `start` once the device's queued work is done."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (time.perf_counter() - start) * 1e3


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


def depth_crops(row: dict, root: Path, box: tuple, params: dict):
    """(onset raw crop, onset filled, apex filled) of a sample's depth (the QC page's view)."""
    return _depth_crops(row, lambda rel: read_depth(root / rel), lambda rel: str(root / rel), box, params)


def context(row: dict, root: Path, params: dict, box: tuple | None, angle: float | None) -> Context:
    """The products' view of one sample, with the engine's readers and model loaders."""
    return Context(
        row=row,
        params=params,
        read_rgb=lambda rel: read_rgb(root / rel),
        read_depth=lambda rel: read_depth(root / rel),
        landmarks=lambda face, img: landmark_backend_for(face)(img),
        load_model=learned_magnifier,
        where=lambda rel: str(root / rel),
        box=None if box is None else tuple(int(v) for v in box),
        angle=angle,
    )


def process_clip(
    row: dict,
    root: str,
    params: dict,
    need: tuple,
    box: tuple | None,
    has_depth: bool,
    angle: float | None = None,
    defer_flows: bool = False,
) -> dict:
    """Compute the products in `need` (registry names) that apply to one sample.

    `box` and `angle` are the stored crop box and eye angle when 'crop' itself is not
    recomputed. The products' TV-L1 flows are computed here, or with `defer_flows` left
    in arrays[PENDING] for their shard's batch (`shard_flows`). Returns {status, arrays,
    box, landmark_backend, eye_angle, timings} or an exclusion dict.
    """
    clip_fault(row["sample_id"])  # crash tests only (MEPIPE_FAULT); a no-op otherwise
    one_thread_per_task(torch_too=params["tvl1"]["backend"] == "torch")
    ctx = context(row, Path(root), params, box, angle)
    arrays: dict = {}
    pending: list[PendingFlow] = []
    try:
        for name, product in REGISTRY.items():
            if name not in need or not product.applies(row, has_depth):
                continue
            res = product.compute(ctx)
            if isinstance(res, Excluded):
                return excluded_result(res.stage, res.reason, res.detail, ctx.timings)
            pending += res.get(PENDING, [])
            arrays.update({k: v for k, v in res.items() if k != PENDING})
    except DepthError as e:
        return excluded_result("depth", "depth_unusable", str(e), ctx.timings)
    except FrameReadError as e:
        return excluded_result("read", e.reason, str(e), ctx.timings)
    except SizeMismatch as e:
        return excluded_result("read", "frame_unreadable", str(e), ctx.timings)
    if pending and defer_flows:
        arrays[PENDING] = pending
    elif pending:
        arrays.update(flows_now(pending, params["tvl1"], ctx.timings))
    return {
        "status": "ok",
        "arrays": arrays,
        "box": ctx.box,
        "landmark_backend": ctx.landmark_backend,
        "eye_angle": ctx.angle,
        "timings": ctx.timings,
    }
