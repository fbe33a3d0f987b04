"""Motion stages against independent references (closed forms, direct formulas, OpenCV)."""

from fractions import Fraction

import cv2
import numpy as np
import pytest

from stages.align import similarity_matrix, transform_points, warp_face
from stages.flow import farneback, flow_to_color, magnitude, resize_flow, strain, tvl1
from stages.synth import displacement_field, warp
from stages.temporal import (
    amplify_motion,
    arp_coefficients,
    dynamic_image,
    eulerian_magnify,
    magnify_pair,
    tim_interpolate,
    uniform_indices,
)


@pytest.fixture(scope="module")
def face_crop(face_frames):
    from pipeline.face_models import landmark_backend
    from stages.crop import apply_crop, crop_box

    img = face_frames[0]
    lm = landmark_backend("dlib")(img)
    return apply_crop(img, crop_box(lm, img.shape[:2]), 160), lm


def epe(a, b, m=12):
    return float(np.hypot(*(a - b)[m:-m, m:-m].transpose(2, 0, 1)).mean())


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_subpixel_translation_recovered(face_crop, method):
    img, _ = face_crop
    dx, dy = 0.4, -0.3
    M = np.float32([[1, 0, dx], [0, 1, dy]])  # forward map: content moves by (+dx, +dy)
    moved = cv2.warpAffine(img, M, img.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    flow = (tvl1 if method == "tvl1" else farneback)(img, moved)
    truth = np.zeros_like(flow)
    truth[..., 0], truth[..., 1] = dx, dy
    err = epe(flow, truth)
    print(f"{method}: end-point error of a (0.4, -0.3) px translation = {err:.3f} px")
    assert err < (0.05 if method == "tvl1" else 0.1)


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_known_warp_recovered(face_crop, method):
    img, _ = face_crop
    lm = np.array([[80.0, 60.0]] * 68)
    field = displacement_field(img.shape[:2], lm, "brow_raise", 2.0, 20.0)  # 2 px bump at (80, 60)
    moved = warp(img, field, 1.0)
    flow = (tvl1 if method == "tvl1" else farneback)(img, moved)
    err = epe(flow, field)
    peak = flow[50:70, 70:90, 1].mean()
    print(
        f"{method}: EPE of a 2 px local warp = {err:.3f} px, mean v at the bump {peak:.2f} (truth {field[50:70, 70:90, 1].mean():.2f})"
    )
    assert err < 0.3 and peak < -1.0


def test_strain_closed_form_on_linear_field():
    a, b, c, d = 0.02, -0.01, 0.03, -0.015
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float64)
    flow = np.stack([a * xx + b * yy, c * xx + d * yy], axis=2).astype(np.float32)
    want = np.sqrt(a**2 + d**2 + 0.5 * (b + c) ** 2)
    np.testing.assert_allclose(strain(flow), want, rtol=1e-4)
    np.testing.assert_allclose(magnitude(flow), np.hypot(flow[..., 0], flow[..., 1]))


def test_resize_flow_scales_vectors():
    f = np.zeros((310, 310, 2), np.float32)
    f[..., 0], f[..., 1] = 3.1, -1.55
    g = resize_flow(f, 224)
    np.testing.assert_allclose(g[..., 0], 3.1 * 224 / 310, rtol=1e-5)
    np.testing.assert_allclose(g[..., 1], -1.55 * 224 / 310, rtol=1e-5)
    assert flow_to_color(f).shape == (310, 310, 3)


def test_dynamic_image_coefficients_match_the_issue():
    a = arp_coefficients(8)
    want = [-8.4607, -1.4607, 1.0393, 2.0393, 2.2893, 2.0893, 1.5893, 0.875]
    np.testing.assert_allclose(a / a[-1] * 0.875, want, atol=1e-4)


def test_dynamic_image_equals_direct_formula():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 5, 6)).astype(np.float64)
    T = 8
    H = [sum(Fraction(1, i) for i in range(1, k + 1)) for k in range(T + 1)]
    alpha = [float(2 * (T - t + 1) - (T + 1) * (H[T] - H[t - 1])) for t in range(1, T + 1)]
    d = sum(alpha[t] * frames[t] for t in range(T))
    d = (d - d.min()) / (d.max() - d.min())
    np.testing.assert_allclose(dynamic_image(frames), d, atol=1e-6)
    assert dynamic_image(frames).dtype == np.float32


def test_uniform_sampling():
    assert list(uniform_indices(16, 8)) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert list(uniform_indices(16, 8, offset=0.5)) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert list(uniform_indices(5, 8)) == [0, 0, 1, 1, 2, 3, 3, 4]


def test_tim_reproduces_input_at_original_length_and_interpolates():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (11, 6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tim_interpolate(clip, 11), clip)
    ramp = np.linspace(0, 100, 9)[:, None] * np.ones((9, 4))
    out = tim_interpolate(ramp, 17)
    assert out.shape == (17, 4)
    np.testing.assert_allclose(out[::2], ramp, atol=1e-9)  # original positions kept
    assert np.abs(out[1::2, 0] - (ramp[:-1, 0] + ramp[1:, 0]) / 2).max() < 6.0  # near the midpoints


def measured_shift(frames, ref, grad):
    """Least-squares displacement of each frame relative to `ref` (1-D, small motion)."""
    d = (frames - ref[None]).reshape(len(frames), -1)
    g = grad.reshape(-1)
    return -(d @ g) / (g @ g)


@pytest.mark.parametrize("f0,inside", [(2.0, True), (8.0, False)])
def test_magnification_amplifies_in_band_only(f0, inside):
    fps, T, A, alpha = 30.0, 60, 0.15, 3.0
    x = np.arange(64, dtype=np.float64)
    pattern = lambda s: 128 + 60 * np.sin(2 * np.pi * (x + s) / 16.0)  # noqa: E731
    t = np.arange(T) / fps
    delta = A * np.sin(2 * np.pi * f0 * t)
    frames = np.stack([np.tile(pattern(d), (64, 1)) for d in delta]).astype(np.float32)
    out = eulerian_magnify(frames, alpha, fps, 1.0, 3.0, levels=3)
    ref = np.tile(pattern(0.0), (64, 1))
    grad = np.gradient(ref, axis=1)
    gain = np.std(measured_shift(out, ref, grad)) / np.std(measured_shift(frames, ref, grad))
    print(f"f0 = {f0} Hz: measured amplification {gain:.2f} (1 + alpha = {1 + alpha})")
    if inside:
        assert gain == pytest.approx(1 + alpha, rel=0.15)
    else:
        assert gain == pytest.approx(1.0, abs=0.05)


def test_magnify_pair_scales_the_change():
    x = np.arange(64, dtype=np.float64)
    pattern = lambda s: 128 + 60 * np.sin(2 * np.pi * (x + s) / 16.0)  # noqa: E731
    on, ap = np.tile(pattern(0), (64, 1)).astype(np.float32), np.tile(pattern(0.1), (64, 1)).astype(np.float32)
    m = magnify_pair(on, ap, 3.0, levels=3)
    grad = np.gradient(on, axis=1)
    s = measured_shift(np.stack([ap, m]), on, grad)
    assert s[1] / s[0] == pytest.approx(4.0, rel=0.1)
    np.testing.assert_allclose(amplify_motion(np.ones((2, 2, 2)), 2.0), 2.0)


def test_similarity_alignment_levels_the_eyes(face_frames):
    from pipeline.face_models import landmark_backend
    from stages.crop import apply_crop, crop_box

    img = face_frames[1]
    lm = landmark_backend("dlib")(img)
    R = cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), 12.0, 1.0)
    rot = cv2.warpAffine(img, R, img.shape[1::-1])
    lm_r = transform_points(lm, R)
    box = crop_box(lm_r, img.shape[:2])
    out = warp_face(rot, lm_r, box, 72)
    p = transform_points(lm_r, similarity_matrix(lm_r, box, 72))
    le, re = p[36:42].mean(0), p[42:48].mean(0)
    assert out.shape == (72, 72, 3)
    assert abs(le[1] - re[1]) < 1e-3  # eyes levelled
    # the rotation is undone: the aligned landmark shape of the rotated face equals the upright
    # one's up to scale and shift (boxes differ: the rotated landmarks have a wider extent)
    box0 = crop_box(lm, img.shape[:2])
    q = transform_points(lm, similarity_matrix(lm, box0, 72))
    norm = lambda a: (a - a.mean(0)) / np.linalg.norm(a - a.mean(0))  # noqa: E731
    assert np.abs(norm(p) - norm(q)).max() < 0.01
    # with level eyes it is exactly the landmark crop of stages.crop
    lv = lm.copy()
    lv[36:48, 1] = lv[36:48, 1].mean()
    np.testing.assert_array_equal(warp_face(img, lv, box0, 72), apply_crop(img, box0, 72))
