import numpy as np
import pytest

from stages.depth import DepthError, zero_fill


def reference_neighbourhood_fill(d: np.ndarray, window: int) -> np.ndarray:
    """Eq. 16 with explicit loops, repeated from the hole rims inwards."""
    known = d > 0
    vals = d.astype(np.float64).copy()
    r = window // 2
    h, w = d.shape
    while not known.all():
        new_known = known.copy()
        new_vals = vals.copy()
        for y in range(h):
            for x in range(w):
                if known[y, x]:
                    continue
                acc, cnt = 0.0, 0
                for yy in range(max(0, y - r), min(h, y + r + 1)):
                    for xx in range(max(0, x - r), min(w, x + r + 1)):
                        if known[yy, xx]:
                            acc += vals[yy, xx]
                            cnt += 1
                if cnt:
                    new_vals[y, x] = acc / cnt
                    new_known[y, x] = True
        known, vals = new_known, new_vals
    return np.rint(vals).astype(np.uint16)


def test_hand_worked_case():
    d = np.array([[10, 0, 30], [0, 0, 0], [70, 0, 90]], dtype=np.uint16)
    # 3x3 neighbourhood means: (0,1): (10+30)/2=20; (1,0): (10+70)/2=40; centre: all four = 50
    out = zero_fill(d, "nearest", window=3)
    assert out.tolist() == [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    assert zero_fill(d, "min").tolist() == [[10, 10, 30], [10, 10, 10], [70, 10, 90]]
    assert zero_fill(d, "mean").tolist() == [[10, 50, 30], [50, 50, 50], [70, 50, 90]]


def test_nearest_matches_loop_reference_with_large_holes():
    rng = np.random.default_rng(0)
    d = rng.integers(500, 900, size=(24, 31)).astype(np.uint16)
    d[rng.random(d.shape) < 0.3] = 0
    d[5:14, 8:20] = 0  # a hole wider than the window: needs several passes
    np.testing.assert_array_equal(zero_fill(d, "nearest", 5), reference_neighbourhood_fill(d, 5))


def test_valid_pixels_untouched_and_no_zeros_left():
    rng = np.random.default_rng(1)
    d = rng.integers(1, 65535, size=(40, 40)).astype(np.uint16)
    d[rng.random(d.shape) < 0.5] = 0
    for m in ("nearest", "min", "mean"):
        out = zero_fill(d, m)
        assert out.dtype == np.uint16
        assert (out[d > 0] == d[d > 0]).all()
        assert (out > 0).all()


def test_rejects_8bit_and_empty_maps():
    with pytest.raises(DepthError, match="16-bit"):
        zero_fill(np.ones((4, 4), np.uint8))
    with pytest.raises(DepthError, match="no valid"):
        zero_fill(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="unknown zero-fill"):
        zero_fill(np.ones((4, 4), np.uint16), "median")
