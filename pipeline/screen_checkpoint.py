"""The AU screening checkpoint: each unlabelled video's estimated AU intensities are saved
as soon as its last segment is done, so a run killed during (or after) screening does not
estimate them again. Files are keyed by the video's screening fingerprint (content,
parameters, model files), so a changed video or parameter never reads a stale file; a
file that cannot be read or does not hold that video's frames is ignored (estimated again)
with a warning. Written atomically (temporary file, then rename)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.tables import AU_FRAME_SCHEMA, SCREEN_CHECKPOINT_DIR, SCREEN_CHECKPOINT_EXCLUSIONS, conform


class ScreenCheckpoint:
    """The checkpoint folder of one dataset (`<runs_root>/<dataset>/au-screening-checkpoint`);
    `dataset_runs` None: no checkpoint (nothing saved or read)."""

    def __init__(self, dataset_runs: Path | None, log=print):
        self.folder = None if dataset_runs is None else Path(dataset_runs) / SCREEN_CHECKPOINT_DIR
        self.log = log

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.parquet"

    def put(self, key: str, frames: pd.DataFrame, exclusions: list[dict]) -> None:
        """Save one video's AU rows and exclusion rows under its fingerprint `key`."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        table = conform(frames, AU_FRAME_SCHEMA)
        table = table.replace_schema_metadata({SCREEN_CHECKPOINT_EXCLUSIONS: json.dumps(exclusions).encode()})
        tmp = self._path(key).with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table, tmp)
        os.replace(tmp, self._path(key))

    def get(self, key: str, video: str, n_frames: int) -> tuple[pd.DataFrame, list[dict]] | None:
        """The saved (AU rows, exclusion rows) of `video` under `key`, or None (not saved, or
        unusable: then a warning and the video is estimated again)."""
        if self.folder is None or not (path := self._path(key)).exists():
            return None
        try:
            table = pq.read_table(path)
            frames = table.cast(AU_FRAME_SCHEMA).to_pandas()
            excl = json.loads((table.schema.metadata or {})[SCREEN_CHECKPOINT_EXCLUSIONS])
        except (OSError, KeyError, ValueError, pa.ArrowException) as e:
            self.log(f"warning: AU screening checkpoint {path} is unreadable ({e}); estimating {video} again")
            return None
        if set(frames["video"]) != {video} or len(frames) > n_frames:
            self.log(f"warning: AU screening checkpoint {path} does not hold video {video}; estimating it again")
            return None
        return frames, excl

    def clear(self) -> None:
        """Drop every saved video (a version holding them is committed)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
