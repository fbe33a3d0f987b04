"""Every adapter on a fixture in its dataset's real layout (real column names, real traps),
and `validate` reporting exactly the planted problems."""

import pytest
import yaml

from pipeline.catalog import CatalogError, load_catalog
from pipeline.fixtures import FIXTURES, write_fixture
from pipeline.ingest import index_tree, ingest, ingest_all
from pipeline.validate import print_report, validate
from tests.conftest import CASME3_REAL, REPO

SHIPPED = yaml.safe_load((REPO / "catalog.yaml").read_text())


def fixture_catalog(tmp_path, name, monkeypatch):
    """A catalog for the fixture of dataset `name`, carrying the shipped catalog's sheet
    repairs for that dataset (they must hold on a sheet laid out as released)."""
    root = tmp_path / "data"
    entry, planted = write_fixture(name, root)
    if SHIPPED["datasets"].get(name, {}).get("repairs"):
        entry["repairs"] = SHIPPED["datasets"][name]["repairs"]
    schemes = SHIPPED["label_schemes"]
    cat = {
        "store_root": "stores",
        "runs_root": "runs",
        "label_schemes": schemes,
        "datasets": {"f": {**entry, "root_env": "MEPIPE_FIXTURE_ROOT"}},
    }
    p = tmp_path / "catalog.yaml"
    p.write_text(yaml.safe_dump(cat, sort_keys=False))
    monkeypatch.setenv("MEPIPE_FIXTURE_ROOT", str(root))
    return load_catalog(p).dataset("f"), planted, root


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_validate_reports_exactly_the_planted_problems(tmp_path, monkeypatch, name):
    ds, planted, _ = fixture_catalog(tmp_path, name, monkeypatch)
    rep = validate(ds)
    found = {(reason, where) for reason, items in rep["problems"].items() for where, _ in items}
    assert found == planted, rep["problems"]
    assert rep["samples"] > 0
    # validate says which layout it found (the fixture's frames folder, with what is in it)
    assert rep["layout"]["f"].startswith(f"frames {ds.frames_dir}/ (")
    lines = []
    print_report(ds, rep, out=lines.append)
    assert lines[1] == f"  layout detected (f): {rep['layout']['f']}"


def test_casme2(tmp_path, monkeypatch):
    ds, _, root = fixture_catalog(tmp_path, "casme2", monkeypatch)
    s, e = ingest(ds)
    r = s.set_index("clip")
    assert list(s["subject"]) == ["sub01", "sub01", "sub04"]
    a = r.loc["EP02_01f"]
    assert (a.onset, a.apex, a.offset, a.au_list, a.emotion) == (2, 5, 9, [4, 10], "happiness")
    assert a.onset_path.endswith("sub01/EP02_01f/img2.jpg")  # img2, not img12: number, not text order
    assert [p.rsplit("img", 1)[1] for p in a.seq_paths] == [f"{i}.jpg" for i in range(2, 10)]
    b = r.loc["EP03_02"]
    assert b.apex_derived and b.apex == 7 and "midpoint" in b.note  # "/" apex
    assert b.au_raw == "R12 + R15" and b.au_list == [12, 15]
    assert list(b.modalities) == ["rgb"]


def test_samm_header_under_preamble(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "samm", monkeypatch)
    s, e = ingest(ds)
    assert set(s["subject"]) == {"006", "007"}
    x = s.set_index("subject").loc["006"]
    assert x.ann_row == 15 and x.au_list == [4] and x.emotion == "anger"
    y = s.set_index("subject").loc["007"]
    assert y.offset is None or y.offset != y.offset  # offset 0 -> unknown
    assert "offset 0" in y.note and "missing" in y.note  # and the gap at frame 105 is noted


def test_smic_from_folders(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "smic_hs", monkeypatch)
    s, e = ingest(ds)
    assert sorted(s["emotion"]) == ["negative", "positive", "positive", "surprise"]
    r = s.set_index("clip")
    assert s["apex_derived"].all() and (s["onset"] == 100).all()
    assert list(r.loc[["s1_ne_01", "s1_po_01", "s2_sur_01"], "apex"]) == [105, 105, 105]  # 11 frames 100..110
    # 10 frames 100..109: onset + (offset - onset) // 2 = 104 (the MEB toolkit's and the MEGC
    # baselines' convention; the list's middle element would be 105)
    assert r.loc["s1_po_02", "apex"] == 104 and r.loc["s1_po_02", "offset"] == 109
    assert "onset + (offset - onset) // 2" in r.loc["s1_po_02", "note"]


def test_mmew_rows_without_apex_get_the_published_estimates(tmp_path, monkeypatch):
    from pipeline.fixtures import MMEW_NO_APEX

    ds, _, _ = fixture_catalog(tmp_path, "mmew", monkeypatch)
    got = ingest_all(ds)
    s = got.samples.set_index("ann_row")
    assert s.loc[2, "emotion"] == "happiness" and s.loc[2, "au_list"] == [12]
    # every one of the 16 blank rows carries MEB's estimated apex and offset, said in its note
    assert {r: (s.loc[r, "apex"], s.loc[r, "offset"]) for r in MMEW_NO_APEX} == MMEW_NO_APEX
    assert not s.loc[list(MMEW_NO_APEX), "apex_derived"].any()
    assert s.loc[37, "note"].startswith("repaired: ApexFrame (blank) -> 15 (MEB toolkit")
    # the source does not say what the offsets held: whatever was there is replaced and recorded
    assert "repaired: OffsetFrame 70 -> 75 (MEB toolkit" in s.loc[35, "note"]
    off35 = next(r for r in got.repairs if (r["row"], r["column"]) == (35, "OffsetFrame"))
    assert (off35["old"], off35["sheet_value"], off35["new"]) == ("any", 70, 75)
    assert len(got.repairs) == 32 and all(r["applied"] for r in got.repairs)
    # a row whose apex is a number is not the row the repair was written for: an error
    ds.repairs = [dict(SHIPPED["datasets"]["mmew"]["repairs"][0], row=36)]
    with pytest.raises(
        CatalogError,
        match=r"MMEW_Micro_Exp.xlsx row 36: ApexFrame is 4, the repair .* expects "
        r"\(blank or not a frame number\)",
    ):
        ingest_all(ds)
    # without the repairs the blank-apex rows are midpoints of nothing: excluded, naming the row
    ds.repairs = []
    e = ingest_all(ds).exclusions.set_index("ann_row")
    assert e.loc[37, "reason"] == "apex_missing" and "row 37" in e.loc[37, "detail"]


def test_4dme_k_markers_and_swapped_rows(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "4dme", monkeypatch)
    got = ingest_all(ds)
    s = got.samples.set_index("ann_row")
    assert s.loc[2, "au_list"] == [14, 28] and s.loc[3, "apex_derived"]
    # (k) markers: parsed, the marker kept in the raw string and flagged in au_marked
    assert (s.loc[4, "au_raw"], s.loc[4, "au_list"], s.loc[4, "au_marked"]) == ("AU12(k)+25", [12, 25], [12])
    assert (s.loc[5, "au_list"], s.loc[5, "au_marked"]) == ([1, 2, 5], [5])
    assert "au_unparsable" not in set(got.exclusions["reason"])
    # rows 146/147 exchanged back: the AU string and the one-hot label columns after it, which
    # now agree with each row's Emotion (checked by the repair itself)
    assert (s.loc[146, "au_raw"], s.loc[147, "au_raw"]) == ("12+25(k)", "4+7")
    assert (s.loc[146, "emotion"], s.loc[147, "emotion"]) == ("positive", "negative")
    assert "exchanged with row 147" in s.loc[146, "note"] and "AUs '4+7' -> '12+25(k)'" in s.loc[146, "note"]
    (rec,) = got.repairs
    assert rec["row"] == [146, 147] and rec["applied"]
    assert rec["column"] == ["AUs", "Positive", "Negative", "Surprise", "Repression", "Others"]
    # a sheet whose two rows are already right is left alone, and said so
    import openpyxl

    path = ds.root() / ds.annotation
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for col in range(7, 13):
        ws.cell(146, col).value, ws.cell(147, col).value = ws.cell(147, col).value, ws.cell(146, col).value
    wb.save(path)
    got2 = ingest_all(ds)
    assert not got2.repairs[0]["applied"] and "already agree with Emotion" in got2.repairs[0]["why"]
    assert got2.samples.set_index("ann_row").loc[146, "au_raw"] == "12+25(k)"
    # a sheet where the swap would not make them agree: an error, not a silent swap
    ws.cell(146, 3).value = "Surprise"
    wb.save(path)
    with pytest.raises(
        CatalogError,
        match="does not fit the sheet: do the one-hot labels of rows 146/147 agree "
        "with Emotion\\? no/yes now, no/no after the swap",
    ):
        ingest_all(ds)


def test_casme3_part_c_padded_subjects_and_uncertain_aus(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "casme3_part_c", monkeypatch)
    s, _ = ingest(ds)
    r = s.set_index("subject")
    assert list(s["subject"]) == ["1", "2"]
    assert r.loc["1", "apex"] == 379 and r.loc["1", "apex_derived"] and r.loc["1", "au_list"] == [4, 5]
    # sheet subject 2 lives in folder 02; AU '13?' is AU13, marked uncertain
    assert r.loc["2", "onset_path"] == "part_C/data/02/color/11.jpg" and r.loc["2", "apex"] == 14
    assert (r.loc["2", "au_list"], r.loc["2", "au_marked"]) == ([4, 13], [13])


@pytest.mark.skipif(not (CASME3_REAL / "CAS(ME)3_part_C_ME.xlsx").is_file(), reason="real files absent")
def test_real_part_c_sheet(tmp_path, monkeypatch):
    """The REAL Part C sheet: 165 ME rows, every apex derived (midpoint), comma AUs parsed."""
    import shutil

    root = tmp_path / "data"
    (root / "part_C" / "data").mkdir(parents=True)
    shutil.copy(CASME3_REAL / "CAS(ME)3_part_C_ME.xlsx", root)
    p = tmp_path / "catalog.yaml"
    text = (REPO / "catalog.yaml").read_text()
    p.write_text(text.replace("store_root: data/stores", "store_root: stores"))
    monkeypatch.setenv("CASME3_ROOT", str(root))
    ds = load_catalog(p).dataset("casme3_part_c")
    import pandas as pd

    from stages.adapters.annotated import annotated_samples
    from stages.adapters.layouts import LAYOUTS

    ann = pd.read_excel(root / "CAS(ME)3_part_C_ME.xlsx", sheet_name="mockCrimeME")
    index = {
        f"{s}/color": {
            k: f"p/{s}/{k}.jpg" for r in ann[ann["sub"] == s].itertuples() for k in range(r.onset, r.offset + 1)
        }
        for s in ann["sub"].unique()
    }
    s, e = annotated_samples(
        ann,
        LAYOUTS["casme3_part_c"],
        ann_file="C.xlsx",
        dataset="c",
        fps=30,
        frames_prefix="part_C/data",
        frame_index=index,
    )
    assert len(ann) == 165 and len(s) == 165 and e.empty  # every row parses (no au_unparsable)
    assert s["apex_derived"].all() and (s["apex"] == (s["onset"] + s["offset"]) // 2).all()
    r = s.set_index("ann_row")
    assert r.loc[2, "au_list"] == [4, 5]  # "R4,5"
    assert (r.loc[31, "au_raw"], r.loc[31, "au_list"], r.loc[31, "au_marked"]) == ("13?", [13], [13])
    assert (r.loc[18, "au_list"], r.loc[18, "au_marked"]) == ([4, 11], [])  # full-width comma
    assert ds.adapter == "casme3_part_c"


def test_symlink_loop_in_frames_is_named(tmp_path):
    d = tmp_path / "frames" / "a"
    d.mkdir(parents=True)
    (d / "loop").symlink_to(tmp_path / "frames")
    with pytest.raises(CatalogError, match="symlink loop"):
        index_tree(tmp_path / "frames", "frames")


def test_annotation_path_cannot_leave_the_root(tmp_path, monkeypatch):
    ds, _, root = fixture_catalog(tmp_path, "mmew", monkeypatch)
    ds.annotation = "../../etc/passwd"
    with pytest.raises(CatalogError, match="leaves the dataset root"):
        ds.file("annotation")


def composite_catalog(tmp_path, monkeypatch):
    schemes = SHIPPED["label_schemes"]
    dsets = {}
    for part, env in (("casme2", "CASME2_ROOT"), ("samm", "SAMM_ROOT"), ("smic_hs", "SMIC_ROOT")):
        entry, _ = write_fixture(part, tmp_path / part)
        dsets[part] = {**entry, "root_env": env}
        monkeypatch.setenv(env, str(tmp_path / part))
    dsets["megc2019"] = dict(SHIPPED["datasets"]["megc2019"])
    p = tmp_path / "catalog.yaml"
    p.write_text(
        yaml.safe_dump(
            {"store_root": "stores", "runs_root": "runs", "label_schemes": schemes, "datasets": dsets}, sort_keys=False
        )
    )
    return load_catalog(p)


def test_megc2019_composite_is_the_official_list(tmp_path, monkeypatch):
    import pandas as pd

    cat = composite_catalog(tmp_path, monkeypatch)
    got = ingest_all(cat.dataset("megc2019"), cat, log=lambda *a: None)
    s, e = got.samples, got.exclusions
    by = s.set_index("sample_id")
    # the seven fixture clips that the official list names, with the list's class and names
    assert sorted(by.index) == [
        "megc2019/casme2/sub01/EP02_01f/2-5",
        "megc2019/samm/006/006_1_2/5561-5565",
        "megc2019/samm/007/007_3_1/101-104",
        "megc2019/smic_hs/s1/s1_ne_01/100-105",
        "megc2019/smic_hs/s1/s1_po_01/100-105",
        "megc2019/smic_hs/s1/s1_po_02/100-104",
        "megc2019/smic_hs/s2/s2_sur_01/100-105",
    ]
    lst = pd.read_csv(
        REPO / "stages" / "data" / "megc2019_combined_3class_gt.csv",
        header=None,
        names=["ds", "subject", "clip", "cls"],
    )
    assert len(lst) == 442 and lst.groupby("ds").size().to_dict() == {"casme2": 145, "samm": 133, "smic": 164}
    want = {"samm": ("6", "006_1_2"), "smic_hs": ("s01", "s01_ne_01")}
    assert tuple(by.loc["megc2019/samm/006/006_1_2/5561-5565", ["ref_subject", "ref_clip"]]) == want["samm"]
    assert tuple(by.loc["megc2019/smic_hs/s1/s1_ne_01/100-105", ["ref_subject", "ref_clip"]]) == want["smic_hs"]
    for sid, r in by.iterrows():  # the class is the list's (0 negative, 1 positive, 2 surprise)
        row = lst[(lst["subject"] == r["ref_subject"]) & (lst["clip"] == r["ref_clip"])]
        assert len(row) == 1 and r["emotion"] == ["negative", "positive", "surprise"][int(row["cls"].iloc[0])]
    assert sorted(set(s["subject"])) == ["casme2_sub01", "samm_006", "samm_007", "smic_hs_s1", "smic_hs_s2"]
    # the list says negative where this copy's sheet says Other (not mapped): the list wins, said in the note
    assert got.composite["samm"]["class_disagrees"] == [
        "megc2019_combined_3class_gt.csv line 321 (samm 7 007_3_1, negative): emotion 'other' maps to None"
    ]
    assert "class negative from the official list" in by.loc["megc2019/samm/007/007_3_1/101-104", "note"]
    # clips the mapping would add (CASME II sub01 EP03_02 disgust, sub04 EP12_01f repression) are not used
    rep = got.composite["casme2"]
    assert sorted(rep["mapping_would_add"]) == [
        "casme2/sub01/EP03_02/3-7 (disgust -> negative)",
        "casme2/sub04/EP12_01f/2-6 (repression -> negative)",
    ]
    nl = e[e["reason"] == "not_in_official_list"].set_index("sample_id")
    assert "the emotion mapping would add it as negative" in nl.loc["megc2019/casme2/sub04/EP12_01f/2-6", "detail"]
    # every other line of the list is reported missing from this copy, by line
    missing = e[e["reason"] == "list_clip_missing"]
    assert len(missing) == 442 - 7 and sum(len(r["missing"]) for r in got.composite.values()) == 435
    assert "megc2019_combined_3class_gt.csv line 2 (casme2 sub01 EP19_05f, negative)" in missing["detail"].iloc[0]
    root = cat.dataset("megc2019").root()
    assert all((root / p).is_file() for p in s["onset_path"])  # paths via the part links
    # a part without a root is skipped and its list lines reported, not a failure
    monkeypatch.delenv("SAMM_ROOT")
    got2 = ingest_all(cat.dataset("megc2019"), cat, log=lambda *a: None)
    assert not got2.samples["subject"].str.startswith("samm_").any() and len(got2.samples) == 5
    assert len(got2.composite["samm"]["missing"]) == 133 and "SAMM_ROOT" in got2.composite["samm"]["skipped"]


def test_casme2_sq_naming_rules(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "casme2_sq", monkeypatch)
    s, e = ingest(ds)
    assert list(s["clip"]) == ["15_0401angrywhy", "15_0401angrywhy"] and set(s["subject"]) == {"s15"}
    r = s.set_index("ann_row")
    assert (r.loc[1, "onset"], r.loc[1, "apex"], r.loc[1, "offset"]) == (5, 9, 14)
    assert r.loc[2, "offset"] == 25 and "apex used" in r.loc[2, "note"]  # offset 0 means "use apex"
    assert set(s["emotion"]) == {"negative"}


@pytest.mark.parametrize(
    "line, msg",
    [
        ("casme2,sub01,EP02_01f,3", r"line 2: class '3' is not one of 0..2 \(negative, positive, surprise\)"),
        ("casme,sub01,EP02_01f,1", r"line 2: dataset 'casme' is not a part of this composite"),
        ("casme2,sub1,ep02_01F,1", r"line 2: casme2 sub1 ep02_01F is listed already on line 1"),
    ],
)
def test_an_official_list_that_cannot_be_matched_is_refused(tmp_path, line, msg):
    import pandas as pd

    from stages.adapters.composite import parse_official_list

    raw = pd.read_csv(__import__("io").StringIO("casme2,sub01,EP02_01f,1\n" + line + "\n"), header=None)
    with pytest.raises(ValueError, match=msg):
        parse_official_list(raw, "list.csv", ["negative", "positive", "surprise"], ["casme2", "samm", "smic_hs"])


@pytest.mark.parametrize("name", ["4dme", "casme2", "mmew", "smic_hs"])
def test_an_extra_folder_level_is_detected_for_every_dataset(tmp_path, monkeypatch, name):
    """Unpacked into a folder of the archive's name (gray_micro/gray_micro/S01/...): the
    frames are found one level down, with the same samples as the plain copy."""
    ds, _, root = fixture_catalog(tmp_path, name, monkeypatch)
    plain = ingest_all(ds)
    top = root / ds.frames_dir
    top.rename(root / "tmp_move")
    top.mkdir()
    (root / "tmp_move").rename(top / top.name)
    got = ingest_all(ds)
    assert got.layouts["f"].frames_dir == f"{ds.frames_dir}/{top.name}"
    assert "one level below datasets.f.frames_dir" in got.layouts["f"].describe()
    assert list(got.samples["sample_id"]) == list(plain.samples["sample_id"])
    assert got.samples["onset_path"].str.startswith(f"{ds.frames_dir}/{top.name}/").all()
