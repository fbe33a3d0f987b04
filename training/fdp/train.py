"""FDP training (seed 003) under LOSO: every fold trains the whole model from scratch for
a fixed number of epochs on the training subjects (eq. 8: CE + lambda_d MSE(DI) +
lambda_r L_rank), then predicts the test subject's clips (t = 8 uniformly sampled frames,
centre 64x64 crop)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.checkpoint import EpochCheckpoint
from training.fdp.configs import CONFIGS
from training.fdp.feed import FDPDataset
from training.fdp.model import FDP, FDPConfig, count_parameters, fdp_loss
from training.loop import data_loader, step, to_device
from training.loso import run_loso
from training.runtime import manual_seed, start, stream_seed
from training.samplers import EpochSampler


def train_fdp(
    store_path: Path,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    *,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg, rt = start(CONFIGS, config, device, precision)
    device = rt.device
    mcfg = FDPConfig(**cfg["model"])
    train_ds = FDPDataset(store_path, scheme, train=True, seed=cfg["seed"], cache_dir=cache_dir)
    test_ds = FDPDataset(store_path, scheme, train=False, cache_dir=cache_dir)
    classes = train_ds.classes
    n_params = count_parameters(FDP(len(classes), mcfg))
    log(
        f"FDP: config {config}, device {device}, {n_params / 1e6:.2f} M parameters "
        f"(paper: 14.82 M), random initialisation"
    )
    rates = []

    def fold(tr, te, k):
        manual_seed(stream_seed(cfg["seed"], "fold", k))
        model = FDP(len(classes), mcfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        ck = EpochCheckpoint(out / "checkpoints" / f"fold_{k:03d}.pt", model=model, opt=opt)
        sampler = EpochSampler(tr, (cfg["seed"], "fold", k))  # the fold's own stream: order and augmentations
        loader = data_loader(
            train_ds, sampler, min(cfg["batch"], len(tr)), cfg["workers"], device, len(tr) > cfg["batch"]
        )
        for epoch in range(ck.resume(device), cfg["epochs"]):
            model.train()
            sampler.set_epoch(epoch)
            t0, n = time.perf_counter(), 0
            bar = tqdm(loader, desc=f"FDP fold {k + 1} epoch {epoch + 1}", disable=not progress, leave=False)
            for b in bar:
                x, y, d = (to_device(b[c], device) for c in ("frames", "label", "dynamic_image"))
                with rt.autocast():
                    logits, dh, s = model(x)
                    loss = fdp_loss(logits, dh, s, y, d, cfg["lambda_d"], cfg["lambda_r"], mcfg.rank_c)
                step(opt, loss)
                n += len(x)
                bar.set_postfix(loss=f"{loss.item():.3f}", sps=f"{n / (time.perf_counter() - t0):.1f}")
            rates.append(n / (time.perf_counter() - t0))
            ck.save(epoch + 1)
        (out / "models").mkdir(parents=True, exist_ok=True)  # the fold's final model (fixed epochs)
        torch.save(
            {"model": model.state_dict(), "config": cfg, "classes": classes}, out / "models" / f"fold_{k:03d}.pt"
        )
        ck.discard()  # the fold's model is kept above
        model.eval()
        preds = []
        with torch.no_grad(), rt.autocast():
            for i in te.tolist():
                b = test_ds[i]
                preds.append(int(model(b["frames"][None].to(device))[0].argmax(1)))
        return np.array(preds)

    return run_loso(
        train_ds.samples(),
        fold,
        classes,
        out,
        log,
        meta=lambda: {
            "method": "fdp",
            "config": config,
            "parameters": n_params,
            "device": device,
            "train_samples_per_s": float(np.mean(rates)) if rates else None,
        },
        identity={"method": "fdp", "config": cfg},
    )
