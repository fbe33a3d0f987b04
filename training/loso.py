"""Leave-one-subject-out runner: every fold, predictions saved per fold (Parquet), resumed
at the next unfinished fold, metrics computed once on the pooled predictions, a summary
(JSON + printed table) and a confusion-matrix plot. No checkpoint is ever chosen by a
test fold's score: the number of epochs is fixed by the config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from training.metrics import plot_confusion, scores
from training.splits import loso_folds


def check_identity(out_dir: Path, identity: dict | None) -> None:
    """A run folder belongs to one configuration: resuming it with another is an error
    (finished folds of a different run would be pooled silently otherwise)."""
    if identity is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "run.json"
    ident = json.loads(json.dumps(identity, default=str))
    if path.is_file():
        old = json.loads(path.read_text())
        if old != ident:
            diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
            raise ValueError(
                f"{out_dir} holds a run with another configuration (differs in {diff}); "
                "give another --out or delete the folder"
            )
    else:
        path.write_text(json.dumps(ident, indent=1))


def run_folds(items: pd.DataFrame, fold_fn, out_dir: Path, log=print, identity: dict | None = None) -> pd.DataFrame:
    """The fold loop every method runs: one fold per subject (sorted), each fold's
    predictions saved as `folds/fold_<k>_<subject>.parquet` (written whole or not at all),
    finished folds skipped on a resumed run; returns the predictions of all folds, pooled.

    items: sample_id, subject (and label), one row per sample, in a fixed order.
    fold_fn(train_idx, test_idx, fold_no) -> the test samples' predictions: predicted class
    indices (stored as y_pred beside y_true = items' label), or a dict of columns (one
    value per test sample each) for predictions that are not one class per sample.
    identity: what defines the run (method, config, data); a resumed folder must match."""
    out_dir = Path(out_dir)
    check_identity(out_dir, identity if identity is None else {**identity, "samples": list(items["sample_id"])})
    (out_dir / "folds").mkdir(parents=True, exist_ok=True)
    folds = loso_folds(items["subject"].to_numpy())
    done = 0
    for k, (subj, tr, te) in enumerate(folds):
        path = out_dir / "folds" / f"fold_{k:03d}_{subj}.parquet"
        if path.is_file():
            done += 1
            continue
        pred = fold_fn(tr, te, k)
        df = items.iloc[te][["sample_id", "subject"]].copy()
        if isinstance(pred, dict):
            for col, values in pred.items():
                df[col] = np.asarray(values)
            df["fold"] = k
            said = "done"
        else:
            df["y_true"], df["y_pred"], df["fold"] = items.iloc[te]["label"].to_numpy(), np.asarray(pred), k
            said = f"{int((df.y_true == df.y_pred).sum())}/{len(df)} correct"
        tmp = path.with_suffix(".tmp")
        df.to_parquet(tmp)
        tmp.rename(path)  # a fold is either whole or absent
        log(f"fold {k + 1}/{len(folds)} (test subject {subj}): {said}")
    if done:
        log(f"resumed: {done} fold(s) were already done")
    return pd.concat(
        [pd.read_parquet(p) for p in sorted((out_dir / "folds").glob("fold_*.parquet"))], ignore_index=True
    )


def run_loso(
    items: pd.DataFrame, fold_fn, classes: list[str], out_dir: Path, log=print, meta=None, identity: dict | None = None
) -> dict:
    """run_folds for a classifier (fold_fn returns predicted class indices), then the
    pooled metrics, summary.json (+ `meta`: a dict, or a callable evaluated after the
    folds) and the confusion-matrix plot."""
    out_dir = Path(out_dir)
    preds = run_folds(items, fold_fn, out_dir, log, identity)
    sc = scores(preds["y_true"], preds["y_pred"], len(classes))
    extra = meta() if callable(meta) else (meta or {})
    summary = {"classes": classes, "folds": int(preds["fold"].nunique()), "samples": len(preds), **sc, **extra}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_confusion(
        sc["confusion"], classes, out_dir / "confusion.png", f"pooled LOSO: UF1 {sc['UF1']:.4f} UAR {sc['UAR']:.4f}"
    )
    log(f"{'metric':6s} {'value':>8s}\n" + "\n".join(f"{k:6s} {sc[k]:8.4f}" for k in ("UF1", "UAR", "Acc", "WAR")))
    return summary
