"""CAS(ME)^3 laid out as released (the REAL v2 sheet and the authors' known-bad list from
../shared/datasets/casme3, stand-in frames), run through the SHIPPED catalog.yaml entry:
layout detection, the catalog's sheet repairs, the known-bad policy, the duration check,
per-class counts under every CAS(ME)^3 scheme and `mepipe plan`."""

import pandas as pd
import pytest
import yaml

from pipeline.catalog import CatalogError, load_catalog
from pipeline.fixtures import KNOWN_BAD, V2_SHEET, casme3_release, catalog_copy
from pipeline.ingest import ingest_all
from pipeline.plan import make_plan, print_plan
from tests.conftest import CASME3_REAL, REPO

pytestmark = pytest.mark.skipif(
    not (CASME3_REAL / V2_SHEET).is_file(), reason="real CAS(ME)^3 annotation files not beside the repo"
)

SHIPPED = yaml.safe_load((REPO / "catalog.yaml").read_text())
REPAIRS = SHIPPED["datasets"]["casme3"]["repairs"]


def shipped_catalog(tmp_path, edit=None):
    """The repository's catalog.yaml with its store/runs under tmp_path; `edit` changes the
    casme3 entry (a dict update)."""
    return load_catalog(catalog_copy(REPO / "catalog.yaml", tmp_path, {"casme3": edit or {}}))


def sheet_after_repairs() -> pd.DataFrame:
    """The v2 sheet with the catalog's repairs applied by plain pandas (the reference)."""
    ann = pd.read_excel(CASME3_REAL / V2_SHEET, sheet_name="label")
    for r in REPAIRS:
        ann.loc[r["row"] - 2, r["column"]] = r["new"]
    return ann


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme3_release") / "CASME3"
    casme3_release(root, CASME3_REAL, REPAIRS)
    return root


def test_plan_on_the_release_lists_every_labelled_sample(released, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CASME3_ROOT", str(released))
    cat = shipped_catalog(tmp_path)
    ds = cat.dataset("casme3")
    plan = make_plan(cat, ds)
    print_plan(ds, plan)
    text = capsys.readouterr().out
    s = plan.got.samples
    # 860 rows: the 5 broken ones repaired, the 15 known-bad samples kept (papers: ~860)
    assert len(s) == 860 and len(plan.got.exclusions) == 0
    n_subjects = pd.read_excel(CASME3_REAL / V2_SHEET, sheet_name="label")["Subject"].nunique()
    assert f"frames part_A/data/part_A/ ({n_subjects} spNO.<n> subject folders; one level below" in text
    assert f"annotation part_A/annotation/{V2_SHEET}" in text
    # per-class counts against an independent count of the sheet (pandas, emotion words as written)
    ref = sheet_after_repairs()["emotion"].str.lower().value_counts()
    assert plan.counts["casme3_7"] == {
        "happiness": ref["happy"],
        "disgust": ref["disgust"],
        "surprise": ref["surprise"],
        "anger": ref["anger"],
        "fear": ref["fear"],
        "sadness": ref["sad"],
        "others": ref["others"],
        "(not in the scheme)": 0,
    }
    neg = ref["anger"] + ref["disgust"] + ref["fear"] + ref["sad"]
    assert plan.counts["casme3_4"] == {
        "negative": neg,
        "positive": ref["happy"],
        "surprise": ref["surprise"],
        "others": ref["others"],
        "(not in the scheme)": 0,
    }
    assert plan.counts["casme3_3"] == {
        "negative": neg,
        "positive": ref["happy"],
        "surprise": ref["surprise"],
        "(not in the scheme)": ref["others"],
    }
    assert (plan.counts["casme3_7"]["others"], neg) == (161, 457)  # 'Others' x3 folded into 'others'
    assert "classes under casme3_4: negative 457, positive 55, surprise 187, others 161" in text, text
    # every repair applied and said, with its source; the known-bad effect printed
    assert sum(r["applied"] for r in plan.got.repairs) == len(REPAIRS) == 7
    assert (
        "sheet repairs: 7 applied" in text
        and "row 130 Apex: 83 -> 160 [applied] source: CAS(ME)3_part_A_v2.xls" in text
    )
    assert "15 sample(s) on it kept and noted (exclude_known_bad: false; true would leave 845)" in text
    # the clips longer than 5 s are kept (the papers count them) but flagged, each with a note
    ann = sheet_after_repairs()
    n_long = int(((ann["Offset"] - ann["Onset"] + 1) / 30 > 5).sum())
    assert f"  {n_long} sample(s) longer than a micro-expression's 5 s kept by max_duration_s 25, e.g. " in text
    assert s["note"].fillna("").str.contains("longer than 5 s: onset..offset spans").sum() == n_long == 16
    by_row = s.set_index("ann_row")
    assert (
        by_row.loc[130, "apex"],
        by_row.loc[751, "onset"],
        by_row.loc[752, "onset"],
        by_row.loc[752, "apex"],
        by_row.loc[710, "offset"],
        by_row.loc[798, "offset"],
        by_row.loc[800, "offset"],
    ) == (160, 2647, 1, 1, 34, 1845, 2403)
    assert by_row.loc[130, "note"].startswith("repaired: Apex 83 -> 160 (CAS(ME)3_part_A_v2.xls")
    assert by_row.loc[752, "onset_path"] == "part_A/data/part_A/spNO.216/e/color/1.jpg"
    assert by_row.loc[752, "onset_depth_path"] == "part_A/data/part_A/spNO.216/e/depth/1.png"
    kb = s[s["note"].fillna("").str.contains("on the known-bad list")]
    listed = pd.read_excel(CASME3_REAL / KNOWN_BAD).head(15)  # the 15 "remove" rows
    assert sorted(zip(kb["subject"], kb["clip"], kb["apex"])) == sorted(
        zip(listed["Subject"], listed["Filename"], listed["Apex"])
    )
    # the tables are written
    assert len(pd.read_parquet(plan.samples_path)) == 860
    assert pd.read_parquet(plan.exclusions_path).empty


def test_without_repairs_and_with_the_default_duration_limit(released, tmp_path, monkeypatch):
    """The shipped choices, undone one by one, give what the sheet alone gives."""
    monkeypatch.setenv("CASME3_ROOT", str(released))
    cat = shipped_catalog(tmp_path, {"repairs": [], "max_duration_s": 5, "exclude_known_bad": True})
    got = ingest_all(cat.dataset("casme3"), cat, log=lambda *a: None)
    reasons = got.exclusions.groupby("reason").size().to_dict()
    ann = pd.read_excel(CASME3_REAL / V2_SHEET, sheet_name="label")
    span = (ann["Offset"] - ann["Onset"] + 1) / 30
    long_ok = int(((span > 5) & (ann["Apex"] >= ann["Onset"]) & (ann["Onset"] > 0)).sum())
    assert reasons == {"apex_before_onset": 2, "onset_zero": 1, "too_long": long_ok, "known_bad_frame": 15}
    assert len(got.samples) == 860 - 3 - long_ok - 15
    tl = got.exclusions[got.exclusions["reason"] == "too_long"].set_index("ann_row")
    assert "onset 5 .. offset 3460 spans 3456 frames = 115.2 s at 30 fps" in tl.loc[710, "detail"]


def test_layout_variants_are_detected(tmp_path, monkeypatch):
    rows = {2, 3, 752}
    # no extra part_A/ level, sheets at the root, depth PNGs in the clip folder
    root = tmp_path / "flat"
    casme3_release(
        root, CASME3_REAL, REPAIRS, rows=rows, extra_level=False, sheets_under_annotation=False, depth_in_clip=True
    )
    monkeypatch.setenv("CASME3_ROOT", str(root))
    got = ingest_all(shipped_catalog(tmp_path / "c1").dataset("casme3"), log=lambda *a: None)
    line = got.layouts["casme3"].describe()
    assert line.startswith("frames part_A/data/ (") and f"annotation {V2_SHEET}" in line
    assert "depth as PNGs in the clip folder" in line
    s = got.samples.set_index("ann_row")
    assert len(s) == 3 and s.loc[752, "onset_depth_path"] == "part_A/data/spNO.216/e/1.png"


def test_missing_frames_say_what_was_tried_and_found(tmp_path, monkeypatch):
    root = tmp_path / "odd"
    casme3_release(root, CASME3_REAL, REPAIRS, rows={2})
    (root / "part_A" / "data").rename(root / "part_A" / "frames")  # an unusual copy
    monkeypatch.setenv("CASME3_ROOT", str(root))
    with pytest.raises(CatalogError) as e:
        ingest_all(shipped_catalog(tmp_path / "c").dataset("casme3"), log=lambda *a: None)
    msg = str(e.value)
    assert "datasets.casme3.frames_dir: no frames found" in msg and "Tried part_A/data/ (absent)" in msg
    assert (
        "found part_A/frames/part_A/ (1 spNO.<n> subject folders, e.g. part_A/frames/part_A/spNO.1/...); "
        "set datasets.casme3.frames_dir: part_A/frames/part_A" in msg
    )


def test_a_repair_that_does_not_match_the_sheet_is_an_error(released, tmp_path, monkeypatch):
    monkeypatch.setenv("CASME3_ROOT", str(released))
    bad = [dict(REPAIRS[0], old=84)]
    with pytest.raises(
        CatalogError,
        match=r"repairs: cas\(me\)3_part_A_ME_label_JpgIndex_v2.xlsx row 130: Apex is 83, "
        r"the repair .* expects 84: the sheet is not the one",
    ):
        ingest_all(shipped_catalog(tmp_path / "a", {"repairs": bad}).dataset("casme3"), log=lambda *a: None)
    moved = [dict(REPAIRS[0], match={"Subject": "spNO.150", "Filename": "d"})]
    with pytest.raises(CatalogError, match="row 130: Subject is 'spNO.149', the repair .* is for Subject 'spNO.150'"):
        ingest_all(shipped_catalog(tmp_path / "b", {"repairs": moved}).dataset("casme3"), log=lambda *a: None)


def test_known_bad_list_rows_to_remove_only():
    from pipeline.ingest import read_known_bad

    bad = read_known_bad(CASME3_REAL / KNOWN_BAD)
    raw = pd.read_excel(CASME3_REAL / KNOWN_BAD)
    assert len(raw) == 16 and len(bad) == 15  # the 16th row is the spNO.216 e shift
    assert ("spNO.216", "e", 0) not in bad and ("spNO.2", "e", 143) in bad


@pytest.mark.slow
def test_a_run_on_the_release_computes_the_repaired_samples(tmp_path, monkeypatch):
    """Real face frames stand in for a few rows of the real sheet (the rest of the clips
    are absent: clip_missing); a whole run through the shipped catalog entry computes
    them, repaired rows included, and records layout, repairs and class counts."""
    import json

    import cv2

    from pipeline.media import feat_test_data
    from pipeline.runner import run
    from pipeline.store import Store
    from pipeline.versions import card

    face = cv2.cvtColor(cv2.imread(str(feat_test_data() / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    rows = {2, 130, 752, 798}  # a plain row, a repaired apex, onset 0 -> 1, offset 0 -> 1845
    root = tmp_path / "CASME3"
    casme3_release(root, CASME3_REAL, REPAIRS, rows=rows, face=face)
    monkeypatch.setenv("CASME3_ROOT", str(root))
    cat = shipped_catalog(tmp_path / "cat")
    res = run(cat, cat.dataset("casme3"), workers=1, log=lambda *a: None, progress=False, methods=["dvscl"])
    assert res.committed
    man = res.manifest.set_index("ann_row")
    assert sorted(man.index) == sorted(rows) and (man["status"] == "ok").all()
    assert (man.loc[752, "onset"], man.loc[130, "apex"], man.loc[798, "offset"]) == (1, 160, 1845)
    # the other rows: their clip folder is absent, or present without their frames
    assert len(res.excluded) == 860 - len(rows) and set(res.excluded["reason"]) == {"clip_missing", "frame_missing"}
    st = Store(cat.store_root / "casme3", create=False)
    meta = st.repo.lookup_snapshot(res.snapshot).metadata
    assert meta["layout"]["casme3"].startswith("frames part_A/data/part_A/")
    assert [(r["row"], r["column"]) for r in meta["repairs"]] == [(r["row"], r["column"]) for r in REPAIRS]
    emo = sheet_after_repairs().set_index(pd.Index(range(2, 862))).loc[sorted(rows), "emotion"].str.lower()
    assert meta["class_counts"]["casme3_7"]["disgust"] == int((emo == "disgust").sum())
    assert sum(v for k, v in meta["class_counts"]["casme3_4"].items()) == len(rows)
    text = card(st, res.snapshot)
    assert (
        "Per class under label scheme `casme3_4`" in text
        and "| cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx | 130 | Apex | 83 | 160 | yes |" in text
    )
    json.dumps(meta)  # provenance stays plain JSON
    # the plan now sees the store: nothing to compute for the same methods, the four samples
    # reused; a run of every method would compute their other products
    w = make_plan(cat, cat.dataset("casme3"), methods=["dvscl"]).work
    assert (w["compute"], w["reuse"], w["new"], w["gone"]) == (0, len(rows), 0, 0)
    assert make_plan(cat, cat.dataset("casme3")).work["compute"] == len(rows)


def test_part_b_extra_level_is_detected_too(tmp_path, monkeypatch):
    """casme3_pretrain reads Part B's long recordings; an extra part_B/ level is found the
    same way, and list_recordings then sees the recordings."""
    import cv2
    import numpy as np

    from pipeline.layout import resolve
    from pipeline.screening import list_recordings

    root = tmp_path / "CASME3"
    casme3_release(root, CASME3_REAL, REPAIRS, rows={2})
    rec = root / "part_B" / "data" / "part_B" / "spNO.7" / "a" / "color"
    rec.mkdir(parents=True)
    for n in (1, 2, 10):
        cv2.imwrite(str(rec / f"{n}.jpg"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setenv("CASME3_ROOT", str(root))
    ds, found = resolve(shipped_catalog(tmp_path / "c").dataset("casme3_pretrain"))
    assert found.unlabelled_frames_dir == "part_B/data/part_B"
    assert "unlabelled frames part_B/data/part_B/ (1 spNO.<n> subject folders" in found.describe()
    (r,) = list_recordings(ds)
    assert (r["subject"], r["name"], r["n_frames"]) == ("spNO.7", "a", 3)
    assert r["frames"][10] == "part_B/data/part_B/spNO.7/a/color/10.jpg"


def test_folders_spelt_otherwise_than_the_sheet_are_found_with_their_depth(tmp_path, monkeypatch):
    """The sheet writes spNO.14 'J' and spNO.1 'j'; a copy whose folders are 'j' and 'J'
    (as the authors' damaged-image list spells them for spNO.3/spNO.4) or whose subject
    folder is zero-padded still gives the colour AND the depth frames."""
    root = tmp_path / "CASME3"
    frames = casme3_release(root, CASME3_REAL, REPAIRS, rows={9, 61})
    (frames / "spNO.14" / "J").rename(frames / "spNO.14" / "j")
    (frames / "spNO.1").rename(frames / "spNO.01")
    monkeypatch.setenv("CASME3_ROOT", str(root))
    got = ingest_all(shipped_catalog(tmp_path / "c").dataset("casme3"), log=lambda *a: None)
    s = got.samples.set_index("ann_row")
    assert sorted(s.index) == [9, 61]
    assert s.loc[61, "onset_path"] == "part_A/data/part_A/spNO.14/j/color/1012.jpg"
    assert s.loc[61, "onset_depth_path"] == "part_A/data/part_A/spNO.14/j/depth/1012.png"
    assert s.loc[9, "apex_depth_path"] == "part_A/data/part_A/spNO.01/j/depth/33.png"


def test_mepipe_plan_command(released, tmp_path, monkeypatch, capsys):
    """`mepipe plan` (what `make plan DATASET=casme3` runs): exit 0, the report, the two
    Parquet tables where --out says."""
    from mepipe.cli import main

    monkeypatch.setenv("CASME3_ROOT", str(released))
    cat = shipped_catalog(tmp_path)
    out = tmp_path / "p" / "plan.parquet"
    assert main(["--catalog", str(cat.path), "plan", "--dataset", "casme3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"plan casme3 (casme3_part_a) at {released}") and "samples: 860 (labelled 860)" in text
    assert len(pd.read_parquet(out)) == 860 and (tmp_path / "p" / "plan.exclusions.parquet").is_file()
    # a catalog mistake is a one-line error and exit 2
    monkeypatch.setenv("CASME3_ROOT", str(tmp_path / "nowhere"))
    assert main(["--catalog", str(cat.path), "plan", "--dataset", "casme3"]) == 2
    assert "error: dataset 'casme3': root" in capsys.readouterr().err
