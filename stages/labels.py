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
