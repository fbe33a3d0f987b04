"""Bad-input corpus (issue #9 item 1): every bad input is generated here, in tmp_path,
from the demo dataset (real face frames). Each one must give a clear error naming the
file, row or sample, or an exclusion with a reason, never a traceback of the run; and
a run over a store that already holds a good committed version either commits a new
version (bad samples in `exclusions`, good samples ok and unchanged) or fails with a
clear error, leaving the previous snapshot exactly as it was. docs/bad_inputs.md maps
each case to its test (and to the older tests that already covered part of it)."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.catalog import Catalog, CatalogError, Dataset, load_catalog
from pipeline.demo import ANNOTATION
from pipeline.fingerprint import sample_fingerprints
from pipeline.io import FrameReadError, read_depth, read_rgb
from pipeline.params import resolve
from pipeline.runner import run
from pipeline.screening import list_recordings
from pipeline.store import Store
from pipeline.validate import validate
from schemas.arrays import ARRAYS
from stages.adapters.unlabelled import unlabelled_videos
from tests.conftest import write_catalog

QUIET = dict(log=lambda *a: None, progress=False, methods=["dvscl"])
ENV = "MEPIPE_TEST_ROOT"
FRAMES = Path("part_A/data")
# the baseline: five annotation rows of the demo (subject, clip, onset); apex = onset + 8
BASELINE = [("spNO.1", "a", 5), ("spNO.1", "b", 23), ("spNO.2", "a", 5), ("spNO.2", "c", 23), ("spNO.3", "a", 5)]
IDS = {f"{s}/{c}": f"t/{s}/{c}/{o}-{o + 8}" for s, c, o in BASELINE}


# -- the committed baseline ---------------------------------------------------------


def rewrite_annotation(root: Path, edit) -> None:
    """Apply `edit(DataFrame) -> DataFrame` to the demo's label sheet (cells as objects,
    so a test can write text such as '12a' or leave a cell empty)."""
    path = root / ANNOTATION
    df = pd.read_excel(path, sheet_name="label").astype(object)
    with pd.ExcelWriter(path, engine="openpyxl") as w:
        edit(df).to_excel(w, sheet_name="label", index=False)


def trim_to_baseline(df: pd.DataFrame) -> pd.DataFrame:
    keep = [(r.Subject, r.Filename, int(r.Onset)) in BASELINE for r in df.itertuples()]
    return df[keep].reset_index(drop=True)


def sheet_row(root: Path, key: str) -> int:
    """Sheet row (1-based, header on row 1) of baseline sample `key` ('spNO.1/a')."""
    df = pd.read_excel(root / ANNOTATION, sheet_name="label")
    subj, clip = key.split("/")
    onset = dict(((s, c), o) for s, c, o in BASELINE)[(subj, clip)]
    hit = df.index[(df["Subject"] == subj) & (df["Filename"] == clip) & (df["Onset"].astype(str) == str(onset))]
    return int(hit[0]) + 2


@pytest.fixture(scope="module")
def baseline(demo_source, tmp_path_factory):
    """A folder with a 5-sample copy of the demo, its catalog and a store holding one
    good committed version (computed once for the module)."""
    base = tmp_path_factory.mktemp("bad_inputs_base")
    root = base / "data"
    shutil.copytree(demo_source, root, ignore=shutil.ignore_patterns("part_B"))
    for subj in ("spNO.1", "spNO.2", "spNO.3"):
        for clip in os.listdir(root / FRAMES / subj):
            if f"{subj}/{clip}" not in IDS:
                shutil.rmtree(root / FRAMES / subj / clip)
    rewrite_annotation(root, trim_to_baseline)
    write_catalog(base)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(root))
        cat = load_catalog(base / "catalog.yaml")
        res = run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert res.committed and sorted(res.manifest["sample_id"]) == sorted(IDS.values())
    assert (res.manifest["status"] == "ok").all() and len(res.excluded) == 0
    return base


@dataclass
class Committed:
    """A private copy of the baseline: dataset root, catalog, dataset, store and the
    content of its committed head (to prove later that it was left untouched)."""

    root: Path
    cat: Catalog
    ds: Dataset
    store: Store
    head: str
    before: dict

    def run(self, **kw):
        opts = {**QUIET, **kw}
        return run(self.cat, self.cat.dataset("t"), workers=1, **opts)


def version_content(st: Store, snap: str) -> dict:
    """Everything a reader of snapshot `snap` gets: its tables and a digest per array."""
    g = st.group(snap)
    arrays = {
        n: (g[n].shape, hashlib.sha256(np.ascontiguousarray(g[n][:]).tobytes()).hexdigest()) for n in ARRAYS if n in g
    }
    return {"manifest": st.table("manifest", snap), "exclusions": st.table("exclusions", snap), "arrays": arrays}


@pytest.fixture
def committed(baseline, tmp_path, monkeypatch) -> Committed:
    work = tmp_path / "w"
    shutil.copytree(baseline, work)
    monkeypatch.setenv(ENV, str(work / "data"))
    cat = load_catalog(work / "catalog.yaml")
    st = Store(cat.store_root / "t", create=False)
    head = st.head()
    return Committed(work / "data", cat, cat.dataset("t"), st, head, version_content(st, head))


def assert_previous_version_intact(c: Committed, committed: bool) -> None:
    """The snapshot that was head before the run reads back exactly as before; the head
    moved on (one new version whose parent it is) only if the run committed."""
    st = Store(c.cat.store_root / "t", create=False)
    now = version_content(st, c.head)
    pd.testing.assert_frame_equal(now["manifest"], c.before["manifest"])
    pd.testing.assert_frame_equal(now["exclusions"], c.before["exclusions"])
    assert now["arrays"] == c.before["arrays"]
    history = [v["snapshot"] for v in st.versions()]
    if committed:
        assert st.head() != c.head and history[1] == c.head
    else:
        assert st.head() == c.head


def assert_good_samples_unchanged(c: Committed, res, bad: set[str]) -> None:
    """Every baseline sample not in `bad` is in the new version, ok, with the same
    stored arrays as in the previous version."""
    st = Store(c.cat.store_root / "t", create=False)
    old_g, new_g = st.group(c.head), st.group(res.snapshot)
    old = c.before["manifest"].set_index("sample_id")
    new = res.manifest.set_index("sample_id")
    good = set(IDS.values()) - bad
    assert good <= set(new.index)
    assert (new.loc[sorted(good), "status"] == "ok").all()
    for sid in good:
        for name in ("pairs/onset_rgb", "pairs/rgb_diff", "pairs/onset_depth", "pairs/depth_diff"):
            np.testing.assert_array_equal(
                new_g[name][int(new.loc[sid, "index"])], old_g[name][int(old.loc[sid, "index"])]
            )


def exclusions_of(res) -> dict:
    """{sample_id or sheet row: (stage, reason, detail)} of a run's exclusions."""
    out = {}
    for r in res.excluded.itertuples():
        key = r.sample_id if isinstance(r.sample_id, str) else f"row {int(r.ann_row)}"
        out[key] = (r.stage, r.reason, r.detail)
    return out


def frame(c: Committed, key: str, kind: str, n: int) -> Path:
    """Path of frame `n` of baseline clip `key` ('spNO.1/a'); kind 'color' or 'depth'."""
    return c.root / FRAMES / key / kind / f"{n}.{'jpg' if kind == 'color' else 'png'}"


# -- 1. truncated / zero-byte onset or apex frames ------------------------------------


def test_1_truncated_and_empty_frames_are_excluded_and_the_rest_commits(committed):
    c = committed
    frame(c, "spNO.1/a", "color", 5).write_bytes(b"")  # zero-byte onset JPEG
    apex = frame(c, "spNO.1/b", "color", 31)
    apex.write_bytes(apex.read_bytes()[:3000])  # truncated apex JPEG
    frame(c, "spNO.2/a", "depth", 13).write_bytes(b"")  # zero-byte apex depth PNG
    rep = validate(c.ds, quick=True)
    assert rep["blocking"]
    assert {w for w, _ in rep["problems"]["frame_unreadable"]} == {
        "part_A/data/spNO.1/a/color/5.jpg",
        "part_A/data/spNO.1/b/color/31.jpg",
    }
    assert [w for w, _ in rep["problems"]["depth_unusable"]] == ["part_A/data/spNO.2/a/depth/13.png"]

    res = c.run()
    assert res.committed
    ex = exclusions_of(res)
    bad = {IDS["spNO.1/a"], IDS["spNO.1/b"], IDS["spNO.2/a"]}
    assert set(ex) == bad
    stage, reason, detail = ex[IDS["spNO.1/a"]]
    assert (stage, reason) == ("read", "frame_unreadable")
    assert detail.endswith("spNO.1/a/color/5.jpg: empty file (0 bytes)")
    stage, reason, detail = ex[IDS["spNO.1/b"]]
    assert (stage, reason) == ("read", "frame_unreadable")
    assert "spNO.1/b/color/31.jpg: truncated JPEG" in detail
    stage, reason, detail = ex[IDS["spNO.2/a"]]
    assert (stage, reason) == ("depth", "depth_unusable")  # same reason as `validate` gives
    assert detail.endswith("spNO.2/a/depth/13.png: empty depth file (0 bytes)")
    man = res.manifest.set_index("sample_id")
    assert (man.loc[sorted(bad), "status"] == "excluded").all()
    assert_good_samples_unchanged(c, res, bad)
    assert_previous_version_intact(c, committed=True)


# -- 2. a video with a corrupt tail (AU screening of unlabelled recordings) -----------


def write_video(path: Path, frames: list[np.ndarray], fourcc: str) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, frames[0].shape[1::-1])
    for f in frames:
        w.write(f)
    w.release()


def decodable_frames(path: Path) -> int:
    """How many frames OpenCV decodes from the start (the oracle for the test)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_2_video_with_corrupt_tail_is_screened_up_to_the_damage(committed, demo_source):
    c = committed
    src = cv2.VideoCapture(str(demo_source / "part_B/data/spNO.1/v1.avi"))
    frames = [src.read()[1] for _ in range(60)]
    src.release()
    part_b = c.root / "part_B/data"
    (part_b / "spNO.1").mkdir(parents=True)
    (part_b / "spNO.3").mkdir(parents=True)
    avi, mp4 = part_b / "spNO.1/v1.avi", part_b / "spNO.3/v2.mp4"
    write_video(avi, frames, "MJPG")
    write_video(mp4, frames[:20], "mp4v")
    avi.write_bytes(avi.read_bytes()[: int(avi.stat().st_size * 0.6)])  # tail (and AVI index) cut off
    mp4.write_bytes(mp4.read_bytes()[: int(mp4.stat().st_size * 0.9)])  # MP4 index (moov, at the end) lost
    good = decodable_frames(avi)
    assert 0 < good < 60 and decodable_frames(mp4) == 0
    catalog = c.cat.path
    catalog.write_text(catalog.read_text() + "    unlabelled:\n      frames_dir: part_B/data\n")
    c.cat = load_catalog(catalog)

    res = c.run()
    assert res.committed
    ex = {(r.stage, r.reason): r.detail for r in res.excluded.itertuples()}
    assert ex[("ingest", "video_empty")] == (
        f"part_B/data/spNO.3/v2.mp4: no decodable frames ({mp4.resolve()}: not a decodable video)"
    )
    lost = list(range(good, min(good + 5, 60)))
    assert ex[("screen", "frames_unreadable")] == (
        f"part_B/data/spNO.1/v1.avi: {60 - good} frame(s) could not be decoded, first {lost}"
    )
    st = Store(c.cat.store_root / "t", create=False)
    au = st.table("au_frames")
    assert list(st.table("videos")["video"]) == ["spNO.1/v1"]
    assert len(au) == 60 and not au.loc[au["frame"] >= good, "face"].any()
    sel = res.manifest[res.manifest["source"] == "selected"]
    assert (sel["apex"] < good).all() and (sel["status"] == "ok").all()
    assert_good_samples_unchanged(c, res, set())
    assert_previous_version_intact(c, committed=True)


# -- 3. 8-bit depth where 16-bit is expected ------------------------------------------


def test_3_eight_bit_depth_is_excluded_and_the_rest_commits(committed):
    c = committed
    p = frame(c, "spNO.3/a", "depth", 5)
    cv2.imwrite(str(p), (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) // 256).astype(np.uint8))
    rep = validate(c.ds, quick=True)
    assert [w for w, _ in rep["problems"]["depth_unusable"]] == ["part_A/data/spNO.3/a/depth/5.png"]

    res = c.run()
    assert res.committed and res.recomputed == 1
    stage, reason, detail = exclusions_of(res)[IDS["spNO.3/a"]]
    assert (stage, reason) == ("depth", "depth_unusable") and len(res.excluded) == 1
    assert "spNO.3/a/depth/5.png: depth must be 16-bit (uint16), got uint8" in detail
    assert_good_samples_unchanged(c, res, {IDS["spNO.3/a"]})
    assert_previous_version_intact(c, committed=True)


# -- 4. depth and colour frames of different sizes ------------------------------------


def test_4_depth_colour_size_mismatch_is_excluded_at_ingest(committed):
    c = committed
    small = frame(c, "spNO.1/a", "depth", 5)  # 640x360 -> 320x180
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(small), cv2.IMREAD_UNCHANGED), (320, 180)))
    big = frame(c, "spNO.2/c", "depth", 31)  # 640x360 -> 700x400
    d = cv2.imread(str(big), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(big), np.pad(d, ((0, 40), (0, 60)), mode="edge"))  # the old crop box still fits
    row_a, row_c = sheet_row(c.root, "spNO.1/a"), sheet_row(c.root, "spNO.2/c")
    rep = validate(c.ds, quick=True)
    assert rep["blocking"] and sorted(w for w, _ in rep["problems"]["depth_size_mismatch"]) == [row_a, row_c]

    res = c.run()
    assert res.committed and res.recomputed == 0
    ex = exclusions_of(res)
    assert set(ex) == {IDS["spNO.1/a"], IDS["spNO.2/c"]}
    assert ex[IDS["spNO.1/a"]] == (
        "ingest",
        "depth_size_mismatch",
        (
            f"{ANNOTATION} row {row_a}: depth frame part_A/data/spNO.1/a/depth/5.png is 320x180 but its colour "
            "frame part_A/data/spNO.1/a/color/5.jpg is 640x360 (depth must share the colour frame's pixel grid)"
        ),
    )
    assert ex[IDS["spNO.2/c"]][2].startswith(
        f"{ANNOTATION} row {row_c}: depth frame part_A/data/spNO.2/c/depth/31.png is 700x400 but its colour frame"
    )
    assert set(res.manifest["sample_id"]) == set(IDS.values()) - set(ex)  # excluded before any task
    assert_good_samples_unchanged(c, res, set(ex))
    assert_previous_version_intact(c, committed=True)


def test_4_unlabelled_frame_folder_with_other_size_depth_keeps_colour_only(tmp_path, monkeypatch):
    root = tmp_path / "data"
    rec = root / "part_B/data/spNO.9/v1"
    for k in range(3):
        (rec / "color").mkdir(parents=True, exist_ok=True)
        (rec / "depth").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(rec / "color" / f"{k}.jpg"), np.full((48, 64, 3), 128, np.uint8))
        cv2.imwrite(str(rec / "depth" / f"{k}.png"), np.full((24, 32), 700, np.uint16))
    (root / FRAMES).mkdir(parents=True)
    p = write_catalog(tmp_path)
    p.write_text(p.read_text() + "    unlabelled:\n      frames_dir: part_B/data\n")
    monkeypatch.setenv(ENV, str(root))
    ds = load_catalog(p).dataset("t")
    recs = list_recordings(ds)
    assert recs[0]["depth_path"] is None and recs[0]["depth_frames"] == {}
    videos, ex = unlabelled_videos(recs, dataset="t", fps=30)
    assert list(videos["video"]) == ["spNO.9/v1"]  # the colour frames are still screened
    assert list(ex["reason"]) == ["depth_size_mismatch"]
    assert ex["detail"][0] == (
        "part_B/data/spNO.9/v1/depth/0.png: depth frames are 32x24 but the colour frames "
        "(part_B/data/spNO.9/v1/color/0.jpg) are 64x48; depth not used for this recording"
    )


# -- 5. frames missing inside a clip --------------------------------------------------


def test_5_gap_between_onset_and_apex_is_noted_and_a_missing_apex_is_excluded(committed):
    c = committed
    for n in (8, 9):
        frame(c, "spNO.3/a", "color", n).unlink()  # gap inside onset 5 .. apex 13
    frame(c, "spNO.2/c", "color", 31).unlink()  # the apex itself is gone
    row_c = sheet_row(c.root, "spNO.2/c")

    res = c.run()
    assert res.committed
    ex = exclusions_of(res)
    assert ex == {
        IDS["spNO.2/c"]: (
            "ingest",
            "frame_missing",
            f"{ANNOTATION} row {row_c}: frame(s) [31] not in part_A/data/spNO.2/c/color",
        )
    }
    man = res.manifest.set_index("sample_id")
    gap = man.loc[IDS["spNO.3/a"]]
    assert gap["status"] == "ok" and gap["note"] == "2 frame(s) of the clip missing: [8, 9]"
    assert len(gap["seq_paths"]) == 19 - 5 + 1 - 2  # onset..offset without 8, 9
    assert_good_samples_unchanged(c, res, {IDS["spNO.2/c"]})
    assert_previous_version_intact(c, committed=True)


# -- 6. duplicated annotation rows ----------------------------------------------------


def test_6_duplicated_rows_are_excluded_naming_the_kept_row(committed):
    c = committed
    row_a, row_b = sheet_row(c.root, "spNO.1/a"), sheet_row(c.root, "spNO.2/a")

    def duplicate(df):
        a = df.iloc[[row_a - 2]].copy()
        b = df.iloc[[row_b - 2]].copy()
        b["emotion"] = "fear"  # the demo row says surprise
        return pd.concat([df, a, b], ignore_index=True)

    rewrite_annotation(c.root, duplicate)
    n = len(BASELINE)
    res = c.run()
    assert res.committed and res.recomputed == 0 and res.copied == 0  # nothing to recompute
    ex = exclusions_of(res)
    assert set(ex) == {IDS["spNO.1/a"], IDS["spNO.2/a"]}
    assert ex[IDS["spNO.1/a"]] == (
        "ingest",
        "duplicate_row",
        f"{ANNOTATION} row {n + 2}: same clip and onset/apex as row {row_a} (row {row_a} is kept)",
    )
    assert ex[IDS["spNO.2/a"]] == (
        "ingest",
        "duplicate_row",
        (
            f"{ANNOTATION} row {n + 3}: same clip and onset/apex as row {row_b} (row {row_b} is kept); the labels "
            f"differ: emotion/AU 'fear'/'1+2' here, 'surprise'/'1+2' in row {row_b}"
        ),
    )
    assert len(res.manifest) == n and (res.manifest["status"] == "ok").all()
    assert_good_samples_unchanged(c, res, set())
    assert_previous_version_intact(c, committed=True)


# -- 7. non-numeric frame cells -------------------------------------------------------


def test_7_non_numeric_frame_cells_are_excluded_naming_the_row(committed):
    c = committed
    rows = {k: sheet_row(c.root, k) for k in ("spNO.1/a", "spNO.1/b", "spNO.2/c", "spNO.2/a")}

    def damage(df):
        df.loc[rows["spNO.1/a"] - 2, "Onset"] = "12a"
        df.loc[rows["spNO.1/b"] - 2, "Apex"] = None
        df.loc[rows["spNO.2/c"] - 2, "Apex"] = "31a"
        df.loc[rows["spNO.2/a"] - 2, "Offset"] = "19x"  # the clip end only: kept, noted
        return df

    rewrite_annotation(c.root, damage)
    res = c.run()
    assert res.committed
    ex = exclusions_of(res)
    assert ex == {
        f"row {rows['spNO.1/a']}": (
            "ingest",
            "frame_not_numeric",
            f"{ANNOTATION} row {rows['spNO.1/a']} (spNO.1/a): onset '12a' is not a frame number",
        ),
        f"row {rows['spNO.1/b']}": (
            "ingest",
            "apex_missing",
            f"{ANNOTATION} row {rows['spNO.1/b']} (spNO.1/b): apex cell is empty "
            "(this layout does not derive a missing apex)",
        ),
        f"row {rows['spNO.2/c']}": (
            "ingest",
            "frame_not_numeric",
            f"{ANNOTATION} row {rows['spNO.2/c']} (spNO.2/c): apex '31a' is not a frame number "
            "(this layout does not derive a missing apex)",
        ),
    }
    man = res.manifest.set_index("sample_id")
    assert sorted(man.index) == sorted([IDS["spNO.2/a"], IDS["spNO.3/a"]])
    kept = man.loc[IDS["spNO.2/a"]]
    assert kept["status"] == "ok" and kept["note"] == "offset '19x' is not a frame number: offset unknown"
    assert pd.isna(kept["offset"])
    bad = {IDS["spNO.1/a"], IDS["spNO.1/b"], IDS["spNO.2/c"]}
    assert_good_samples_unchanged(c, res, bad)
    assert_previous_version_intact(c, committed=True)


# -- 8. an emotion outside the label scheme -------------------------------------------


def test_8_emotion_outside_the_scheme_is_stored_noted_and_skipped_by_label_readers(committed):
    c = committed

    def add_row(df):
        new = df.iloc[[0]].copy()
        new[["Subject", "Filename", "Onset", "Apex", "Offset", "emotion"]] = ["spNO.3", "a", 23, 31, 37, "hapy"]
        return pd.concat([df, new], ignore_index=True)

    rewrite_annotation(c.root, add_row)
    # its frames: the demo's spNO.3/a holds frames 1..40, so onset 23 / apex 31 exist
    row = len(BASELINE) + 2
    sid = "t/spNO.3/a/23-31"
    rep = validate(c.ds, quick=True)
    assert not rep["blocking"]
    assert rep["problems"] == {
        "emotion_not_in_scheme": [(row, f"{sid}: emotion 'hapy' is not in label scheme casme3_7")]
    }
    assert "emotion not in label scheme" not in rep["notes"]  # said once, as a problem

    logs = []
    res = c.run(log=logs.append)
    assert res.committed and res.recomputed == 1 and len(res.excluded) == 0
    note = f"emotion not in label scheme: 'hapy' ({ANNOTATION} row {row}) is not a word of label scheme casme3_7"
    man = res.manifest.set_index("sample_id")
    assert man.loc[sid, "status"] == "ok" and man.loc[sid, "note"] == note
    assert any("1 labelled sample(s) with an emotion outside label scheme casme3_7" in m for m in logs)
    from training.dvscl.feed import DVSCLDataset

    pdx = DVSCLDataset(c.cat.store_root / "t", c.ds.scheme, view="gray")
    assert (sid, "emotion 'hapy' not in the label scheme") in pdx.skipped and len(pdx) == len(BASELINE)
    assert_good_samples_unchanged(c, res, set())
    assert_previous_version_intact(c, committed=True)


def test_8_label_only_edit_of_a_committed_sample_reaches_the_store(committed):
    c = committed
    row = sheet_row(c.root, "spNO.1/a")

    def typo(df):
        df.loc[row - 2, "emotion"] = "hapy"
        return df

    rewrite_annotation(c.root, typo)
    res = c.run()
    assert res.committed
    assert res.manifest.set_index("sample_id").loc[IDS["spNO.1/a"], "emotion"] == "hapy"


# -- 9. symlink loops -----------------------------------------------------------------


def loop_dataset(tmp_path, monkeypatch, what: str) -> Catalog:
    """A catalog whose dataset root, frames folder or annotation file is a symlink loop."""
    root = tmp_path / "data"
    (root / "part_A").mkdir(parents=True)
    if what == "root":
        (tmp_path / "x").symlink_to(tmp_path / "y")
        (tmp_path / "y").symlink_to(tmp_path / "x")
        root = tmp_path / "x"
    elif what == "frames_dir":
        (root / FRAMES).symlink_to(root / FRAMES)
    else:
        (root / FRAMES).mkdir()
        (root / ANNOTATION).symlink_to(root / ANNOTATION)
    monkeypatch.setenv(ENV, str(root))
    return load_catalog(write_catalog(tmp_path))


@pytest.mark.parametrize(
    "what,match",
    [
        ("root", rf"dataset 't': root .*/x \(datasets\.t\.root_env={ENV}\) is a symlink loop"),
        ("frames_dir", r"frames folder .*/data/part_A/data is a symlink loop"),
        (
            "annotation",
            r"datasets\.t\.annotation: .*/data/cas\(me\)3_part_A_ME_label_JpgIndex_v2\.xlsx is a symlink loop",
        ),
    ],
)
def test_9_symlink_loops_stop_run_and_validate_with_the_path(tmp_path, monkeypatch, what, match):
    cat = loop_dataset(tmp_path, monkeypatch, what)
    with pytest.raises(CatalogError, match=match):
        validate(cat.dataset("t"))
    with pytest.raises(CatalogError, match=match):
        run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert not (cat.store_root / "t").exists()  # stopped before any store exists


def test_9_a_frame_that_is_a_symlink_loop_is_named(tmp_path):
    p = tmp_path / "13.jpg"
    p.symlink_to(p)
    with pytest.raises(FrameReadError, match=r"13\.jpg: frame file is a symlink loop"):
        read_rgb(p)
    with pytest.raises(FrameReadError, match=r"13\.jpg: depth file is a symlink loop"):
        read_depth(p)
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(FrameReadError, match=r"gone\.png: depth file is a symlink to .*nowhere\.png'?, which does"):
        read_depth(tmp_path / "gone.png")
    row = {"onset_path": "13.jpg", "apex_path": "13.jpg", "seq_paths": ["13.jpg"]}
    fps = sample_fingerprints(row, tmp_path, resolve(None, "params"), has_depth=False)  # planning does not crash
    assert fps["crop"] and fps["clip"]


# -- 10. catalog typos ------------------------------------------------------------------


def edited_catalog(tmp_path, edit) -> Path:
    """write_catalog's catalog, loaded as YAML, changed by `edit(dict)`, written back."""
    p = write_catalog(tmp_path)
    raw = yaml.safe_load(p.read_text())
    edit(raw)
    p.write_text(yaml.safe_dump(raw))
    return p


def _top(raw):
    raw["store_rot"] = raw.pop("store_root")


def _unlabelled(raw):
    raw["datasets"]["t"]["unlabelled"] = {"frame_dir": "part_B/data"}


def _cluster(raw):
    raw["clusters"] = {"mine": {"kind": "local", "worker": 2}}


def _stage_not_mapping(raw):
    raw["datasets"]["t"]["params"] = {"depth": "nearest"}


def _scheme_word(raw):
    raw["label_schemes"]["casme3_7"]["happiness"] = "happy"


def _composite(raw):
    raw["datasets"]["m"] = {
        "adapter": "composite",
        "label_scheme": "casme3_7",
        "parts": {"t": {"others": ["others"]}},
        "expected_count": {"t": 1},
    }


@pytest.mark.parametrize(
    "edit,match",
    [
        (
            _top,
            r"catalog\.store_rot: unknown key; allowed: \['clusters', 'datasets', 'label_schemes', 'runs_root', "
            r"'store_root'\]",
        ),
        (_unlabelled, r"datasets\.t\.unlabelled\.frame_dir: unknown key; allowed: \['frames_dir', "),
        (_cluster, r"clusters\.mine\.worker: unknown key"),
        (_stage_not_mapping, r"datasets\.t\.params\.depth: expected a mapping, got str"),
        (_scheme_word, r"label_schemes\.casme3_7: expected class -> list of emotion words"),
        (_composite, r"datasets\.m\.expected_count: unknown key"),
    ],
    ids=["top-level", "unlabelled", "cluster", "stage-not-mapping", "scheme", "composite"],
)
def test_10_catalog_typos_name_the_key(tmp_path, edit, match):
    with pytest.raises(CatalogError, match=match):
        load_catalog(edited_catalog(tmp_path, edit))


def test_10_misspelled_sheet_name_fails_the_run_and_leaves_the_store(committed):
    c = committed
    catalog = c.cat.path
    catalog.write_text(catalog.read_text().replace("annotation_sheet: label", "annotation_sheet: lable"))
    c.cat = load_catalog(catalog)
    with pytest.raises(
        CatalogError,
        match=r"datasets\.t\.annotation_sheet: .*JpgIndex_v2\.xlsx: "
        r"Worksheet named 'lable' not found",
    ):
        c.run()
    assert_previous_version_intact(c, committed=False)


# -- the truth after the commit (issue 15, item 5) ----------------------------------------


def _force_a_new_version(c: Committed) -> None:
    """A label edit: the next run commits a new version without recomputing arrays."""
    row = sheet_row(c.root, "spNO.1/a")

    def relabel(df):
        df.loc[row - 2, "emotion"] = "surprise"
        return df

    rewrite_annotation(c.root, relabel)


def _cli(c: Committed, capsys) -> tuple[int, str]:
    from mepipe.cli import main

    rc = main(["--catalog", str(c.cat.path), "preprocess", "--dataset", "t", "--methods", "dvscl", "--no-progress"])
    return rc, capsys.readouterr().out


@pytest.mark.parametrize(
    "step,target",
    [
        ("writing the run folder", "pipeline.runner.write_run_folder"),
        ("deleting the run's scratch branch", "pipeline.runner.delete_scratch_branch"),
    ],
)
def test_a_failure_after_main_moved_is_reported_as_committed(committed, monkeypatch, capsys, step, target):
    c = committed
    _force_a_new_version(c)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(target, disk_full)
    rc, out = _cli(c, capsys)
    assert rc == 4, out
    st = Store(c.cat.store_root / "t", create=False)
    assert st.head() != c.head  # main moved: the new version is complete
    assert f"committed snapshot {st.head()}; then {step}" in out and "No space left on device" in out
    assert "The version is complete and is main" in out and "Nothing was committed" not in out
    assert_previous_version_intact(c, committed=True)


def test_a_qc_image_that_cannot_be_written_is_a_warning(committed, monkeypatch, capsys):
    c = committed
    _force_a_new_version(c)
    monkeypatch.setattr("pipeline.qc.cv2.imwrite", lambda *a, **k: False)  # e.g. a full disk
    rc, out = _cli(c, capsys)
    assert rc == 0, out
    assert "warning: QC image" in out and "could not be written (sample t/" in out
    assert "QC report:" in out and "warning(s))" in out
    page = next((c.cat.runs_root / "t").glob("*/qc/index.html")).read_text()
    assert "<h2>Warnings</h2>" in page


# -- catalog edits that change no frame (issue 15, item 6) -------------------------------


@pytest.mark.parametrize(
    "edit,check",
    [
        (("fps: 30", "fps: 60"), lambda res, st: (res.manifest["fps"] == 60.0).all()),
        (
            (
                "label_scheme: casme3_7",
                "label_scheme: casme3_7\n    emotion_synonyms: {happy: glee, sad: glee, surprise: glee, disgust: glee}",
            ),
            lambda res, st: set(res.manifest["emotion"]) == {"glee"},
        ),
        (
            ("happiness: [happy]", "happiness: [happy, glad]"),
            lambda res, st: st.repo.lookup_snapshot(st.head()).metadata["labels_sha256"] is not None,
        ),
    ],
)
def test_a_catalog_edit_that_changes_no_frame_makes_a_new_version_without_recompute(committed, edit, check):
    c = committed
    assert c.run().committed is False  # the baseline is up to date
    path = c.cat.path
    path.write_text(path.read_text().replace(*edit))
    cat = load_catalog(path)
    res = run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert res.committed and res.recomputed == 0 and res.copied == 0
    st = Store(cat.store_root / "t", create=False)
    assert check(res, st)
    assert_good_samples_unchanged(c, res, set())  # the arrays are the previous version's
    again = run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert not again.committed  # and now it is up to date


# -- corrupt JPEG data, oversized headers, non-UTF-8 folder names (issue 15, items 7, 8, 11)


def _cut_in_half_and_terminated(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2] + b"\xff\xd9")


def _marker_in_the_scan(p: Path) -> None:
    """Two bytes flipped mid-file into a marker the scan data cannot hold."""
    data = bytearray(p.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2] = b"\xff\x5a"
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_cut_in_half_and_terminated, _marker_in_the_scan])
def test_7_a_corrupt_jpeg_is_excluded_as_frame_corrupt_not_stored_as_ok(committed, damage):
    c = committed
    p = frame(c, "spNO.2/a", "color", 13)  # the apex of spNO.2/a (onset 5 + 8)
    damage(p)
    assert cv2.imread(str(p)) is not None  # OpenCV alone decodes it (with a warning on stderr)
    rep = validate(c.ds, quick=True)
    assert [w for w, _ in rep["problems"]["frame_corrupt"]] == ["part_A/data/spNO.2/a/color/13.jpg"]
    assert rep["blocking"]
    res = c.run()
    assert res.committed
    stage, reason, detail = exclusions_of(res)[IDS["spNO.2/a"]]
    assert (stage, reason) == ("read", "frame_corrupt")
    assert "spNO.2/a/color/13.jpg: corrupt JPEG data (" in detail
    assert_good_samples_unchanged(c, res, {IDS["spNO.2/a"]})


def _declare_size(p: Path, h: int, w: int) -> None:
    """Patch the JPEG's start-of-frame header to declare h x w pixels."""
    data = bytearray(p.read_bytes())
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    p.write_bytes(bytes(data))


def test_11_an_image_declaring_16000x16000_pixels_is_refused_before_decoding(committed):
    c = committed
    p = frame(c, "spNO.3/a", "color", 5)
    _declare_size(p, 16000, 16000)
    res = c.run()
    assert res.committed
    stage, reason, detail = exclusions_of(res)[IDS["spNO.3/a"]]
    assert (stage, reason) == ("read", "frame_too_large")
    assert "color/5.jpg: frame of 16000x16000 = 256000000 pixels is above the limit of 50000000" in detail
    assert_good_samples_unchanged(c, res, {IDS["spNO.3/a"]})


def test_8_a_dataset_root_whose_name_is_not_utf8_is_read_and_named_escaped(committed, monkeypatch):
    c = committed
    latin1 = Path(os.fsdecode(os.fsencode(str(c.root.parent)) + b"/caf\xe9"))
    latin1.mkdir()
    shutil.move(str(c.root), str(latin1 / "data"))
    monkeypatch.setenv(ENV, str(latin1 / "data"))
    (latin1 / "data" / FRAMES / "spNO.1" / "b" / "color" / "31.jpg").write_bytes(b"")  # the apex of spNO.1/b
    rep = validate(c.cat.dataset("t"), quick=True)
    assert [w for w, _ in rep["problems"]["frame_unreadable"]] == ["part_A/data/spNO.1/b/color/31.jpg"]
    res = c.run()
    assert res.committed
    stage, reason, detail = exclusions_of(res)[IDS["spNO.1/b"]]
    assert (stage, reason) == ("read", "frame_unreadable")
    assert "caf\\xe9/data/part_A/data/spNO.1/b/color/31.jpg: empty file (0 bytes)" in detail
    assert_good_samples_unchanged(c, res, {IDS["spNO.1/b"]})


# -- stray files in the frames tree (issue 15, item 10) ----------------------------------


def test_10_hidden_and_macos_metadata_files_are_ignored(committed):
    c = committed
    color = c.root / FRAMES / "spNO.2" / "a" / "color"
    (color / "._13.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # not a JPEG at all
    (color / ".DS_Store").write_bytes(b"Bud1")
    mac = c.root / FRAMES / "__MACOSX" / "spNO.2" / "a"
    mac.mkdir(parents=True)
    (mac / "._5.jpg").write_bytes(b"x")
    res = c.run()
    assert not res.committed and len(res.excluded) == 0  # nothing changed: up to date
    assert assert_previous_version_intact(c, committed=False) is None


def test_10_two_files_with_one_frame_number_exclude_that_clip_only(committed):
    c = committed
    color = c.root / FRAMES / "spNO.2" / "a" / "color"
    shutil.copy(color / "13.jpg", color / "13 - Copy.jpg")
    unused = c.root / FRAMES / "spNO.3" / "zz" / "color"  # a clip no row uses
    unused.mkdir(parents=True)
    for name in ("7.jpg", "7 (copy).jpg"):
        shutil.copy(color / "13.jpg", unused / name)
    rep = validate(c.ds, quick=True)
    assert rep["blocking"] and list(rep["problems"]) == ["frame_name_clash"]
    res = c.run()
    assert res.committed
    stage, reason, detail = exclusions_of(res)[IDS["spNO.2/a"]]
    assert (stage, reason) == ("ingest", "frame_name_clash")
    assert detail == (
        f"{IDS['spNO.2/a']}: two files carry frame number 13: part_A/data/spNO.2/a/color/13 - Copy.jpg and "
        "part_A/data/spNO.2/a/color/13.jpg"
    )
    assert len(res.excluded) == 1  # the unused clip's clash stops nothing
    assert_good_samples_unchanged(c, res, {IDS["spNO.2/a"]})


# -- links that leave the dataset root (issue 15, item 13) -------------------------------


@pytest.mark.parametrize("what", ["folder", "frame"])
def test_13_frames_linked_from_outside_the_root_are_refused_unless_allowed(committed, tmp_path, what):
    c = committed
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    if what == "folder":
        link = c.root / FRAMES / "spNO.3" / "a"
        shutil.move(str(link), str(outside / "a"))
        link.symlink_to(outside / "a", target_is_directory=True)
    else:
        link = frame(c, "spNO.3/a", "color", 5)
        shutil.move(str(link), str(outside / "5.jpg"))
        link.symlink_to(outside / "5.jpg")
    with pytest.raises(CatalogError, match=r"leads outside the dataset root .*allow_links_outside_root: true"):
        c.run()
    assert_previous_version_intact(c, committed=False)
    path = c.cat.path
    path.write_text(
        path.read_text().replace("label_scheme: casme3_7", "label_scheme: casme3_7\n    allow_links_outside_root: true")
    )
    cat = load_catalog(path)
    said = []
    res = run(cat, cat.dataset("t"), workers=1, **{**QUIET, "log": said.append})
    assert not res.committed  # the same bytes: up to date
    assert any("links leaving the dataset root, used because allow_links_outside_root is true" in m for m in said)


def test_17_the_lock_is_taken_before_a_first_run_creates_the_store(committed):
    """Two first runs used to both create the store before either held the lock."""
    from pipeline.store import StoreLockedError, store_lock

    c = committed
    path = c.cat.store_root / "t"
    shutil.rmtree(path)
    with store_lock(path):  # another run holds it
        with pytest.raises(StoreLockedError, match="is locked by another run"):
            c.run()
    assert not path.exists()  # nothing was created while the lock was held elsewhere
    assert c.run().committed


# -- case and Unicode spellings (issue 15, item 9) ---------------------------------------


def test_9_a_row_spelling_subject_and_clip_in_another_case_is_the_same_sample(committed):
    c = committed
    row = sheet_row(c.root, "spNO.1/a")
    row_b = sheet_row(c.root, "spNO.1/b")

    def respell(df):
        again = df.loc[[row - 2]].copy()
        again["Subject"], again["Filename"] = "SPNO.1", "A"
        df.loc[row_b - 2, "Subject"] = "SpNo.1"  # another clip of the same subject, spelled otherwise
        return pd.concat([df, again], ignore_index=True)

    rewrite_annotation(c.root, respell)
    res = c.run()
    assert res.committed and res.recomputed == 0  # the same samples, the same arrays
    assert set(res.manifest["subject"]) == {"spNO.1", "spNO.2", "spNO.3"}  # no second subject across folds
    new_row = len(BASELINE) + 2  # appended after the five baseline rows (header = row 1)
    stage, reason, detail = exclusions_of(res)[IDS["spNO.1/a"]]
    assert (stage, reason) == ("ingest", "duplicate_row")
    assert f"row {new_row}: same clip and onset/apex as row {row}" in detail
    assert "spelled 'SPNO.1/A' here and 'spNO.1/a' in row" in detail
    b = res.manifest.set_index("sample_id").loc[IDS["spNO.1/b"]]
    assert b["status"] == "ok" and "spelled 'SpNo.1/b' here, spNO.1/b in an earlier row" in b["note"]


def test_9_a_folder_named_in_nfd_is_found_for_a_sheet_in_nfc(committed):
    import unicodedata

    c = committed
    nfc, nfd = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
    assert nfc != nfd
    clips = c.root / FRAMES / "spNO.3"
    (clips / "a").rename(clips / nfd)  # as macOS names it
    row = sheet_row(c.root, "spNO.3/a")

    def rename(df):
        df.loc[row - 2, "Filename"] = nfc
        return df

    rewrite_annotation(c.root, rename)
    res = c.run()
    assert res.committed
    got = res.manifest[res.manifest["subject"] == "spNO.3"]
    assert len(got) == 1 and got.iloc[0]["status"] == "ok" and len(res.excluded) == 0


# -- spreadsheet quirks (issue 15, item 12) ----------------------------------------------


def _edit_workbook(root: Path, edit) -> None:
    import openpyxl

    path = root / ANNOTATION
    wb = openpyxl.load_workbook(path)
    edit(wb["label"])
    wb.save(path)


def test_12_merged_subject_cells_and_uncomputed_formulas_are_named_as_such(committed):
    c = committed
    r_a, r_b = sheet_row(c.root, "spNO.1/a"), sheet_row(c.root, "spNO.1/b")
    r_c = sheet_row(c.root, "spNO.2/c")

    def edit(ws):
        assert r_b == r_a + 1 and ws.cell(r_a, 1).value == ws.cell(r_b, 1).value == "spNO.1"
        ws.merge_cells(start_row=r_a, start_column=1, end_row=r_b, end_column=1)  # as people lay out subjects
        ws.cell(r_c, 3).value = f"=D{r_c}-8"  # Onset as a formula, saved without a value

    _edit_workbook(c.root, edit)
    res = c.run()
    assert res.committed
    ex = exclusions_of(res)
    stage, reason, detail = ex[f"row {r_b}"]
    assert (stage, reason) == ("ingest", "merged_cell")
    assert f"row {r_b}: cells A{r_a}:A{r_b} are merged (the value 'spNO.1' is in A{r_a} only)" in detail
    stage, reason, detail = ex[f"row {r_c}"]
    assert (stage, reason) == ("ingest", "formula_without_value")
    assert f"cell C{r_c} holds the formula '=D{r_c}-8' with no saved value" in detail


def test_12_a_formula_with_a_saved_value_is_not_a_quirk(tmp_path):
    """The saved values are streamed (read-only) and matched to the formula cells by
    position: a formula whose file holds its value is read like any value, one without
    is named; a spreadsheet application saves `<f>` and `<v>` together (written here into
    the sheet's XML, as openpyxl saves formulas without values)."""
    import zipfile

    import openpyxl

    from pipeline.ingest import sheet_quirks

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "label"
    ws["A1"], ws["B2"], ws["C3"] = "Subject", "=1+1", "=2+2"
    plain = tmp_path / "plain.xlsx"
    wb.save(plain)
    saved = tmp_path / "saved.xlsx"
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(saved, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert b'<c r="C3"><f>2+2</f><v /></c>' in data
                data = data.replace(b'<c r="C3"><f>2+2</f><v /></c>', b'<c r="C3"><f>2+2</f><v>4</v></c>')
            zout.writestr(item, data)
    got = sheet_quirks(saved, "label")
    assert list(got) == [2] and "cell B2 holds the formula '=1+1' with no saved value" in got[2][0]
    assert sorted(sheet_quirks(plain, "label")) == [2, 3]  # neither saved: both named


def test_12_a_sheet_whose_rows_mostly_cannot_be_read_is_a_failed_run_not_a_commit(committed):
    from pipeline.runner import RunRefused

    c = committed

    def edit(ws):
        ws.merge_cells(start_row=2, start_column=1, end_row=6, end_column=1)  # 4 of 5 subjects blank

    _edit_workbook(c.root, edit)
    with pytest.raises(RunRefused, match=r"4 of the 5 annotation rows cannot be read as samples \({'merged_cell': 4}"):
        c.run()
    assert_previous_version_intact(c, committed=False)


# -- store hygiene (issue 15, item 15) ----------------------------------------------------


def test_15_gc_deletes_what_a_failed_run_left_and_keeps_every_version(committed, monkeypatch, capsys):
    from mepipe.cli import main
    from pipeline.gc import disk_bytes
    from pipeline.verify import verify

    c = committed
    path = c.cat.path
    monkeypatch.setenv("MEPIPE_FAULT", "clip_error:*")  # every task of the next run fails
    cat = load_catalog(write_catalog(path.parent, params="depth:\n  fill: min\n"))  # recompute depth
    res = run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert res.failed_run and res.kept_branch
    monkeypatch.delenv("MEPIPE_FAULT")
    st = Store(cat.store_root / "t", create=False)
    versions = [v["snapshot"] for v in st.versions()]
    before = disk_bytes(st.path)
    assert main(["--catalog", str(path), "gc", "--dataset", "t"]) == 0
    out = capsys.readouterr().out
    assert "and 1 killed run(s)' scratch branches" in out and "MB on disk" in out
    st = Store(cat.store_root / "t", create=False)
    assert disk_bytes(st.path) < before
    assert list(st.repo.list_branches()) == ["main"]
    assert [v["snapshot"] for v in st.versions()] == versions  # every version still there
    assert verify(st, log=lambda *a: None).ok


def test_15_a_run_collects_garbage_past_the_threshold(committed):
    c = committed
    path = c.cat.path
    path.write_text(
        path.read_text().replace("label_scheme: casme3_7", "label_scheme: casme3_7\n    gc_threshold_mb: 0")
    )
    _force_a_new_version(c)
    cat = load_catalog(path)
    said = []
    res = run(cat, cat.dataset("t"), workers=1, **{**QUIET, "log": said.append})
    assert res.committed
    assert any(m.startswith("garbage collection: ") and "objects no version reaches were deleted" in m for m in said)


def test_17_validate_checks_part_b_recordings_and_prints_no_nan_notes(committed):
    c = committed
    part_b = c.root / "part_B" / "data" / "spNO.1"
    part_b.mkdir(parents=True)
    (part_b / "v1.mp4").write_bytes(b"not a video at all")
    path = c.cat.path
    path.write_text(path.read_text() + "    unlabelled:\n      frames_dir: part_B/data\n")
    rep = validate(load_catalog(path).dataset("t"), quick=True)
    assert "nan" not in rep["notes"]  # samples without a note have no note
    assert [w for w, _ in rep["problems"]["video_empty"]] == ["part_B/data/spNO.1/v1.mp4"]
    assert rep["recordings"] == 0 and rep["samples"] == len(BASELINE)


def test_13_an_unlabelled_recording_linked_from_outside_the_root_is_refused(committed, tmp_path):
    c = committed
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"whatever")
    part_b = c.root / "part_B" / "data" / "spNO.1"
    part_b.mkdir(parents=True)
    (part_b / "v1.mp4").symlink_to(outside)
    path = c.cat.path
    path.write_text(path.read_text() + "    unlabelled:\n      frames_dir: part_B/data\n")
    with pytest.raises(CatalogError, match=r"v1\.mp4 leads outside the dataset root .*allow_links_outside_root"):
        list_recordings(load_catalog(path).dataset("t"))
