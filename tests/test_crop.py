import cv2
import numpy as np
import pytest

from stages.crop import apply_crop, brow_extension, crop_box, landmarks_to_crop


def synthetic_landmarks():
    """68 points with known geometry: brows at y=100, eyes at y=120, chin at y=300,
    x from 50 to 250."""
    lm = np.zeros((68, 2))
    lm[0:17, 0] = np.linspace(50, 250, 17)
    lm[0:17, 1] = np.linspace(150, 300, 17)
    lm[17:27] = [[90 + 10 * i, 100] for i in range(10)]
    lm[36:48, 1] = 120.0
    lm[36:48, 0] = np.linspace(90, 210, 12)
    lm[27:36] = [150, 200]
    lm[48:68] = [150, 250]
    return lm


def test_box_by_hand():
    lm = synthetic_landmarks()
    assert brow_extension(lm) == pytest.approx(20.0)
    # ext = min(20, 0.15 * (300 - 100)) = 20 -> top 80, bottom 300, height 220; width 200
    # square side 220 centred at (150, 190) -> x0 = 40, y0 = 80
    assert crop_box(lm, (480, 640)) == (40, 80, 260, 300)
    # a tight limit on the brow extension: ext = 0.05 * 200 = 10 -> top 90, side 210
    assert crop_box(lm, (480, 640), max_brow_ext=0.05) == (45, 90, 255, 300)


def test_box_shifted_inside_image():
    lm = synthetic_landmarks() - [40, 0]  # face touches the left edge
    x0, y0, x1, y1 = crop_box(lm, (480, 640))
    assert x0 == 0 and x1 - x0 == y1 - y0 == 220


def test_apply_crop_equals_slice_and_resize():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box = (20, 30, 170, 180)
    ref = cv2.resize(img[30:180, 20:170], (310, 310), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(apply_crop(img, box, 310), ref)
    with pytest.raises(ValueError, match="outside"):
        apply_crop(img, (250, 0, 350, 100), 310)


def test_landmark_mapping_follows_the_pixels():
    img = np.zeros((400, 400), np.uint8)
    pt = (173.0, 221.0)
    cv2.circle(img, (int(pt[0]), int(pt[1])), 3, 255, -1)
    box = (100, 150, 300, 350)
    crop = apply_crop(img, box, 310, cv2.INTER_LINEAR)
    mapped = landmarks_to_crop(np.array([pt]), box, 310)[0]
    ys, xs = np.nonzero(crop > 64)
    w = crop[ys, xs].astype(float)
    centroid = (np.average(xs, weights=w), np.average(ys, weights=w))
    assert np.hypot(centroid[0] - mapped[0], centroid[1] - mapped[1]) < 0.6
