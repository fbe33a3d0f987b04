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

from training.attrcl.configs import CONFIGS
from training.attrcl.feed import AttrCLDataset
from training.attrcl.model import AttrCL, attrcl_loss
from training.attrcl.text import TextEncoder, describe
from training.checkpoint import EpochCheckpoint
from training.loop import data_loader, step, to_device
from training.loso import check_identity, run_loso
from training.metrics import scores
from training.runtime import Runtime, manual_seed, start, stream_seed
from training.samplers import EpochSampler, split_key
from training.splits import subject_split


class _ResizedWithText(torch.utils.data.Dataset):
    """AttrCL samples resized to the config's size, each with its encoded AU description."""

    def __init__(self, base: AttrCLDataset, text: np.ndarray, size: int):
        self.base, self.text, self.size = base, text, size

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        i = split_key(key)[0]
        b = self.base[i]
        rgb, flow = b["rgb"], b["flow"]
        if self.size != rgb.shape[-1]:
            rgb = F.interpolate(rgb, size=(self.size, self.size), mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, size=(self.size, self.size), mode="bilinear", align_corners=False) * (
                self.size / b["flow"].shape[-1]
            )
        return {"rgb": rgb, "flow": flow, "text": torch.from_numpy(self.text[i]), "label": b["label"]}


def _fit_predict(
    data: _ResizedWithText, tr, te, n_classes, cfg, stream: tuple, rt: Runtime, ckpt: Path, rates, progress
):
    """Train AttrCL on the samples `tr` (random stream `stream`: the fold's or the split
    run's, checkpointed after every epoch in `ckpt`), then predict the samples `te` with
    the video network only."""
    device = rt.device
    manual_seed(stream_seed(*stream))
    model = AttrCL(n_classes, data.text.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    ck = EpochCheckpoint(ckpt, model=model, opt=opt)
    sampler = EpochSampler(tr, stream)
    loader = data_loader(data, sampler, min(cfg["batch"], len(tr)), 0, device, drop_last=len(tr) > cfg["batch"])
    epochs = cfg["epochs"] or max(1, -(-cfg["iterations"] // max(1, len(loader))))
    for ep in range(ck.resume(device), epochs):
        model.train()
        sampler.set_epoch(ep)
        t0, n = time.perf_counter(), 0
        for b in tqdm(loader, desc=f"AttrCL epoch {ep + 1}", disable=not progress, leave=False):
            with rt.autocast():
                out = model(*(to_device(b[c], device) for c in ("rgb", "flow", "text")))
                loss = attrcl_loss(out, to_device(b["label"], device), cfg["alpha"])
            step(opt, loss)
            n += len(b["label"])
        rates.append(n / (time.perf_counter() - t0))
        ck.save(ep + 1)
    model.eval()
    with torch.no_grad(), rt.autocast():  # video network only at inference
        pred = [model.cls_v(model.video(data[i]["rgb"][None].to(device), data[i]["flow"][None].to(device))) for i in te]
    ck.discard()
    return np.array([int(p.argmax(1)) for p in pred])


def split_runs(data, items, n_classes, cfg, rt: Runtime, out: Path, identity, rates, log, progress) -> list[float]:
    """The paper's protocol: cfg["runs"] subject-disjoint 3:2 splits, each trained on its
    own random stream; each run's test predictions are saved (`runs/run_<r>.parquet`,
    whole or absent), so a resumed run skips the finished ones. The accuracy of each run."""
    check_identity(out, {**identity, "samples": list(items["sample_id"])})
    (out / "runs").mkdir(parents=True, exist_ok=True)
    accs = []
    for r in range(cfg["runs"]):
        tr, te = subject_split(items["subject"].to_numpy(), 0.6, seed=cfg["seed"] + r)
        path = out / "runs" / f"run_{r:03d}.parquet"
        if not path.is_file():
            pred = _fit_predict(
                data, tr, te, n_classes, cfg, (cfg["seed"], "run", r), rt, out / "checkpoints" / f"run_{r:03d}.pt",
                rates, progress,
            )  # fmt: skip
            df = items.iloc[te][["sample_id", "subject"]].assign(y_true=items["label"].to_numpy()[te], y_pred=pred)
            df.to_parquet(path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
        df = pd.read_parquet(path)
        accs.append(scores(df["y_true"], df["y_pred"], n_classes)["Acc"])
        log(
            f"run {r + 1}/{cfg['runs']}: {len(tr)} train / {len(te)} test samples (subject-disjoint), Acc {accs[-1]:.4f}"
        )
    return accs


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
    identity = {"method": "attrcl", "config": cfg, "protocol": protocol, "text": text_model}
    if protocol == "loso":
        return run_loso(
            items,
            lambda tr, te, k: _fit_predict(
                data, tr, te, len(classes), cfg, (cfg["seed"], "fold", k), rt,
                out / "checkpoints" / f"fold_{k:03d}.pt", rates, progress,
            ),
            classes,
            out,
            log,
            meta=lambda: {
                "method": "attrcl",
                "config": config,
                "protocol": "loso",
                "train_samples_per_s": float(np.mean(rates)) if rates else None,
            },
            identity=identity,
        )  # fmt: skip
    runs = split_runs(data, items, len(classes), cfg, rt, out, identity, rates, log, progress)
    summary = {
        "method": "attrcl",
        "config": config,
        "protocol": "split 3:2 x runs",
        "runs": runs,
        "Acc_mean": float(np.mean(runs)),
        "Acc_std": float(np.std(runs)),
        "classes": classes,
        "train_samples_per_s": float(np.mean(rates)) if rates else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"Acc {summary['Acc_mean'] * 100:.2f} +- {summary['Acc_std'] * 100:.2f} % over {cfg['runs']} runs")
    return summary
