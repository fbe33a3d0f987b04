"""Temporal products of a clip: dynamic images (approximate rank pooling), TIM
interpolation, uniform sampling, Eulerian magnification, motion-field amplification.

Clips are (T, H, W[, C]) arrays, frame 0 first.
"""

from __future__ import annotations

import cv2
import numpy as np


# ------------------------------------------------------------ dynamic images (Bilen et al.)
def arp_coefficients(T: int) -> np.ndarray:
    """Approximate rank pooling weights alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}),
    t = 1..T, H_k the k-th harmonic number (H_0 = 0)."""
    H = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, T + 1))])
    t = np.arange(1, T + 1)
    return 2.0 * (T - t + 1) - (T + 1) * (H[T] - H[t - 1])


def dynamic_image(frames: np.ndarray) -> np.ndarray:
    """sum_t alpha_t I_t, min-max normalised to [0, 1]; float32, the frames' spatial shape."""
    f = np.asarray(frames, np.float64)
    a = arp_coefficients(len(f))
    d = np.tensordot(a, f, axes=(0, 0))
    lo, hi = d.min(), d.max()
    return ((d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)).astype(np.float32)


def uniform_indices(n: int, t: int, offset: float = 0.0) -> np.ndarray:
    """t frame indices spread uniformly over a clip of n frames; `offset` in [0, 1) shifts
    every index by that fraction of the stride (a random offset at training time)."""
    if n < 1:
        raise ValueError("empty clip")
    stride = n / t
    return np.minimum((np.arange(t) * stride + offset * stride).astype(np.int64), n - 1)


# ------------------------------------------------------------ TIM (Zhou et al. 2011)
def tim_interpolate(frames: np.ndarray, m: int) -> np.ndarray:
    """Temporal interpolation model: embed the n frames on the path graph's Laplacian
    eigenfunctions y_k(t) = sin(pi k t / n + pi (n - k) / (2n)), k = 1..n-1, learn the
    linear map to the (mean-centred) frames, and resample the curve at m equally spaced
    positions. Returns (m, ...) in the input dtype (rounded and clipped for integers).
    At m = n the input is reproduced."""
    x = np.asarray(frames)
    n = len(x)
    if n < 2:
        return np.repeat(x, m, axis=0)
    flat = x.reshape(n, -1).astype(np.float64)
    mean = flat.mean(axis=0)
    k = np.arange(1, n)[:, None]

    def Y(t):
        return np.sin(np.pi * k * t[None, :] / n + np.pi * (n - k) / (2 * n))

    t0 = np.arange(1, n + 1, dtype=np.float64)
    t1 = np.linspace(1, n, m)
    # out = Y(t1)^T W with W the least-squares map Y(t0)^T W = X - mean. The small (m x n)
    # interpolation matrix is formed first and applied with einsum (no BLAS): the result
    # does not depend on BLAS threading, so it is bit-identical in every process.
    A = np.einsum("ik,kj->ij", Y(t1).T, np.linalg.pinv(Y(t0).T), optimize=False)
    out = np.einsum("ij,jd->id", A, flat - mean, optimize=False) + mean
    out = out.reshape((m, *x.shape[1:]))
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(x.dtype)


# ------------------------------------------------------------ Eulerian magnification (Wu et al. 2012)
def up_to(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    """cv2.pyrUp of g to the size of `like` (one pyramid level finer)."""
    return cv2.pyrUp(g, dstsize=(like.shape[1], like.shape[0]))


def laplacian_pyramid(img, levels: int, down=cv2.pyrDown, up=up_to) -> list:
    """[finest band, ..., coarsest Gaussian level] of an image: float32 (H, W[, C]) numpy
    (a numpy image of another dtype is converted), with OpenCV's pyramid steps; or, with
    other `down(g)` and `up(g, like)` steps, what they take (stages.magnify_torch:
    batches of (N, 3, H, W) tensors)."""
    g = img.astype(np.float32) if isinstance(img, np.ndarray) else img
    pyr = []
    for _ in range(levels - 1):
        down_g = down(g)
        pyr.append(g - up(down_g, g))
        g = down_g
    pyr.append(g)
    return pyr


def collapse(pyr: list, up=up_to):
    """The image a Laplacian pyramid encodes (`laplacian_pyramid`'s inverse)."""
    g = pyr[-1]
    for lap in reversed(pyr[:-1]):
        g = up(g, lap) + lap
    return g


def level_alphas(alpha: float, levels: int, lambda_c: float | None) -> list[float]:
    """Amplification per pyramid level (0 = finest). Linear EVM amplifies every level by
    alpha; with `lambda_c` (pixels) the levels whose wavelength (~2^(l+1) px) is below it
    are attenuated linearly to 0 at the finest, where the first-order approximation
    behind linear magnification breaks down (Wu et al. 2012, sec. 3.2)."""
    if not lambda_c:
        return [alpha] * levels
    return [alpha * min(1.0, 2.0 ** (lv + 1) / lambda_c) for lv in range(levels)]


def eulerian_magnify(
    frames: np.ndarray,
    alpha: float,
    fps: float,
    f_lo: float,
    f_hi: float,
    levels: int = 4,
    lambda_c: float | None = None,
) -> np.ndarray:
    """Linear Eulerian video magnification: Laplacian pyramid per frame, ideal temporal
    band-pass [f_lo, f_hi] Hz (FFT over the clip) on every level, amplified by alpha
    (per `level_alphas`), added back.
    frames (T, H, W[, C]) uint8/float -> float32 of the same shape (not clipped)."""
    x = np.asarray(frames, np.float32)
    T = len(x)
    pyrs = [laplacian_pyramid(f, levels) for f in x]
    freqs = np.fft.rfftfreq(T, d=1.0 / fps)
    mask = (freqs >= f_lo) & (freqs <= f_hi)
    out_levels = []
    for lv, a in enumerate(level_alphas(alpha, levels, lambda_c)):
        stack = np.stack([p[lv] for p in pyrs])
        spec = np.fft.rfft(stack, axis=0)
        spec[~mask] = 0
        band = np.fft.irfft(spec, n=T, axis=0).astype(np.float32)
        out_levels.append(stack + a * band)
    return np.stack([collapse([out_levels[lv][t] for lv in range(levels)]) for t in range(T)])


def magnify_pair(onset, apex, alpha: float, levels: int = 4, lambda_c: float | None = None, down=cv2.pyrDown, up=up_to):
    """Linear Eulerian magnification of the onset -> apex change with the onset as the
    static reference (the temporal filter keeps I_apex - I_onset per pyramid level, which
    is what an onset..apex band-pass leaves at the apex of a monotonic movement):
    returns the magnified apex, float32, same shape (not clipped). `down`/`up`: the
    pyramid steps (`laplacian_pyramid`)."""
    po, pa = laplacian_pyramid(onset, levels, down, up), laplacian_pyramid(apex, levels, down, up)
    ks = level_alphas(alpha, levels, lambda_c)
    return collapse([a + k * (a - o) for o, a, k in zip(po, pa, ks)], up)


def amplify_motion(flow: np.ndarray, gamma: float) -> np.ndarray:
    """Motion-field amplification (seed 001 eq. 2): the displacement scaled by gamma."""
    return (np.asarray(flow, np.float32) * gamma).astype(np.float32)
