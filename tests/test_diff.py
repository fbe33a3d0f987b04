import numpy as np
import pytest

from stages.diff import frame_diff, rgb_to_gray


def test_rgb_diff_matches_numpy_and_cannot_overflow():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    a[0, 0], b[0, 0] = 0, 255
    d = frame_diff(a, b)
    assert d.dtype == np.int16
    np.testing.assert_array_equal(d, a.astype(np.int64) - b.astype(np.int64))
    assert d[0, 0, 0] == -255


def test_depth_diff_int32_full_range():
    a = np.array([[0, 65535]], np.uint16)
    b = np.array([[65535, 0]], np.uint16)
    d = frame_diff(a, b)
    assert d.dtype == np.int32 and d.tolist() == [[-65535, 65535]]


def test_gray_is_bt601():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    ref = np.rint(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
    assert np.abs(rgb_to_gray(rgb).astype(int) - ref).max() <= 1


def test_shape_and_dtype_mismatch_rejected():
    with pytest.raises(ValueError, match="shape"):
        frame_diff(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        frame_diff(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint16))
