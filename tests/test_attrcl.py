"""AttrCL (seed 002): cross-modal loss against eq. 3-5 written out, eq. 8, the FACS
description table, the offline text encoder, and a planted-signal check."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.attrcl.model import AttrCL, attrcl_loss, cross_modal_loss
from training.attrcl.text import TextEncoder, describe


def test_cross_modal_loss_equals_eq3_to_5():
    torch.manual_seed(0)
    zm, za = torch.randn(4, 6), torch.randn(4, 6)

    def d(a, b):  # eq. 4: exp of the cosine similarity
        return math.exp(float(a @ b / (a.norm() * b.norm())))

    want = np.mean(
        [
            -math.log(d(zm[i], za[i]) / (d(zm[i], za[i]) + sum(d(zm[i], za[j]) for j in range(4) if j != i)))
            for i in range(4)
        ]
    )
    assert cross_modal_loss(zm, za).item() == pytest.approx(want, rel=1e-5)


def test_total_loss_is_eq8():
    torch.manual_seed(1)
    out = {
        "z_m": torch.randn(3, 8),
        "z_a": torch.randn(3, 8),
        "logits_v": torch.randn(3, 4),
        "logits_t": torch.randn(3, 4),
    }
    y = torch.tensor([0, 3, 1])
    a = 0.3
    want = (1 - a) * (F.cross_entropy(out["logits_v"], y) + F.cross_entropy(out["logits_t"], y)) + a * cross_modal_loss(
        out["z_m"], out["z_a"]
    )
    assert attrcl_loss(out, y, a).item() == pytest.approx(want.item())


def test_descriptions_and_offline_encoder():
    assert describe([6, 12]) == "cheek raiser, lip corner puller"  # seed 002's happiness example
    assert describe([]) == "no action unit"
    enc = TextEncoder()
    e = enc.encode(["cheek raiser, lip corner puller", "brow lowerer", "cheek raiser, lip corner puller"])
    assert e.shape == (3, 384) and np.allclose(e[0], e[2])
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        TextEncoder("/no/such/bert")


def test_planted_signal_video_branch():
    """Class = direction of a moving bar; the text branch carries the class's AU text."""
    g = np.random.default_rng(0)

    def make(n, shuffle):
        y = np.arange(n) % 2
        x = g.normal(0, 0.05, (n, 3, 8, 32, 32)).astype(np.float32)
        for i, c in enumerate(y):
            for t in range(8):
                col = 4 + 3 * t if c == 0 else 27 - 3 * t
                x[i, :, t, 8:24, col : col + 3] = 1.0
        fl = np.diff(x[:, :2], axis=2)
        if shuffle:
            y = g.permutation(y)
        return torch.from_numpy(x), torch.from_numpy(fl.copy()), torch.from_numpy(y)

    text = torch.randn(2, 384)
    for shuffle in (False, True):
        torch.manual_seed(0)
        xr, xf, y = make(32, shuffle)
        tr, tf, ty = make(16, shuffle)
        m = AttrCL(2)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        for _ in range(6):
            m.train()
            for i in range(0, 32, 8):
                out = m(xr[i : i + 8], xf[i : i + 8], text[y[i : i + 8]])
                loss = attrcl_loss(out, y[i : i + 8], 0.3)
                opt.zero_grad()
                loss.backward()
                opt.step()
        m.eval()
        with torch.no_grad():
            acc = (m.cls_v(m.video(tr, tf)).argmax(1) == ty).float().mean().item()
        assert (acc < 0.8) if shuffle else (acc > 0.9), (shuffle, acc)
