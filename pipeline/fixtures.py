"""Tiny fixtures in the real layouts of DATASETS.md, with the real column names and the
real traps, for the adapter and `validate` tests (and for a user to see what an adapter
expects). `write_fixture(name, root)` returns the catalog entry and the problems that
were planted on purpose, as {(reason, where)} - `validate` must report exactly those.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def _frames(folder: Path, names: list[str], rng, gray=False, size=24):
    names = list(dict.fromkeys(names))
    folder.mkdir(parents=True, exist_ok=True)
    for n in reversed(names):  # written in reverse: listing order means nothing
        img = rng.integers(0, 256, (size, size) if gray else (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / n), img)


def _xlsx(path: Path, df: pd.DataFrame, sheet="Sheet1", preamble: int = 0, header=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    with pd.ExcelWriter(path, engine="openpyxl") as w:
        if preamble:
            pd.DataFrame([[f"SAMM preamble line {i + 1}"] for i in range(preamble)]).to_excel(
                w, sheet_name=sheet, index=False, header=False
            )
        df.to_excel(w, sheet_name=sheet, index=False, header=header, startrow=preamble)


# MMEW sheet rows without a usable apex/offset -> the MEB toolkit's estimates (catalog repairs)
MMEW_NO_APEX = {
    35: (40, 75),
    37: (15, 54),
    38: (46, 59),
    39: (20, 98),
    40: (25, 80),
    41: (20, 93),
    42: (23, 58),
    43: (28, 61),
    44: (32, 68),
    144: (56, 88),
    145: (32, 80),
    147: (27, 85),
    148: (22, 61),
    150: (29, 108),
    156: (31, 72),
    158: (38, 106),
}


def casme2(root: Path, rng) -> tuple[dict, set]:
    fr = "CASME2_RAW_selected"
    for sub, clips in {"sub01": ["EP02_01f", "EP03_02"], "sub02": ["EP01_11f"], "sub04": ["EP12_01f"]}.items():
        for c in clips:
            _frames(root / fr / sub / c, [f"img{i}.jpg" for i in range(1, 13)], rng)
    ann = pd.DataFrame(
        [
            [1, "EP02_01f", None, 2, 5, 9, None, "4+L10", "Happiness"],
            [1, "EP03_02", None, 3, "/", 11, None, "R12 + R15", "disgust"],  # "/" apex -> midpoint
            [2, "EP01_11f", None, 8, 4, 11, None, "1+2 or 4", "surprise"],  # apex < onset
            [2, "EP09_99", None, 2, 4, 6, None, "14", "others"],  # clip folder absent
            [4, "EP12_01f", None, 2, 6, 10, None, "4+7", "repression"],  # not in the MEGC2019 list
        ],
        columns=[
            "Subject",
            "Filename",
            "Unnamed: 2",
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            "Unnamed: 6",
            "Action Units",
            "Estimated Emotion",
        ],
    )
    _xlsx(root / "CASME2-coding-20140508.xlsx", ann)
    entry = {
        "adapter": "casme2",
        "fps": 200,
        "modalities": ["rgb"],
        "annotation": "CASME2-coding-20140508.xlsx",
        "frames_dir": fr,
        "label_scheme": "casme2_5",
    }
    return entry, {("apex_before_onset", 4), ("clip_missing", 5)}


def samm(root: Path, rng) -> tuple[dict, set]:
    fr = "SAMM"
    _frames(root / fr / "006" / "006_1_2", [f"006_{i:05d}.jpg" for i in range(5560, 5572)], rng, gray=True)
    _frames(root / fr / "007" / "007_3_1", [f"007_{i:05d}.jpg" for i in range(100, 112) if i != 105], rng, gray=True)
    ann = pd.DataFrame(
        [
            ["006", "006_1_2", "1", 5561, 5565, 5570, 10, "Micro - 1/2", "AU4(2)", "Anger", "", ""],
            ["007", "007_3_1", "3", 101, 104, 0, 5, "Micro - 1/2", "R14A", "Other", "", "offset 0"],  # offset 0
            ["007", "007_3_1", "3", 103, 105, 110, 5, "Micro - 1/2", "12", "happiness", "", ""],  # apex frame absent
        ],
        columns=[
            "Subject",
            "Filename",
            "Inducement Code",
            "Onset Frame",
            "Apex Frame",
            "Offset Frame",
            "Duration",
            "Type",
            "Action Units",
            "Estimated Emotion",
            "Objective Classes",
            "Notes",
        ],
    )
    _xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", ann, preamble=13)
    entry = {
        "adapter": "samm",
        "fps": 200,
        "modalities": ["gray"],
        "annotation": "SAMM_Micro_FACS_Codes_v2.xlsx",
        "frames_dir": fr,
        "label_scheme": "samm_5",
    }
    return entry, {("frame_missing", 17)}


def smic_hs(root: Path, rng) -> tuple[dict, set]:
    fr = "HS"
    for sub, emo, clip, n in [
        ("s1", "negative", "s1_ne_01", 11),
        ("s1", "positive", "s1_po_01", 11),
        ("s2", "surprise", "s2_sur_01", 11),
        ("s1", "positive", "s1_po_02", 10),
    ]:
        _frames(root / fr / sub / "micro" / emo / clip, [f"image{i:06d}.bmp" for i in range(100, 100 + n)], rng)
    _frames(root / fr / "s2" / "micro" / "happy" / "s2_ha_01", [f"image{i:06d}.bmp" for i in range(1, 6)], rng)
    entry = {"adapter": "smic_hs", "fps": 100, "modalities": ["rgb"], "frames_dir": fr, "label_scheme": "megc2019_3"}
    return entry, {("emotion_folder_unknown", "HS/s2/micro/happy/s2_ha_01")}


def mmew(root: Path, rng) -> tuple[dict, set]:
    fr = "Micro_Expression"
    _frames(root / fr / "happiness" / "S01_happiness_01", [f"{i}.jpg" for i in range(1, 15)], rng)
    _frames(root / fr / "surprise" / "S02_surprise_03", [f"{i}.jpg" for i in range(1, 15)], rng)
    rows = [
        ["S01", "S01_happiness_01", 2, 6, 12, "R12A", "happiness", ""],
        ["S02", "S02_surprise_03", 3, 8, 13, "1+2", "Surprise", ""],
        ["S02", "S02_surprise_03", 3, 8, 13, "1+2", "Surprise", "duplicated row"],  # duplicate
    ]
    # the release has 300 rows; rows 35..158 include the 16 without a usable apex/offset that
    # the catalog repairs (MEB's estimates): written blank here, frames where the estimates point
    for row in range(5, 160):
        sub, clip = f"S{3 + row // 40:02d}", f"S{3 + row // 40:02d}_others_{row:03d}"
        if row in MMEW_NO_APEX:
            apex, off = MMEW_NO_APEX[row]
            rows.append([sub, clip, 5, None, 70 if row == 35 else None, "4", "others", ""])
            _frames(root / fr / "others" / clip, [f"{i}.jpg" for i in (5, apex, off)], rng, size=8)
        else:
            rows.append([sub, clip, 2, 4, 6, "4", "others", ""])
            _frames(root / fr / "others" / clip, [f"{i}.jpg" for i in (2, 4, 6)], rng, size=8)
    ann = pd.DataFrame(
        rows,
        columns=[
            "Subject",
            "Filename",
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            "Action Units",
            "Estimated Emotion",
            "remarks",
        ],
    )
    _xlsx(root / "MMEW_Micro_Exp.xlsx", ann)
    entry = {
        "adapter": "mmew",
        "fps": 90,
        "modalities": ["rgb"],
        "annotation": "MMEW_Micro_Exp.xlsx",
        "frames_dir": fr,
        "label_scheme": "mmew_6",
    }
    return entry, {("duplicate_row", 4)}


FOURDME_LABELS = ["Positive", "Negative", "Surprise", "Repression", "Others"]  # the one-hot columns


def _one_hot(emotion: str) -> list[int]:
    return [int(c == emotion) for c in FOURDME_LABELS]


def fourdme(root: Path, rng) -> tuple[dict, set]:
    fr = "gray_micro"
    _frames(root / fr / "S01" / "S01_001", [f"{i}.jpg" for i in range(0, 20)], rng, gray=True)
    rows = [
        ["S01", "S01_001", "Positive", 2, 7, 15, "T28+14", *_one_hot("Positive")],
        ["S01", "S01_001", "Negative", 9, "x", 18, "4", *_one_hot("Negative")],  # non-numeric apex cell
    ]
    # the release has 267 rows; AU strings carry (k) markers; sheet rows 146 and 147 hold each
    # other's AU string and one-hot labels (their Emotion cells are right; the catalog swaps them back)
    for row in range(4, 150):
        sub = f"S{2 + row // 30:02d}"
        clip = f"{sub}_{row:03d}"
        _frames(root / fr / sub / clip, [f"{i}.jpg" for i in (3, 6, 9)], rng, gray=True, size=8)
        rows.append([sub, clip, "Surprise", 3, 6, 9, "1+2+5(k)" if row % 2 else "AU12(k)+25", *_one_hot("Surprise")])
    rows[146 - 2][2], rows[147 - 2][2] = "Positive", "Negative"
    rows[146 - 2][6:] = ["4+7", *_one_hot("Negative")]  # row 147's labels ...
    rows[147 - 2][6:] = ["12+25(k)", *_one_hot("Positive")]  # ... and row 146's
    ann = pd.DataFrame(
        rows, columns=["sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset", "AUs", *FOURDME_LABELS]
    )
    _xlsx(root / "4DME_Labelling_Micro_release v1.xlsx", ann)
    entry = {
        "adapter": "4dme",
        "fps": 60,
        "modalities": ["gray"],
        "annotation": "4DME_Labelling_Micro_release v1.xlsx",
        "frames_dir": fr,
        "label_scheme": "fourdme_3",
    }
    return entry, set()  # the 'x' apex becomes a derived midpoint (a note, not a problem)


def casme3_part_c(root: Path, rng, real_sheet: Path | None = None) -> tuple[dict, set]:
    fr = "part_C/data"
    _frames(root / fr / "1" / "color", [f"{i}.jpg" for i in range(370, 390)], rng)
    _frames(root / fr / "02" / "color", [f"{i}.jpg" for i in range(10, 20)], rng)  # zero-padded folder
    ann = pd.DataFrame(
        [
            [1, 1, 373, 385, "R4,5", "negative"],
            [1, 2, 6450, 6464, "R2,7", "surprise"],
            [2, 1, 11, 17, "13?,4", "negative"],
        ],  # '13?': uncertain AU13
        columns=["sub", "count", "onset", "offset", "au", "emotion"],
    )
    _xlsx(root / "CAS(ME)3_part_C_ME.xlsx", ann, sheet="mockCrimeME")
    entry = {
        "adapter": "casme3_part_c",
        "fps": 30,
        "modalities": ["rgb"],
        "annotation": "CAS(ME)3_part_C_ME.xlsx",
        "annotation_sheet": "mockCrimeME",
        "frames_dir": fr,
        "label_scheme": "casme3_3",
    }
    return entry, {("frame_missing", 3)}


def casme2_sq(root: Path, rng) -> tuple[dict, set]:
    fr = "rawpic"
    _frames(root / fr / "s15" / "15_0401angrywhy", [f"img{i}.jpg" for i in range(1, 40)], rng)
    _frames(root / fr / "s16" / "16_0101disgustingteeth", [f"img{i}.jpg" for i in range(1, 40)], rng)
    code = pd.DataFrame(
        [
            [1, "anger1_1", 5, 9, 14, "4+7", "negative", "micro-expression", "anger"],
            [1, "anger1_2", 20, 25, 0, "4", "Negative", "micro-expression", "anger"],  # offset 0 -> apex
            [1, "anger1_3", 2, 30, 38, "4+10", "negative", "macro-expression", "anger"],  # macro: not used
            [2, "disgust1_1", 3, 41, 45, "9", "others", "micro-expression", "disgust"],  # apex 41 absent
            [3, "happy1_1", 3, 8, 12, "12", "positive", "micro-expression", "happy"],  # no naming rule
        ]
    )
    path = root / "CAS(ME)^2code_final.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as w:
        code.to_excel(w, sheet_name="Sheet1", index=False, header=False)
        pd.DataFrame([[1, "s15"], [2, "s16"]]).to_excel(w, sheet_name="naming rule1", index=False, header=False)
        pd.DataFrame([["anger1", "0401"], ["disgust1", "0101"]]).to_excel(
            w, sheet_name="naming rule2", index=False, header=False
        )
    entry = {
        "adapter": "casme2_sq",
        "fps": 30,
        "modalities": ["rgb"],
        "annotation": "CAS(ME)^2code_final.xlsx",
        "frames_dir": fr,
        "label_scheme": "casme2_4",
    }
    return entry, {("macro_expression", 3), ("frame_missing", 4), ("naming_rule_missing", 5)}


FIXTURES = {
    "casme2": casme2,
    "samm": samm,
    "smic_hs": smic_hs,
    "mmew": mmew,
    "4dme": fourdme,
    "casme3_part_c": casme3_part_c,
    "casme2_sq": casme2_sq,
}


def write_fixture(name: str, root: Path, seed: int = 0) -> tuple[dict, set]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return FIXTURES[name](root, np.random.default_rng(seed))


# ------------------------------------------------------------------ CAS(ME)^3 as released
V2_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
KNOWN_BAD = "casme3_partA_error_list_ZhouJu.xlsx"
ALL_SHEET = "CAS(ME)3_part_A_v2.xls"  # every coded expression, macro and micro (sheet AU+Emotion)
ALL_SHEET_NAME = "AU+Emotion"


def casme3_release(
    root: Path,
    real_dir: Path,
    repairs: list[dict],
    rows: set[int] | None = None,
    face: np.ndarray | None = None,
    extra_level: bool = True,
    sheets_under_annotation: bool = True,
    depth_in_clip: bool = False,
    seed: int = 0,
    macro_rows: set[int] = frozenset(),
) -> Path:
    """A CAS(ME)^3 Part A copy laid out as the release unpacks, written from the REAL sheets
    in `real_dir` (../shared/datasets/casme3): the v2 ME sheet and the authors' known-bad
    list under part_A/annotation/ (public loaders keep them there) or at the root, frames
    in part_A/data/part_A/spNO.<n>/<clip>/color/<n>.jpg with 16-bit depth in .../depth/
    (or, `depth_in_clip`, as PNGs in the clip folder; `extra_level` False drops the second
    part_A/). Stand-in frames: the sheet's onset, apex and offset frames of the sheet rows
    in `rows` (all rows when None), plus the frames its `repairs` point to; frame 0 is
    never written (the release numbers from 1: the authors' list says 0.jpg does not
    exist). `face`: an RGB image used for every colour frame (else tiny noise images).
    The authors' all-expressions sheet (ALL_SHEET, as released) lies beside the ME sheet;
    `macro_rows`: its sheet rows whose onset, apex and offset frames are written too (a
    .xls cannot be written here: the real file is copied whole, its other rows have no
    frames). Returns the frames folder."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann_dir = root / "part_A" / "annotation" if sheets_under_annotation else root
    ann_dir.mkdir(parents=True, exist_ok=True)
    for name in (V2_SHEET, KNOWN_BAD, ALL_SHEET):
        (ann_dir / name).write_bytes((Path(real_dir) / name).read_bytes())
    ann = pd.read_excel(Path(real_dir) / V2_SHEET, sheet_name="label")
    frames = root / "part_A" / "data" / ("part_A" if extra_level else "")
    fixed = {(r["row"], r["column"]): r["new"] for r in repairs if "row" in r}
    wanted: dict[tuple, set] = {}
    _want_frames(wanted, ann, rows, fixed)
    if macro_rows:
        _want_frames(wanted, pd.read_excel(Path(real_dir) / ALL_SHEET, sheet_name=ALL_SHEET_NAME), set(macro_rows), {})
    img = None if face is None else cv2.cvtColor(face, cv2.COLOR_RGB2BGR)
    for (subj, clip), nums in sorted(wanted.items()):
        cdir = frames / subj / clip / "color"
        ddir = frames / subj / clip / ("" if depth_in_clip else "depth")
        cdir.mkdir(parents=True, exist_ok=True)
        ddir.mkdir(parents=True, exist_ok=True)
        h, w = (8, 8) if img is None else img.shape[:2]
        for n in sorted(nums):
            cv2.imwrite(str(cdir / f"{n}.jpg"), img if img is not None else rng.integers(0, 256, (h, w, 3), np.uint8))
            cv2.imwrite(str(ddir / f"{n}.png"), rng.integers(400, 900, (h, w), np.uint16))
    return frames


def _want_frames(wanted: dict, ann: pd.DataFrame, rows: set[int] | None, fixed: dict) -> None:
    """Add to `wanted` ({(subject, clip): frame numbers}) the onset, apex and offset frames
    of the sheet rows `rows` of `ann` (header = row 1; None: all), and the frames the
    repairs `fixed` ({(row, column): new}) point to; frame 0 never (the release numbers from 1)."""
    for i, r in enumerate(ann.to_dict("records")):
        row = i + 2
        if rows is not None and row not in rows:
            continue
        nums = {r[c] for c in ("Onset", "Apex", "Offset")} | {
            fixed[(row, c)] for c in ("Onset", "Apex", "Offset") if (row, c) in fixed
        }
        wanted.setdefault((r["Subject"], r["Filename"]), set()).update(int(n) for n in nums if n and n > 0)


def catalog_copy(src: Path, folder: Path, edit: dict | None = None) -> Path:
    """The catalog `src` written into `folder` with its store and runs folders there, its
    dataset entries updated by `edit` ({dataset: {key: value}}, a value None removes the
    key); returns the new file. (Anchors are resolved on reading, so the x-... keys that
    held them are dropped.)"""
    import yaml

    raw = yaml.safe_load(Path(src).read_text())
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    raw["store_root"], raw["runs_root"] = str(Path(folder) / "stores"), str(Path(folder) / "runs")
    for name, changes in (edit or {}).items():
        raw["datasets"][name].update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            del raw["datasets"][name][key]
    Path(folder).mkdir(parents=True, exist_ok=True)
    out = Path(folder) / "catalog.yaml"
    out.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    return out
