"""AttrCL training (seed 002): video network + FACS-description text branch, eq. 8; the
paper's evaluation (subject-disjoint 3:2 split, 5 runs, mean +- std) and LOSO.
Inference uses the video network only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.feeds import AttrCLDataset
from training.loso import run_loso
from training.metrics import scores
from training.models.attrcl import AttrCL, attrcl_loss
from training.splits import subject_split
from training.text import TextEncoder, describe

CONFIGS = {
    # CPU-sized: frames resized to 56x56
    "tiny": {"size": 56, "epochs": 3, "batch": 8, "lr": 1e-3, "alpha": 0.3, "seed": 0, "runs": 5},
    # the paper: Adam 1e-4, batch 32, 200 iterations, 112x112
    "paper": {
        "size": 112,
        "iterations": 200,
        "epochs": None,
        "batch": 32,
        "lr": 1e-4,
        "alpha": 0.3,
        "seed": 0,
        "runs": 5,
    },
}


class _ResizedWithText(torch.utils.data.Dataset):
    """AttrCL samples resized to the config's size, each with its encoded AU description."""

    def __init__(self, base: AttrCLDataset, text: np.ndarray, size: int):
        self.base, self.text, self.size = base, text, size

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        b = self.base[i]
        rgb, flow = b["rgb"], b["flow"]
        if self.size != rgb.shape[-1]:
            rgb = F.interpolate(rgb, size=(self.size, self.size), mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, size=(self.size, self.size), mode="bilinear", align_corners=False) * (
                self.size / b["flow"].shape[-1]
            )
        return {"rgb": rgb, "flow": flow, "text": torch.from_numpy(self.text[i]), "label": b["label"]}


def _fit_predict(data: _ResizedWithText, tr, te, n_classes, cfg, seed, device, rates, progress):
    torch.manual_seed(seed)
    model = AttrCL(n_classes, data.text.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(data, list(tr)),
        batch_size=min(cfg["batch"], len(tr)),
        shuffle=True,
        drop_last=len(tr) > cfg["batch"],
        generator=g,
    )
    epochs = cfg["epochs"] or max(1, -(-cfg["iterations"] // max(1, len(loader))))
    for ep in range(epochs):
        model.train()
        t0, n = time.perf_counter(), 0
        for b in tqdm(loader, desc=f"AttrCL epoch {ep + 1}", disable=not progress, leave=False):
            out = model(b["rgb"].to(device), b["flow"].to(device), b["text"].to(device))
            loss = attrcl_loss(out, b["label"].to(device), cfg["alpha"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(b["label"])
        rates.append(n / (time.perf_counter() - t0))
    model.eval()
    with torch.no_grad():  # video network only at inference
        return np.array(
            [
                int(
                    model.cls_v(model.video(data[i]["rgb"][None].to(device), data[i]["flow"][None].to(device))).argmax(
                        1
                    )
                )
                for i in te
            ]
        )


def train_attrcl(
    store_path: Path,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    protocol: str = "split",
    text_model: str | None = None,
    device: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg = CONFIGS[config]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    base = AttrCLDataset(store_path, scheme)
    enc = TextEncoder(text_model)
    texts = [describe(r["au_list"]) for r in base.rows]
    data = _ResizedWithText(base, enc.encode(texts), cfg["size"])
    classes = base.classes
    log(
        f"AttrCL: config {config}, protocol {protocol}, text encoder {enc.name} (frozen), device {device}, "
        "video streams randomly initialised"
    )
    items = pd.DataFrame(
        {
            "sample_id": [r["sample_id"] for r in base.rows],
            "subject": [r["subject"] for r in base.rows],
            "label": [r["label"] for r in base.rows],
        }
    )
    rates: list[float] = []
    if protocol == "loso":
        return run_loso(
            items,
            lambda tr, te, k: _fit_predict(data, tr, te, len(classes), cfg, cfg["seed"] + k, device, rates, progress),
            classes,
            out,
            log,
            meta=lambda: {
                "method": "attrcl",
                "config": config,
                "protocol": "loso",
                "train_samples_per_s": float(np.mean(rates)),
            },
            identity={"method": "attrcl", "config": cfg, "protocol": "loso", "text": text_model},
        )
    runs = []
    out.mkdir(parents=True, exist_ok=True)
    for r in range(cfg["runs"]):
        tr, te = subject_split(items["subject"].to_numpy(), 0.6, seed=cfg["seed"] + r)
        pred = _fit_predict(data, tr, te, len(classes), cfg, cfg["seed"] + r, device, rates, progress)
        s = scores(items["label"].to_numpy()[te], pred, len(classes))
        runs.append(s["Acc"])
        log(
            f"run {r + 1}/{cfg['runs']}: {len(tr)} train / {len(te)} test samples (subject-disjoint), Acc {s['Acc']:.4f}"
        )
    summary = {
        "method": "attrcl",
        "config": config,
        "protocol": "split 3:2 x runs",
        "runs": runs,
        "Acc_mean": float(np.mean(runs)),
        "Acc_std": float(np.std(runs)),
        "classes": classes,
        "train_samples_per_s": float(np.mean(rates)),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"Acc {summary['Acc_mean'] * 100:.2f} +- {summary['Acc_std'] * 100:.2f} % over {cfg['runs']} runs")
    return summary
