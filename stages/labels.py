"""Emotion spelling normalisation and label schemes (the schemes themselves are data in
catalog.yaml; these functions only apply them)."""

from __future__ import annotations

import math


def normalise_emotion(raw, synonyms: dict[str, str] | None = None) -> str | None:
    """Lower-case, trimmed emotion word, mapped through the dataset's `synonyms`."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    e = " ".join(str(raw).strip().lower().split())
    return (synonyms or {}).get(e, e)


def class_index(emotion: str | None, scheme: dict[str, list[str]]) -> int | None:
    """Index of the class whose member list holds `emotion` (scheme order), else None."""
    for i, (_, members) in enumerate(scheme.items()):
        if emotion in members:
            return i
    return None


OUTSIDE = "(not in the scheme)"


def class_counts(emotions, schemes: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, int]]:
    """{scheme name: {class: number of `emotions` in it, in scheme order; OUTSIDE: the rest}}
    for normalised emotion words (one per labelled sample), so a sample set can be held
    against a paper's table."""
    emotions = list(emotions)
    out = {}
    for name, scheme in schemes.items():
        n = dict.fromkeys(scheme, 0)
        outside = 0
        for e in emotions:
            i = class_index(e, scheme)
            if i is None:
                outside += 1
            else:
                n[list(scheme)[i]] += 1
        out[name] = {**n, OUTSIDE: outside}
    return out
