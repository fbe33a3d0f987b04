"""Every adapter on a fixture in its dataset's real layout (real column names, real traps),
and `validate` reporting exactly the planted problems."""

import pytest
import yaml

from pipeline.catalog import CatalogError, load_catalog
from pipeline.fixtures import FIXTURES, write_fixture
from pipeline.ingest import index_tree, ingest
from pipeline.validate import validate
from tests.conftest import CASME3_REAL, REPO


def fixture_catalog(tmp_path, name, monkeypatch):
    root = tmp_path / "data"
    entry, planted = write_fixture(name, root)
    schemes = yaml.safe_load((REPO / "catalog.yaml").read_text())["label_schemes"]
    cat = {"store_root": "stores", "runs_root": "runs", "label_schemes": schemes,
           "datasets": {"f": {**entry, "root_env": "MEPIPE_FIXTURE_ROOT"}}}
    p = tmp_path / "catalog.yaml"
    p.write_text(yaml.safe_dump(cat))
    monkeypatch.setenv("MEPIPE_FIXTURE_ROOT", str(root))
    return load_catalog(p).dataset("f"), planted, root


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_validate_reports_exactly_the_planted_problems(tmp_path, monkeypatch, name):
    ds, planted, _ = fixture_catalog(tmp_path, name, monkeypatch)
    rep = validate(ds)
    found = {(reason, where) for reason, items in rep["problems"].items() for where, _ in items}
    assert found == planted, rep["problems"]
    assert rep["samples"] > 0


def test_casme2(tmp_path, monkeypatch):
    ds, _, root = fixture_catalog(tmp_path, "casme2", monkeypatch)
    s, e = ingest(ds)
    r = s.set_index("clip")
    assert list(s["subject"]) == ["sub01", "sub01"]
    a = r.loc["EP02_01f"]
    assert (a.onset, a.apex, a.offset, a.au_list, a.emotion) == (2, 5, 9, [4, 10], "happiness")
    assert a.onset_path.endswith("sub01/EP02_01f/img2.jpg")          # img2, not img12: number, not text order
    assert [p.rsplit("img", 1)[1] for p in a.seq_paths] == [f"{i}.jpg" for i in range(2, 10)]
    b = r.loc["EP03_02"]
    assert b.apex_derived and b.apex == 7 and "midpoint" in b.note   # "/" apex
    assert b.au_raw == "R12 + R15" and b.au_list == [12, 15]
    assert list(b.modalities) == ["rgb"]


def test_samm_header_under_preamble(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "samm", monkeypatch)
    s, e = ingest(ds)
    assert set(s["subject"]) == {"006", "007"}
    x = s.set_index("subject").loc["006"]
    assert x.ann_row == 15 and x.au_list == [4] and x.emotion == "anger"
    y = s.set_index("subject").loc["007"]
    assert y.offset is None or y.offset != y.offset          # offset 0 -> unknown
    assert "offset 0" in y.note and "missing" in y.note      # and the gap at frame 105 is noted


def test_smic_from_folders(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "smic_hs", monkeypatch)
    s, e = ingest(ds)
    assert sorted(s["emotion"]) == ["negative", "positive", "surprise"]
    assert s["apex_derived"].all() and (s["apex"] == 105).all() and (s["onset"] == 100).all()


def test_mmew_4dme_partc(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path / "m", "mmew", monkeypatch)
    s, _ = ingest(ds)
    assert sorted(s["emotion"]) == ["happiness", "surprise"] and s.iloc[0]["au_list"] == [12]
    ds, _, _ = fixture_catalog(tmp_path / "d", "4dme", monkeypatch)
    s, _ = ingest(ds)
    assert sorted(map(tuple, s["au_list"])) == [(4,), (14, 28)]
    assert s.set_index("emotion").loc["negative"].apex_derived
    ds, _, _ = fixture_catalog(tmp_path / "c", "casme3_part_c", monkeypatch)
    s, _ = ingest(ds)
    assert len(s) == 1 and s.iloc[0]["apex"] == 379 and s.iloc[0]["apex_derived"] and s.iloc[0]["au_list"] == [4, 5]


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
    index = {f"{s}/color": {k: f"p/{s}/{k}.jpg" for r in ann[ann["sub"] == s].itertuples()
                            for k in range(r.onset, r.offset + 1)} for s in ann["sub"].unique()}
    s, e = annotated_samples(ann, LAYOUTS["casme3_part_c"], ann_file="C.xlsx", dataset="c", fps=30,
                             frames_prefix="part_C/data", frame_index=index)
    assert len(ann) == 165 and len(s) + len(e) == 165
    assert s["apex_derived"].all() and (s["apex"] == (s["onset"] + s["offset"]) // 2).all()
    assert s.set_index("ann_row").loc[2, "au_list"] == [4, 5]     # "R4,5"
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


def composite_catalog(tmp_path, monkeypatch, expected=None):
    schemes = yaml.safe_load((REPO / "catalog.yaml").read_text())["label_schemes"]
    repo_ds = yaml.safe_load((REPO / "catalog.yaml").read_text())["datasets"]
    dsets = {}
    for part, env in (("casme2", "CASME2_ROOT"), ("samm", "SAMM_ROOT"), ("smic_hs", "SMIC_ROOT")):
        entry, _ = write_fixture(part, tmp_path / part)
        dsets[part] = {**entry, "root_env": env}
        monkeypatch.setenv(env, str(tmp_path / part))
    comp = dict(repo_ds["megc2019"])
    if expected is not None:
        comp["expected_counts"] = expected
    dsets["megc2019"] = comp
    p = tmp_path / "catalog.yaml"
    p.write_text(yaml.safe_dump({"store_root": "stores", "runs_root": "runs", "label_schemes": schemes,
                                 "datasets": dsets}))
    return load_catalog(p)


def test_megc2019_composite(tmp_path, monkeypatch):
    cat = composite_catalog(tmp_path, monkeypatch, expected={"casme2": 2, "samm": 1, "smic_hs": 3})
    s, e = ingest(cat.dataset("megc2019"), cat, log=lambda *a: None)
    assert sorted(set(s["subject"])) == ["casme2_sub01", "samm_006", "smic_hs_s1", "smic_hs_s2"]
    assert set(s["emotion"]) <= {"negative", "positive", "surprise"}
    by = s.set_index("sample_id")
    assert by.loc["megc2019/casme2/sub01/EP02_01f/2-5", "emotion"] == "positive"      # CASME II happiness
    assert by.loc["megc2019/samm/006/006_1_2/5561-5565", "emotion"] == "negative"     # SAMM anger
    assert "not_in_composite" in set(e["reason"])                                    # SAMM Other: dropped
    root = cat.dataset("megc2019").root()
    assert all((root / p).is_file() for p in s["onset_path"])                         # paths via the part links
    # the counts are asserted when every part is there
    bad = composite_catalog(tmp_path / "again", monkeypatch, expected={"casme2": 145, "samm": 133, "smic_hs": 164})
    with pytest.raises(CatalogError, match="differ from the expected"):
        ingest(bad.dataset("megc2019"), bad, log=lambda *a: None)
    # a part without a root is skipped, and then the counts are not asserted
    monkeypatch.delenv("SAMM_ROOT")
    s2, _ = ingest(bad.dataset("megc2019"), bad, log=lambda *a: None)
    assert not s2["subject"].str.startswith("samm_").any() and len(s2) == 5


def test_casme2_sq_naming_rules(tmp_path, monkeypatch):
    ds, _, _ = fixture_catalog(tmp_path, "casme2_sq", monkeypatch)
    s, e = ingest(ds)
    assert list(s["clip"]) == ["15_0401angrywhy", "15_0401angrywhy"] and set(s["subject"]) == {"s15"}
    r = s.set_index("ann_row")
    assert (r.loc[1, "onset"], r.loc[1, "apex"], r.loc[1, "offset"]) == (5, 9, 14)
    assert r.loc[2, "offset"] == 25 and "apex used" in r.loc[2, "note"]      # offset 0 means "use apex"
    assert set(s["emotion"]) == {"negative"}
