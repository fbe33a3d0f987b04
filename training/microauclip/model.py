"""MicroAUCLIP (seed 004): CLIP ViT-B/32 (open_clip) on the 224x224 onset->apex flow of
magnified frames; patch tokens located from the 68 apex landmarks (eq. 1, AU regions as
data); patch token attention (eq. 2-3); global dependency attention with the GD loss
(eq. 4-8); per-AU positive/negative prompts through CLIP's text encoder; micro-AU
contrastive loss with the same-activation label matrix (eq. 9-11); total eq. 12;
emotion-label-free recognition by summed per-AU similarity to label texts (eq. 13).

Choices where the paper is terse: the flow image is (u, v, |flow|) scaled to [-1, 1]
per sample; FC in eq. 5 maps the flattened N x N attention to N weights; the visual AU
feature (F_G + F~_n) is projected to CLIP's joint space for eq. 9 and 13; the contrastive
cross-entropy uses CLIP's logit scale and the row-normalised label matrix as target;
for eq. 13 the label text of emotion r for AU n is AU n's positive prompt if n belongs
to r in the AU-emotion table, else its negative prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.microauclip.settings import spec


def patch_index(landmarks: torch.Tensor, image: int = 224, grid: int = 7) -> torch.Tensor:
    """Eq. 1: the patch token that contains each landmark. landmarks (..., 2) as (x, y)
    pixels of the image -> flat token index row * grid + col (clamped to the grid)."""
    cell = image / grid
    col = (landmarks[..., 0] / cell).floor().clamp(0, grid - 1).long()
    row = (landmarks[..., 1] / cell).floor().clamp(0, grid - 1).long()
    return row * grid + col


def flow_image(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) flow -> (N, 3, H, W) image (u, v, magnitude), each scaled to [-1, 1]."""
    mag = flow.norm(dim=1, keepdim=True)
    x = torch.cat([flow, mag], 1)
    s = x.flatten(2).abs().amax(2).clamp_min(1e-6)[..., None, None]
    return x / s


class MicroAUCLIP(nn.Module):
    def __init__(
        self, aus: list[int], clip_model=None, tokenizer=None, finetune_last: int = 3, activation: str = "quick_gelu"
    ):
        super().__init__()
        import open_clip

        sp = spec()
        self.aus = list(aus)
        self.regions = [sp["regions"][str(a)] for a in aus]
        if activation not in ("quick_gelu", "gelu"):
            raise ValueError(f"CLIP activation {activation!r}: ViT-B/32 is built with quick_gelu or gelu")
        arch = "ViT-B-32-quickgelu" if activation == "quick_gelu" else "ViT-B-32"  # OpenAI's CLIP: QuickGELU
        self.clip = clip_model or open_clip.create_model(arch, pretrained=None)
        self.tok = tokenizer or open_clip.get_tokenizer("ViT-B-32")
        self.clip.visual.output_tokens = True
        for p in self.clip.parameters():  # fine-tune the last 3 layers of both encoders
            p.requires_grad = False
        for blk in (
            list(self.clip.visual.transformer.resblocks)[-finetune_last:]
            + list(self.clip.transformer.resblocks)[-finetune_last:]
        ):
            for p in blk.parameters():
                p.requires_grad = True
        d = self.clip.visual.transformer.width
        e = self.clip.text_projection.shape[1]
        n = len(aus)
        self.pta = nn.Sequential(nn.Linear(d, d // 4), nn.ReLU(), nn.Linear(d // 4, 1))  # eq. 2
        self.wq, self.wk, self.wv = (
            nn.Linear(d, d, bias=False),
            nn.Linear(d, d, bias=False),
            nn.Linear(d, d, bias=False),
        )
        self.fc = nn.Linear(n * n, n)  # eq. 5
        self.head = nn.ModuleList(
            [nn.Sequential(nn.Linear(d, d // 4), nn.ReLU(), nn.Linear(d // 4, 2)) for _ in aus]
        )  # eq. 7
        self.proj = nn.Linear(d, e)
        self.prompts = [sp["prompts"][str(a)] for a in aus]  # [positive, negative] per AU

    def text_features(self) -> torch.Tensor:
        """(N, 2, E) normalised features of [not activated, activated] prompts per AU."""
        texts = [p for pos, neg in self.prompts for p in (neg, pos)]
        t = self.clip.encode_text(self.tok(texts).to(self.proj.weight.device))
        return F.normalize(t, dim=-1).reshape(len(self.aus), 2, -1)

    def forward(self, flow: torch.Tensor, landmarks: torch.Tensor) -> dict:
        """flow (B, 2, 224, 224), landmarks (B, 68, 2) -> AU logits (B, N, 2), W_d (B, N),
        visual AU features in the joint space (B, N, E)."""
        _, tokens = self.clip.visual(flow_image(flow))  # (B, 49, d)
        idx = patch_index(landmarks)  # (B, 68)
        feats = []
        for reg in self.regions:
            k = torch.gather(tokens, 1, idx[:, reg, None].expand(-1, -1, tokens.shape[-1]))  # (B, NL, d)
            w = torch.softmax(self.pta(k).squeeze(-1), dim=1)  # eq. 2
            feats.append((w[..., None] * k).sum(1))  # eq. 3
        f = torch.stack(feats, 1)  # F~ (B, N, d)
        a = torch.softmax(self.wq(f) @ self.wk(f).transpose(1, 2) / f.shape[-1] ** 0.5, dim=-1)  # eq. 4
        wd = torch.softmax(F.relu(self.fc(a.flatten(1))), dim=-1)  # eq. 5 (B, N)
        fg = (wd[..., None] * self.wv(f)).sum(1, keepdim=True)  # eq. 6 (B, 1, d)
        z = fg + f  # final AU features
        logits = torch.stack([h(z[:, n]) for n, h in enumerate(self.head)], 1)  # eq. 7 (B, N, 2)
        return {"logits": logits, "w_d": wd, "v": F.normalize(self.proj(z), dim=-1)}


def gd_loss(wd: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. 8: (1/N) ||W_d - Y||^2, averaged over the batch."""
    return ((wd - y.float()) ** 2).sum(1).div(wd.shape[1]).mean()


def miauc_loss(v: torch.Tensor, t: torch.Tensor, y: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Eq. 9-11. v (B, N, E) visual AU features, t (N, 2, E) prompt features, y (B, N) 0/1.
    For AU n: M_n = cos(v_n, t of each sample's own state) (B x B); label LM_n(b1, b2) = 1
    when samples b1 and b2 share AU n's state; cross-entropy of the row-normalised LM_n
    against softmax(scale M_n); summed over AUs."""
    total = v.new_zeros(())
    for n in range(v.shape[1]):
        tb = t[n][y[:, n].long()]  # (B, E) text of each sample's state
        m = v[:, n] @ tb.t()  # eq. 9 (cosine: both normalised)
        lm = (y[:, n][:, None] == y[:, n][None, :]).float()  # eq. 10
        total = total + -(lm / lm.sum(1, keepdim=True) * F.log_softmax(scale * m, dim=1)).sum(1).mean()
    return total


def total_loss(out: dict, t: torch.Tensor, y: torch.Tensor, scale, alpha: float = 1.0, beta: float = 1.0):
    """Eq. 12: sum over AUs of CE(P_n) + alpha L_MiAUC + beta L_GD."""
    mt = sum(F.cross_entropy(out["logits"][:, n], y[:, n].long()) for n in range(y.shape[1]))
    return mt + alpha * miauc_loss(out["v"], t, y, scale) + beta * gd_loss(out["w_d"], y)


def emotion_scores(v: torch.Tensor, t: torch.Tensor, aus: list[int], emotions: dict[str, list[int]]) -> torch.Tensor:
    """Eq. 13: for each emotion r, sum over AUs of cos(F_n^V, LF_r^T), with LF_r^T for AU n
    its positive prompt if n belongs to r, else its negative prompt. -> (B, R)."""
    cols = []
    for r, members in emotions.items():
        state = torch.tensor([1 if a in members else 0 for a in aus], device=v.device)
        lf = t[torch.arange(len(aus), device=v.device), state]  # (N, E)
        cols.append((v * lf[None]).sum(-1).sum(-1))
    return torch.stack(cols, 1)
