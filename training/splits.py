"""Subject-wise splits: leave-one-subject-out folds, and the subject-disjoint 3:2 split."""

from __future__ import annotations

import numpy as np


def loso_folds(subjects) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(test subject, train indices, test indices)] in sorted subject order."""
    subjects = np.asarray(subjects)
    return [(s, np.nonzero(subjects != s)[0], np.nonzero(subjects == s)[0]) for s in sorted(set(subjects.tolist()))]


def subject_split(subjects, ratio: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Subject-disjoint train/test index split with `ratio` of the subjects in train."""
    subjects = np.asarray(subjects)
    uniq = np.array(sorted(set(subjects.tolist())))
    rng = np.random.default_rng(seed)
    train_s = set(rng.permutation(uniq)[: max(1, int(round(ratio * len(uniq))))].tolist())
    m = np.array([s in train_s for s in subjects])
    return np.nonzero(m)[0], np.nonzero(~m)[0]
