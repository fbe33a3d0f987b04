"""SelfME (seed 001): the motion-field post-processing of eq. 9 (cubic B-spline upsampling
of a coarse field, scaling-and-squaring of a stationary velocity field) and the
classification stage, SCViT (ViT-S/16 with the symmetric contrastive loss of eq. 12-14,
the MLP head of eq. 15, total eq. 16). The self-supervised motion learner (keypoints,
dense motion, generator, perceptual + equivariance losses, eq. 1-8) is in
motion_learner.py; train.py feeds SCViT its onset->apex motion (or, with
`motion='tvl1'`, the stored TV-L1 flow, the paper's baseline of table 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REGIONS = ("UL", "UR", "BL", "BR")
SYMMETRIC = {("UL", "UR"), ("UR", "UL"), ("BL", "BR"), ("BR", "BL")}


# ---------------------------------------------------------------- eq. 9
def cubic_bspline(t: torch.Tensor) -> torch.Tensor:
    """Uniform cubic B-spline basis beta_3(t) (support |t| < 2)."""
    a = t.abs()
    return torch.where(a < 1, 2 / 3 - a**2 + a**3 / 2, torch.where(a < 2, (2 - a) ** 3 / 6, torch.zeros_like(a)))


def bspline_matrix(n_out: int, n_ctrl: int) -> torch.Tensor:
    """(n_out, n_ctrl) weights of eq. 9 along one axis: control points spread uniformly
    over the output (pixel centres), beta_3 of the distance in control spacings,
    renormalised so every row sums to 1 (the boundary rows lack outer control points)."""
    spacing = n_out / n_ctrl
    v = (torch.arange(n_out, dtype=torch.float64) + 0.5) / spacing - 0.5
    u = torch.arange(n_ctrl, dtype=torch.float64)
    w = cubic_bspline(v[:, None] - u[None, :])
    return (w / w.sum(1, keepdim=True)).float()


def bspline_upsample(field: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 2, h, w) coarse displacement (pixels of the output grid) -> (N, 2, H, W)."""
    wy = bspline_matrix(size[0], field.shape[-2]).to(field)
    wx = bspline_matrix(size[1], field.shape[-1]).to(field)
    return torch.einsum("Yy,ncyx,Xx->ncYX", wy, field, wx)


def warp(x: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Sample x (N, C, H, W) at p + disp(p) (disp in pixels, (dx, dy)), bilinear, border."""
    n, _, h, w = disp.shape
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=disp.dtype, device=disp.device),
        torch.arange(w, dtype=disp.dtype, device=disp.device),
        indexing="ij",
    )
    gx = 2 * (xx + disp[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (yy + disp[:, 1]) / max(h - 1, 1) - 1
    return F.grid_sample(x, torch.stack([gx, gy], -1), align_corners=True, padding_mode="border")


def scaling_and_squaring(velocity: torch.Tensor, steps: int = 6) -> torch.Tensor:
    """Group exponential of a stationary velocity field (N, 2, H, W) in pixels:
    phi = v / 2^K, then phi <- phi + phi o (id + phi), K times. Returns the displacement."""
    phi = velocity / (2**steps)
    for _ in range(steps):
        phi = phi + warp(phi, phi)
    return phi


def jacobian_determinant(disp: torch.Tensor) -> torch.Tensor:
    """det of d(id + disp)/dp by central differences (interior), (N, H-2, W-2)."""
    dx = (disp[..., 1:-1, 2:] - disp[..., 1:-1, :-2]) / 2
    dy = (disp[..., 2:, 1:-1] - disp[..., :-2, 1:-1]) / 2
    return (1 + dx[:, 0]) * (1 + dy[:, 1]) - dy[:, 0] * dx[:, 1]


# ---------------------------------------------------------------- SCViT, eq. 12-16
def quadrant_embeddings(patch_tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, N, D) patch embeddings on a grid x grid layout -> (B, 4, D) means over the
    UL, UR, BL, BR quadrants (eq. 12-13)."""
    b, n, d = patch_tokens.shape
    g = patch_tokens.reshape(b, grid, grid, d)
    h = grid // 2
    return torch.stack(
        [g[:, :h, :h].mean((1, 2)), g[:, :h, h:].mean((1, 2)), g[:, h:, :h].mean((1, 2)), g[:, h:, h:].mean((1, 2))], 1
    )


def symmetric_contrastive_loss(e: torch.Tensor, y: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """Eq. 14 on L2-normalised regional embeddings e (B, 4, D), labels y (B,).

    Anchor (i, alpha), region beta: candidates A = all samples (not i when alpha = beta);
    positives P = samples of i's class when (alpha, beta) are identical or symmetric
    (UL-UR, BL-BR) - for the symmetric pairs i itself is a positive (its own left and right
    face). Each anchor's log-probabilities are averaged over its positives; the result is
    averaged over the batch."""
    e = F.normalize(e, dim=-1)
    b = e.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=e.device)
    same = y[:, None] == y[None, :]
    total, count = e.new_zeros(b), e.new_zeros(b)
    for ai, a in enumerate(REGIONS):
        for bi, bb in enumerate(REGIONS):
            if a != bb and (a, bb) not in SYMMETRIC:
                continue
            logits = e[:, ai] @ e[:, bi].t() / tau  # (B, B)
            cand = ~eye if a == bb else torch.ones_like(eye)
            logp = logits - torch.logsumexp(logits.masked_fill(~cand, float("-inf")), dim=1, keepdim=True)
            pos = same & cand
            total = total - (logp * pos).sum(1)
            count = count + pos.sum(1)
    return (total / count.clamp_min(1)).mean()


def load_vit_weights(vit: nn.Module, weights: str, in_chans: int):
    """A timm ViT-S/16 ImageNet checkpoint into SCViT: the RGB patch embedding becomes an
    `in_chans` one (the filters' mean over RGB, repeated, scaled by 3/in_chans so a
    constant input keeps its response), the 1000-class linear head is dropped (SCViT's
    head is eq. 15's MLP, trained from its initialisation)."""
    from training.weights import load_weights, read_state_dict

    state = {k: v for k, v in read_state_dict(weights).items() if not k.startswith("head.")}
    w = state.get("patch_embed.proj.weight")
    if w is not None and w.shape[1] == 3 and in_chans != 3:
        state["patch_embed.proj.weight"] = w.mean(1, keepdim=True).repeat(1, in_chans, 1, 1) * (3 / in_chans)
    return load_weights(vit, weights, "SCViT (timm ViT-S/16)", state=state)


def mlp_head(dim: int, n_classes: int, hidden: int | None = None) -> nn.Sequential:
    """Eq. 15's classifier: an MLP with one hidden layer on LN(z_cls), (B, dim) ->
    (B, n_classes): Linear(dim, hidden), tanh, Linear(hidden, n_classes).

    The paper gives neither the hidden width nor the activation. Eq. 15 is the head of
    ViT (its ref. [7]: "a MLP with one hidden layer"), whose reference implementation's
    hidden layer ("pre_logits") is a Dense of the representation size followed by tanh,
    the representation size being the embedding width D; both are taken here
    (hidden = D = 384 for ViT-S/16 unless given)."""
    hidden = dim if hidden is None else hidden
    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, n_classes))


class SCViT(nn.Module):
    """ViT-S/16 (timm) on a (2- or 3-channel) motion image of 224x224; its classifier is
    eq. 15's MLP (`mlp_head`) on the final LayerNorm of the class token (timm's `norm`)."""

    def __init__(self, n_classes: int, in_chans: int = 2, weights: str | None = None, img_size: int = 224):
        super().__init__()
        import timm

        self.vit = timm.create_model(
            "vit_small_patch16_224", pretrained=False, in_chans=in_chans, num_classes=n_classes, img_size=img_size
        )
        self.vit.head = mlp_head(self.vit.embed_dim, n_classes)
        self.loaded = None
        if weights:
            self.loaded = load_vit_weights(self.vit, weights, in_chans)
        self.grid = self.vit.patch_embed.grid_size[0]

    def forward(self, x):
        """-> (logits (B, classes), regional patch embeddings (B, 4, D))."""
        patches = self.vit.patch_embed(x)  # eq. 10-11
        return self.vit(x), quadrant_embeddings(patches, self.grid)


def scvit_loss(logits, regions, y, omega: float = 0.1, tau: float = 0.07):
    """Eq. 16: CE + omega L_sc."""
    return F.cross_entropy(logits, y) + omega * symmetric_contrastive_loss(regions, y, tau)
