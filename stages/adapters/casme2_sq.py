"""CAS(ME)^2 adapter (DATASETS.md): `CAS(ME)^2code_final.xlsx`.

First sheet, no header, 9 columns: participant, video name + expression number (e.g.
``anger1_1``), onset, apex, offset, AUs, estimated emotion, expression type
(micro/macro), self-reported emotion. Sheet ``naming rule1`` maps participant -> folder
(e.g. 1 -> s15), ``naming rule2`` maps video name -> 4-digit code (e.g. anger1 -> 0401).
Offset 0 means "use apex". Frames under ``rawpic/`` (or ``cropped/``):
``rawpic/<folder>/<folder digits>_<code><anything>/img<n>.jpg`` - the clip folder is
found by that prefix (the descriptive tail of the folder name varies between releases).
Only micro-expressions become samples; macro rows are recorded as exclusions.
"""

from __future__ import annotations

import re

import pandas as pd

from stages.adapters.annotated import EXCLUSION_COLUMNS, Layout, annotated_samples
from stages.adapters.common import exclusion_row, safe_part

COLUMNS = ["participant", "video_expression", "onset", "apex", "offset", "au", "emotion", "type", "self_report"]


def naming_map(sheet: pd.DataFrame) -> dict[str, str]:
    """First two non-empty columns of a naming-rule sheet as {key: value} (strings)."""
    out = {}
    for row in sheet.itertuples(index=False):
        vals = [v for v in row if not pd.isna(v)]
        if len(vals) >= 2:
            k = str(int(vals[0]) if isinstance(vals[0], float) and vals[0].is_integer() else vals[0]).strip()
            v = str(int(vals[1]) if isinstance(vals[1], float) and vals[1].is_integer() else vals[1]).strip()
            out[k.lower()] = v
    return out


def casme2_sq_samples(
    code: pd.DataFrame,
    rule1: pd.DataFrame,
    rule2: pd.DataFrame,
    *,
    ann_file: str,
    dataset: str,
    fps: float,
    frames_prefix: str,
    frame_index: dict,
    emotion_synonyms: dict | None = None,
    max_duration_s: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    code = code.iloc[:, :9].copy()
    code.columns = COLUMNS
    subj_folder = naming_map(rule1)
    # 4-digit codes: a spreadsheet cell "0401" often comes back as the number 401
    video_code = {k: (v.zfill(4) if v.isdigit() else v) for k, v in naming_map(rule2).items()}
    clips = {}
    for rel in frame_index:  # "<folder>/<digits>_<code>..." -> rel
        m = re.match(r"^([^/]+)/(\d+)_(\d{4})", rel)
        if m:
            clips.setdefault((m.group(1), m.group(3)), rel)
    rows, excl = [], []
    for i, r in enumerate(code.to_dict("records")):
        sheet_row = i + 1  # no header row
        if all(pd.isna(v) for v in r.values()):
            continue
        kind = str(r["type"]).strip().lower()
        part = safe_part(r["participant"])
        ve = str(r["video_expression"]).strip()
        video = ve.rsplit("_", 1)[0].lower() if "_" in ve else ve.lower()
        if not kind.startswith("micro"):
            excl.append(
                exclusion_row(
                    dataset,
                    ann_file,
                    sheet_row,
                    "macro_expression",
                    f"{ann_file} row {sheet_row}: type {r['type']!r} (only micro-expressions are used)",
                )
            )
            continue
        folder = subj_folder.get((part or "").lower())
        vcode = video_code.get(video)
        if folder is None or vcode is None:
            excl.append(
                exclusion_row(
                    dataset,
                    ann_file,
                    sheet_row,
                    "naming_rule_missing",
                    f"{ann_file} row {sheet_row}: participant {r['participant']!r} -> "
                    f"{folder!r}, video {video!r} -> {vcode!r} (naming rule sheets)",
                )
            )
            continue
        rel = clips.get((folder, vcode), f"{folder}/{re.sub(r'\\D', '', folder)}_{vcode}")
        rows.append({**r, "subject": folder, "clip": rel.split("/", 1)[1], "_rel": rel, "_row": sheet_row})
    layout = Layout(
        "casme2_sq",
        {
            "subject": "subject",
            "clip": "clip",
            "onset": "onset",
            "apex": "apex",
            "offset": "offset",
            "au": "au",
            "emotion": "emotion",
        },
        clip_dir="{subject}/{clip}",
        offset_zero_means="apex",
        apex_missing="exclude",
    )
    if rows:
        df = pd.DataFrame(rows)
        s, e = annotated_samples(
            df.drop(columns=["_rel", "_row"]),
            layout,
            ann_file=ann_file,
            dataset=dataset,
            fps=fps,
            frames_prefix=frames_prefix,
            frame_index=frame_index,
            emotion_synonyms=emotion_synonyms,
            row_numbers=df["_row"].tolist(),
            max_duration_s=max_duration_s,
        )
    else:
        s, e = pd.DataFrame(), pd.DataFrame(columns=EXCLUSION_COLUMNS)
    return s, pd.concat([pd.DataFrame(excl, columns=EXCLUSION_COLUMNS), e], ignore_index=True)
