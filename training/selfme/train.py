"""SelfME (seed 001) under LOSO.

Motion learning stage (`motion='learned'`, the default): the motion learner
(training/selfme/motion_learner.py) is trained self-supervised on random frame pairs of
the stored aligned clips (perceptual reconstruction + TPS equivariance, eq. 6-8); the
onset->apex motion of every labelled clip is then its dense motion on the 1/4 lattice,
expanded by cubic B-spline (eq. 9) and made diffeomorphic by scaling-and-squaring, with
gamma = 1 for the training subjects and 2 at inference (table 4). `motion='tvl1'` uses
the stored TV-L1 flow instead (the paper's baseline, table 3).
Classification stage: SCViT, eq. 16 (CE + omega L_sc, omega 0.1, tau 0.07)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.checkpoint import EpochCheckpoint
from training.loop import epoch_batches, step
from training.loso import check_identity, run_loso
from training.runtime import Runtime, manual_seed, start, stream_seed, torch_generator
from training.samplers import EpochSampler
from training.selfme.configs import CONFIGS
from training.selfme.feed import SelfMEDataset
from training.selfme.model import SCViT, scvit_loss
from training.weights import loaded_counts, log_loaded


def learn_motion(ds: SelfMEDataset, cfg: dict, rt: Runtime, log, progress: bool, vgg_weights=None, ckpt=None):
    """Train the motion learner on random frame pairs of the stored clips (64x64), each
    epoch's pairs and thin-plate splines from the streams (seed, "motion", epoch),
    checkpointed after every epoch in `ckpt` (a path; None: no checkpoint)."""
    from training.selfme.motion_learner import TPS, MotionLearner, Perceptual, equivariance_loss

    device = rt.device
    manual_seed(cfg["seed"])
    model, perc = MotionLearner().to(device), Perceptual(vgg_weights).to(device)
    model.vgg_loaded = perc.loaded  # for the run summary
    if perc.loaded is not None:
        log(perc.loaded.describe("VGG-19 (perceptual loss)"))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["motion_lr"])
    ck = EpochCheckpoint(ckpt, model=model, opt=opt) if ckpt else None
    n = max(1, cfg["motion_pairs"] // 8)
    for ep in range(ck.resume(device) if ck else 0, cfg["motion_epochs"]):
        g = torch_generator(cfg["seed"], "motion tps", ep)
        rng = np.random.default_rng(stream_seed(cfg["seed"], "motion pairs", ep))
        t0, tot = time.perf_counter(), 0.0
        for _ in tqdm(range(n), desc=f"motion learning epoch {ep + 1}", disable=not progress, leave=False):
            keys = zip(rng.integers(0, len(ds), 8).tolist(), rng.integers(0, 2**63 - 1, 8).tolist())
            pairs = torch.stack([ds[key]["pair"] for key in keys])  # random clips, random frame pairs
            pairs = (
                F.interpolate(pairs.flatten(0, 1), size=(64, 64), mode="bilinear", align_corners=False)
                .reshape(8, 2, 3, 64, 64)
                .to(device)
            )
            src, tgt = pairs[:, 0], pairs[:, 1]
            with rt.autocast():
                out = model(src, tgt, cfg["gamma_train"])
                loss = perc(out["prediction"], tgt) + cfg["lambda_eqv"] * equivariance_loss(
                    model.kp, tgt, TPS(8, generator=g)
                )
            step(opt, loss)
            tot += loss.item()
        log(f"motion learning epoch {ep + 1}: loss {tot / n:.4f} ({8 * n / (time.perf_counter() - t0):.1f} pairs/s)")
        if ck:
            ck.save(ep + 1)
    return model.eval()


@torch.no_grad()
def learned_motion(model, onset_apex: torch.Tensor, size: int, gamma: float) -> torch.Tensor:
    """(N, 2, 3, H, W) onset/apex -> (N, 2, size, size): dense motion on the 1/4 lattice,
    B-spline expanded (eq. 9), scaling-and-squaring (diffeomorphic), in pixels of `size`."""
    from training.selfme.model import bspline_upsample, scaling_and_squaring

    x = F.interpolate(onset_apex.flatten(0, 1), size=(64, 64), mode="bilinear", align_corners=False)
    x = x.reshape(-1, 2, 3, 64, 64)
    d = model.motion(x[:, 0], x[:, 1], gamma)  # (N, 2, 16, 16) lattice pixels
    v = bspline_upsample(d * (size / d.shape[-1]), (size, size))
    return scaling_and_squaring(v)


def _motion(flow: torch.Tensor, size: int, gamma: float) -> torch.Tensor:
    """(N, 2, 310, 310) pixels -> (N, 2, size, size), vectors rescaled, amplified by gamma."""
    out = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False) * (size / flow.shape[-1])
    return out * gamma


def train_selfme(
    store_path: Path,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    *,
    weights: str | None = None,
    motion: str = "learned",
    vgg_weights: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg, rt = start(CONFIGS, config, device, precision)
    device = rt.device
    ds = SelfMEDataset(store_path, scheme, cache_dir=cache_dir)
    classes = ds.classes
    identity = {"method": "selfme", "config": cfg, "motion": motion, "weights": weights, "vgg_weights": vgg_weights}
    check_identity(out, {**identity, "samples": list(ds.samples()["sample_id"])})  # before resuming motion learning
    loaded = {"weights": None, "vgg_weights": None}  # what the weight files gave (summary.json)
    if motion == "learned":
        learner = learn_motion(
            SelfMEDataset(store_path, scheme, train=True, seed=cfg["seed"], cache_dir=cache_dir),
            cfg,
            rt,
            log,
            progress,
            vgg_weights,
            out / "checkpoints" / "motion_learner.pt",
        )
        loaded["vgg_weights"] = learner.vgg_loaded
        onset_apex = torch.stack([ds[i]["pair"] for i in range(len(ds))]).to(device)  # test mode: onset, apex
        motions = {
            gm: learned_motion(learner, onset_apex, cfg["size"], gm).cpu()
            for gm in {cfg["gamma_train"], cfg["gamma_test"]}
        }
    else:
        flows = torch.from_numpy(
            np.stack([ds.array("pairs/flow_tvl1")[int(r["index"])].astype(np.float32) for r in ds.rows])
        ).permute(0, 3, 1, 2)
        motions = {gm: _motion(flows, cfg["size"], gm) for gm in {cfg["gamma_train"], cfg["gamma_test"]}}
    y = torch.from_numpy(ds.labels)
    log(
        f"SelfME (SCViT on {motion} motion): config {config}, device {device}, ViT-S/16 "
        + (f"from {weights}" if weights else "randomly initialised (no weights given; nothing is downloaded)")
    )
    rates = []

    def fold(tr, te, k):
        manual_seed(stream_seed(cfg["seed"], "fold", k))
        model = SCViT(len(classes), 2, weights, cfg["size"]).to(device)
        loaded["weights"] = loaded["weights"] or model.loaded
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, cfg.get("decay", 1.0))
        ck = EpochCheckpoint(out / "checkpoints" / f"fold_{k:03d}.pt", model=model, opt=opt, sched=sched)
        sampler = EpochSampler(tr, (cfg["seed"], "fold", k))  # the fold's own stream
        for ep in range(ck.resume(device), cfg["epochs"]):
            model.train()
            t0 = time.perf_counter()
            for keys in epoch_batches(sampler, ep, cfg["batch"], f"SCViT fold {k + 1} epoch {ep + 1}", progress):
                idx = [i for i, _ in keys]
                x = motions[cfg["gamma_train"]][idx].to(device)
                with rt.autocast():
                    logits, regions = model(x)
                    loss = scvit_loss(logits, regions, y[idx].to(device), cfg["omega"], cfg["tau"])
                step(opt, loss)
            sched.step()
            rates.append(len(tr) / (time.perf_counter() - t0))
            ck.save(ep + 1)
        model.eval()
        with torch.no_grad(), rt.autocast():
            pred = model(motions[cfg["gamma_test"]][te].to(device))[0].argmax(1).cpu().numpy()
        ck.discard()
        return pred

    summary = run_loso(
        ds.samples(),
        fold,
        classes,
        out,
        log,
        meta=lambda: {
            "method": "selfme",
            "config": config,
            "motion": motion,
            "train_samples_per_s": float(np.mean(rates)) if rates else None,
            **{f"{k}_loaded": loaded_counts(v) for k, v in loaded.items()},
        },
        identity=identity,
    )
    log_loaded(log, *loaded.values())
    return summary
