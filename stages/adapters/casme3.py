"""CAS(ME)^3 Part A adapter (kept as a named entry point; the logic is the shared
annotated adapter with the Part A layout of stages.adapters.layouts)."""

from __future__ import annotations

import pandas as pd

from stages.adapters.annotated import AnnotationError, annotated_samples  # noqa: F401
from stages.adapters.layouts import LAYOUTS

COLUMNS = list(LAYOUTS["casme3_part_a"].columns.values())


def casme3_part_a(
    ann: pd.DataFrame,
    *,
    ann_file: str,
    dataset: str,
    fps: float,
    frames_prefix: str,
    frame_index: dict,
    depth: bool = True,
    emotion_synonyms: dict | None = None,
    bad_frames: set | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return annotated_samples(
        ann,
        LAYOUTS["casme3_part_a"],
        ann_file=ann_file,
        dataset=dataset,
        fps=fps,
        frames_prefix=frames_prefix,
        frame_index=frame_index,
        depth_index=frame_index if depth else None,
        emotion_synonyms=emotion_synonyms,
        bad_frames=bad_frames,
    )
