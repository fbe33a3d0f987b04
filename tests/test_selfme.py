"""SelfME pieces (seed 001): SC loss against eq. 14 written out, scaling-and-squaring
keeps the Jacobian positive, cubic B-spline upsampling, quadrant embeddings."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import fit_and_accuracy
from training.samplers import split_key
from training.selfme.model import (
    REGIONS,
    SYMMETRIC,
    bspline_upsample,
    jacobian_determinant,
    quadrant_embeddings,
    scaling_and_squaring,
    symmetric_contrastive_loss,
    warp,
)


def test_sc_loss_explicit_loops():
    torch.manual_seed(0)
    e = F.normalize(torch.randn(4, 4, 6), dim=-1)
    y = torch.tensor([0, 1, 0, 1])
    tau = 0.5
    per = []
    for i in range(4):
        acc, n = 0.0, 0
        for (ai, a), (bi, b) in itertools.product(enumerate(REGIONS), repeat=2):
            if a != b and (a, b) not in SYMMETRIC:
                continue
            cands = [k for k in range(4) if not (a == b and k == i)]
            den = sum(math.exp(float(e[i, ai] @ e[k, bi]) / tau) for k in cands)
            for p in cands:
                if y[p] == y[i]:
                    acc += -math.log(math.exp(float(e[i, ai] @ e[p, bi]) / tau) / den)
                    n += 1
        per.append(acc / n)
    assert symmetric_contrastive_loss(e, y, tau).item() == pytest.approx(sum(per) / 4, rel=1e-5)


def test_scaling_and_squaring_is_diffeomorphic():
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    v = torch.stack([8 * torch.sin(xx / 6), 2 * torch.sin(yy / 7) * torch.cos(xx / 9)], 0)[None]
    assert jacobian_determinant(v).min() < 0  # used as a displacement, the field folds
    phi = scaling_and_squaring(v, steps=7)
    assert jacobian_determinant(phi).min() > 0  # its exponential is not
    # a constant velocity integrates to itself (a translation)
    c = torch.full((1, 2, 16, 16), 0.7)
    assert torch.allclose(scaling_and_squaring(c)[..., 4:-4, 4:-4], c[..., 4:-4, 4:-4], atol=1e-4)


def test_bspline_upsampling():
    c = torch.full((1, 2, 8, 8), 1.5)
    assert torch.allclose(bspline_upsample(c, (64, 64)), torch.full((1, 2, 64, 64), 1.5), atol=1e-5)
    r = torch.randn(1, 2, 8, 8)
    up = bspline_upsample(r, (64, 64))
    assert up.shape == (1, 2, 64, 64)
    assert up.abs().max() <= r.abs().max() + 1e-5  # a convex combination of the control values
    assert (up[..., 1:, :] - up[..., :-1, :]).abs().max() < (r[..., 1:, :] - r[..., :-1, :]).abs().max()


def test_warp_identity_and_quadrants():
    x = torch.randn(1, 3, 10, 10)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 10, 10)), x, atol=1e-5)
    tok = torch.arange(16.0).reshape(1, 16, 1)  # a 4x4 grid
    q = quadrant_embeddings(tok, 4)[0, :, 0]
    assert q.tolist() == [2.5, 4.5, 10.5, 12.5]  # UL, UR, BL, BR means


@pytest.mark.parametrize("shuffle", [False, True])
def test_planted_signal_scvit(shuffle):
    """Class = where the motion is (upper vs lower face), symmetric left/right."""
    from training.selfme.model import SCViT, scvit_loss

    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.arange(n) % 2
        x = 0.1 * torch.randn(n, 2, 64, 64, generator=g)
        for i in range(n):
            rows = slice(8, 24) if y[i] == 0 else slice(40, 56)
            x[i, 1, rows, 8:24] -= 2.0
            x[i, 1, rows, 40:56] -= 2.0
        if shuffle:
            y = y[torch.randperm(n, generator=g)]
        return x, y

    torch.manual_seed(0)
    m = SCViT(2, 2, img_size=64)
    xtr, ytr = make(32)
    xte, yte = make(16)
    # lr 3e-4: with eq. 15's MLP head (tanh hidden layer) 1e-3 did not learn the signal (0.56)
    acc = fit_and_accuracy(m, xtr, xte, yte, lambda out, r: scvit_loss(*out, ytr[r]), epochs=15, lr=3e-4)
    assert (acc < 0.8) if shuffle else (acc > 0.9), (shuffle, acc)


def test_tps_round_trip_and_equivariance():
    from training.selfme.motion_learner import TPS, KeypointDetector, equivariance_loss

    g = torch.Generator().manual_seed(0)
    t = TPS(3, sigma_tps=0.0, generator=g)  # affine part only: exactly invertible
    a = torch.cat([t.theta[..., 1:], t.theta[..., :1]], -1)  # [A | b] with z' = A z + b
    A, b = a[..., :2], a[..., 2]
    Ai = torch.linalg.inv(A)
    inv = TPS(3, theta=torch.cat([-(Ai @ b[..., None]), Ai], -1), w=torch.zeros(3, 25, 2))
    z = torch.rand(3, 10, 2) * 2 - 1
    assert torch.allclose(inv(t(z)), z, atol=1e-5) and torch.allclose(t(inv(z)), z, atol=1e-5)
    # a small non-linear TPS and the one with negated parameters nearly undo each other
    t2 = TPS(3, sigma_affine=0.0, sigma_tps=0.002, generator=g)
    back = TPS(3, theta=t2.theta, w=-t2.w)
    assert (back(t2(z)) - z).abs().max() < 0.01
    # the identity transform costs no equivariance loss
    ident = TPS(2, theta=torch.tensor([[0.0, 1, 0], [0, 0, 1]]).expand(2, 2, 3), w=torch.zeros(2, 25, 2))
    assert equivariance_loss(KeypointDetector(), torch.rand(2, 3, 32, 32), ident).item() < 1e-4


def test_motion_learner_learns_to_reconstruct():
    """On pairs whose target is the source shifted, training lowers the reconstruction loss."""
    from training.selfme.motion_learner import MotionLearner

    torch.manual_seed(0)
    base = torch.rand(8, 3, 32, 32)
    src = torch.nn.functional.avg_pool2d(base, 3, 1, 1)
    tgt = torch.roll(src, 2, dims=-1)
    m = MotionLearner(k=4)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss = (m(src, tgt)["prediction"] - tgt).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert m.motion(src, tgt, 2.0).shape == (8, 2, 8, 8)


def test_a_run_folder_belongs_to_one_configuration(tmp_path):
    from training.loso import check_identity

    check_identity(tmp_path, {"method": "x", "config": {"lr": 1}})
    check_identity(tmp_path, {"method": "x", "config": {"lr": 1}})
    with pytest.raises(ValueError, match="another configuration"):
        check_identity(tmp_path, {"method": "x", "config": {"lr": 2}})


def test_the_classifier_head_is_eq15s_mlp_with_one_hidden_layer():
    """Eq. 15: y = MLP(LN(z_cls)), an MLP with one hidden layer (width D and tanh, ViT's
    pre-logits layer: the paper gives neither). Checked against the computation written
    out in numpy on the class token the last transformer block outputs."""
    import numpy as np

    from training.selfme.model import SCViT

    torch.manual_seed(0)
    m = SCViT(5, 2, img_size=32).eval()
    linears = [x for x in m.vit.head.modules() if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in linears] == [(384, 384), (384, 5)]  # one hidden layer
    assert [type(x).__name__ for x in m.vit.head] == ["Linear", "Tanh", "Linear"]
    got = {}
    m.vit.blocks[-1].register_forward_hook(lambda mod, i, o: got.update(z=o))
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        logits = m(x)[0].double().numpy()
    z = got["z"][:, 0].double().numpy()  # z_cls, before the final LayerNorm
    p = {k: v.double().numpy() for k, v in m.vit.state_dict().items()}
    ln = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-6) * p["norm.weight"] + p["norm.bias"]
    hidden = np.tanh(ln @ p["head.0.weight"].T + p["head.0.bias"])
    np.testing.assert_allclose(logits, hidden @ p["head.2.weight"].T + p["head.2.bias"], rtol=1e-4, atol=1e-5)


class _Pairs:
    """A stand-in for SelfMEDataset(train=True): `n` clips' random frame pairs (2, 3, 72, 72),
    a smooth pattern and the same pattern shifted (what learn_motion reads: len, [i]["pair"], rows)."""

    def __init__(self, n: int = 4):
        g = torch.Generator().manual_seed(0)
        base = F.avg_pool2d(torch.rand(n, 3, 76, 76, generator=g), 5, 1)  # (n, 3, 72, 72)
        self.pairs = torch.stack([base, torch.roll(base, 2, dims=-1)], 1)
        self.rows = [{"sample_id": f"s{i}"} for i in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        return {"pair": self.pairs[split_key(key)[0]]}  # an EpochSampler key (index, draw seed)


def _one_step_config(**kw):
    from training.selfme.configs import CONFIGS

    return {**CONFIGS["tiny"], "motion_epochs": 1, "motion_pairs": 8, **kw}  # one Adam step of 8 pairs


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_the_motion_rate_is_the_papers_fine_tuning_rate_only_for_a_pretrained_learner(tmp_path):
    """Issue 16 item 5: 2e-6 fine-tunes a pretrained learner; a random one trains at 2e-4.
    Through the train path: Adam's first step moves every parameter that has a gradient by
    lr * g / (|g| + eps), i.e. by the rate itself, so the largest move is the rate used."""
    from training.runtime import Runtime
    from training.selfme.motion_learner import MotionLearner
    from training.selfme.train import learn_motion, motion_rate
    from training.weights import Loaded

    cfg = _one_step_config()
    assert cfg["motion_lr_scratch"] == 2e-4 and cfg["motion_lr_finetune"] < cfg["motion_lr_scratch"]
    from training.selfme.configs import CONFIGS

    assert CONFIGS["paper"]["motion_lr_finetune"] == 2e-6  # the paper's section 4.3
    assert motion_rate(cfg, None)[0] == cfg["motion_lr_scratch"]
    assert motion_rate(cfg, Loaded("f.pt", 60, 0, 0, 0))[0] == cfg["motion_lr_finetune"]
    assert motion_rate(cfg, Loaded("f.pt", 50, 10, 0, 0))[0] == cfg["motion_lr_scratch"]  # partly random

    rt, logs = Runtime("cpu"), []
    torch.manual_seed(cfg["seed"])
    start = _params(MotionLearner())  # learn_motion's own initialisation (same seed)
    m = learn_motion(_Pairs(), cfg, rt, logs.append, False)
    moved = max((v - start[k]).abs().max().item() for k, v in _params(m).items())
    assert moved == pytest.approx(2e-4, rel=0.02)
    assert any("lr 0.0002, the from-scratch rate: the learner is randomly initialised" in s for s in logs)

    torch.manual_seed(123)
    pre = MotionLearner()
    torch.save(pre.state_dict(), tmp_path / "pretrained.pth")
    logs.clear()
    m = learn_motion(_Pairs(), cfg, rt, logs.append, False, motion_weights=str(tmp_path / "pretrained.pth"))
    moved = max((v - p).abs().max().item() for (k, v), p in zip(_params(m).items(), _params(pre).values()))
    assert moved == pytest.approx(cfg["motion_lr_finetune"], rel=0.02)  # from the file, at the fine-tuning rate
    assert any("the paper's fine-tuning rate: the learner starts from" in s for s in logs)


def test_a_motion_weights_file_of_which_nothing_fits_is_an_error_naming_it(tmp_path):
    from training.runtime import Runtime
    from training.selfme.train import learn_motion
    from training.weights import WeightsError

    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(WeightsError, match=r"linear\.pth: none of its 2 tensors fits the SelfME motion learner"):
        learn_motion(
            _Pairs(), _one_step_config(), Runtime("cpu"), print, False, motion_weights=str(tmp_path / "linear.pth")
        )


def test_a_resumed_run_reuses_its_saved_motion_learner(tmp_path):
    """The learner is saved in the run folder; a second call with the same folder and
    configuration loads it (no motion learning) and gives the same motions; the file is a
    --motion-weights for another run; a folder of another configuration is refused."""
    from training.runtime import Runtime
    from training.selfme.train import learn_motion, learned_motion, motion_learner

    cfg, rt, ds = _one_step_config(), Runtime("cpu"), _Pairs()
    onset_apex = ds.pairs
    first, second = [], []
    a = learned_motion(motion_learner(ds, cfg, rt, tmp_path, first.append, False), onset_apex, 64, 2.0)
    assert any(s.startswith("motion learning epoch 1") for s in first)
    assert (tmp_path / "motion_learner.pt").is_file()
    b = learned_motion(motion_learner(ds, cfg, rt, tmp_path, second.append, False), onset_apex, 64, 2.0)
    assert not any(s.startswith("motion learning epoch") for s in second)
    assert any(s.startswith("motion learning skipped") for s in second)
    assert torch.equal(a, b) and a.abs().max() > 0

    logs = []
    other = learn_motion(
        ds, {**cfg, "motion_epochs": 0}, rt, logs.append, False, motion_weights=str(tmp_path / "motion_learner.pt")
    )
    assert torch.equal(learned_motion(other, onset_apex, 64, 2.0), a)
    assert any("fine-tuning rate" in s for s in logs)

    with pytest.raises(
        ValueError, match=r"motion_learner\.pt holds a motion learner of another configuration .*config"
    ):
        motion_learner(ds, {**cfg, "motion_pairs": 16}, rt, tmp_path, print, False)
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "motion_learner.pt").write_bytes((tmp_path / "motion_learner.pt").read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cut/motion_learner\.pt: not readable as a saved motion learner"):
        motion_learner(ds, cfg, rt, tmp_path / "cut", print, False)


def test_the_motion_rate_drops_tenfold_at_the_papers_milestones(tmp_path):
    """Sec. 4.3: "reduce the learning rate by 10 at epochs 20 and 30 for motion learning".
    The rate the next epoch runs at, read from the epoch checkpoint the loop writes."""
    from training.runtime import Runtime
    from training.selfme.configs import CONFIGS
    from training.selfme.train import learn_motion

    assert CONFIGS["paper"]["motion_milestones"] == [20, 30]
    rates = []
    for epochs in (1, 2, 3):
        cfg = _one_step_config(motion_epochs=epochs, motion_milestones=[1, 2])
        ck = tmp_path / f"ck{epochs}.pt"
        learn_motion(_Pairs(), cfg, Runtime("cpu"), lambda *a: None, False, ckpt=ck)
        rates.append(torch.load(ck, weights_only=True)["objects"]["opt"]["param_groups"][0]["lr"])
    assert rates == pytest.approx([2e-5, 2e-6, 2e-6])  # 2e-4 from scratch: / 10 after epoch 1, / 10 after 2
