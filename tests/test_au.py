"""AU estimators and seed 000's selection (eq. 1-3), against independent computations."""

import csv

import numpy as np
import pandas as pd
import pytest

from pipeline.au_calibrate import calibrate
from pipeline.media import feat_test_data
from stages.au import (
    AU_COLUMNS,
    AUS,
    AUInputError,
    landmark_features,
    landmark_intensities,
    normalise_shape,
    onset_offset_frames,
    openface_intensities,
    openface_landmarks,
    probability_to_intensity,
    select_pairs,
    temporal_median,
)

CSV = feat_test_data() / "OpenFace_Test.csv"


@pytest.fixture(scope="module")
def openface():
    return pd.read_csv(CSV)


def reference_selection(path, phi, lag):
    """Eq. 2-3 written out over the raw CSV text: apex if any AUxx_r > phi, onset = apex - lag."""
    with open(path, newline="") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    frames = [int(r["frame"]) for r in rows]
    pairs = []
    for r in rows:
        vals = [float(r[f"{c}_r"]) for c in AU_COLUMNS if f"{c}_r" in r]
        if r["success"].strip() == "1" and float(r["confidence"]) >= 0.75 and any(v > phi for v in vals):
            apex = int(r["frame"])
            if apex - lag in frames:
                pairs.append((apex - lag, apex))
    return pairs


@pytest.mark.parametrize("phi", [2.1, 1.0, 0.5, 0.3])
def test_selection_on_real_openface_csv_equals_reference(openface, phi):
    frames, ts, inten = openface_intensities(openface)
    pairs, excl = select_pairs(frames, inten, phi=phi, lag=8)
    got = list(zip(pairs["onset"], pairs["apex"]))
    assert got == reference_selection(CSV, phi, 8)
    # every candidate is either a pair or excluded with a reason (never dropped)
    n_cand = int((np.nan_to_num(inten, nan=-1).max(axis=1) > phi).sum())
    assert len(pairs) + len(excl) == n_cand
    assert set(excl["reason"]) <= {"onset_before_start"}
    if phi == 2.1:
        assert len(pairs) == 0  # this 0.1 s clip of a calm face has no AU above 2.1
    if phi == 0.3:
        assert len(pairs) > 50  # consecutive apexes each make their own pair


def test_openface_columns_and_masks(openface):
    df = openface.copy()
    df.loc[5, " success"] = 0
    df.loc[6, " confidence"] = 0.1
    frames, ts, inten = openface_intensities(df)
    assert inten.shape == (100, len(AUS))
    assert np.isnan(inten[5]).all() and np.isnan(inten[6]).all() and np.isfinite(inten[7]).all()
    assert inten[0, AUS.index(1)] == pytest.approx(float(openface[" AU01_r"][0]), abs=1e-6)
    with pytest.raises(AUInputError, match="missing"):
        openface_intensities(df.drop(columns=[" success"]))


def test_selection_exclusions_named():
    frames = np.arange(20)
    inten = np.zeros((20, len(AUS)))
    # apex 3: onset -5 before the start; 12: a pair (onset 4); 13: onset 5 is a known-bad frame;
    # 16: onset 8 has no face
    inten[[3, 12, 13, 16], 0] = 3.0
    inten[8] = np.nan
    pairs, excl = select_pairs(frames, inten, phi=2.1, lag=8, bad={5})
    got = dict(zip(excl["apex"], excl["reason"]))
    assert got[3] == "onset_before_start" and got[16] == "onset_no_face"
    assert got[13] == "known_bad_frame"
    assert list(pairs["apex"]) == [12] and list(pairs["onset"]) == [4]
    assert list(pairs["aus"]) == [[1]]


def test_onset_lag_keeps_time_not_frames():
    assert onset_offset_frames(30) == 8
    assert onset_offset_frames(60) == 16
    assert onset_offset_frames(100) == 27
    assert onset_offset_frames(200) == 53


def test_eq1_probability_times_five():
    np.testing.assert_allclose(probability_to_intensity([0, 0.42, 1, 1.3]), [0, 2.1, 5, 5])


def test_landmark_features_invariant_to_similarity(openface):
    lm = openface_landmarks(openface)[:10]
    th = np.deg2rad(17)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = 2.3 * lm @ R.T + [40, -7]
    np.testing.assert_allclose(landmark_features(moved), landmark_features(lm), atol=1e-9)
    n = normalise_shape(lm)
    np.testing.assert_allclose(n[:, 36:42].mean(1), [[-0.5, 0]] * 10, atol=1e-12)


def test_landmark_estimator_sees_a_brow_raise(openface):
    lm = np.repeat(openface_landmarks(openface)[:1], 30, axis=0)
    iod = np.linalg.norm(lm[0, 36:42].mean(0) - lm[0, 42:48].mean(0))
    lm[15:20, 17:27, 1] -= 0.1 * iod  # brows up by 0.1 inter-ocular distance for 5 frames
    inten = landmark_intensities(lm)
    assert np.allclose(inten[:10], 0) and np.allclose(inten[25:], 0)
    au1, au2 = inten[17, AUS.index(1)], inten[17, AUS.index(2)]
    assert au1 == pytest.approx(5.0, abs=0.01) and au2 == pytest.approx(5.0, abs=0.01)
    assert inten[17, AUS.index(12)] == 0
    # one-frame jitter is removed by the 3-frame median, a 5-frame movement is not
    lm2 = np.repeat(openface_landmarks(openface)[:1], 30, axis=0)
    lm2[10, 17:27, 1] -= 0.1 * iod
    assert np.nanmax(landmark_intensities(lm2)) == 0


def test_temporal_median_by_hand():
    f = np.array([[1.0], [5.0], [2.0], [np.nan], [4.0]])
    np.testing.assert_array_equal(temporal_median(f, 3)[:, 0], [1.0, 2.0, 3.5, np.nan, 4.0])


def test_calibration_report_is_honest(openface):
    gains, rep = calibrate(openface)
    r = rep.set_index("AU")
    assert r.loc["AU45", "calibrated"] and r.loc["AU45", "cv_pearson_r"] > 0.9
    assert not r.loc["AU12", "calibrated"]  # OpenFace never moves AU12 in this CSV
    assert gains["AU12"] == 50.0
