"""Seed 004's magnification and resize in torch (stages.magnify_torch) against OpenCV
(cv2.pyrDown, cv2.pyrUp, cv2.resize INTER_AREA) and the numpy version the clip task
uses (stages.temporal.magnify_pair), issue 18 point 4.

OpenCV's float32 pyramids round in an order set by its SIMD width; the torch version
follows the 4-float width of the opencv-python wheels' baseline (SSE on x86-64, NEON on
ARM). On such a build the results must be equal to the bit; on another, equal to float32
rounding.
"""

import re

import cv2
import numpy as np
import pytest
import torch

from products.micro import EulerianPair
from stages import magnify_torch as mt
from stages.temporal import magnify_pair
from tests.conftest import video_frames

_BASELINE = re.search(r"Baseline:\s*(.*)", cv2.getBuildInformation())
FOUR_LANES = bool(_BASELINE) and not re.search(r"AVX", _BASELINE.group(1))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    nt = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(nt)


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if FOUR_LANES:
        bad = got != want
        assert not bad.any(), f"{what}: {bad.sum()} values differ, first at {np.argwhere(bad)[0].tolist()}"
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, err_msg=what)


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def nchw_batch(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).to(torch.float32)


def hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 20, 21, 39, 64, 77, 78, 155, 310]


@pytest.mark.parametrize("h", SIZES)
def test_pyramid_steps_equal_opencvs(h):
    """cv2.pyrDown and cv2.pyrUp (both output sizes it allows) on random float32 images,
    every pairing of odd, even, tiny and the pipeline's sizes."""
    rng = np.random.default_rng(h)
    for w in SIZES:
        img = rng.normal(0, 50, (h, w, 3)).astype(np.float32)
        assert_same(hwc(mt.pyr_down(nchw(img))), cv2.pyrDown(img), f"pyrDown {h}x{w}")
        for H in {max(2 * h - 1, 1), 2 * h}:
            for W in {max(2 * w - 1, 1), 2 * w}:
                got = hwc(mt.pyr_up(nchw(img), (H, W)))
                assert_same(got, cv2.pyrUp(img, dstsize=(W, H)), f"pyrUp {h}x{w} -> {H}x{W}")


def test_pyramid_steps_refuse_what_they_do_not_reproduce():
    """Only OpenCV's 3-channel rounding is emulated; pyrUp takes only the sizes OpenCV allows."""
    with pytest.raises(ValueError, match="3, H, W"):
        mt.pyr_down(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="not twice"):
        mt.pyr_up(torch.zeros(1, 3, 8, 8), (18, 16))


@pytest.fixture(scope="module")
def face_crops():
    """Onset/apex-like 310x310 RGB pairs of real faces: 2, 30 and 200 frames apart."""
    f = video_frames("single_face.mp4", [0, 2, 30]) + video_frames("WolfgangLanger_Pexels.mp4", [0, 3, 200])

    def crop(img):
        y, x = (img.shape[0] - 310) // 2, (img.shape[1] - 310) // 2
        return np.ascontiguousarray(img[y : y + 310, x : x + 310])

    return np.stack([crop(f[i]) for i in (0, 0, 3, 3)]), np.stack([crop(f[i]) for i in (1, 2, 4, 5)])


@pytest.mark.parametrize(
    ("alpha", "levels", "lambda_c"), [(3.0, 4, None), (2.7, 1, None), (10.0, 6, None), (3.0, 4, 16.0)]
)
def test_magnification_equals_the_numpy_version_on_real_faces(face_crops, alpha, levels, lambda_c):
    on, ap = face_crops
    got = mt.magnify(nchw_batch(on), nchw_batch(ap), alpha, levels, lambda_c).permute(0, 2, 3, 1).numpy()
    for i in range(len(on)):
        want = magnify_pair(on[i].astype(np.float32), ap[i].astype(np.float32), alpha, levels, lambda_c)
        assert_same(got[i], want, f"pair {i}")


def test_magnification_by_zero_gives_back_the_apex_and_amplifies_the_change(face_crops):
    """Hand-worked facts: a Laplacian pyramid collapses back to its image (alpha 0 returns
    the apex), and linear magnification scales the onset -> apex difference by 1 + alpha
    where no band is attenuated (a uniform brightness step lives in the coarsest level)."""
    on, ap = face_crops
    back = mt.magnify(nchw_batch(on), nchw_batch(ap), 0.0, 4)
    np.testing.assert_allclose(back.numpy(), nchw_batch(ap).numpy(), atol=1e-3)
    step = mt.magnify(nchw_batch(on[:1]), nchw_batch(on[:1]) + 2.0, 3.0, 4) - nchw_batch(on[:1])
    np.testing.assert_allclose(step.numpy(), 8.0, atol=1e-3)


@pytest.mark.parametrize(
    ("shape", "size"), [((310, 310, 3), 224), ((310, 310, 3), 100), ((100, 77, 3), 50), ((64, 64, 1), 48)]
)
def test_area_resize_equals_opencvs_on_uint8(shape, size):
    img = np.random.default_rng(size).integers(0, 256, shape, dtype=np.uint8)
    want = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, shape[2])
    got = mt.resize_area(torch.from_numpy(img)[None], size)[0].numpy()
    assert got.dtype == np.uint8 and np.array_equal(got, want), f"{(got != want).sum()} pixels differ"


def test_area_resize_refuses_the_sizes_opencv_computes_another_way():
    for size in (155, 320):  # an integer ratio (OpenCV's fast path), an upscale
        with pytest.raises(ValueError, match="general path"):
            mt.resize_area(torch.zeros(1, 310, 310, 3, dtype=torch.uint8), size)


def test_the_micro_pair_is_the_same_from_numpy_and_torch(face_crops):
    """EulerianPair.batch (torch, the shard's GPU batch) == EulerianPair.one (the clip task)."""
    on, ap = face_crops
    prep = EulerianPair(3.0, 4, 224)
    small_on, small_mag = prep.batch(torch.from_numpy(on), torch.from_numpy(ap))
    for i in range(len(on)):
        want_on, want_mag = prep.one(on[i], ap[i])
        assert np.array_equal(small_on[i].numpy(), want_on)
        got = small_mag[i].numpy()
        if FOUR_LANES:
            assert np.array_equal(got, want_mag), f"pair {i}: {(got != want_mag).sum()} pixels differ"
        else:  # float32 rounding apart: a rounded pixel may be one level off
            assert np.abs(got.astype(int) - want_mag).max() <= 1


def test_the_micro_pair_keeps_every_tensor_on_the_gpu(face_crops):
    """Device placement without a GPU (tests/fake_cuda.py): everything stays on the device
    and the pixels are the CPU's."""
    from tests.fake_cuda import FakeCuda

    on, ap = (x[:2, :96, :96].copy() for x in face_crops)
    prep = EulerianPair(3.0, 4, 64)
    cpu = prep.batch(torch.from_numpy(on), torch.from_numpy(ap))
    with FakeCuda() as fc:
        gpu = prep.batch(torch.from_numpy(on).to("cuda"), torch.from_numpy(ap).to("cuda"))
        assert all(t.device.type == "cuda" for t in gpu) and fc.checked > 50
        for a, b in zip(gpu, cpu):
            assert np.array_equal(a.cpu().numpy(), b.numpy())
