"""DVSCL training (seed 000): self-supervised dual-view pretraining on the labelled +
AU-selected pairs, then a linear probe on the frozen encoder under LOSO."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from schemas.tables import SOURCES
from training.augment import augment_batch, resize
from training.checkpoint import EpochCheckpoint
from training.dvscl.configs import CONFIGS
from training.dvscl.feed import DVSCLDataset
from training.dvscl.losses import dual_view_infonce
from training.dvscl.model import DVSCLEncoder
from training.loop import data_loader, step, to_device
from training.loso import check_identity, run_loso
from training.runtime import Runtime, manual_seed, start, torch_generator
from training.samplers import HALF_OVERSAMPLING, EpochSampler, factors_for, replicate
from training.weights import loaded_counts, log_loaded


def _views(batch, view: str, scale: float):
    v = batch["view_diff"]
    return batch["rgb_diff"], (v / scale if view == "depth" else v)


def pretrain(
    ds: DVSCLDataset, cfg: dict, rt: Runtime, ckpt: Path, weights: str | None = None, log=print, progress: bool = True
) -> DVSCLEncoder:
    """Self-supervised dual-view pretraining (eq. 10) for cfg["epochs"] epochs, resumed
    from `ckpt` (written after every epoch) when it exists. Each epoch's order and
    augmentations come from the streams (seed, "pretrain", epoch), so a resumed run
    repeats the uninterrupted one exactly."""
    device = rt.device
    manual_seed(cfg["seed"])
    enc = DVSCLEncoder(cfg["dim"], weights, log).to(device)
    opt = torch.optim.SGD(enc.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["wd"])
    bs = min(cfg["batch"], len(ds))
    steps = cfg["epochs"] * max(1, len(ds) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    ck = EpochCheckpoint(ckpt, model=enc, opt=opt, sched=sched)
    start = ck.resume(device)
    if start:
        log(f"pretraining resumed after epoch {start}")
    sampler = EpochSampler(range(len(ds)), (cfg["seed"], "pretrain"))
    loader = data_loader(ds, sampler, bs, cfg["workers"], device, drop_last=True)
    for epoch in range(start, cfg["epochs"]):
        enc.train()
        sampler.set_epoch(epoch)
        aug_g = torch_generator(cfg["seed"], "pretrain augment", epoch)
        bar = tqdm(loader, desc=f"DVSCL pretrain {epoch + 1}/{cfg['epochs']}", disable=not progress, leave=False)
        t0, n, tot = time.perf_counter(), 0, 0.0
        for batch in bar:
            rgb, view = _views(batch, ds.view, cfg["depth_scale"])
            x1, x2 = augment_batch(to_device(rgb, device), to_device(view, device), cfg["size"], aug_g)
            with rt.autocast():
                loss = dual_view_infonce(enc(x1), enc(x2), cfg["tau"])
            step(opt, loss)
            sched.step()
            n += len(x1)
            tot += loss.item() * len(x1)
            bar.set_postfix(loss=f"{loss.item():.3f}", sps=f"{n / (time.perf_counter() - t0):.1f}")
        log(
            f"pretrain epoch {epoch + 1}: InfoNCE {tot / max(n, 1):.4f}, {n / (time.perf_counter() - t0):.1f} samples/s"
        )
        ck.save(epoch + 1)
    return enc


@torch.no_grad()
def features(enc: DVSCLEncoder, ds: DVSCLDataset, cfg: dict, rt: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """Frozen 512-d features of the RGB view and of the second view, concatenated (N, 1024)."""
    device = rt.device
    enc.eval()
    out = []
    for i in range(len(ds)):
        b = ds[i]
        rgb, view = _views({k: v[None] if torch.is_tensor(v) else v for k, v in b.items()}, ds.view, cfg["depth_scale"])
        x1, x2 = resize(rgb, cfg["size"]).to(device), resize(view, cfg["size"]).to(device)
        with rt.autocast():
            f = torch.cat([enc.features(x1), enc.features(x2)], 1)
        out.append(f.float().cpu().numpy()[0])
    return np.stack(out), ds.labels


def _fit_adam(lin: nn.Linear, xt: torch.Tensor, yt: torch.Tensor, cfg: dict) -> None:
    """Full-batch Adam with cosine decay over a fixed number of epochs."""
    opt = torch.optim.Adam(lin.parameters(), lr=cfg["probe_lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["probe_epochs"])
    for _ in range(cfg["probe_epochs"]):
        step(opt, nn.functional.cross_entropy(lin(xt), yt))
        sched.step()


def _fit_lbfgs(lin: nn.Linear, xt: torch.Tensor, yt: torch.Tensor, cfg: dict) -> None:
    """Multinomial logistic regression run to convergence (L-BFGS, strong Wolfe line
    search): mean cross-entropy + ||W||^2 / (2 C n), the objective scikit-learn's
    LogisticRegression(C) minimises (up to the factor n), bias unpenalised."""
    opt = torch.optim.LBFGS(
        lin.parameters(), lr=1.0, max_iter=cfg.get("probe_max_iter", 500), tolerance_grad=1e-6,
        tolerance_change=1e-9, history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip
    l2 = 1.0 / (2.0 * cfg.get("probe_c", 1.0) * len(yt))

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(lin(xt), yt) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)


def train_probe(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: dict, seed: int, classes=None) -> nn.Module:
    """A linear layer on standardised frozen features (cross-entropy); half-oversampling
    replicates rows. cfg["probe"]: "lbfgs" (default: run to convergence, the paper's
    "linear classifier" as scikit-learn fits it) or "adam" (a fixed number of full-batch
    steps: the paper's 100 steps at lr 1e-4 barely leave the initialisation)."""
    manual_seed(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    idx = np.arange(len(y))
    if cfg.get("oversample") == "half" and classes is not None:
        idx = replicate(y, classes, factors_for(classes, HALF_OVERSAMPLING), seed)
    xt = torch.from_numpy(((x[idx] - mu) / sd).astype(np.float32))
    yt = torch.from_numpy(y[idx])
    lin = nn.Linear(x.shape[1], n_classes)
    (_fit_adam if cfg.get("probe", "lbfgs") == "adam" else _fit_lbfgs)(lin, xt, yt, cfg)
    lin.mu, lin.sd = mu, sd
    return lin


def probe_predict(lin: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return lin(torch.from_numpy(((x - lin.mu) / lin.sd).astype(np.float32))).argmax(1).numpy()


def train_dvscl(
    store_path: Path,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    *,
    view: str = "depth",
    weights: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg, rt = start(CONFIGS, config, device, precision)
    log(f"DVSCL: config {config}, view RGB+{view}, device {rt.device}")
    pre = DVSCLDataset(store_path, scheme, view=view, sources=SOURCES, cache_dir=cache_dir)  # every pair, labels unused
    lab = DVSCLDataset(store_path, scheme, view=view, sources=("labelled",), cache_dir=cache_dir)
    identity = {"method": "dvscl", "config": cfg, "view": view, "weights": weights}
    check_identity(out, {**identity, "samples": list(lab.samples()["sample_id"])})  # before resuming its pretraining
    t0 = time.perf_counter()
    enc = pretrain(pre, cfg, rt, out / "pretrain.pt", weights, log, progress)
    t_pre = time.perf_counter() - t0
    x, y = features(enc, lab, cfg, rt)

    def fold(tr, te, k):
        lin = train_probe(x[tr], y[tr], len(lab.classes), cfg, cfg["seed"] + k, lab.classes)
        return probe_predict(lin, x[te])

    summary = run_loso(
        lab.samples(),
        fold,
        lab.classes,
        out,
        log,
        meta={
            "method": "dvscl",
            "config": config,
            "view": view,
            "pretrain_pairs": len(pre),
            "pretrain_seconds": t_pre,
            "pretrain_samples_per_s": cfg["epochs"] * len(pre) / t_pre,
            "device": rt.device,
            "weights": weights,
            "weights_loaded": loaded_counts(enc.loaded),
        },
        identity=identity,
    )
    log_loaded(log, enc.loaded)
    return summary
