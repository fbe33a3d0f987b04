"""The `pyfeat` AU estimator: py-feat 2.1.5's real Detectorv1 pipeline (RetinaFace,
MobileFaceNet, HOG + PCA + XGBoost) run offline from local model files - stand-ins of
the published files here (tests/pyfeat_standins.py), on real face frames."""

import cv2
import numpy as np
import pytest

from tests.conftest import video_frames

pytest.importorskip("feat.detector")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.pyfeat_standins import build

    return build(tmp_path_factory.mktemp("pyfeat_models"))


def test_loading_pyfeat_leaves_autograd_on(models):
    """py-feat's RetinaFace constructor calls torch.set_grad_enabled(False) for the whole
    process; training in the same process must not lose its gradients."""
    import torch

    from pipeline.pyfeat_au import detector

    detector(str(models))
    assert torch.is_grad_enabled()


def test_model_files_are_found_in_the_hub_layout(models, tmp_path):
    from pipeline.pyfeat_au import model_files

    found = model_files(models)
    assert all(p is not None and p.is_file() for p in found.values())
    assert set(p.name for p in found.values()) == {
        "model.safetensors",
        "mobilefacenet_model_best.pth.tar",
        "xgb_au_classifier_v2.skops",
    }
    assert all(p is None for p in model_files(tmp_path).values())


def test_segment_matches_pyfeat_detect_and_marks_faceless_frames(models, tmp_path):
    """Our batched path (detect_faces + forward, faces from the dlib landmarks) gives 5 x
    the probabilities py-feat's own `detect()` gives for the same frames and boxes; frames
    without a face are NaN; AU45 (not a py-feat AU) is NaN."""
    import torch
    from feat.pretrained import AU_LANDMARK_MAP

    from pipeline.face_models import landmark_backend
    from pipeline.pyfeat_au import _GivenBoxes, detector, landmark_box
    from pipeline.screening import pyfeat_segment
    from schemas.tables import AUS

    faces = video_frames("single_face.mp4", [0, 10, 20, 30, 40])
    empty = video_frames("no_face.mp4", [5])
    frames = faces[:3] + empty + faces[3:]  # frame 3 has no face
    color = tmp_path / "rec" / "color"
    color.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(color / f"{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    rec = {"kind": "frames", "frames": {i: f"rec/color/{i}.png" for i in range(len(frames))}}
    face_params = {"backend": "dlib", "upsample": 1, "min_detection_confidence": 0.5}
    out = pyfeat_segment(rec, str(tmp_path), 0, len(frames), str(models), "landmarks", face_params, batch=4)
    inten = out["intensities"]
    assert out["frames"].tolist() == list(range(6)) and inten.shape == (6, len(AUS))
    assert np.isnan(inten[3]).all()  # no face
    assert np.isnan(inten[:, AUS.index(45)]).all()  # AU45: not a py-feat output
    rest = np.delete(inten, [AUS.index(45)], axis=1)[[0, 1, 2, 4, 5]]
    assert np.isfinite(rest).all() and (rest >= 0).all() and (rest <= 5).all() and rest.std() > 0

    # the reference: py-feat's high-level detect() on the same frames and boxes
    det = detector(str(models))
    lmk = landmark_backend(face_params["backend"])
    ref_frames = [frames[i] for i in (0, 1, 2, 4, 5)]
    boxes = [[landmark_box(lmk(f), f.shape)] for f in ref_frames]
    real = det.facepose_detector
    det.facepose_detector = _GivenBoxes(boxes)
    try:
        x = torch.from_numpy(np.stack(ref_frames)).permute(0, 3, 1, 2).contiguous()
        fex = det.detect(x, data_type="tensor", batch_size=len(ref_frames), progress_bar=False)
    finally:
        det.facepose_detector = real
    fex = fex.sort_values("frame")
    for a in AUS:
        col = f"AU{a:02d}"
        if col in AU_LANDMARK_MAP["Feat"]:
            np.testing.assert_allclose(
                inten[[0, 1, 2, 4, 5], AUS.index(a)], 5 * fex[col].to_numpy(), rtol=1e-5, err_msg=col
            )

    # py-feat's own face detector (here a stand-in that never fires): every frame NaN
    own = pyfeat_segment(rec, str(tmp_path), 0, 2, str(models), "retinaface", face_params)
    assert np.isnan(own["intensities"]).all()


@pytest.mark.slow
def test_pyfeat_screening_in_a_run(small_demo_source, models, tmp_path, monkeypatch):
    """`au: {estimator: pyfeat}` through a whole run: per-frame AU table from py-feat,
    recorded as such, reused by the next run."""
    from pipeline.catalog import load_catalog
    from pipeline.runner import run
    from pipeline.store import Store
    from tests.conftest import write_catalog

    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(small_demo_source))
    p = write_catalog(
        tmp_path,
        params="au: {estimator: pyfeat, pyfeat_faces: landmarks, segment_frames: 60}\nface: {backend: mediapipe}\n",
    )
    p.write_text(p.read_text() + f"    unlabelled:\n      frames_dir: part_B/data\n      pyfeat_models: {models}\n")
    cat = load_catalog(p)
    logs = []
    res = run(cat, cat.dataset("t"), workers=2, log=logs.append, progress=False, methods=["dvscl"])
    assert res.committed
    st = Store(cat.store_root / "t", create=False)
    frames, videos = st.table("au_frames"), st.table("videos")
    assert (videos["estimator"] == "pyfeat").all() and len(frames) == videos["n_frames"].sum() == 480
    assert frames["estimator_version"].str.startswith("py-feat 2.1.5").all()
    assert frames["AU45"].isna().all()
    vals = frames[["AU01", "AU12"]].to_numpy()
    assert np.isfinite(vals).mean() > 0.95 and np.nanmin(vals) >= 0 and np.nanmax(vals) <= 5
    meta = st.repo.lookup_snapshot(st.head()).metadata
    assert meta["au_estimator"]["name"] == "pyfeat"
    again = []
    run(cat, cat.dataset("t"), workers=2, log=again.append, progress=False, methods=["dvscl"])
    assert any("0 to estimate" in m for m in again), again
