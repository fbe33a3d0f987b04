"""AU screening end to end on the demo's unlabelled part (real face footage, injected
movements at known frames) with the `landmarks` estimator, and video frame access."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.catalog import load_catalog
from pipeline.io import iter_video, read_rgb, read_video_frame
from pipeline.media import feat_test_data
from pipeline.runner import run
from pipeline.store import Store
from tests.conftest import write_catalog

QUIET = dict(log=lambda *a: None, progress=False, methods=["dvscl"])


@pytest.mark.parametrize("name", ["single_face.mp4", "avi"])
def test_video_seek_is_frame_accurate(tmp_path, name):
    if name == "avi":
        src = cv2.VideoCapture(str(feat_test_data() / "single_face.mp4"))
        path = tmp_path / "v.avi"
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
        for _ in range(40):
            ok, f = src.read()
            w.write(f)
        w.release()
    else:
        path = feat_test_data() / name
    seq = [f for _, f in iter_video(path, 0, 10**6)]
    assert len(seq) >= 40
    for i in (0, 7, 21, 39):
        np.testing.assert_array_equal(read_video_frame(path, i), seq[i])
        np.testing.assert_array_equal(read_rgb(f"{path}#{i}"), seq[i])
    assert [i for i, _ in iter_video(path, 30, 35)] == [30, 31, 32, 33, 34]


def screening_catalog(tmp_path, params=""):
    p = write_catalog(tmp_path, params=params)
    p.write_text(p.read_text() + "    unlabelled:\n      frames_dir: part_B/data\n")
    return p


@pytest.mark.slow
def test_injected_movements_are_selected_and_quiet_stretches_are_not(dataset_copy, tmp_path):
    root, _ = dataset_copy
    catalog = screening_catalog(tmp_path)
    cat = load_catalog(catalog)
    res = run(cat, cat.dataset("t"), workers=2, **QUIET)
    truth = json.loads((root / ".mepipe-demo.json").read_text())["unlabelled_events"]
    st = Store(cat.store_root / "t", create=False)
    frames = st.table("au_frames")
    videos = st.table("videos")
    assert set(videos["video"]) == set(truth) and (videos["estimator"] == "landmarks").all()
    assert len(frames) == sum(videos["n_frames"]) == 480 and frames["face"].all()
    man = res.manifest
    sel = man[man["source"] == "selected"]
    assert (sel["status"] == "ok").all() and (sel["onset"] == sel["apex"] - 8).all()
    far = 0
    for vid, events in truth.items():
        apexes = set(sel.loc[sel["sample_id"].str.contains(f"/sel/{vid}/", regex=False), "apex"])
        for onset, apex, offset, kind in events:
            assert apex in apexes, (vid, apex, kind, sorted(apexes))
        far += sum(all(abs(a - e[1]) > 8 for e in events) for a in apexes)
    assert far <= 2, far  # quiet stretches yield (almost) nothing
    # the pretraining product: labelled + selected pairs in one table, with a source column
    assert set(man["source"]) == {"labelled", "selected"}
    assert (man["source"] == "labelled").sum() == 20
    # the selected pairs of the frame-folder video have depth, those of the AVI do not
    avi = sel[sel["ann_file"].str.endswith(".avi")]
    assert avi["onset_depth_path"].isna().all() and sel["onset_depth_path"].notna().any()
    meta = st.versions()[0]["metadata"]
    assert meta["au_estimator"]["name"] == "landmarks" and meta["au_estimator"]["phi"] == 2.1
    # DVSCL's pretraining input: labelled + selected pairs; unlabelled ones carry label -1
    from training.dvscl.feed import DVSCLDataset

    pre = DVSCLDataset(cat.store_root / "t", cat.dataset("t").scheme, view="gray", sources=("labelled", "selected"))
    assert len(pre) == len(man) and (pre.labels == -1).sum() == len(sel)
    pre_d = DVSCLDataset(cat.store_root / "t", cat.dataset("t").scheme, view="depth", sources=("labelled", "selected"))
    assert len(pre_d) == len(man) - len(avi) and all(r == "no depth for this sample" for _, r in pre_d.skipped)

    # nothing changed: nothing re-estimated, no new version
    again = run(cat, cat.dataset("t"), workers=2, **QUIET)
    assert not again.committed
    # a new phi re-selects from the stored AU table without re-estimating it
    catalog.write_text(catalog.read_text() + "    params:\n      au: {phi: 3.5}\n")
    cat2 = load_catalog(catalog)
    res2 = run(cat2, cat2.dataset("t"), workers=2, **QUIET)
    meta2 = st.versions()[0]["metadata"]
    assert meta2["au_estimator"]["videos_estimated"] == [] and meta2["au_estimator"]["phi"] == 3.5
    sel2 = res2.manifest[res2.manifest["source"] == "selected"]
    assert 0 < len(sel2) < len(sel) and set(sel2["sample_id"]) < set(sel["sample_id"])
    assert res2.recomputed == 0  # surviving pairs were copied, not recomputed


def test_openface_estimator_reads_csvs(dataset_copy, tmp_path):
    """estimator: openface takes per-video OpenFace CSVs (here: the real one's 100 rows,
    repeated to the 240 frames of each demo video and numbered as OpenFace numbers a
    video's frames: frame 1..240, timestamp (frame - 1) / 30)."""
    root, _ = dataset_copy
    import pandas as pd

    real = pd.read_csv(feat_test_data() / "OpenFace_Test.csv")
    csv = real.iloc[np.arange(240) % len(real)].reset_index(drop=True)
    csv[real.columns[0]] = np.arange(1, 241)  # 'frame'
    csv[real.columns[1]] = np.round(np.arange(240) / 30, 3)  # ' timestamp'
    for vid in ("spNO.1/v1", "spNO.2/v1"):
        d = root / "openface" / vid.split("/")[0]
        d.mkdir(parents=True, exist_ok=True)
        csv.to_csv(d / "v1.csv", index=False)
    catalog = screening_catalog(tmp_path, params="au: {estimator: openface, phi: 0.6}\n")
    catalog.write_text(catalog.read_text() + "      openface_dir: openface\n")
    cat = load_catalog(catalog)
    from pipeline.screening import screen

    scr = screen(cat.dataset("t"), None, None, get_client=None, log=lambda *a: None, progress=False)
    assert set(scr.au_frames["estimator"]) == {"openface"}
    assert len(scr.au_frames) == 480
    assert (scr.samples["source"] == "selected").all()
    # the pairs, recomputed from the CSV by hand: row k is video frame k - 1; a trusted
    # row (success 1, confidence >= 0.75) with any AU > phi is an apex, its onset 8 frames
    # earlier must be a frame of the video with a trusted face
    clean = csv.rename(columns=lambda c: c.strip())
    aus = clean[[c for c in clean.columns if c.endswith("_r")]].to_numpy(float)
    trusted = (clean["success"] == 1).to_numpy() & (clean["confidence"] >= 0.75).to_numpy()
    apex = [k for k in range(240) if trusted[k] and (aus[k] > 0.6).any() and k >= 8 and trusted[k - 8]]
    want = sorted((vid, a - 8, a) for vid in ("spNO.1/v1", "spNO.2/v1") for a in apex)
    got = sorted(zip(scr.samples["subject"] + "/" + scr.samples["clip"], scr.samples["onset"], scr.samples["apex"]))
    assert want and got == want


def test_pyfeat_without_models_is_a_clear_error(dataset_copy, tmp_path, monkeypatch):
    monkeypatch.delenv("MEPIPE_PYFEAT_MODELS", raising=False)
    catalog = screening_catalog(tmp_path, params="au: {estimator: pyfeat}\n")
    cat = load_catalog(catalog)
    from pipeline.catalog import CatalogError
    from pipeline.screening import screen

    with pytest.raises(
        CatalogError, match="models--py-feat--xgb_au.*nothing is downloaded|nothing is downloaded.*xgb_au"
    ):
        screen(cat.dataset("t"), None, None, get_client=None, log=lambda *a: None, progress=False)


def test_the_screening_checkpoint_round_trips_and_refuses_what_it_cannot_trust(tmp_path):
    """Hand-made AU rows come back equal; a truncated file or one holding another video is
    not used (a warning naming the file), and nothing is read or saved without a folder."""
    from pipeline.screen_checkpoint import ScreenCheckpoint
    from schemas.tables import AU_COLUMNS

    rows = pd.DataFrame({"dataset": "t", "subject": "s1", "video": "s1/v", "frame": [0, 1, 2]})
    rows["timestamp"], rows["face"] = rows["frame"] / 30.0, [True, True, False]
    for c in AU_COLUMNS:
        rows[c] = np.array([0.5, 2.25, np.nan], np.float32)
    rows["estimator"], rows["estimator_version"] = "landmarks", "3"
    excl = [{"dataset": "t", "ann_file": "s1/v.mp4", "reason": "frames_unreadable", "detail": "s1/v.mp4: 1 frame"}]
    said = []
    ck = ScreenCheckpoint(tmp_path, log=said.append)
    ck.put("k1", rows, excl)
    frames, got_excl = ck.get("k1", "s1/v", 3)
    pd.testing.assert_frame_equal(frames, rows, check_dtype=True)
    assert got_excl == excl and ck.get("other-key", "s1/v", 3) is None
    assert ck.get("k1", "s2/w", 3) is None and "does not hold video s2/w" in said[-1]
    path = ck.folder / "k1.parquet"
    path.write_bytes(path.read_bytes()[:100])
    assert ck.get("k1", "s1/v", 3) is None and str(path) in said[-1] and "unreadable" in said[-1]
    ck.clear()
    assert not ck.folder.exists()
    off = ScreenCheckpoint(None)
    off.put("k1", rows, excl)
    assert off.get("k1", "s1/v", 3) is None


@pytest.mark.slow
def test_a_run_killed_during_screening_does_not_estimate_its_screened_videos_again(
    small_demo_source, tmp_path, monkeypatch
):
    from tests.test_crash import batch

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir(), run_dir.mkdir()
    ref = batch(screening_catalog(ref_dir), small_demo_source)
    assert ref.returncode == 0, ref.stdout[-3000:]
    catalog = screening_catalog(run_dir)
    monkeypatch.setenv("MEPIPE_TRACE", str(run_dir))
    killed = batch(catalog, small_demo_source, fault="screened_one")
    assert killed.returncode == 137, killed.stdout[-3000:]
    saved = list((run_dir / "runs" / "t" / "au-screening-checkpoint").glob("*.parquet"))
    assert len(saved) == 1
    first = [x.split()[2] for f in run_dir.glob("*.log") for x in f.read_text().splitlines() if " screen " in x]
    for f in run_dir.glob("*.log"):
        f.unlink()
    again = batch(catalog, small_demo_source)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "1 video(s) read from a stopped run's checkpoint" in again.stdout
    second = [x.split()[2] for f in run_dir.glob("*.log") for x in f.read_text().splitlines() if " screen " in x]
    assert len(second) == len(first) - 1 and set(second) < set(first), (first, second)
    want = Store(ref_dir / "stores" / "t", create=False)
    got = Store(run_dir / "stores" / "t", create=False)
    for table in ("au_frames", "videos", "manifest", "checksums"):
        pd.testing.assert_frame_equal(got.table(table), want.table(table), obj=table)
    assert not (run_dir / "runs" / "t" / "au-screening-checkpoint").exists()  # cleared by the commit
