"""Metrics on predictions pooled over all LOSO folds (METHODS.md; seed 003 eq. 9-10).

UF1 = mean over classes of per-class F1; UAR = mean over classes of per-class recall;
Acc = fraction correct; WAR = support-weighted mean of per-class recall (which equals
Acc; reported because the papers report it). A class that never occurs in y_true nor
y_pred is left out of the means, as scikit-learn's macro averages do.
"""

from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def scores(y_true, y_pred, n_classes: int) -> dict:
    m = confusion(y_true, y_pred, n_classes)
    tp = np.diag(m).astype(float)
    support, predicted = m.sum(1).astype(float), m.sum(0).astype(float)
    present = (support + predicted) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    n = m.sum()
    return {
        "UF1": float(f1[present].mean()) if present.any() else 0.0,
        "UAR": float(recall[present].mean()) if present.any() else 0.0,
        "Acc": float(tp.sum() / n) if n else 0.0,
        "WAR": float((recall * support).sum() / n) if n else 0.0,
        "n": int(n),
        "per_class_recall": recall.tolist(),
        "per_class_f1": f1.tolist(),
        "confusion": m.tolist(),
    }


def plot_confusion(m, classes: list[str], path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(m)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    ax.imshow(m, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
