"""A cross-dataset composite defined by an official clip list (MEGC2019-CD).

The MEGC2019 composite is the challenge's list of 442 clips (`combined_3class_gt.csv`,
no header: dataset, subject, clip, class 0/1/2), not "every clip whose emotion maps to a
class": some CASME II clips pass the mapping but are not in it (sub04 EP12_01f, sub24
EP02_07). The list names things its own way: SAMM subject ``6`` is folder ``006``,
SMIC-HS ``s01`` / ``s01_ne_01`` are ``s1`` / ``s1_ne_01``. Names are matched without case
and without zero padding (``canonical_name``), per part.

Pure: the list and the parts' samples in, the composite's rows, its exclusions and a
matching report out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.adapters.annotated import canonical_name
from stages.adapters.common import exclusion_row

# the list's dataset names -> catalog part names
LIST_PARTS = {"casme2": "casme2", "samm": "samm", "smic": "smic_hs"}


def parse_official_list(raw: pd.DataFrame, list_file: str, classes: list[str], parts) -> pd.DataFrame:
    """The header-less list as columns line (1-based), part, subject, clip, cls (int).
    A class outside 0..len(classes)-1, a dataset that is not one of `parts` and a clip
    listed twice are errors naming the line."""
    if raw.shape[1] < 4:
        raise ValueError(f"{list_file}: expected 4 columns (dataset, subject, clip, class), got {raw.shape[1]}")
    out = pd.DataFrame(
        {
            "line": range(1, len(raw) + 1),
            "part": [LIST_PARTS.get(str(x).strip().lower(), str(x).strip()) for x in raw[0]],
            "subject": [str(x).strip() for x in raw[1]],
            "clip": [str(x).strip() for x in raw[2]],
            "cls": pd.to_numeric(raw[3], errors="coerce"),
        }
    )
    ok = out["cls"].isin(range(len(classes)))
    if not ok.all():
        i = int(np.nonzero(~ok.to_numpy())[0][0])
        raise ValueError(
            f"{list_file} line {i + 1}: class {str(raw.iloc[i, 3]).strip()!r} is not one of 0..{len(classes) - 1} "
            f"({', '.join(classes)})"
        )
    out["cls"] = out["cls"].astype(int)
    unknown = out[~out["part"].isin(list(parts))]
    if len(unknown):
        raise ValueError(
            f"{list_file} line {int(unknown['line'].iloc[0])}: dataset {unknown['part'].iloc[0]!r} is not "
            f"a part of this composite ({', '.join(parts)})"
        )
    key = [(p, canonical_name(a), canonical_name(b)) for p, a, b in zip(out["part"], out["subject"], out["clip"])]
    dup = pd.Series(key).duplicated()
    if dup.any():
        i = int(np.nonzero(dup.to_numpy())[0][0])
        first = key.index(key[i]) + 1
        raise ValueError(
            f"{list_file} line {i + 1}: {out['part'].iloc[i]} {out['subject'].iloc[i]} "
            f"{out['clip'].iloc[i]} is listed already on line {first}"
        )
    return out


def match_official_list(
    lst: pd.DataFrame, part: str, samples: pd.DataFrame, classes: list[str], mapping: dict, list_file: str, dataset: str
) -> tuple[list[dict], list[dict], dict]:
    """Rows of `samples` (one part's ingest) that the list names, with the list's class
    (classes[cls]) and names (ref_subject, ref_clip); exclusions for the part's samples
    the list does not name (`not_in_official_list`: the detail says when the emotion
    mapping would have added it) and for list lines the copy has no sample for
    (`list_clip_missing`). Report: {in_list, matched, missing: [...], mapping_would_add:
    [...], class_disagrees: [...]}."""
    mine = lst[lst["part"] == part]
    by_key = {}
    for r in samples.to_dict("records") if len(samples) else []:
        by_key.setdefault((canonical_name(r["subject"]), canonical_name(r["clip"])), []).append(r)
    kept, excl, used = [], [], set()
    report = {"in_list": len(mine), "matched": 0, "missing": [], "mapping_would_add": [], "class_disagrees": []}
    for li in mine.itertuples():
        key = (canonical_name(li.subject), canonical_name(li.clip))
        rows = sorted(by_key.get(key, []), key=lambda r: r["sample_id"])
        where = f"{list_file} line {li.line} ({part} {li.subject} {li.clip}, {classes[li.cls]})"
        if not rows:
            report["missing"].append(where)
            excl.append(
                exclusion_row(
                    dataset,
                    list_file,
                    li.line,
                    "list_clip_missing",
                    f"{where}: no usable sample of this clip in the copy of {part}",
                )
            )
            continue
        r = dict(rows[0])
        used.add(r["sample_id"])
        cls = classes[li.cls]
        mapped = mapping.get(r["emotion"])
        if mapped != cls:
            report["class_disagrees"].append(f"{where}: emotion {r['emotion']!r} maps to {mapped}")
            r["note"] = _join(r.get("note"), f"class {cls} from the official list (the emotion mapping gives {mapped})")
        r.update({"emotion": cls, "ref_subject": li.subject, "ref_clip": li.clip})
        kept.append(r)
        report["matched"] += 1
        for extra in rows[1:]:
            used.add(extra["sample_id"])
            excl.append(
                exclusion_row(
                    dataset,
                    extra["ann_file"],
                    extra["ann_row"],
                    "not_in_official_list",
                    f"{where} names this clip once; {rows[0]['sample_id']} is kept",
                    sample_id=extra["sample_id"],
                )
            )
    for r in samples.to_dict("records") if len(samples) else []:
        if r["sample_id"] in used:
            continue
        mapped = mapping.get(r["emotion"])
        if mapped is not None:
            report["mapping_would_add"].append(f"{r['sample_id']} ({r['emotion']} -> {mapped})")
        excl.append(
            exclusion_row(
                dataset,
                r["ann_file"],
                r["ann_row"],
                "not_in_official_list",
                f"{part} {r['subject']}/{r['clip']} ({r['emotion']}) is not in {list_file}"
                + (f"; the emotion mapping would add it as {mapped}" if mapped else ""),
                sample_id=r["sample_id"],
            )
        )
    return kept, excl, report


def _join(a, b: str) -> str:
    return b if not isinstance(a, str) or not a else f"{a}; {b}"
