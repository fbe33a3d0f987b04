"""CAS(ME)^3 Part A adapter: ME label sheet + frame listing -> sample table + exclusions.

Layout (DATASETS.md): ``<frames_dir>/spNO.1/a/color/{n}.jpg`` with depth in
``spNO.1/a/depth/{n}.png`` (or directly in the clip folder in some releases).
Label file ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``, sheet ``label``: Subject,
Filename, Onset, Apex, Offset, AU, Objective class, emotion. One clip folder is a long
recording; each row is one ME inside it, frame numbers are JPG indices.

Pure: the pipeline reads the sheet and lists the folders, this module only decides.
"""
from __future__ import annotations

import pandas as pd

from stages.adapters.common import as_frame, safe_part
from stages.aus import AUParseError, au_numbers
from stages.labels import normalise_emotion

COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]


class AnnotationError(ValueError):
    pass


def _excl(dataset, ann_file, row, reason, detail, sample_id=None, stage="ingest"):
    return {"sample_id": sample_id, "dataset": dataset, "ann_file": ann_file, "ann_row": row,
            "stage": stage, "reason": reason, "detail": detail}


def casme3_part_a(ann: pd.DataFrame, *, ann_file: str, dataset: str, fps: float,
                  frames_prefix: str, color_index: dict, depth_index: dict | None,
                  emotion_synonyms: dict | None = None, bad_frames: set | None = None,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn the label sheet into (samples, exclusions).

    color_index / depth_index: {(subject, clip): {frame number: path relative to the
    dataset root}}; depth_index None when the dataset has no depth. bad_frames: set of
    (subject, clip, frame) known to be damaged or occluded.
    """
    missing = [c for c in COLUMNS if c not in ann.columns]
    if missing:
        raise AnnotationError(f"{ann_file}: columns {missing} not found; header is {list(ann.columns)}")
    samples, excl, seen = [], [], {}
    for i, r in enumerate(ann.to_dict("records")):
        row = i + 2  # spreadsheet row: header is row 1
        subj, clip = safe_part(r["Subject"]), safe_part(r["Filename"])
        if subj is None or clip is None:
            excl.append(_excl(dataset, ann_file, row, "unsafe_path",
                              f"{ann_file} row {row}: Subject={r['Subject']!r} Filename={r['Filename']!r} "
                              "is empty or would leave the dataset root"))
            continue
        onset, apex, offset = (as_frame(r[c]) for c in ("Onset", "Apex", "Offset"))
        if onset is None or apex is None:
            excl.append(_excl(dataset, ann_file, row, "frame_not_numeric",
                              f"{ann_file} row {row}: Onset={r['Onset']!r} Apex={r['Apex']!r} not frame numbers"))
            continue
        sid = f"{dataset}/{subj}/{clip}/{onset}-{apex}"
        if apex < onset:
            excl.append(_excl(dataset, ann_file, row, "apex_before_onset",
                              f"{ann_file} row {row} ({subj}/{clip}): apex {apex} < onset {onset}", sid))
            continue
        if onset == 0:
            excl.append(_excl(dataset, ann_file, row, "onset_zero",
                              f"{ann_file} row {row} ({subj}/{clip}): onset 0 (apex {apex}) is not a "
                              "coded frame", sid))
            continue
        notes = []
        if apex == onset:  # 54 such rows in the real v2 sheet: kept, but the pair has no motion
            notes.append("apex == onset: the onset-apex difference is zero")
        if offset is not None and offset == 0:
            offset = None  # 'offset 0' rows: offset unknown; the onset/apex pair is still usable
            notes.append("offset 0 in the annotation: offset unknown")
        if offset is not None and offset < apex:
            excl.append(_excl(dataset, ann_file, row, "offset_before_apex",
                              f"{ann_file} row {row} ({subj}/{clip}): offset {offset} < apex {apex}", sid))
            continue
        if sid in seen:
            excl.append(_excl(dataset, ann_file, row, "duplicate_row",
                              f"{ann_file} row {row}: same clip and onset/apex as row {seen[sid]}", sid))
            continue
        try:
            aus = au_numbers(r["AU"])
        except AUParseError as e:
            excl.append(_excl(dataset, ann_file, row, "au_unparsable", f"{ann_file} row {row}: {e}", sid))
            continue
        frames = color_index.get((subj, clip))
        if frames is None:
            excl.append(_excl(dataset, ann_file, row, "clip_missing",
                              f"{ann_file} row {row}: no colour frames for {frames_prefix}/{subj}/{clip}", sid))
            continue
        lost = [f for f in (onset, apex) if f not in frames]
        if lost:
            excl.append(_excl(dataset, ann_file, row, "frame_missing",
                              f"{ann_file} row {row}: frame(s) {lost} not in {frames_prefix}/{subj}/{clip}", sid))
            continue
        bad = [f for f in (onset, apex) if bad_frames and (subj, clip, f) in bad_frames]
        if bad:
            excl.append(_excl(dataset, ann_file, row, "known_bad_frame",
                              f"{ann_file} row {row}: frame(s) {bad} of {subj}/{clip} are on the known-bad list", sid))
            continue
        dpaths = (None, None)
        if depth_index is not None:
            dframes = depth_index.get((subj, clip), {})
            dlost = [f for f in (onset, apex) if f not in dframes]
            if dlost:
                excl.append(_excl(dataset, ann_file, row, "depth_missing",
                                  f"{ann_file} row {row}: depth frame(s) {dlost} missing for {frames_prefix}/{subj}/{clip}", sid))
                continue
            dpaths = (dframes[onset], dframes[apex])
        seen[sid] = row
        end = offset if offset is not None else apex + (apex - onset)   # offset unknown: mirror the rise
        seq = [frames[k] for k in range(onset, end + 1) if k in frames]
        lost_seq = [k for k in range(onset, end + 1) if k not in frames]
        if lost_seq:
            notes.append(f"{len(lost_seq)} frame(s) of the clip missing: {lost_seq[:5]}")
        samples.append({
            "sample_id": sid, "dataset": dataset, "subject": subj, "clip": clip,
            "source": "labelled", "ann_file": ann_file, "ann_row": row,
            "onset": onset, "apex": apex, "offset": offset, "apex_derived": False,
            "au_raw": None if pd.isna(r["AU"]) else str(r["AU"]), "au_list": aus,
            "emotion_raw": None if pd.isna(r["emotion"]) else str(r["emotion"]),
            "emotion": normalise_emotion(r["emotion"], emotion_synonyms), "fps": float(fps),
            "onset_path": frames[onset], "apex_path": frames[apex],
            "onset_depth_path": dpaths[0], "apex_depth_path": dpaths[1],
            "note": "; ".join(notes) or None, "seq_paths": seq,
        })
    s = pd.DataFrame(samples)
    if len(s):
        s = s.sort_values("sample_id", kind="stable").reset_index(drop=True)
    return s, pd.DataFrame(excl, columns=["sample_id", "dataset", "ann_file", "ann_row", "stage", "reason", "detail"])
