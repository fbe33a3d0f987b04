"""The CAS(ME)^3 Part A adapter on the REAL annotation files of ../shared/datasets/casme3."""

import pandas as pd
import pytest

from pipeline.ingest import read_known_bad
from stages.adapters.annotated import AnnotationError, annotated_samples
from stages.adapters.common import as_frame, frame_number, index_frames
from stages.adapters.layouts import LAYOUTS
from tests.conftest import CASME3_REAL

V2 = CASME3_REAL / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
pytestmark = pytest.mark.skipif(not V2.is_file(), reason="real CAS(ME)^3 annotation files not beside the repo")


def full_index(ann, depth=True):
    """A frame listing that holds every frame the sheet names (frames are licensed/absent)."""
    idx = {}
    for r in ann.to_dict("records"):
        for kind in ("color", "depth") if depth else ("color",):
            d = idx.setdefault(f"{r['Subject']}/{r['Filename']}/{kind}", {})
            for c in ("Onset", "Apex", "Offset"):
                f = as_frame(r[c])
                if f is not None:
                    d[f] = f"part_A/data/{r['Subject']}/{r['Filename']}/{kind}/{f}.jpg"
    return idx


def run(ann, **kw):
    args = dict(ann_file=V2.name, dataset="casme3", fps=30, frames_prefix="part_A/data", frame_index=full_index(ann))
    args.update(kw)
    return casme3_part_a(ann, **args)


def casme3_part_a(ann, depth=True, **kw):
    """The shared annotated adapter with the Part A layout (depth from the same listing)."""
    return annotated_samples(ann, LAYOUTS["casme3_part_a"], depth_index=kw["frame_index"] if depth else None, **kw)


def test_real_v2_sheet():
    ann = pd.read_excel(V2, sheet_name="label")
    assert len(ann) == 860
    s, e = run(ann)
    # the five inconsistent rows: 2 x apex < onset, 1 x onset 0 excluded; 2 x offset 0 kept
    assert sorted(zip(e["ann_row"], e["reason"])) == [
        (130, "apex_before_onset"),
        (751, "apex_before_onset"),
        (752, "onset_zero"),
    ]
    assert len(s) == 857 and s["sample_id"].is_unique
    off0 = s[s["offset"].isna()]
    assert sorted(off0["ann_row"]) == [798, 800]
    assert off0["note"].str.contains("offset 0").all()
    assert (s["note"].fillna("").str.contains("apex == onset")).sum() == 54
    # emotion spellings normalised ('Others' -> 'others'), AU strings parsed, raw kept
    assert set(s["emotion"]) == {"disgust", "surprise", "others", "fear", "anger", "sad", "happy"}
    r = s[s["au_raw"] == "R2+R1"].iloc[0]
    assert r["au_list"] == [1, 2]
    assert (s["source"] == "labelled").all() and not s["apex_derived"].any()


def test_known_bad_list_from_the_authors():
    bad = read_known_bad(CASME3_REAL / "casme3_partA_error_list_ZhouJu.xlsx")
    assert ("spNO.2", "e", 143) in bad and len(bad) >= 10
    ann = pd.read_excel(V2, sheet_name="label")
    s, e = run(ann, bad_frames=bad)
    kb = e[e["reason"] == "known_bad_frame"]
    assert len(kb) >= 1 and len(s) + len(e) == 860
    assert kb["detail"].str.contains("known-bad").all()


def test_missing_frames_and_paths_named():
    ann = pd.read_excel(V2, sheet_name="label").head(3)
    s, e = run(ann, frame_index={})
    assert (e["reason"] == "clip_missing").all() and e["detail"].str.contains("part_A/data/spNO.1").all()
    s, e = run(ann, frame_index=full_index(ann, depth=False))
    assert (e["reason"] == "depth_missing").all()


def test_escaping_paths_rejected():
    ann = pd.read_excel(V2, sheet_name="label").head(2).copy()
    ann.loc[0, "Subject"] = ".."
    ann.loc[1, "Filename"] = "/etc"
    s, e = run(ann)
    assert len(s) == 0 and (e["reason"] == "unsafe_path").all()


def test_bad_header_is_an_error_naming_the_file():
    ann = pd.DataFrame({"Subj": [1]})
    with pytest.raises(AnnotationError, match="v2.xlsx.*Subject"):
        casme3_part_a(ann, ann_file="v2.xlsx", dataset="x", fps=30, frames_prefix="p", frame_index={})


def test_frames_sorted_by_number_not_listing():
    assert frame_number("img10.jpg") == 10 and frame_number("reg_img9.jpg") == 9
    assert list(index_frames(["10.jpg", "9.jpg", "100.jpg", "x.txt"], (".jpg",))) == [9, 10, 100]
    with pytest.raises(ValueError, match="frame number 7"):
        index_frames(["7.jpg", "007.jpg"], (".jpg",))


def test_an_offset_typo_of_a_billion_frames_costs_nothing():
    """Issue 15, item 11: the clip's frames are found from the folder's files, not by
    walking every number up to the offset (which ran out of memory)."""
    import time

    ann = pd.read_excel(V2, sheet_name="label").head(1).copy()
    ann.loc[0, "Offset"] = 10**9
    t0 = time.perf_counter()
    s, e = run(ann, max_duration_s=None)
    assert time.perf_counter() - t0 < 5  # a generous bound: walking 10^9 numbers takes minutes
    onset, apex = int(ann.loc[0, "Onset"]), int(ann.loc[0, "Apex"])
    names = [p.rsplit("/", 1)[1] for p in s.loc[0, "seq_paths"]]
    assert len(s) == 1 and names == [f"{onset}.jpg", f"{apex}.jpg", f"{10**9}.jpg"]  # the files the listing holds
    gaps = 10**9 - onset + 1 - len(s.loc[0, "seq_paths"])
    assert f"{gaps} frame(s) of the clip missing: [{onset + 1}, " in s.loc[0, "note"]
    s, e = run(ann, max_duration_s=5.0)  # with the catalog default the row is refused as too long
    assert list(e["reason"]) == ["too_long"]
