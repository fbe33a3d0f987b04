"""AU screening of unlabelled long videos (seed 000 sec. 4.1.1): list the recordings,
estimate per-frame AU intensities (one dask task per video segment, streaming: a task
holds one segment's frames at a time), select onset/apex pairs (eq. 2-4), and turn them
into sample rows (source = 'selected') for the pair products.

The per-frame AU table of a video is reused while its fingerprint (video content id,
estimator and its parameters, landmark backend) is unchanged; selection itself is cheap
and always redone, so changing phi re-selects without re-estimating.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.catalog import CatalogError, Dataset
from pipeline.face_models import landmark_backend_for
from pipeline.faults import fault_point, trace
from pipeline.ingest import leads_outside
from pipeline.io import (
    FrameReadError,
    decoded_frame_count,
    image_size,
    iter_video,
    read_rgb,
    sha256_file,
    video_frame_count,
)
from pipeline.pyfeat_au import PYFEAT_VERSION, models_signature, offline
from pipeline.screen_checkpoint import ScreenCheckpoint
from stages.adapters.common import exclusion_row, index_frames, is_hidden
from stages.adapters.unlabelled import VIDEO_EXT, unlabelled_videos
from stages.au import (
    AU_COLUMNS,
    AUS,
    LANDMARK_ESTIMATOR_VERSION,
    OPENFACE_IMAGE_EXT,
    AUInputError,
    landmark_intensities,
    onset_offset_frames,
    openface_details_input,
    openface_frame_map,
    openface_input_kind,
    openface_intensities,
    select_pairs,
)

SCREEN_VERSION = "1"
OPENFACE_MAPPING_VERSION = "2"  # 2: CSV rows matched to frames the way OpenFace numbers them


@dataclass
class Screening:
    samples: pd.DataFrame  # SAMPLE_SCHEMA rows, source = 'selected'
    exclusions: pd.DataFrame  # EXCLUSION_SCHEMA rows (stage 'select' / 'screen')
    au_frames: pd.DataFrame  # AU_FRAME_SCHEMA rows
    videos: pd.DataFrame  # VIDEO_SCHEMA rows
    recomputed: list  # video ids whose AU table was (re)estimated
    timings: dict


def list_recordings(ds: Dataset) -> list[dict]:
    root = ds.root()
    rel = ds.unlabelled["frames_dir"]
    base = root / rel
    if not base.is_dir():
        raise CatalogError(f"datasets.{ds.name}.unlabelled.frames_dir: folder {base} not found")
    out = []
    real_root = os.path.realpath(root)
    for subj in sorted(s for s in os.listdir(base) if not is_hidden(s)):
        sdir = base / subj
        if not sdir.is_dir():
            continue
        for name in sorted(n for n in os.listdir(sdir) if not is_hidden(n)):
            p = sdir / name
            leads_outside(p, real_root, ds.allow_links_outside_root)
            if p.is_file() and p.suffix.lower() in VIDEO_EXT:
                out.append(_video_file(p, subj, f"{rel}/{subj}/{name}"))
            elif p.is_dir() and (p / "color").is_dir():
                out.append(_frame_folder(root, p, subj, name, f"{rel}/{subj}/{name}"))
    return out


def _video_file(p: Path, subj: str, rel: str) -> dict:
    """A recording stored as a video file; one that cannot be opened keeps the decoder's
    message (a truncated MP4 whose index is missing, for example)."""
    rec = {"subject": subj, "name": p.stem, "kind": "file", "path": rel, "depth_path": None}
    try:
        n, fps = video_frame_count(p)
    except FrameReadError as e:
        n, fps, rec["error"] = 0, None, str(e)
    return {**rec, "n_frames": n, "fps": fps if fps and fps > 0 else None}


def _frame_folder(root: Path, p: Path, subj: str, name: str, rel: str) -> dict:
    """A recording stored as a frame folder (``color/`` and an optional ``depth/``). Depth
    frames of another size than the colour frames are not used (a screening exclusion
    says so): the crop box found on the colour frame would land elsewhere on the face."""
    clashes: list = []
    frames = {
        k: f"{rel}/color/{f}"
        for k, f in index_frames(os.listdir(p / "color"), (".jpg", ".jpeg", ".png", ".bmp"), clashes).items()
    }
    dpath = f"{rel}/depth" if (p / "depth").is_dir() else None
    depth = (
        {k: f"{dpath}/{f}" for k, f in index_frames(os.listdir(p / "depth"), (".png",), clashes).items()}
        if dpath
        else {}
    )
    rec = {
        "subject": subj,
        "name": name,
        "kind": "frames",
        "path": f"{rel}/color",
        "n_frames": len(frames),
        "fps": None,
        "frames": frames,
    }
    if clashes:
        rec["clash"] = "; ".join(f"two files carry frame number {k}: {a!r} and {b!r}" for k, a, b in clashes)
    both = sorted(set(frames) & set(depth))
    if both:
        cs, ds_ = image_size(root / frames[both[0]]), image_size(root / depth[both[0]])
        if cs is not None and ds_ is not None and cs != ds_:
            rec["depth_error"] = (
                f"{depth[both[0]]}: depth frames are {ds_[1]}x{ds_[0]} but the colour frames "
                f"({frames[both[0]]}) are {cs[1]}x{cs[0]}; depth not used for this recording"
            )
            dpath, depth = None, {}
    return {**rec, "depth_path": dpath, "depth_frames": depth}


def _content_id(root: Path, rec: dict) -> str:
    if rec["kind"] == "file":
        return sha256_file(root / rec["path"])
    h = hashlib.sha256()
    for k, rel in rec["frames"].items():
        st = (root / rel).stat()
        h.update(f"{k}:{rel}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def screen_fingerprint(
    rec: dict, content: str, params: dict, models: list | None = None, inputs: dict | None = None
) -> str:
    """Changes with the recording's content, the estimator and its parameters, the face
    backend it uses, (py-feat) its model files and (OpenFace) `inputs`: its CSV and
    sidecar and how their rows are matched to frames."""
    est = params["au"]["estimator"]
    au = {k: params["au"][k] for k in ("estimator", "min_confidence")}
    if est == "pyfeat":
        au["pyfeat_faces"] = params["au"]["pyfeat_faces"]
    uses_face = est == "landmarks" or (est == "pyfeat" and params["au"]["pyfeat_faces"] == "landmarks")
    face = params["face"] if uses_face else None
    return hashlib.sha256(
        json.dumps(
            ["screen", SCREEN_VERSION, LANDMARK_ESTIMATOR_VERSION, au, face, content]
            + ([models] if models else [])
            + ([inputs] if inputs else []),
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]


def landmark_segment(rec: dict, root: str, start: int, stop: int, face_params: dict) -> dict:
    """Dask task: 68 landmarks for frames start..stop-1 of one recording (NaN = no face).

    Decodes one frame at a time (bounded memory). Returns frames (n,), landmarks
    (n, 68, 2) float32, unreadable (list of frame numbers), seconds."""
    t0 = time.perf_counter()
    cv2.setNumThreads(1)  # one task per core
    root = Path(root)
    det = landmark_backend_for(face_params)
    numbers, frames = _frames_of(rec, root, start, stop)
    lms = np.full((len(numbers), 68, 2), np.nan, np.float32)
    pos = {k: i for i, k in enumerate(numbers)}
    unreadable = []
    for k, img in _readable(numbers, frames, unreadable):
        lm = det(img)
        if lm is not None:
            lms[pos[k]] = lm
    return {
        "frames": np.asarray(numbers, np.int64),
        "landmarks": lms,
        "unreadable": sorted(unreadable),
        "seconds": time.perf_counter() - t0,
    }


def _openface_csv(ds: Dataset, rec: dict) -> Path:
    d = ds.root() / ds.unlabelled.get("openface_dir", "")
    cands = [d / rec["subject"] / f"{rec['name']}.csv", d / f"{rec['subject']}_{rec['name']}.csv"]
    for c in cands:
        if c.is_file():
            return c
    raise CatalogError(
        f"datasets.{ds.name}.unlabelled.openface_dir: no OpenFace CSV for video "
        f"{rec['subject']}/{rec['name']}; looked for {', '.join(map(str, cands))}"
    )


def _openface_details(csv: Path) -> Path:
    """OpenFace's sidecar of a CSV: ``<csv stem>_of_details.txt`` next to it."""
    return csv.with_name(f"{csv.stem}_of_details.txt")


def _openface_inputs(ds: Dataset, rec: dict) -> dict:
    """What an OpenFace AU table of `rec` is made from, for its fingerprint."""
    try:
        csv = _openface_csv(ds, rec)
    except CatalogError:
        return {"openface_csv": None}  # estimation says what is missing
    det = _openface_details(csv)
    return {
        "openface_mapping": OPENFACE_MAPPING_VERSION,
        "openface_csv": sha256_file(csv),
        "openface_details": sha256_file(det) if det.is_file() else None,
    }


def openface_rows(root: Path, rec: dict, csv: Path, min_confidence: float) -> tuple[np.ndarray, np.ndarray, list]:
    """(frame numbers (n_frames,), intensities (n_frames, len(AUS)), frame numbers OpenFace
    did not read) of one recording from its OpenFace 2.x CSV.

    OpenFace writes no file name per row: rows are matched to frames the way OpenFace
    numbered them (`stages.au.openface_frame_map`), the input kind taken from the
    ``_of_details.txt`` sidecar next to the CSV if there is one, else from the
    timestamps. Every frame of the recording gets a row; frames OpenFace did not read
    (a frame folder's files whose extension it skips) are NaN. A CSV that does not fit
    the recording raises CatalogError naming the CSV, the counts and the folder/video."""
    det = _openface_details(csv)
    input_path = openface_details_input(det.read_text(errors="replace")) if det.is_file() else None
    kind, how = None, ""
    try:
        fr, ts, inten = openface_intensities(pd.read_csv(csv), min_confidence, str(csv))
        kind = openface_input_kind(ts, input_path)
        how = (
            f" (input from {det}: {input_path!r} -> {kind})"
            if input_path
            else f" (no {det.name}; input from the timestamps: {kind or 'cannot tell'})"
        )
        if rec["kind"] == "file":
            n = int(rec["n_frames"])
            if len(fr) != n and kind != "images":
                # the container's frame count is an estimate for many MP4s: count what decodes
                counted = decoded_frame_count(root / rec["path"])
                how += f" (the container says {n} frames, decoding gives {counted})"
                n = counted
            numbers = list(range(n))
            rows = openface_frame_map(fr, kind, "file", n, csv=str(csv), source=f"video {root / rec['path']}")
        else:
            folder = root / rec["path"]
            numbers = sorted(rec["frames"])
            rows = openface_frame_map(
                fr, kind, "frames", rec["frames"], os.listdir(folder), csv=str(csv), source=f"folder {folder}"
            )
    except AUInputError as e:
        raise CatalogError(f"{e}{how}") from e
    out = np.full((len(numbers), len(AUS)), np.nan, np.float32)
    pos = {k: i for i, k in enumerate(numbers)}
    seen = set()
    for r, k in enumerate(rows.tolist()):
        if k in pos:
            out[pos[k]] = inten[r]
            seen.add(k)
    return np.asarray(numbers, np.int64), out, [k for k in numbers if k not in seen]


def pyfeat_check(ds: Dataset, trust: bool = False, log=print) -> Path:
    """The py-feat estimator needs py-feat's runtime and its model files on local disk,
    the AU classifier naming only the types it needs and pinned files matching
    models.lock (pipeline.model_trust); returns the models folder."""
    from pipeline.model_trust import check_pinned, check_skops_types
    from pipeline.pyfeat_au import MODEL_FILES, model_files

    rel = (ds.unlabelled or {}).get("pyfeat_models") or os.environ.get("MEPIPE_PYFEAT_MODELS")
    where = Path(rel) if rel and os.path.isabs(rel) else (ds.root() / rel if rel else None)
    found = model_files(where) if where is not None else {r: None for r in MODEL_FILES}
    missing = [f"models--{r.replace('/', '--')} ({' or '.join(MODEL_FILES[r])})" for r, p in found.items() if p is None]
    if missing:
        raise CatalogError(
            "AU estimator 'pyfeat' needs py-feat's model files on local disk (nothing is downloaded): "
            f"missing {missing} in {where or '(no folder given)'}. Put a Hugging Face cache holding "
            "py-feat/retinaface_r34, py-feat/mobilefacenet and py-feat/xgb_au there "
            "(models--py-feat--<name>/snapshots/<rev>/<file>) and name it in "
            f"datasets.{ds.name}.unlabelled.pyfeat_models or MEPIPE_PYFEAT_MODELS, or use "
            "params.au.estimator: landmarks | openface"
        )
    for repo, path in found.items():
        check_pinned(path, f"{repo}/{path.name}", trust, log)
    check_skops_types(found["py-feat/xgb_au"])
    offline()  # before py-feat (and huggingface_hub) load: nothing may download
    try:
        import feat  # noqa: F401
    except Exception as e:
        raise CatalogError(
            f"AU estimator 'pyfeat': py-feat's runtime does not import ({e}); "
            "`make setup` installs it (extra `pyfeat-runtime`)"
        ) from e
    return where


def _frames_of(rec: dict, root: Path, start: int, stop: int):
    """(frame numbers, iterator of (number, RGB frame or None)) of frames start..stop-1."""
    if rec["kind"] == "file":
        return list(range(start, stop)), iter_video(root / rec["path"], start, stop)
    keys = sorted(rec["frames"])[start:stop]

    def gen():
        for k in keys:
            try:
                yield k, read_rgb(root / rec["frames"][k])
            except FrameReadError:
                yield k, None

    return keys, gen()


def _readable(numbers: list, frames, unreadable: list):
    """The decodable (number, frame) pairs of `frames`; the numbers of frames that could
    not be decoded, or that the decoder never reached (a cut video), go to `unreadable`."""
    seen = set()
    for k, img in frames:
        seen.add(k)
        if img is None:
            unreadable.append(k)
            continue
        yield k, img
    unreadable += [k for k in numbers if k not in seen]


def pyfeat_segment(
    rec: dict, root: str, start: int, stop: int, models: str, faces: str, face_params: dict, batch: int = 8
) -> dict:
    """Dask task: py-feat AU intensities (0-5) for frames start..stop-1 of one recording,
    decoded and estimated `batch` frames at a time (bounded memory). faces: 'retinaface'
    (py-feat finds them) or 'landmarks' (boxes around the pipeline backend's 68 points).
    Returns frames (n,), intensities (n, len(AUS)) float32 (NaN = no face), unreadable,
    seconds."""
    from pipeline.pyfeat_au import au_probabilities, detector, landmark_box
    from stages.au import pyfeat_intensities

    t0 = time.perf_counter()
    cv2.setNumThreads(1)
    root = Path(root)
    det = detector(models)
    lmk = landmark_backend_for(face_params) if faces == "landmarks" else None
    numbers, frames = _frames_of(rec, root, start, stop)
    pos = {k: i for i, k in enumerate(numbers)}
    inten = np.full((len(numbers), len(AUS)), np.nan, np.float32)
    unreadable, buf = [], []

    def flush():
        if not buf:
            return
        imgs = [img for _, img in buf]
        boxes = None
        if lmk is not None:
            boxes = []
            for img in imgs:
                lm = lmk(img)
                boxes.append([] if lm is None else [landmark_box(lm, img.shape)])
        probs = au_probabilities(det, imgs, boxes)
        vals = pyfeat_intensities(probs, len(imgs))
        for j, (k, _) in enumerate(buf):
            inten[pos[k]] = vals[j]
        buf.clear()

    for k, img in _readable(numbers, frames, unreadable):
        if buf and img.shape != buf[0][1].shape:
            flush()
        buf.append((k, img))
        if len(buf) == batch:
            flush()
    flush()
    return {
        "frames": np.asarray(numbers, np.int64),
        "intensities": inten,
        "unreadable": sorted(unreadable),
        "seconds": time.perf_counter() - t0,
    }


def _segment_task(est: str, rec: dict, root: str, a: int, b: int, models, params: dict) -> tuple:
    """The function and arguments of one AU-estimation segment task (frames a..b-1)."""
    if est == "landmarks":
        return (landmark_segment, rec, root, a, b, params["face"])
    return (pyfeat_segment, rec, root, a, b, str(models), params["au"]["pyfeat_faces"], params["face"])


def _run_segments(ds: Dataset, todo: list, by_id: dict, models, keys: dict, get_client, progress: bool, done):
    """Estimate the AU intensities of the `todo` videos on dask, in segments of
    params.au.segment_frames; `done(video, its segment results)` is called as soon as a
    video's last segment is in. Returns the mean ms per frame."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    params, est, client = ds.params, ds.params["au"]["estimator"], get_client()
    seg = params["au"]["segment_frames"]
    futs, expected = {}, {}
    for v in todo:
        expected[v.video] = len(range(0, v.n_frames, seg))
        trace(f"screen {v.video}")  # the checkpoint test only (MEPIPE_TRACE)
        for a in range(0, v.n_frames, seg):
            args = _segment_task(est, by_id[v.video], str(ds.root()), a, min(a + seg, v.n_frames), models, params)
            futs[client.submit(*args, retries=2, key=f"screen-{v.video}-{a}-{keys[v.video][:8]}")] = (v.video, a)
    parts: dict[str, list] = {}
    secs = []
    bar = tqdm(
        as_completed(list(futs)), total=len(futs), desc=f"{ds.name}: AU segments", unit="seg", disable=not progress
    )
    for f in bar:
        vid, a = futs.pop(f)
        if f.status == "error":
            raise RuntimeError(f"AU screening of video {vid} frames {a}..: {f.exception()}")
        r = f.result()
        parts.setdefault(vid, []).append(r)
        secs.append(r["seconds"] / max(len(r["frames"]), 1) * 1e3)
        if len(parts[vid]) == expected[vid]:
            done(vid, parts.pop(vid))
    return float(np.mean(secs)) if secs else 0.0


def _video_frames(ds: Dataset, v, segments: list) -> tuple[pd.DataFrame, list[dict]]:
    """One video's AU rows (AU_FRAME_SCHEMA) and exclusion rows from its segment results."""
    ps = sorted(segments, key=lambda r: r["frames"][0])
    fr = np.concatenate([p["frames"] for p in ps])
    if ds.params["au"]["estimator"] == "landmarks":
        inten = landmark_intensities(np.concatenate([p["landmarks"] for p in ps]))
        name, version = "landmarks", LANDMARK_ESTIMATOR_VERSION
    else:
        inten = np.concatenate([p["intensities"] for p in ps])
        name, version = "pyfeat", f"py-feat {PYFEAT_VERSION} Detectorv1/xgb"
    excl = []
    if unread := sum((p["unreadable"] for p in ps), []):
        detail = f"{v.path}: {len(unread)} frame(s) could not be decoded, first {unread[:5]}"
        excl.append(exclusion_row(ds.name, v.path, None, "frames_unreadable", detail, stage="screen"))
    return _au_rows(ds.name, v, fr, inten, name, version), excl


def _estimate_on_dask(ds: Dataset, todo: list, by_id: dict, models, keys: dict, get_client, progress, ckpt):
    """AU tables of the `todo` videos by the landmark or py-feat estimator, each saved to
    the checkpoint `ckpt` as soon as it is estimated and read from it when a stopped run
    saved it; returns (AU frame tables, exclusion rows for undecodable frames, timings,
    videos read from the checkpoint)."""
    got = {v.video: hit for v in todo if (hit := ckpt.get(keys[v.video], v.video, v.n_frames)) is not None}
    resumed = len(got)
    by_video = {v.video: v for v in todo}

    def done(vid: str, segments: list) -> None:
        got[vid] = _video_frames(ds, by_video[vid], segments)
        ckpt.put(keys[vid], *got[vid])
        fault_point("screened_one")

    miss = [v for v in todo if v.video not in got]
    ms = _run_segments(ds, miss, by_id, models, keys, get_client, progress, done) if miss else 0.0
    tables = [got[v.video][0] for v in todo]
    excl = [row for v in todo for row in got[v.video][1]]
    return tables, excl, ({"screen_ms_per_frame": ms} if miss else {}), resumed


def _estimate_openface(ds: Dataset, todo: list, by_id: dict):
    """AU tables of the `todo` videos read from their OpenFace CSVs; returns (AU frame
    tables, exclusion rows for frames OpenFace does not read)."""
    tables, excl = [], []
    for v in todo:
        path = _openface_csv(ds, by_id[v.video])
        fr, inten, unread = openface_rows(ds.root(), by_id[v.video], path, ds.params["au"]["min_confidence"])
        if unread:
            detail = (
                f"{v.path}: {len(unread)} frame(s) OpenFace -fdir does not read (extension "
                f"not exactly {'/'.join(OPENFACE_IMAGE_EXT)}) have no AU estimate, first {unread[:5]}"
            )
            excl.append(exclusion_row(ds.name, v.path, None, "frames_not_estimated", detail, stage="screen"))
        tables.append(_au_rows(ds.name, v, fr, inten, "openface", "2.x"))
    return tables, excl


def _selected_intensities(t: pd.DataFrame, aus: list) -> np.ndarray:
    """The video's AU intensities, with AUs outside params.au.aus (when set) as NaN."""
    inten = t[list(AU_COLUMNS)].to_numpy(np.float64)
    if not aus:
        return inten
    out = np.full_like(inten, np.nan)
    cols = [AUS.index(a) for a in aus if a in AUS]
    out[:, cols] = inten[:, cols]
    return out


def _select_video(ds: Dataset, v, rec: dict, t: pd.DataFrame, key: str):
    """Onset/apex pairs of one video from its AU table `t` (seed 000 sec. 4.1.1);
    returns (sample rows, exclusion rows, the video's row of the videos table)."""
    au = ds.params["au"]
    inten = _selected_intensities(t, au["aus"])
    lag = onset_offset_frames(v.fps, au["onset_lag_at_30fps"])
    pairs, ex = select_pairs(t["frame"].to_numpy(), inten, au["phi"], lag, face=t["face"].to_numpy())
    samples = [_sample_row(ds, v, rec, p, ds.params) for p in pairs.itertuples()]
    excl = [
        exclusion_row(
            ds.name,
            v.path,
            None,
            p.reason,
            f"{v.path}: apex {p.apex} (AU {'+'.join(map(str, p.aus))} > "
            f"{au['phi']}): onset {p.onset} {p.reason.replace('_', ' ')}",
            sample_id=f"{ds.name}/sel/{v.video}/{p.onset}-{p.apex}",
            stage="select",
        )
        for p in ex.itertuples()
    ]
    n_cand = int((np.nan_to_num(inten, nan=-1).max(axis=1) > au["phi"]).sum()) if len(t) else 0
    row = {
        **v._asdict(),
        "n_face": int(t["face"].sum()),
        "estimator": au["estimator"],
        "fp_screen": key,
        "n_candidates": n_cand,
        "n_pairs": len(pairs),
    }
    return samples, excl, row


def _screen_keys(ds: Dataset, videos: pd.DataFrame, by_id: dict, models) -> dict[str, str]:
    """Each video's screening fingerprint (content, parameters, model files, OpenFace inputs)."""
    est = ds.params["au"]["estimator"]
    return {
        v.video: screen_fingerprint(
            by_id[v.video],
            _content_id(ds.root(), by_id[v.video]),
            ds.params,
            models_signature(models) if models else None,
            _openface_inputs(ds, by_id[v.video]) if est == "openface" else None,
        )
        for v in videos.itertuples()
    }


def screen(
    ds: Dataset,
    prev_frames: pd.DataFrame | None,
    prev_videos: pd.DataFrame | None,
    get_client,
    log=print,
    progress: bool = True,
    trust_model_files: bool = False,
    checkpoint: ScreenCheckpoint | None = None,
) -> Screening:
    """AU screening of the unlabelled recordings: estimate per-frame AU intensities (only
    for videos whose fingerprint changed; the others reuse `prev_frames`, or what a
    stopped run saved in `checkpoint`), then select the onset/apex pairs of each video."""
    est = ds.params["au"]["estimator"]
    models = pyfeat_check(ds, trust_model_files, log) if est == "pyfeat" else None
    recs = list_recordings(ds)
    videos, excl = unlabelled_videos(recs, dataset=ds.name, fps=ds.fps)
    by_id = {f"{r['subject']}/{r['name']}": r for r in recs}
    prev_key = {} if prev_videos is None else dict(zip(prev_videos["video"], prev_videos["fp_screen"]))
    keys = _screen_keys(ds, videos, by_id, models)
    todo = [v for v in videos.itertuples() if prev_key.get(v.video) != keys[v.video]]
    frames_tables, timings, new_excl = [], {}, []
    if prev_frames is not None and len(prev_frames):
        keep = [v.video for v in videos.itertuples() if v not in todo and prev_key.get(v.video) == keys[v.video]]
        frames_tables.append(prev_frames[prev_frames["video"].isin(keep)])
    log(
        f"[{ds.name}] AU screening: {len(videos)} unlabelled video(s), {len(todo)} to estimate "
        f"({est}), {len(videos) - len(todo)} reused"
    )
    if todo and est in ("landmarks", "pyfeat"):
        ckpt = checkpoint or ScreenCheckpoint(None)  # none: nothing saved
        tables, new_excl, timings, resumed = _estimate_on_dask(
            ds, todo, by_id, models, keys, get_client, progress, ckpt
        )
        if resumed:
            log(f"[{ds.name}] AU screening: {resumed} video(s) read from a stopped run's checkpoint {ckpt.folder}")
        frames_tables += tables
    elif todo and est == "openface":
        tables, new_excl = _estimate_openface(ds, todo, by_id)
        frames_tables += tables
    au_frames = (
        pd.concat(frames_tables, ignore_index=True) if frames_tables else _au_rows(ds.name, None, [], [], est, "")
    )
    samples, sel_excl, rows = [], [], []
    for v in videos.itertuples():
        t = au_frames[au_frames["video"] == v.video].sort_values("frame")
        s, e, row = _select_video(ds, v, by_id[v.video], t, keys[v.video])
        samples, sel_excl, rows = samples + s, sel_excl + e, rows + [row]
    videos_out = pd.DataFrame(rows).drop(columns=["Index"], errors="ignore")
    samples = pd.DataFrame(samples)
    if len(samples):
        samples = samples.sort_values("sample_id").reset_index(drop=True)
    exclusions = pd.concat([excl, pd.DataFrame(new_excl + sel_excl, columns=excl.columns)], ignore_index=True)
    log(
        f"[{ds.name}] AU screening: {len(samples)} pairs selected (phi {ds.params['au']['phi']}), "
        f"{len(sel_excl)} candidate pairs excluded"
    )
    return Screening(samples, exclusions, au_frames, videos_out, [v.video for v in todo], timings)


def _au_rows(dataset, v, frames, inten, estimator, version) -> pd.DataFrame:
    frames = np.asarray(frames, np.int64)
    inten = np.asarray(inten, np.float32).reshape(len(frames), len(AUS))
    df = pd.DataFrame(inten, columns=list(AU_COLUMNS))
    df.insert(0, "face", np.isfinite(inten).all(axis=1) if len(frames) else np.array([], bool))
    df.insert(0, "timestamp", frames / v.fps if v is not None else np.array([], float))
    df.insert(0, "frame", frames)
    df.insert(0, "video", v.video if v is not None else "")
    df.insert(0, "subject", v.subject if v is not None else "")
    df.insert(0, "dataset", dataset)
    df["estimator"] = estimator
    df["estimator_version"] = version
    return df


def _sample_row(ds: Dataset, v, rec: dict, p, params: dict) -> dict:
    end = min(p.apex + (p.apex - p.onset), v.n_frames - 1 if rec["kind"] == "file" else max(rec["frames"]))
    if rec["kind"] == "file":
        on, ap = f"{rec['path']}#{p.onset}", f"{rec['path']}#{p.apex}"
        seq = [f"{rec['path']}#{k}" for k in range(p.onset, end + 1)]
        don = dap = None
    else:
        on, ap = rec["frames"][p.onset], rec["frames"][p.apex]
        seq = [rec["frames"][k] for k in range(p.onset, end + 1) if k in rec["frames"]]
        df = rec.get("depth_frames") or {}
        don, dap = df.get(p.onset), df.get(p.apex)
        if don is None or dap is None:
            don = dap = None
    return {
        "sample_id": f"{ds.name}/sel/{v.video}/{p.onset}-{p.apex}",
        "dataset": ds.name,
        "subject": v.subject,
        "clip": v.video.split("/", 1)[1],
        "source": "selected",
        "ann_file": v.path,
        "ann_row": None,
        "onset": int(p.onset),
        "apex": int(p.apex),
        "offset": None,
        "apex_derived": False,
        "au_raw": "+".join(f"AU{a:02d}" for a in p.aus),
        "au_list": list(p.aus),
        "emotion_raw": None,
        "emotion": None,
        "fps": float(v.fps),
        "onset_path": on,
        "apex_path": ap,
        "onset_depth_path": don,
        "apex_depth_path": dap,
        "seq_paths": seq,
        "modalities": ["rgb"] + (["depth"] if don else []),
        "note": f"selected by AU screening ({params['au']['estimator']}, phi {params['au']['phi']}, "
        f"max intensity {p.max_intensity:.2f})",
    }
