"""CAS(ME)^3 Part A's macro-expressions in DVSCL's pretraining set (issue 16; seed 000 sec.
4.1: "both micro- and macro-expression in Part A"), on the REAL sheets of
../shared/datasets/casme3: the authors' all-expressions sheet CAS(ME)3_part_A_v2.xls numbers
frames as the labelled ME sheet does; its macro rows become samples of source 'macro'
(no emotion) through the shipped casme3_pretrain entry; DVSCL pretrains on them, its
probe never sees them."""

import pandas as pd
import pytest
import yaml

from pipeline.fixtures import ALL_SHEET, ALL_SHEET_NAME, V2_SHEET
from schemas.tables import MACRO
from stages.adapters.annotated import AnnotationError
from stages.adapters.layouts import MACRO_SHEETS
from stages.adapters.macro import macro_samples
from tests.conftest import CASME3_REAL, REPO
from tests.test_adapter_casme3 import full_index

ALL = CASME3_REAL / ALL_SHEET
V2 = CASME3_REAL / V2_SHEET
pytestmark = pytest.mark.skipif(
    not (ALL.is_file() and V2.is_file()), reason="real CAS(ME)^3 annotation files not beside the repo"
)

SHIPPED = yaml.safe_load((REPO / "catalog.yaml").read_text())
REPAIRS = SHIPPED["datasets"]["casme3"]["repairs"]
FRAMES = ["Onset", "Apex", "Offset"]


def all_expressions() -> pd.DataFrame:
    """The all-expressions sheet read by plain pandas, with each row's sheet row (header = 1)."""
    df = pd.read_excel(ALL, sheet_name=ALL_SHEET_NAME)
    return df.assign(row=range(2, len(df) + 2))


def label_sheets() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled ME sheet as released and with the catalog's repairs (plain pandas)."""
    lab = pd.read_excel(V2, sheet_name="label")
    fixed = lab.copy()
    for r in REPAIRS:
        fixed.loc[r["row"] - 2, r["column"]] = r["new"]
    return lab, fixed


def adapter(sheet: pd.DataFrame, labelled: list[pd.DataFrame], **kw):
    """The macro adapter on `sheet` (every frame it names listed, colour and depth)."""
    idx = full_index(sheet)
    args = dict(
        row_numbers=list(range(2, len(sheet) + 2)),
        labelled=labelled,
        label_file=V2.name,
        ann_file=ALL.name,
        dataset="casme3_pretrain",
        fps=30,
        frames_prefix="part_A/data",
        frame_index=idx,
        depth_index=idx,
        max_duration_s=25,
    )
    return macro_samples(sheet.drop(columns="row", errors="ignore"), MACRO_SHEETS["casme3_part_a"], **{**args, **kw})


# ------------------------------------------------------------------ the real sheets


def test_the_all_expressions_sheet_numbers_frames_as_the_label_sheet():
    """Checked before any macro frame number is used: the 860 micro-expression rows of
    CAS(ME)3_part_A_v2.xls are the label sheet's 860 rows in the same order (subject,
    clip, AU, objective class), their frame numbers equal (spNO.1 a: 355/359/360 in both)
    but for 4 cells, each one a catalog repair fixes, where the all-expressions sheet
    already holds the repaired value: one frame numbering, the JPG index."""
    allx = all_expressions()
    me = allx[allx["Expression type"] == "Micro-expression"].reset_index(drop=True)
    lab, _ = label_sheets()
    assert len(me) == len(lab) == 860 and len(allx) == 4206
    for c in ("Subject", "Filename", "AU", "Objective class"):
        assert (me[c] == lab[c]).all(), c
    first = ["Subject", "Filename", *FRAMES]
    assert tuple(me.loc[0, first]) == tuple(lab.loc[0, first]) == ("spNO.1", "a", 355, 359, 360)
    differ = {(i + 2, c) for i in range(860) for c in FRAMES if me.loc[i, c] != lab.loc[i, c]}
    assert differ == {(130, "Apex"), (751, "Onset"), (798, "Offset"), (800, "Offset")}
    repaired = {(r["row"], r["column"]): r["new"] for r in REPAIRS}
    assert {(row, c): me.loc[row - 2, c] for row, c in differ} == {k: repaired[k] for k in differ}


def test_the_real_sheet_yields_3253_macro_samples():
    """3346 macro rows; by the sheet alone (pandas): 1 has onset 0 (spNO.215 l, row 3606),
    92 more span over max_duration_s 25 s; the other 3253 become samples of source
    'macro' with the sheet's onset/apex/offset, no emotion, ids apart from the labelled."""
    allx = all_expressions()
    mac = allx[allx["Expression type"] == "Macro-expression"]
    span_s = (mac["Offset"] - mac["Onset"] + 1) / 30
    keep = mac[(mac["Onset"] > 0) & (span_s <= 25)]
    s, e, report = adapter(allx, list(label_sheets()))
    assert len(mac) == 3346 and len(s) == len(keep) == 3253
    assert sorted(zip(s["ann_row"], s["onset"], s["apex"], s["offset"])) == sorted(
        zip(keep["row"], keep["Onset"], keep["Apex"], keep["Offset"])
    )
    assert (s["source"] == MACRO).all() and s["emotion"].isna().all() and s["emotion_raw"].isna().all()
    assert s["sample_id"].is_unique and s["sample_id"].str.startswith("casme3_pretrain/macro/").all()
    assert s["onset_depth_path"].notna().all() and (s["ann_file"] == ALL.name).all()
    too_long = mac[(mac["Onset"] > 0) & (span_s > 25)]["row"]
    assert dict(zip(e["ann_row"], e["reason"])) == {3606: "onset_zero", **dict.fromkeys(too_long, "too_long")}
    assert len(e) == 93 and len(too_long) == 92
    assert e.set_index("ann_row").loc[13, "detail"] == (
        f"{ALL.name} row 13 (spNO.1/e): onset 352 .. offset 2296 spans 1945 frames = 64.8 s at 30 fps, longer "
        "than max_duration_s 25 s (macro row: the limit applies as to labelled rows)"
    )
    assert (report.rows, report.samples, report.micro_rows, report.excluded) == (
        3346,
        3253,
        860,
        {"too_long": 92, "onset_zero": 1},
    )


def test_a_sheet_of_another_release_or_numbering_is_refused():
    """The v1 all-expressions sheet (its apexes revised in v2) beside the v2 label sheet,
    the v2 sheet renumbered from 0, a sheet without micro-expression rows: refused with
    the rows that differ, no macro sample made."""
    lab, fixed = label_sheets()
    v1 = pd.read_excel(CASME3_REAL / "CAS(ME)3_part_A_v1.xls", sheet_name=ALL_SHEET_NAME)
    v1 = v1.assign(row=range(2, len(v1) + 2))
    v1_me = v1[v1["Expression type"] == "Micro-expression"]
    key = ["Subject", "Filename", "Onset", "Apex"]
    known = pd.concat([lab[key], fixed[key]]).drop_duplicates()
    off = v1_me.merge(known, on=key, how="left", indicator=True).query("_merge == 'left_only'")
    assert len(v1_me) == 921 and len(off) == 80  # pandas: 80 v1 micro rows are no v2 label row
    with pytest.raises(AnnotationError) as err:
        adapter(v1, [lab, fixed])
    first = off.iloc[0]
    assert (
        f"{ALL.name}: 80 of its 921 Micro-expression rows are no row of {V2.name}" in str(err.value)
        and f"e.g. row {first['row']} {first['Subject']}/{first['Filename']} onset {first['Onset']} "
        f"apex {first['Apex']}"
        in str(err.value)
    )
    shifted = all_expressions()
    shifted[FRAMES] -= 1  # the same sheet numbered from 0
    with pytest.raises(AnnotationError, match="860 of its 860 Micro-expression rows are no row of"):
        adapter(shifted, [lab, fixed])
    macro_only = all_expressions().query("`Expression type` == 'Macro-expression'")
    with pytest.raises(AnnotationError, match="no 'Micro-expression' rows in column 'Expression type'"):
        adapter(macro_only, [lab, fixed])
