"""SelfME classification stage (seed 001) under LOSO: SCViT on the onset->apex motion,
eq. 16 (CE + omega L_sc, omega 0.1, tau 0.07), gamma = 1 in training and 2 at
inference. The motion is the stored TV-L1 flow (the paper's baseline input, table 3):
the self-supervised motion learner is not implemented yet."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.feeds import SelfMEDataset
from training.loso import run_loso
from training.models.selfme import SCViT, scvit_loss

CONFIGS = {
    "tiny": {"size": 64, "epochs": 4, "batch": 8, "lr": 1e-4 * 10, "omega": 0.1, "tau": 0.07, "gamma_train": 1.0,
             "gamma_test": 2.0, "seed": 0},
    # the paper: Adam 1e-4 (SCViT), batch 32, 60 epochs, exponential decay 0.9
    "paper": {"size": 224, "epochs": 60, "batch": 32, "lr": 1e-4, "omega": 0.1, "tau": 0.07, "gamma_train": 1.0,
              "gamma_test": 2.0, "seed": 0, "decay": 0.9},
}


def _motion(flow: torch.Tensor, size: int, gamma: float) -> torch.Tensor:
    """(N, 2, 310, 310) pixels -> (N, 2, size, size), vectors rescaled, amplified by gamma."""
    out = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False) * (size / flow.shape[-1])
    return out * gamma


def train_selfme(store_path: Path, scheme: dict, out: Path, config: str = "tiny", weights: str | None = None,
                 device: str | None = None, log=print, progress: bool = True) -> dict:
    cfg = CONFIGS[config]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ds = SelfMEDataset(store_path, scheme)
    classes = ds.classes
    g = ds.g()
    flows = torch.from_numpy(np.stack([g["pairs/flow_tvl1"][int(r["index"])].astype(np.float32)
                                       for r in ds.rows])).permute(0, 3, 1, 2)
    y = torch.tensor([r["label"] for r in ds.rows])
    items = pd.DataFrame({"sample_id": [r["sample_id"] for r in ds.rows], "subject": [r["subject"] for r in ds.rows],
                          "label": y.numpy()})
    log(f"SelfME (SCViT on TV-L1 motion): config {config}, device {device}, ViT-S/16 "
        + (f"from {weights}" if weights else "randomly initialised (no weights given; nothing is downloaded)"))
    rates = []

    def fold(tr, te, k):
        torch.manual_seed(cfg["seed"] + k)
        model = SCViT(len(classes), 2, weights, cfg["size"]).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, cfg.get("decay", 1.0))
        rng = np.random.default_rng(cfg["seed"] + k)
        for ep in range(cfg["epochs"]):
            model.train()
            order = rng.permutation(tr)
            t0 = time.perf_counter()
            for i in tqdm(range(0, len(order), cfg["batch"]), desc=f"SCViT fold {k + 1} epoch {ep + 1}",
                          disable=not progress, leave=False):
                idx = order[i:i + cfg["batch"]]
                x = _motion(flows[idx], cfg["size"], cfg["gamma_train"]).to(device)
                logits, regions = model(x)
                loss = scvit_loss(logits, regions, y[idx].to(device), cfg["omega"], cfg["tau"])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
            rates.append(len(order) / (time.perf_counter() - t0))
        model.eval()
        with torch.no_grad():
            return model(_motion(flows[te], cfg["size"], cfg["gamma_test"]).to(device))[0].argmax(1).cpu().numpy()

    return run_loso(items, fold, classes, out, log,
                    meta=lambda: {"method": "selfme", "config": config, "motion": "tv-l1 (baseline)",
                                  "train_samples_per_s": float(np.mean(rates)) if rates else None})
