"""MicroAUCLIP training (seed 004) under LOSO: micro-AU detection (per-AU F1 and
accuracy on predictions pooled over folds) and emotion-label-free 3-class recognition
(eq. 13; UF1/UAR against the emotions mapped to negative/positive/surprise)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import EpochCheckpoint
from training.feeds import au_list
from training.loop import epoch_batches, step
from training.loso import run_folds
from training.metrics import scores
from training.microauclip.configs import CONFIGS
from training.microauclip.feed import MicroAUCLIPDataset
from training.microauclip.model import MicroAUCLIP, emotion_scores, total_loss
from training.microauclip.settings import dataset_settings, spec
from training.runtime import manual_seed, start, stream_seed
from training.samplers import EpochSampler
from training.weights import clip_activation, load_weights, loaded_counts, log_loaded, read_state_dict


def au_metrics(y: np.ndarray, p: np.ndarray, aus: list[int]) -> dict:
    out = {}
    for n, a in enumerate(aus):
        tp = int(((p[:, n] == 1) & (y[:, n] == 1)).sum())
        fp = int(((p[:, n] == 1) & (y[:, n] == 0)).sum())
        fn = int(((p[:, n] == 0) & (y[:, n] == 1)).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        out[f"AU{a}"] = {"F1": f1, "ACC": float((p[:, n] == y[:, n]).mean()), "positives": int(y[:, n].sum())}
    out["mean_F1"] = float(np.mean([v["F1"] for k, v in out.items() if k.startswith("AU")]))
    out["mean_ACC"] = float(np.mean([v["ACC"] for k, v in out.items() if k.startswith("AU")]))
    return out


def train_microauclip(
    store_path: Path,
    scheme: dict,
    out: Path,
    config: str = "tiny",
    *,
    weights: str | None = None,
    aus: str | None = None,
    alpha: str | float | None = None,
    beta: str | float | None = None,
    adapter: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    log=print,
    progress: bool = True,
) -> dict:
    cfg, rt = start(CONFIGS, config, device, precision)
    device = rt.device
    sp = spec()
    settings, note = dataset_settings(adapter, aus, alpha, beta, sp)  # the paper's for this dataset
    if note:
        log(note)
    aus = settings.aus
    ds = MicroAUCLIPDataset(store_path, scheme, cache_dir=cache_dir)
    y = np.array([[1 if a in au_list(r) else 0 for a in aus] for r in ds.rows])
    word = {w: c for c, ws in sp["emotion_words"].items() for w in ws}
    emo_classes = list(sp["emotions"])
    emo = np.array(
        [emo_classes.index(word[r["emotion"]]) if word.get(r["emotion"]) in emo_classes else -1 for r in ds.rows]
    )
    activation = clip_activation(weights)  # the weights' own (OpenAI's CLIP, the paper's: QuickGELU)
    state, loaded = None, []  # what the weight file gave (the first fold run; summary.json)
    if weights:  # an open_clip ViT-B-32 state_dict (wrapped or DataParallel-prefixed) or a Hugging Face CLIP folder
        state = read_state_dict(weights)
    log(
        f"MicroAUCLIP: config {config}, device {device}; {settings.describe()}; CLIP ViT-B/32 "
        + (f"from {weights}" if weights else "randomly initialised (no weights given; nothing is downloaded)")
        + f" ({activation}), last 3 layers of both encoders trainable"
    )
    rates = []

    def fold(tr, te, k):
        manual_seed(stream_seed(cfg["seed"], "fold", k))
        model = MicroAUCLIP(aus, activation=activation)
        if state is not None:
            got = load_weights(model.clip, weights, "CLIP ViT-B/32", state=state)
            if not loaded:
                loaded.append(got)
                log(got.describe())
        model = model.to(device)
        enc = [p for p in model.clip.parameters() if p.requires_grad]
        other = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("clip.")]
        opt = torch.optim.SGD(
            [{"params": enc, "lr": cfg["lr_enc"]}, {"params": other, "lr": cfg["lr_other"]}], momentum=0.9
        )
        sched = torch.optim.lr_scheduler.StepLR(opt, cfg.get("step", 10**9), 0.1)
        ck = EpochCheckpoint(out / "checkpoints" / f"fold_{k:03d}.pt", model=model, opt=opt, sched=sched)
        sampler = EpochSampler(tr, (cfg["seed"], "fold", k))  # the fold's own stream
        for ep in range(ck.resume(device), cfg["epochs"]):
            model.train()
            t0 = time.perf_counter()
            for keys in epoch_batches(sampler, ep, cfg["batch"], f"MicroAUCLIP fold {k + 1} epoch {ep + 1}", progress):
                idx = [i for i, _ in keys]
                b = [ds[j] for j in idx]
                flow = torch.stack([x["flow"] for x in b]).to(device)
                lm = torch.stack([x["landmarks"] for x in b]).to(device)
                yb = torch.from_numpy(y[idx]).to(device)
                with rt.autocast():
                    o = model(flow, lm)
                    loss = total_loss(
                        o, model.text_features(), yb, model.clip.logit_scale.exp(), settings.alpha, settings.beta
                    )
                step(opt, loss)
            sched.step()
            rates.append(len(tr) / (time.perf_counter() - t0))
            ck.save(ep + 1)
        model.eval()
        with torch.no_grad(), rt.autocast():
            b = [ds[j] for j in te]
            o = model(
                torch.stack([x["flow"] for x in b]).to(device), torch.stack([x["landmarks"] for x in b]).to(device)
            )
            pa = o["logits"].argmax(-1).cpu().numpy()
            pe = emotion_scores(o["v"], model.text_features(), aus, sp["emotions"]).argmax(1).cpu().numpy()
        cols = {"emotion_true": emo[te], "emotion_pred": pe}
        for n, a in enumerate(aus):
            cols[f"AU{a}_true"], cols[f"AU{a}_pred"] = y[te, n], pa[:, n]
        ck.discard()
        return cols

    preds = run_folds(
        ds.samples(),
        fold,
        out,
        log,
        identity={
            "method": "microauclip",
            "config": cfg,
            "weights": weights,
            **{k: getattr(settings, k) for k in ("aus", "alpha", "beta")},
        },
    )
    yt = preds[[f"AU{a}_true" for a in aus]].to_numpy()
    yp = preds[[f"AU{a}_pred" for a in aus]].to_numpy()
    au = au_metrics(yt, yp, aus)
    m = preds["emotion_true"] >= 0
    mer = scores(preds.loc[m, "emotion_true"], preds.loc[m, "emotion_pred"], len(emo_classes))
    summary = {
        "method": "microauclip",
        "config": config,
        "aus": aus,
        "alpha": settings.alpha,
        "beta": settings.beta,
        "settings_source": settings.source,
        "dataset_adapter": adapter,
        "au_detection": au,
        "emotion_label_free": {"classes": emo_classes, **{k: mer[k] for k in ("UF1", "UAR", "Acc", "n")}},
        "train_samples_per_s": float(np.mean(rates)) if rates else None,
        "weights_loaded": loaded_counts(loaded[0] if loaded else None),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(
        f"AU detection: mean F1 {au['mean_F1']:.4f}, mean ACC {au['mean_ACC']:.4f}; "
        f"emotion-label-free MER ({mer['n']} samples): UF1 {mer['UF1']:.4f} UAR {mer['UAR']:.4f}"
    )
    log_loaded(log, *loaded)
    return summary
