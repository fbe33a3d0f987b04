"""Dual TV-L1 optical flow in plain torch, on a batch of image pairs of one size.

The same algorithm, parameters and numerics as OpenCV's `cv2.optflow.DualTVL1OpticalFlow`
(opencv_contrib modules/optflow/src/tvl1flow.cpp, the CPU path), used by
`stages.flow.tvl1` with `TVL1_DEFAULTS`: the primal-dual TV-L1 of Zach, Pock and
Bischof (2007) as implemented by Sanchez, Meinhardt-Llopis and Facciolo (IPOL 2013):

- input: uint8 gray (RGB converted like cv2.COLOR_RGB2GRAY), as float32 0..255;
- pyramid: each level is the previous one resized by `scaleStep` (cv2.resize
  INTER_LINEAR, size rounded), stopping before a level under 16 pixels;
- per level: centred gradient of the target (half one-sided differences at the borders),
  `warps` warps of the target and its gradient by the current flow (cv2.remap
  INTER_CUBIC, positions rounded to 1/32 pixel, zero outside the image), then up to
  `outerIterations` x `innerIterations` primal-dual steps with a `medianFiltering`
  median (replicated borders) of the flow before each outer iteration, stopping a warp
  when the squared flow update summed over the image falls to epsilon^2 * pixels;
- flow zoomed to the next level by cv2.resize INTER_LINEAR and scaled by 1 / scaleStep.

Every pair of a batch follows its own stopping rule (converged pairs are frozen).
Flows are float32 (N, H, W, 2) of (u, v) in pixels: I_src(x, y) ~ I_dst(x + u, y + v).
Works on CPU or CUDA; CPU results are bit-reproducible run to run.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stages.flow import TVL1_DEFAULTS

_TAB = 32  # cv2.remap's sub-pixel table: positions are rounded to 1/32 pixel
_FLT_EPSILON = float(np.finfo(np.float32).eps)
_CHUNK = 32  # pairs per pass of the memory-hungry steps (warp: 16 taps; median: 25 neighbours)
_GRAY_WEIGHTS = (9798, 19235, 3735)  # cv2 RGB -> gray for uint8: fixed point, 15 bits


def _f32(x: float) -> float:
    """x rounded to float32 (OpenCV passes its double parameters to the kernels as float)."""
    return float(np.float32(x))


def tvl1_torch(src, dst, device: str | torch.device | None = None, **params):
    """Dual TV-L1 flow of each pair (src[i] -> dst[i]) of a batch.

    src, dst: uint8 numpy arrays or tensors, (N, H, W) gray or (N, H, W, 3) RGB, same shape.
    device: where to compute (default: src's device if a tensor, else CPU).
    params: overrides of `stages.flow.TVL1_DEFAULTS` (OpenCV's names).
    Returns float32 (N, H, W, 2) flows in pixels: a numpy array for numpy input, else a
    tensor on `device`.
    """
    p = _check_params(params)
    as_numpy = not isinstance(src, torch.Tensor)
    dev = torch.device(device) if device is not None else (src.device if not as_numpy else torch.device("cpu"))
    i0, i1 = _gray_batch(src, dst, dev)
    with torch.no_grad():
        flow = _pyramid_flow(i0, i1, p)
    flow = flow[:, :2].permute(0, 2, 3, 1).contiguous()
    return flow.cpu().numpy() if as_numpy else flow


def _check_params(params: dict) -> dict:
    unknown = sorted(set(params) - set(TVL1_DEFAULTS))
    if unknown:
        raise ValueError(f"tvl1_torch: unknown parameter(s) {unknown}; known: {sorted(TVL1_DEFAULTS)}")
    p = {**TVL1_DEFAULTS, **params}
    if p["nscales"] < 1 or p["warps"] < 1 or not 0 < p["scaleStep"] < 1:
        raise ValueError(f"tvl1_torch: need nscales >= 1, warps >= 1, 0 < scaleStep < 1, got {p}")
    if p["medianFiltering"] > 1 and p["medianFiltering"] != 5:
        raise ValueError(f"tvl1_torch: medianFiltering {p['medianFiltering']} unsupported (0, 1 or 5)")
    return p


def _gray_batch(src, dst, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch of pairs; return both sides as float32 (N, 1, H, W) gray 0..255."""
    a, b = (torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x for x in (src, dst))
    for name, x in (("src", a), ("dst", b)):
        if x.dtype != torch.uint8:
            raise ValueError(f"tvl1_torch: {name} must be uint8, got {x.dtype}")
        if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
            raise ValueError(f"tvl1_torch: {name} must be (N, H, W) gray or (N, H, W, 3) RGB, got {tuple(x.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"tvl1_torch: src {tuple(a.shape)} and dst {tuple(b.shape)} differ in shape")
    if a.shape[0] == 0 or a.shape[1] < 3 or a.shape[2] < 3:
        raise ValueError(f"tvl1_torch: need at least one pair of at least 3x3 pixels, got {tuple(a.shape)}")
    return _to_gray(a.to(dev)), _to_gray(b.to(dev))


def _to_gray(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, 3) RGB -> float32 (N, 1, H, W); the RGB weighting and
    rounding of cv2.cvtColor(COLOR_RGB2GRAY) on uint8: (9798 R + 19235 G + 3735 B + 2^14) >> 15."""
    if x.ndim == 4:
        w = torch.tensor(_GRAY_WEIGHTS, dtype=torch.int32, device=x.device)
        x = ((x.to(torch.int32) * w).sum(-1) + (1 << 14)) >> 15
    return x.to(torch.float32).unsqueeze(1)


# ---------------------------------------------------------------- resizing (cv2.resize INTER_LINEAR)


def _linear_taps(n_in: int, n_out: int, scale: float, clamp_weight: bool, dev) -> tuple:
    """cv2.resize INTER_LINEAR taps along one axis: output i reads inputs (i0, i0 + 1) with
    weights (1 - f, f), source position (i + 0.5) * scale - 0.5 (f rounded to float32). Out-of-range
    indices are clamped; along x (clamp_weight) the weight is also reset at the ends."""
    pos = (np.arange(n_out) + 0.5) * scale - 0.5
    i0 = np.floor(pos).astype(np.int64)
    f = (pos - i0).astype(np.float32)
    if clamp_weight:
        f[i0 < 0] = 0
        f[i0 >= n_in - 1] = 0
    lo, hi = np.clip(i0, 0, n_in - 1), np.clip(i0 + 1, 0, n_in - 1)
    return tuple(torch.as_tensor(a, device=dev) for a in (lo, hi, 1 - f, f))


def _resize_linear(x: torch.Tensor, h: int, w: int, scale_y: float, scale_x: float) -> torch.Tensor:
    """(N, C, H0, W0) float32 -> (N, C, h, w): horizontal pass, then vertical, each output
    x0 + (x1 - x0) f with one rounding of the multiply-add (what cv2.resize computes for
    float32 images on an x86-64 with FMA)."""
    lo, hi, _, f = _linear_taps(x.shape[-1], w, scale_x, True, x.device)
    x = _fma(x[..., hi] - x[..., lo], f, x[..., lo])
    lo, hi, _, f = _linear_taps(x.shape[-2], h, scale_y, False, x.device)
    return _fma(x[..., hi, :] - x[..., lo, :], f[:, None], x[..., lo, :])


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 a * b + c rounded once (a fused multiply-add): the float32 product is exact in
    float64, so only the final sum is rounded (twice, to float64 then float32, which differs
    from a single rounding only in vanishingly rare ties)."""
    return (a.double() * b.double() + c.double()).float()


def _downscale(x: torch.Tensor, step: float) -> torch.Tensor:
    """cv2.resize(x, None, fx=step, fy=step, INTER_LINEAR): size rounded, mapping scale 1 / step."""
    h, w = round(x.shape[-2] * step), round(x.shape[-1] * step)
    return _resize_linear(x, h, w, 1.0 / step, 1.0 / step)


def _upscale_flow(u: torch.Tensor, h: int, w: int, step: float) -> torch.Tensor:
    """Flow of a coarse level (N, C, h0, w0) -> (N, C, h, w) (cv2.resize to a size, INTER_LINEAR);
    the (u, v) channels are multiplied by 1 / step (a third gamma channel is not)."""
    out = _resize_linear(u, h, w, 1.0 / (h / u.shape[-2]), 1.0 / (w / u.shape[-1]))
    out[:, :2] *= _f32(1.0 / step)
    return out


def _pyramid(i: torch.Tensor, nscales: int, step: float) -> list[torch.Tensor]:
    """[finest, ..., coarsest] levels; stops before a level under 16 pixels on a side."""
    levels = [i]
    for _ in range(1, nscales):
        nxt = _downscale(levels[-1], step)
        if nxt.shape[-1] < 16 or nxt.shape[-2] < 16:
            break
        levels.append(nxt)
    return levels


# ---------------------------------------------------------------- finite differences


def _centred_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> (d/dx, d/dy): 0.5 (x[i+1] - x[i-1]) inside, 0.5 (x[1] - x[0]) and
    0.5 (x[-1] - x[-2]) on the borders (= centred differences of the edge-replicated image)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    dy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return dx, dy


def _forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> forward differences (u[x+1] - u[x], u[y+1] - u[y]), 0 on the last column / row."""
    dx, dy = torch.zeros_like(u), torch.zeros_like(u)
    torch.sub(u[..., :, 1:], u[..., :, :-1], out=dx[..., :, :-1])
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=dy[..., :-1, :])
    return dx, dy


def _divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence (px[x] - px[x-1]) + (py[y] - py[y-1]), with zero before
    the first column / row (the adjoint of -_forward_gradient); the first column is summed
    in OpenCV's order, (px + py[y]) - py[y-1], so that the float32 results are identical."""
    ddx, ddy = px.clone(), py.clone()
    ddx[..., :, 1:] -= px[..., :, :-1]
    ddy[..., 1:, :] -= py[..., :-1, :]
    div = ddx.add_(ddy)
    div[..., 1:, 0] = (px[..., 1:, 0] + py[..., 1:, 0]) - py[..., :-1, 0]
    return div


# ---------------------------------------------------------------- warping (cv2.remap INTER_CUBIC)


def _cubic_table(dev) -> torch.Tensor:
    """(32, 4) float32 weights of taps -1, 0, 1, 2 at fraction t = k/32: Keys' cubic with
    a = -0.75, evaluated in float32 in the order OpenCV does (the last weight is 1 minus the
    others), so that warps agree with cv2.remap to the bit."""
    a, one = np.float32(-0.75), np.float32(1)
    rows = []
    for k in range(_TAB):
        t = np.float32(1.0 / _TAB) * np.float32(k)
        far = ((a * (t + one) - np.float32(5) * a) * (t + one) + np.float32(8) * a) * (t + one) - np.float32(4) * a
        near0 = ((a + np.float32(2)) * t - (a + np.float32(3))) * t * t + one
        near1 = ((a + np.float32(2)) * (one - t) - (a + np.float32(3))) * (one - t) * (one - t) + one
        rows.append([far, near0, near1, one - far - near0 - near1])
    return torch.as_tensor(np.array(rows, np.float32), device=dev)


def _remap_cubic(img: torch.Tensor, u: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """img (N, K, H, W) sampled at (x + u[:, 0], y + u[:, 1]) -> (N, K, H, W).

    cv2.remap INTER_CUBIC, BORDER_CONSTANT 0: positions rounded to 1/32 pixel (half to
    even), 4x4 taps weighted wy[i] * wx[j], a tap outside the image reads 0. The float32
    sums follow OpenCV's order on an x86-64 with FMA: where all 16 taps are inside, each
    column of taps by fused multiply-adds down the rows, then the columns as (0 + 2) +
    (1 + 3); near the border, tap by tap, row by row."""
    n, k, h, w = img.shape
    qx, qy = _quantised_positions(u)
    taps = torch.arange(-1, 3, device=img.device)
    cx = torch.div(qx, _TAB, rounding_mode="floor").unsqueeze(-1) + taps  # (N, H, W, 4)
    cy = torch.div(qy, _TAB, rounding_mode="floor").unsqueeze(-1) + taps
    inside = ((cx[..., 0] >= 0) & (cx[..., 3] < w) & (cy[..., 0] >= 0) & (cy[..., 3] < h)).unsqueeze(1)
    wx = table[qx % _TAB] * ((cx >= 0) & (cx < w))  # a tap outside the image weighs 0
    wy = table[qy % _TAB] * ((cy >= 0) & (cy < h))
    cx, cy = cx.clamp(0, w - 1), cy.clamp(0, h - 1)
    src = img.reshape(n, k, h * w)
    by_cols, by_taps = None, torch.zeros_like(img)
    for i in range(4):  # one row of taps at a time (a quarter of the memory of all 16)
        idx = (cy[..., i : i + 1] * w + cx).reshape(n, 1, -1).expand(n, k, -1)
        vals = torch.gather(src, 2, idx).view(n, k, h, w, 4)
        wts = (wy[..., i : i + 1] * wx).unsqueeze(1)  # (N, 1, H, W, 4)
        by_cols = vals * wts if by_cols is None else _fma(vals, wts, by_cols)
        for j in range(4):
            by_taps = by_taps + vals[..., j] * wts[..., j]
    interior = (by_cols[..., 0] + by_cols[..., 2]) + (by_cols[..., 1] + by_cols[..., 3])
    return torch.where(inside, interior, by_taps)


def _quantised_positions(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling positions (x + u1, y + u2) of (N, 2, H, W) u, in 1/32 pixel units, int64 (N, H, W)."""
    h, w = u.shape[-2:]
    ys = torch.arange(h, device=u.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=u.device, dtype=torch.float32).view(1, 1, w)
    return torch.round((xs + u[:, 0]) * _TAB).to(torch.int64), torch.round((ys + u[:, 1]) * _TAB).to(torch.int64)


# ---------------------------------------------------------------- median (cv2.medianBlur, ksize 5)


def _median5(u: torch.Tensor) -> torch.Tensor:
    """5x5 median of each channel of (N, C, H, W), borders replicated."""
    return torch.cat([_median5_chunk(part) for part in u.split(_CHUNK)])


def _median5_chunk(u: torch.Tensor) -> torch.Tensor:
    n, c, h, w = u.shape
    p = F.pad(u.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="replicate")
    return F.unfold(p, 5).median(1).values.view(n, c, h, w)


# ---------------------------------------------------------------- the primal-dual iterations


def _pyramid_flow(i0: torch.Tensor, i1: torch.Tensor, p: dict) -> torch.Tensor:
    """Coarse-to-fine flow of float32 (N, 1, H, W) pairs -> (N, C, H, W); C = 2 (u, v), or 3
    with the illumination term u3 when gamma != 0."""
    step = p["scaleStep"]
    l0, l1 = _pyramid(i0, p["nscales"], step), _pyramid(i1, p["nscales"], step)
    u = i0.new_zeros((i0.shape[0], 3 if p["gamma"] else 2, *l0[-1].shape[-2:]))
    table = _cubic_table(i0.device)
    for s in reversed(range(len(l0))):
        u = _one_scale(l0[s], l1[s], u, p, table)
        if s:
            u = _upscale_flow(u, *l0[s - 1].shape[-2:], step)
    return u


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, p: dict, table: torch.Tensor) -> torch.Tensor:
    """Refine the flow u (N, C, H, W) of one pyramid level by `warps` linearisations of the
    data term, each followed by up to outer x inner primal-dual steps (dual variables start
    at 0 on each level and carry over between warps)."""
    i1_stack = torch.cat([i1, *_centred_gradient(i1)], 1)
    u, px, py = u.clone(), torch.zeros_like(u), torch.zeros_like(u)
    eps = _f32(p["epsilon"] * p["epsilon"] * i0.shape[-1] * i0.shape[-2])
    for _ in range(p["warps"]):
        lin = _linearise(i0, i1_stack, u, table, p)
        _warp_iterations([u, px, py], lin, p, eps)
    return u


def _linearise(i0: torch.Tensor, i1_stack: torch.Tensor, u: torch.Tensor, table: torch.Tensor, p: dict) -> dict:
    """Warp (I1, I1x, I1y) (N, 3, H, W) by u and return the per-warp constants of the
    thresholding step, all (N, 1 or C, H, W) float32: g = (I1wx, I1wy[, gamma]),
    rho_c = I1w - I1wx u1 - I1wy u2 - I0, grad = |grad I1w|^2, the two thresholds -+l_t grad,
    the two saturated steps +-l_t g and where grad > FLT_EPSILON."""
    w = torch.cat([_remap_cubic(a, b, table) for a, b in zip(i1_stack.split(_CHUNK), u[:, :2].split(_CHUNK))])
    i1w, i1wx, i1wy = w[:, 0:1], w[:, 1:2], w[:, 2:3]
    rho_c = i1w - i1wx * u[:, 0:1] - i1wy * u[:, 1:2] - i0
    grad = i1wx * i1wx + i1wy * i1wy
    g = w[:, 1:3] if u.shape[1] == 2 else torch.cat([w[:, 1:3], torch.full_like(i1wx, _f32(p["gamma"]))], 1)
    l_t = _f32(p["lambda_"] * p["theta"])
    return {
        "g": g, "rho_c": rho_c, "grad": grad, "lo": -l_t * grad, "hi": l_t * grad,
        "d_lo": l_t * g, "d_hi": -l_t * g, "grad_ok": grad > _FLT_EPSILON,
    }  # fmt: skip


def _warp_iterations(state: list, lin: dict, p: dict, eps: float) -> None:
    """Up to outerIterations x innerIterations primal-dual steps on state = [u, px, py]
    (N, C, H, W each, updated in place). A pair stops once its summed squared update is <= eps;
    it then leaves the working batch (its state is written back), so the steps and the median
    filter that starts each outer iteration run on the pairs still going only."""
    idx = torch.arange(state[0].shape[0], device=state[0].device)
    work = [t.clone() for t in state]
    for _ in range(p["outerIterations"]):
        if len(idx) == 0:
            break
        if p["medianFiltering"] > 1:
            work[0][:, :2] = _median5(work[0][:, :2])
        for _ in range(p["innnerIterations"]):
            if len(idx) == 0:
                break
            *work, err = _primal_dual_step(*work, lin, p)
            go = err > eps
            if not bool(go.all()):
                for full, part in zip(state, work):
                    full[idx[~go]] = part[~go]
                idx, work, lin = idx[go], [t[go] for t in work], {k: v[go] for k, v in lin.items()}
    for full, part in zip(state, work):
        full[idx] = part


def _primal_dual_step(u, px, py, lin: dict, p: dict) -> tuple:
    """One step: threshold v (data term), u = v + theta div p, dual p update (TV).
    Returns (u, px, py, per-pair summed squared change of u (N,) float64)."""
    v = _threshold(u, lin)
    un = v + _f32(p["theta"]) * _divergence(px, py)
    err = (un - u).square_().sum((1, 2, 3), dtype=torch.float64)
    ux, uy = _forward_gradient(un)
    taut = _f32(p["tau"] / p["theta"])
    ng = torch.hypot(ux, uy).mul_(taut).add_(1.0)
    return un, (px + taut * ux).div_(ng), (py + taut * uy).div_(ng), err


def _threshold(u: torch.Tensor, lin: dict) -> torch.Tensor:
    """Point-wise minimiser v of lambda |rho(v)| + |v - u|^2 / (2 theta) for the linearised
    residual rho(v) = rho_c + I1wx v1 + I1wy v2 (+ gamma v3): a step of l_t along the image
    gradient while |rho| > l_t |grad|^2, else the step that zeroes rho."""
    g = lin["g"]
    rho = lin["rho_c"] + (g[:, :2] * u[:, :2]).sum(1, keepdim=True)
    if u.shape[1] == 3:
        rho = rho + g[:, 2:3] * u[:, 2:3]
    step = torch.where(lin["grad_ok"], (-rho).div_(lin["grad"]) * g, 0.0)
    step = torch.where(rho > lin["hi"], lin["d_hi"], step)
    return u + torch.where(rho < lin["lo"], lin["d_lo"], step)
