"""CAS(ME)^3 Part A's macro-expressions in DVSCL's pretraining set (issue 16; seed 000 sec.
4.1: "both micro- and macro-expression in Part A"), on the REAL sheets of
../shared/datasets/casme3: the authors' all-expressions sheet CAS(ME)3_part_A_v2.xls numbers
frames as the labelled ME sheet does; its macro rows become samples of source 'macro'
(no emotion) through the shipped casme3_pretrain entry; DVSCL pretrains on them, its
probe never sees them."""

import hashlib

import pandas as pd
import pytest
import yaml

from pipeline.catalog import CatalogError, load_catalog
from pipeline.fixtures import ALL_SHEET, ALL_SHEET_NAME, V2_SHEET, casme3_release, catalog_copy
from pipeline.ingest import ingest_all
from pipeline.plan import make_plan, print_plan
from schemas.tables import MACRO, SOURCES
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


# ------------------------------------------------------------------ a copy laid out as released

LABEL_ROWS = {2, 3}  # label sheet: spNO.1 a 355/359 (others), spNO.1 b 166/175 (disgust)
# all-expressions sheet: spNO.1 a 37/63, 268/289, 596/615 and spNO.1 b 348/359 (macro, kept);
# row 13 spNO.1 e spans 64.8 s; row 3606 spNO.215 l has onset 0
MACRO_ROWS = {2, 3, 5, 7, 13, 3606}


def shipped(tmp_path, edit=None):
    """The repository's casme3_pretrain entry without Part B (no recordings in this copy)."""
    return load_catalog(
        catalog_copy(REPO / "catalog.yaml", tmp_path, {"casme3_pretrain": {"unlabelled": None, **(edit or {})}})
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme3_macro") / "CASME3"
    frames = casme3_release(root, CASME3_REAL, REPAIRS, rows=LABEL_ROWS, macro_rows=MACRO_ROWS)
    import shutil

    for kind, ext in (("color", "jpg"), ("depth", "png")):  # frame 1 of spNO.215 l, for a repaired onset
        shutil.copy(
            next((frames / "spNO.215" / "l" / kind).glob(f"*.{ext}")), frames / "spNO.215" / "l" / kind / f"1.{ext}"
        )
    return root


def test_the_plan_lists_the_macro_samples_apart_from_the_labelled(release, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CASME3_ROOT", str(release))
    cat = shipped(tmp_path)
    ds = cat.dataset("casme3_pretrain")
    plan = make_plan(cat, ds)
    print_plan(ds, plan)
    text = capsys.readouterr().out
    s = plan.got.samples
    mac, lab = s[s["source"] == MACRO], s[s["source"] == "labelled"]
    sheet = all_expressions().set_index("row")
    kept = sorted({2, 3, 5, 7})
    assert sorted(mac["ann_row"]) == kept and sorted(lab["ann_row"]) == sorted(LABEL_ROWS)
    for r in mac.itertuples():  # the sheet's own frame numbers, its folders
        want = sheet.loc[r.ann_row]
        assert (r.subject, r.clip, r.onset, r.apex, r.offset) == tuple(want[["Subject", "Filename", *FRAMES]])
        assert r.onset_path == f"part_A/data/part_A/{r.subject}/{r.clip}/color/{r.onset}.jpg"
        assert r.apex_depth_path == f"part_A/data/part_A/{r.subject}/{r.clip}/depth/{r.apex}.png"
    assert mac["emotion"].isna().all() and (mac["ann_file"] == ALL_SHEET).all()
    assert not set(mac["sample_id"]) & set(lab["sample_id"])
    # never in a label scheme: the class counts are the labelled rows' (others, disgust)
    assert sum(plan.counts["casme3_7"].values()) == 2 and plan.counts["casme3_7"]["disgust"] == 1
    assert "  samples: 6 (labelled 2, macro 4)" in text
    assert (
        f"  macro-expression sheet {ALL_SHEET}: 4 sample(s) (source 'macro', no emotion: pretraining only) of its "
        f"3346 macro-expression rows, 3342 excluded ("
        in text
        and f"its 860 micro-expression rows are rows of {V2_SHEET} (same frame numbering)" in text
    )
    assert f"macro-expression sheet part_A/annotation/{ALL_SHEET}" in text  # found where the release keeps it
    ex = plan.got.exclusions
    ex = ex[ex["ann_file"] == ALL_SHEET].set_index("ann_row")
    assert (ex.loc[13, "reason"], ex.loc[3606, "reason"]) == ("too_long", "onset_zero")
    assert ex.loc[3606, "detail"] == f"{ALL_SHEET} row 3606 (spNO.215/l): onset 0 (apex 357) is not a coded frame"
    # the sheet is a source file of the version: a changed sheet makes a new one
    from pipeline.planning import source_checksums

    sums = source_checksums(plan.got.datasets["casme3_pretrain"], plan.got.datasets)
    assert sums[f"part_A/annotation/{ALL_SHEET}"] == hashlib.sha256(ALL.read_bytes()).hexdigest()
    # the same copy read as `casme3` (no macro_annotation): labelled samples only
    got = ingest_all(cat.dataset("casme3"), cat, log=lambda *a: None)
    assert set(got.samples["source"]) == {"labelled"} and got.macro is None


def test_validate_does_not_hold_a_macro_sample_to_the_label_scheme(release, tmp_path, monkeypatch):
    from pipeline.validate import validate

    monkeypatch.setenv("CASME3_ROOT", str(release))
    rep = validate(shipped(tmp_path).dataset("casme3_pretrain"), quick=True)
    assert rep["samples"] == 6 and "emotion_not_in_scheme" not in rep["problems"]


def test_macro_repairs_work_as_the_label_sheets(release, tmp_path, monkeypatch):
    """A `macro_repairs` entry repairs a row of the all-expressions sheet (here: a made-up
    fix of row 3606's onset 0 to frame 1), checked against the sheet like `repairs`."""
    monkeypatch.setenv("CASME3_ROOT", str(release))
    fix = {"row": 3606, "column": "Onset", "old": 0, "new": 1, "match": {"Subject": "spNO.215", "Filename": "l"}}
    got = ingest_all(
        shipped(tmp_path / "a", {"macro_repairs": [{**fix, "source": "a test"}]}).dataset("casme3_pretrain"),
        log=lambda *a: None,
    )
    r = got.samples.set_index("ann_row").loc[3606]
    assert (r["source"], r["onset"], r["apex"]) == (MACRO, 1, 357) and r["note"].startswith("repaired: Onset 0 -> 1")
    assert [(x["file"], x["row"], x["applied"]) for x in got.repairs if x["file"] == ALL_SHEET] == [
        (ALL_SHEET, 3606, True)
    ]
    bad = shipped(tmp_path / "b", {"macro_repairs": [{**fix, "old": 5, "source": "a test"}]}).dataset("casme3_pretrain")
    with pytest.raises(CatalogError, match=r"datasets.casme3_pretrain.macro_repairs: .*row 3606: Onset is 0"):
        ingest_all(bad, log=lambda *a: None)


@pytest.mark.parametrize(
    "edit,match",
    [
        ({"adapter": "casme2"}, r"datasets\.x\.macro_annotation: adapter casme2 has no all-expressions sheet layout"),
        ({"macro_annotation": None}, r"datasets\.x\.macro_annotation_sheet: given without macro_annotation"),
        ({"macro_repairs": [{"row": 3}]}, r"datasets\.x\.macro_repairs\[0\]\.column: required key missing"),
    ],
)
def test_the_catalog_keys_are_checked(tmp_path, edit, match):
    entry = dict(SHIPPED["datasets"]["casme3_pretrain"], **edit)
    entry = {k: v for k, v in entry.items() if v is not None and k not in ("repairs", "unlabelled")}
    raw = {k: v for k, v in SHIPPED.items() if not k.startswith("x-")}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({**raw, "datasets": {"x": entry}}, sort_keys=False))
    with pytest.raises(CatalogError, match=match):
        load_catalog(path)


# ------------------------------------------------------------------ DVSCL pretrains on them


@pytest.mark.slow
def test_dvscl_pretrains_on_the_macro_pairs_and_its_probe_never_sees_them(tmp_path, monkeypatch):
    """A run of the shipped casme3_pretrain entry (face frames stand in) stores the macro
    pairs with the labelled ones; DVSCL's pretraining set holds both (macro label -1),
    the set its LOSO probe is fit and scored on holds the labelled only."""
    import cv2

    import training.dvscl.train as dvscl
    from pipeline.media import feat_test_data
    from pipeline.runner import run
    from training.dvscl.feed import DVSCLDataset

    face = cv2.cvtColor(cv2.imread(str(feat_test_data() / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    root = tmp_path / "CASME3"
    casme3_release(root, CASME3_REAL, REPAIRS, rows=LABEL_ROWS, macro_rows={3, 7}, face=face)
    monkeypatch.setenv("CASME3_ROOT", str(root))
    cat = shipped(tmp_path / "cat")
    ds = cat.dataset("casme3_pretrain")
    res = run(cat, ds, workers=1, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed
    man = res.manifest[res.manifest["status"] == "ok"]
    macro_ids = set(man.loc[man["source"] == MACRO, "sample_id"])
    label_ids = set(man.loc[man["source"] == "labelled", "sample_id"])
    assert macro_ids == {"casme3_pretrain/macro/spNO.1/a/268-289", "casme3_pretrain/macro/spNO.1/b/348-359"}
    assert len(label_ids) == 2
    store = cat.store_root / "casme3_pretrain"
    pre = DVSCLDataset(store, ds.scheme, sources=SOURCES)
    assert {r["sample_id"]: r["label"] for r in pre.rows if r["source"] == MACRO} == dict.fromkeys(macro_ids, -1)
    seen = {}

    class Stop(Exception):
        pass

    def pretrain(data, *a, **kw):
        seen["pretrain"] = {r["sample_id"] for r in data.rows}

    def features(enc, data, *a, **kw):
        seen["probe"] = {r["sample_id"] for r in data.rows}
        raise Stop

    monkeypatch.setattr(dvscl, "pretrain", pretrain)
    monkeypatch.setattr(dvscl, "features", features)
    with pytest.raises(Stop):
        dvscl.train_dvscl(store, ds.scheme, tmp_path / "out", "tiny", device="cpu", log=lambda *a: None, progress=False)
    assert seen == {"pretrain": macro_ids | label_ids, "probe": label_ids}
