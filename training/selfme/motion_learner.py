"""SelfME's self-supervised motion learner (seed 001 eq. 1-8), first-order-motion style,
compact: a keypoint detector shared by source and target frames, local motions scaled
by gamma on a 1/4-resolution lattice (eq. 2), a dense motion network weighting them from
the source warped by each local motion and Gaussian heatmaps (eq. 3-5), a generator that
warps source features to rebuild the target; multi-scale VGG-19 perceptual
reconstruction (eq. 6) and equivariance under random thin-plate-spline transforms (eq.
7-8). Coordinates are in [-1, 1] (x, y), as grid_sample uses them.

Choices: zero-order local motions (keypoint displacements, no local Jacobians); K = 10
keypoints; the perceptual network is torchvision's VGG-19 (random init unless local
ImageNet weights are given: random VGG features still make a multi-scale feature
reconstruction loss, but not the paper's perceptual one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def grid(h: int, w: int, device=None) -> torch.Tensor:
    """(h, w, 2) identity coordinates (x, y) in [-1, 1]."""
    ys, xs = torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], -1)


def block(ci, co, down=False, up=False):
    layers = [nn.Upsample(scale_factor=2)] if up else []
    layers += [nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU()]
    if down:
        layers.append(nn.AvgPool2d(2))
    return nn.Sequential(*layers)


class KeypointDetector(nn.Module):
    """Frame (N, 3, H, W) -> K keypoints (N, K, 2) in [-1, 1] (soft-argmax of heatmaps at 1/4)."""

    def __init__(self, k: int = 10, c: int = 32):
        super().__init__()
        self.k = k
        self.net = nn.Sequential(
            block(3, c, down=True), block(c, 2 * c, down=True), block(2 * c, 2 * c), nn.Conv2d(2 * c, k, 3, padding=1)
        )

    def forward(self, x):
        hm = self.net(x)  # (N, K, H/4, W/4)
        n, k, h, w = hm.shape
        p = torch.softmax(hm.flatten(2), -1).reshape(n, k, h, w)
        g = grid(h, w, x.device)
        return torch.einsum("nkhw,hwc->nkc", p, g)


def gaussian_heatmaps(kp: torch.Tensor, h: int, w: int, sigma: float = 0.1) -> torch.Tensor:
    """(N, K, 2) -> (N, K, h, w) Gaussians at the keypoints."""
    g = grid(h, w, kp.device)
    d = ((g[None, None] - kp[:, :, None, None]) ** 2).sum(-1)
    return torch.exp(-0.5 * d / sigma**2)


class DenseMotion(nn.Module):
    """Eq. 2-5: local motions T_k(z) = z + gamma (kp_s,k - kp_t,k) (plus the identity for
    the background) on the 1/4 lattice, weighted by softmax masks predicted from the source
    warped by each T_k and the heatmap differences. Returns the backward map target ->
    source (N, h, w, 2) and the masks."""

    def __init__(self, k: int = 10, c: int = 32):
        super().__init__()
        self.k = k
        cin = (k + 1) * 3 + (k + 1)
        self.net = nn.Sequential(block(cin, c), block(c, c), nn.Conv2d(c, k + 1, 3, padding=1))

    def forward(self, source, kp_s, kp_t, gamma: float = 1.0):
        n = source.shape[0]
        src = F.avg_pool2d(source, 4)
        h, w = src.shape[-2:]
        g = grid(h, w, source.device)
        shift = gamma * (kp_s - kp_t)  # (N, K, 2)
        motions = torch.cat(
            [g[None, None].expand(n, 1, h, w, 2), g[None, None] + shift[:, :, None, None]], 1
        )  # (N, K+1, h, w, 2)
        warped = torch.stack([F.grid_sample(src, motions[:, i], align_corners=True) for i in range(self.k + 1)], 1)
        heat = gaussian_heatmaps(kp_t, h, w) - gaussian_heatmaps(kp_s, h, w)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], 1)
        masks = torch.softmax(self.net(torch.cat([warped.flatten(1, 2), heat], 1)), 1)  # (N, K+1, h, w)
        return (masks[..., None] * motions).sum(1), masks


class Generator(nn.Module):
    def __init__(self, c: int = 32):
        super().__init__()
        self.enc = nn.Sequential(block(3, c, down=True), block(c, 2 * c, down=True))
        self.mid = block(2 * c, 2 * c)
        self.dec = nn.Sequential(
            block(2 * c, c, up=True), block(c, c, up=True), nn.Conv2d(c, 3, 3, padding=1), nn.Sigmoid()
        )

    def forward(self, source, deformation):
        f = self.enc(source)
        f = F.grid_sample(f, deformation, align_corners=True)
        return self.dec(self.mid(f))


class MotionLearner(nn.Module):
    def __init__(self, k: int = 10):
        super().__init__()
        self.kp = KeypointDetector(k)
        self.dense = DenseMotion(k)
        self.gen = Generator()

    def forward(self, source, target, gamma: float = 1.0):
        kp_s, kp_t = self.kp(source), self.kp(target)
        deformation, _ = self.dense(source, kp_s, kp_t, gamma)
        return {"prediction": self.gen(source, deformation), "deformation": deformation, "kp_s": kp_s, "kp_t": kp_t}

    def motion(self, source, target, gamma: float = 1.0) -> torch.Tensor:
        """Displacement field (N, 2, h, w) in pixels of the 1/4 lattice (backward map minus
        identity), the input of eq. 9."""
        out = self.forward(source, target, gamma)
        d = out["deformation"]
        h, w = d.shape[1:3]
        disp = d - grid(h, w, d.device)[None]
        return torch.stack([disp[..., 0] * (w - 1) / 2, disp[..., 1] * (h - 1) / 2], 1)


# ---------------------------------------------------------------- TPS (eq. 7-8)
class TPS:
    """Thin-plate-spline transform T(z) = A [1, z] + sum_i w_i U(|z - c_i|), U(r) = r^2 log r,
    on [-1, 1] coordinates; random parameters as in first-order-motion equivariance."""

    def __init__(
        self,
        n: int,
        sigma_affine: float = 0.05,
        sigma_tps: float = 0.005,
        points: int = 5,
        generator: torch.Generator | None = None,
        theta=None,
        w=None,
    ):
        g = generator
        eye = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # rows: x, y; cols: 1, x, y
        self.theta = theta if theta is not None else eye + sigma_affine * torch.randn(n, 2, 3, generator=g)
        c = torch.linspace(-1, 1, points)
        self.ctrl = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)
        self.w = w if w is not None else sigma_tps * torch.randn(n, points * points, 2, generator=g)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, P, 2) -> (N, P, 2). The parameters are drawn on the CPU (one seeded
        generator whatever the device) and follow `z` to its device here."""
        theta, ctrl, w = (t.to(device=z.device, dtype=z.dtype) for t in (self.theta, self.ctrl, self.w))
        aff = torch.einsum("nij,npj->npi", theta, torch.cat([torch.ones_like(z[..., :1]), z], -1))
        r = (z[:, :, None] - ctrl[None, None]).norm(dim=-1)
        u = r**2 * torch.log(r + 1e-9)
        return aff + torch.einsum("npc,ncd->npd", u, w)

    def warp_image(self, x: torch.Tensor) -> torch.Tensor:
        """Image sampled at T(z): (T x)(z) = x(T(z))."""
        n, _, h, w = x.shape
        z = grid(h, w, x.device).reshape(1, -1, 2).expand(n, -1, -1)
        return F.grid_sample(x, self(z).reshape(n, h, w, 2), align_corners=True, padding_mode="reflection")


def equivariance_loss(kp_detector, x: torch.Tensor, tps: TPS) -> torch.Tensor:
    """Eq. 7-8: keypoints of the transformed frame, mapped back by T, equal the frame's."""
    kp = kp_detector(x)
    kp_t = kp_detector(tps.warp_image(x))
    return (kp - tps(kp_t)).abs().mean()


class Perceptual(nn.Module):
    """Multi-scale VGG-19 feature reconstruction loss (eq. 6): L1 between the features of
    prediction and target at scales 1, 1/2, 1/4 and 5 VGG depths."""

    def __init__(self, weights: str | None = None):
        super().__init__()
        import torchvision

        vgg = torchvision.models.vgg19(weights=None).features
        self.loaded = None
        if weights:  # torchvision's vgg19 state_dict: its "features." keys are this module's
            from training.weights import load_weights

            self.loaded = load_weights(vgg, weights, "VGG-19 features", strip=("features.",))
        self.slices = nn.ModuleList([vgg[:2], vgg[2:7], vgg[7:12], vgg[12:21], vgg[21:30]])
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, pred, target):
        loss = pred.new_zeros(())
        for s in (1, 2, 4):
            a = F.avg_pool2d(pred, s) if s > 1 else pred
            b = F.avg_pool2d(target, s) if s > 1 else target
            for sl in self.slices:
                a, b = sl(a), sl(b)
                loss = loss + (a - b).abs().mean()
        return loss
