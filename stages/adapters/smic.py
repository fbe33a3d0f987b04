"""SMIC-HS adapter: labels come from the folder names, there is no annotation sheet.

Layout: ``HS/s1/micro/{negative,positive,surprise}/s1_ne_01/image######.bmp`` (cropped:
``reg_image*.bmp``). Onset = first frame, offset = last, apex = onset + (offset - onset) // 2
(derived, flagged): for a clip of an even number of frames that is the earlier of the two
middle frames, the convention of the MEB toolkit's SMIC loader and of the MEGC2019
baselines. When that frame is missing from the folder, the nearest earlier frame is used.
"""

from __future__ import annotations

import pandas as pd

from stages.adapters.common import EXCLUSION_COLUMNS, exclusion_row

EMOTIONS = ("negative", "positive", "surprise")


def smic_samples(
    frame_index: dict, *, dataset: str, fps: float, frames_prefix: str, max_duration_s: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, exclusions) of the clip folders; a clip spanning more than
    `max_duration_s` seconds is excluded as too_long."""
    samples, excl = [], []
    for rel, frames in sorted(frame_index.items()):
        parts = rel.split("/")
        if len(parts) != 4 or parts[1] != "micro":
            continue
        subj, _, emotion, clip = parts
        sid = f"{dataset}/{subj}/{clip}"
        if emotion.lower() not in EMOTIONS:
            excl.append(
                exclusion_row(
                    dataset,
                    f"{frames_prefix}/{rel}",
                    None,
                    "emotion_folder_unknown",
                    f"{frames_prefix}/{rel}: folder {emotion!r} is not one of {EMOTIONS}",
                    sid,
                )
            )
            continue
        nums = sorted(frames)
        if len(nums) < 2:
            excl.append(
                exclusion_row(
                    dataset,
                    f"{frames_prefix}/{rel}",
                    None,
                    "clip_too_short",
                    f"{frames_prefix}/{rel}: {len(nums)} frame(s)",
                    sid,
                )
            )
            continue
        onset, offset = nums[0], nums[-1]
        if max_duration_s is not None and (offset - onset + 1) / fps > max_duration_s:
            excl.append(
                exclusion_row(
                    dataset,
                    f"{frames_prefix}/{rel}",
                    None,
                    "too_long",
                    f"{frames_prefix}/{rel}: frames {onset}..{offset} span "
                    f"{(offset - onset + 1) / fps:.1f} s at {fps:g} fps, longer than max_duration_s "
                    f"{max_duration_s:g} s: not a micro-expression",
                    sid,
                )
            )
            continue
        apex = smic_apex(nums)
        gaps = sorted(set(range(onset, offset + 1)) - set(nums))
        samples.append(
            {
                "sample_id": f"{sid}/{onset}-{apex}",
                "dataset": dataset,
                "subject": subj,
                "clip": clip,
                "source": "labelled",
                "ann_file": None,
                "ann_row": None,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "apex_derived": True,
                "au_raw": None,
                "au_list": [],
                "emotion_raw": emotion,
                "emotion": emotion.lower(),
                "fps": float(fps),
                "onset_path": frames[onset],
                "apex_path": frames[apex],
                "onset_depth_path": None,
                "apex_depth_path": None,
                "seq_paths": [frames[k] for k in nums],
                "note": "apex not annotated: onset + (offset - onset) // 2 used"
                + (f"; {len(gaps)} frame(s) missing: {gaps[:5]}" if gaps else ""),
            }
        )
    s = pd.DataFrame(samples)
    if len(s):
        s = s.sort_values("sample_id").reset_index(drop=True)
    return s, pd.DataFrame(excl, columns=EXCLUSION_COLUMNS)


def smic_apex(nums: list[int]) -> int:
    """Derived apex of a clip of frame numbers `nums` (sorted): onset + (offset - onset) // 2,
    or the nearest earlier frame the folder holds."""
    mid = nums[0] + (nums[-1] - nums[0]) // 2
    return max(n for n in nums if n <= mid)
