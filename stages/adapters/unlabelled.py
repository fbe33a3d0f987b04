"""Unlabelled long recordings (CAS(ME)^3 Part B and the like): listing -> video table.

Layout: ``<frames_dir>/<subject>/<name>.mp4|.avi|.mov`` (a video file), or
``<frames_dir>/<subject>/<name>/color/{n}.jpg`` (a frame folder) with optional depth in
``<name>/depth/{n}.png``. Pure: the pipeline lists the folders and probes the videos.
"""

from __future__ import annotations

import pandas as pd

from stages.adapters.common import exclusion_row, safe_part

VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv")


def unlabelled_videos(listing: list[dict], *, dataset: str, fps: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """listing: dicts {subject, name, kind ('file'|'frames'), path, depth_path, n_frames,
    fps (None = the catalog's), frames (frame numbers, frame folders only), error (why a
    video file could not be opened), depth_error (why its depth is not used)}.

    Returns (videos, exclusions): a video with no frames or an unsafe name is excluded;
    a recording whose depth is not used keeps its colour frames and records why."""
    rows, excl = [], []
    for v in listing:
        subj, name = safe_part(v["subject"]), safe_part(v["name"])
        if subj is None or name is None:
            excl.append(exclusion_row(dataset, v["path"], None, "unsafe_path", f"{v['path']}: unsafe name"))
            continue
        if v.get("clash"):  # a frame folder where two files carry one number: this recording only
            excl.append(exclusion_row(dataset, v["path"], None, "frame_name_clash", f"{v['path']}: {v['clash']}"))
            continue
        if not v.get("n_frames"):
            why = f" ({v['error']})" if v.get("error") else ""
            excl.append(
                exclusion_row(dataset, v["path"], None, "video_empty", f"{v['path']}: no decodable frames{why}")
            )
            continue
        if v.get("depth_error"):
            excl.append(exclusion_row(dataset, v["path"], None, "depth_size_mismatch", v["depth_error"]))
        rows.append(
            {
                "dataset": dataset,
                "subject": subj,
                "video": f"{subj}/{name}",
                "kind": v["kind"],
                "path": v["path"],
                "depth_path": v.get("depth_path"),
                "fps": float(v.get("fps") or fps),
                "n_frames": int(v["n_frames"]),
            }
        )
    vids = pd.DataFrame(rows, columns=["dataset", "subject", "video", "kind", "path", "depth_path", "fps", "n_frames"])
    return vids.sort_values("video").reset_index(drop=True), pd.DataFrame(
        excl, columns=["sample_id", "dataset", "ann_file", "ann_row", "stage", "reason", "detail"]
    )
