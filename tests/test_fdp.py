"""FDP (seed 003): losses against explicit computations, shapes, parameter count, and the
planted-signal check on clips whose class is the direction of a motion."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import fit_and_accuracy
from training.fdp.model import FDP, FDPConfig, count_parameters, fdp_loss, rank_loss

TINY = FDPConfig(widths=(16, 32, 48, 64), heads=(2, 2, 4, 4), stem=16, d_channels=64, size=32)


def test_rank_loss_explicit():
    s = torch.tensor([[0.0, 1.5, 1.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    want = np.mean([sum(abs(2.0 * k - s[b, k].item()) for k in range(4)) for b in range(2)])
    assert rank_loss(s, c=2.0).item() == pytest.approx(want)


def test_total_loss_is_eq8():
    torch.manual_seed(0)
    logits, y = torch.randn(3, 5), torch.tensor([0, 4, 2])
    dp, dt, s = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8), torch.randn(3, 8)
    want = F.cross_entropy(logits, y) + 100 * ((dp - dt) ** 2).mean() + 0.1 * rank_loss(s)
    assert fdp_loss(logits, dp, s, y, dt).item() == pytest.approx(want.item(), rel=1e-6)


def test_shapes_and_parameter_count():
    m = FDP(7, TINY)
    logits, di, s = m(torch.randn(2, 8, 3, 32, 32))
    assert logits.shape == (2, 7) and di.shape == (2, 1, 32, 32) and s.shape == (2, 8)
    assert (di > 0).all() and (di < 1).all()  # sigmoid output
    n = count_parameters(FDP(7))  # the default (paper-sized) widths
    assert abs(n / 14.82e6 - 1) < 0.01, n


def clips(n, shuffle, seed):
    """Class 0: a bright bar moves left -> right over the 8 frames; class 1: right -> left."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = g.normal(0, 0.05, (n, 8, 3, 32, 32)).astype(np.float32) + 0.5
    for i, c in enumerate(y):
        for t in range(8):
            col = 4 + 3 * t if c == 0 else 27 - 3 * t
            x[i, t, :, 8:24, col : col + 3] = 1.0
    d = np.stack([x[i, :, 0].mean(0, keepdims=True) for i in range(n)])
    if shuffle:
        y = g.permutation(y)
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(d)


@pytest.mark.parametrize("shuffle", [False, True])
def test_planted_temporal_signal(shuffle):
    torch.manual_seed(0)
    xtr, ytr, dtr = clips(32, shuffle, 0)
    xte, yte, _ = clips(16, shuffle, 1)
    acc = fit_and_accuracy(
        FDP(2, TINY), xtr, xte, yte, lambda out, r: fdp_loss(*out, ytr[r], dtr[r]), epochs=8, lr=3e-3
    )
    if shuffle:
        assert acc < 0.8
    else:
        assert acc > 0.9
