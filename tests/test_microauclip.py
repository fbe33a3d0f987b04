"""MicroAUCLIP (seed 004): patch lookup, GD and MiAUC losses against explicit loops,
eq. 13 against a direct sum, and the model's shapes."""

import math

import numpy as np
import pytest
import torch

from training.microauclip.model import emotion_scores, gd_loss, miauc_loss, patch_index
from training.microauclip.train import au_metrics


def test_patch_lookup_maps_a_landmark_to_the_patch_that_contains_it():
    lm = torch.tensor([[0.0, 0.0], [31.9, 31.9], [32.0, 0.0], [223.9, 223.9], [100.0, 70.0], [250.0, -3.0]])
    assert patch_index(lm).tolist() == [0, 0, 1, 48, 2 * 7 + 3, 6]  # (row 2, col 3); outside -> clamped


def test_gd_loss():
    wd = torch.tensor([[0.2, 0.5, 0.3]])
    y = torch.tensor([[0, 1, 1]])
    assert gd_loss(wd, y).item() == pytest.approx((0.04 + 0.25 + 0.49) / 3)


def test_miauc_loss_explicit():
    torch.manual_seed(0)
    B, N, E = 4, 2, 5
    v = torch.nn.functional.normalize(torch.randn(B, N, E), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(N, 2, E), dim=-1)
    y = torch.tensor([[1, 0], [0, 0], [1, 1], [1, 0]])
    s = 10.0
    total = 0.0
    for n in range(N):
        for b1 in range(B):
            logits = [s * float(v[b1, n] @ t[n, y[b2, n]]) for b2 in range(B)]
            lse = math.log(sum(math.exp(x) for x in logits))
            same = [b2 for b2 in range(B) if y[b2, n] == y[b1, n]]
            total += -sum((1 / len(same)) * (logits[b2] - lse) for b2 in same) / B
    assert miauc_loss(v, t, y, s).item() == pytest.approx(total, rel=1e-5)


def test_emotion_label_free_is_summed_similarity():
    torch.manual_seed(1)
    v = torch.nn.functional.normalize(torch.randn(3, 2, 4), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(2, 2, 4), dim=-1)
    aus, emos = [4, 12], {"negative": [4], "positive": [12]}
    got = emotion_scores(v, t, aus, emos)
    want = torch.stack(
        [
            (v[:, 0] * t[0, 1]).sum(-1) + (v[:, 1] * t[1, 0]).sum(-1),
            (v[:, 0] * t[0, 0]).sum(-1) + (v[:, 1] * t[1, 1]).sum(-1),
        ],
        1,
    )
    assert torch.allclose(got, want, atol=1e-6)


def test_au_metrics():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    p = np.array([[1, 0], [0, 1], [0, 1], [0, 1]])
    m = au_metrics(y, p, [4, 12])
    assert m["AU4"]["F1"] == pytest.approx(2 / 3) and m["AU12"]["ACC"] == 0.75


def tiny_clip():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    return CLIP(
        embed_dim=64,
        vision_cfg=CLIPVisionCfg(layers=4, width=64, head_width=32, patch_size=32, image_size=224),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=4),
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_planted_signal_au_detection(shuffle):
    """AU4 active <=> flow at the brows, AU12 active <=> flow at the mouth corners."""
    from training.microauclip.model import MicroAUCLIP, total_loss

    g = np.random.default_rng(0)
    lm = torch.zeros(68, 2)
    lm[:, 0], lm[:, 1] = 112, 112
    lm[19:25] = torch.tensor([80.0, 40.0])  # brows in patch (1, 2)
    lm[[48, 54]] = torch.tensor([150.0, 170.0])  # mouth corners in patch (5, 4)

    def make(n):
        y = g.integers(0, 2, (n, 2))
        flow = g.normal(0, 0.1, (n, 2, 224, 224)).astype(np.float32)
        for i in range(n):
            if y[i, 0]:
                flow[i, 1, 32:64, 64:96] -= 3.0
            if y[i, 1]:
                flow[i, 0, 160:192, 128:160] += 3.0
        if shuffle:
            y = g.permutation(y)
        return torch.from_numpy(flow), torch.from_numpy(y)

    torch.manual_seed(0)
    m = MicroAUCLIP([4, 12], clip_model=tiny_clip(), finetune_last=4)
    xtr, ytr = make(48)
    xte, yte = make(24)
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(8):
        m.train()
        for i in range(0, 48, 8):
            o = m(xtr[i : i + 8], lm.expand(8, -1, -1))
            loss = total_loss(o, m.text_features(), ytr[i : i + 8], 10.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        acc = (m(xte, lm.expand(24, -1, -1))["logits"].argmax(-1) == yte).float().mean().item()
    assert (acc < 0.75) if shuffle else (acc > 0.9), (shuffle, acc)
