"""Ingest: read a dataset's annotation and list its frames, then run its adapter."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.catalog import CatalogError, Dataset
from stages.adapters.casme3 import casme3_part_a
from stages.adapters.common import as_frame, index_frames, safe_part

COLOR_EXT = (".jpg", ".jpeg", ".png", ".bmp")
DEPTH_EXT = (".png",)


def list_clip_frames(frames_root: Path, rel_prefix: str, has_depth: bool) -> tuple[dict, dict | None]:
    """{(subject, clip): {frame: relative path}} for colour (and depth) frames.

    Colour frames are in ``<subject>/<clip>/color``; depth in ``<clip>/depth`` or, in
    some releases, as PNGs directly in the clip folder.
    """
    color, depth = {}, ({} if has_depth else None)
    if not frames_root.is_dir():
        raise CatalogError(f"frames folder {frames_root} not found")
    for subj in sorted(os.listdir(frames_root)):
        sdir = frames_root / subj
        if not sdir.is_dir():
            continue
        for clip in sorted(os.listdir(sdir)):
            cdir = sdir / clip
            if not cdir.is_dir():
                continue
            cf = cdir / "color"
            if cf.is_dir():
                try:
                    idx = index_frames(os.listdir(cf), COLOR_EXT)
                except ValueError as e:
                    raise CatalogError(f"{cf}: {e}") from e
                color[(subj, clip)] = {n: f"{rel_prefix}/{subj}/{clip}/color/{f}" for n, f in idx.items()}
            if has_depth:
                df = cdir / "depth"
                ddir, sub = (df, "depth/") if df.is_dir() else (cdir, "")
                didx = index_frames(os.listdir(ddir), DEPTH_EXT)
                depth[(subj, clip)] = {n: f"{rel_prefix}/{subj}/{clip}/{sub}{f}" for n, f in didx.items()}
    return color, depth


def read_known_bad(path: Path) -> set:
    """(subject, clip, frame) of the authors' damaged/occluded frame list (apex column)."""
    bad = set()
    for _, sheet in pd.read_excel(path, sheet_name=None).items():
        if not {"Subject", "Filename", "Apex"} <= set(sheet.columns):
            continue
        for r in sheet.to_dict("records"):
            s, c, a = safe_part(r["Subject"]), safe_part(r["Filename"]), as_frame(r["Apex"])
            if s and c and a is not None:
                bad.add((s, c, a))
    return bad


def ingest(ds: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, exclusions) of dataset `ds` from its files."""
    root = ds.root()
    ann_path = ds.file("annotation")
    try:
        ann = pd.read_excel(ann_path, sheet_name=ds.annotation_sheet or 0)
    except ValueError as e:
        raise CatalogError(f"datasets.{ds.name}.annotation_sheet: {ann_path}: {e}") from e
    color, depth = list_clip_frames(root / ds.frames_dir, ds.frames_dir, ds.has_depth)
    bad = read_known_bad(ds.file("known_bad")) if ds.known_bad else None
    if ds.adapter == "casme3_part_a":
        return casme3_part_a(ann, ann_file=ann_path.name, dataset=ds.name, fps=ds.fps,
                             frames_prefix=ds.frames_dir, color_index=color, depth_index=depth,
                             emotion_synonyms=ds.emotion_synonyms, bad_frames=bad)
    raise CatalogError(f"datasets.{ds.name}.adapter: {ds.adapter!r} not implemented")
