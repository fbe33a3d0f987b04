"""AttrCL training (seed 002): video network + FACS-description text branch, eq. 8; the
paper's evaluation (subject-disjoint 3:2 split, 5 runs, mean +- std) and LOSO.
Inference uses the video network only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.attrcl.configs import CONFIGS
from training.attrcl.feed import AttrCLDataset
from training.attrcl.model import AttrCL, attrcl_loss
from training.attrcl.text import TextEncoder, describe
from training.loop import step
from training.loso import run_loso
from training.metrics import scores
from training.runtime import Runtime, manual_seed, start
from training.splits import subject_split


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


def _fit_predict(data: _ResizedWithText, tr, te, n_classes, cfg, seed, rt: Runtime, rates, progress):
    device = rt.device
    manual_seed(seed)
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
            with rt.autocast():
                out = model(b["rgb"].to(device), b["flow"].to(device), b["text"].to(device))
                loss = attrcl_loss(out, b["label"].to(device), cfg["alpha"])
            step(opt, loss)
            n += len(b["label"])
        rates.append(n / (time.perf_counter() - t0))
    model.eval()
    with torch.no_grad(), rt.autocast():  # video network only at inference
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
    *,
    protocol: str = "split",
    text_model: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg, rt = start(CONFIGS, config, device, precision)
    base = AttrCLDataset(store_path, scheme, cache_dir=cache_dir)
    enc = TextEncoder(text_model)
    texts = [describe(r["au_list"]) for r in base.rows]
    data = _ResizedWithText(base, enc.encode(texts), cfg["size"])
    classes = base.classes
    log(
        f"AttrCL: config {config}, protocol {protocol}, text encoder {enc.name} (frozen), device {rt.device}, "
        "video streams randomly initialised"
    )
    items = base.samples()
    rates: list[float] = []
    if protocol == "loso":
        return run_loso(
            items,
            lambda tr, te, k: _fit_predict(data, tr, te, len(classes), cfg, cfg["seed"] + k, rt, rates, progress),
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
        pred = _fit_predict(data, tr, te, len(classes), cfg, cfg["seed"] + r, rt, rates, progress)
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
