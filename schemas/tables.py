"""pyarrow schemas of every table the pipeline writes (Parquet, pinned to a store snapshot).

Frame numbers are the dataset's own frame indices (for CAS(ME)^3 the JPG index).
Paths are relative to the dataset root, with '/' separators.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

# Where a sample comes from: the manifest's `source` column holds one of these.
LABELLED = "labelled"  # a row of the dataset's annotation sheet, with its emotion
SELECTED = "selected"  # an onset/apex pair AU screening picked in an unlabelled recording (no emotion)
# a macro-expression row of an all-expressions sheet (catalog `macro_annotation`: CAS(ME)^3
# Part A's CAS(ME)3_part_A_v2.xls): onset/apex/offset coded, no emotion. For unsupervised
# pretraining only (DVSCL, seed 000 sec. 4.1: "both micro- and macro-expression in Part A");
# never in a supervised scheme (readers label only LABELLED rows)
MACRO = "macro"
SOURCES = (LABELLED, SELECTED, MACRO)

# One row per annotated sample, as an adapter produces it (before any image is read).
SAMPLE_FIELDS = [
    # unique and stable: dataset/subject/clip/onset-apex (AU-selected: dataset/sel/..., macro: dataset/macro/...)
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("subject", pa.string(), nullable=False),
    pa.field("clip", pa.string(), nullable=False),  # clip folder / video name
    pa.field("source", pa.string(), nullable=False),  # one of SOURCES above
    pa.field("ann_file", pa.string()),  # annotation file the row came from
    pa.field("ann_row", pa.int32()),  # 1-based spreadsheet row (header = row 1)
    pa.field("onset", pa.int64()),
    pa.field("apex", pa.int64()),
    pa.field("offset", pa.int64()),
    pa.field("apex_derived", pa.bool_()),  # apex not annotated: midpoint used
    pa.field("au_raw", pa.string()),
    pa.field("au_list", pa.list_(pa.int32())),
    pa.field("au_marked", pa.list_(pa.int32())),  # AUs of au_list a coder marked: 4DME (k), Part C '13?'
    pa.field("emotion_raw", pa.string()),
    pa.field("emotion", pa.string()),  # normalised spelling
    pa.field("fps", pa.float64()),
    pa.field("onset_path", pa.string()),
    pa.field("apex_path", pa.string()),
    pa.field("onset_depth_path", pa.string()),  # null when the dataset has no depth
    pa.field("apex_depth_path", pa.string()),
    pa.field("note", pa.string()),  # kept-but-odd annotation facts
    pa.field("seq_paths", pa.list_(pa.string())),  # every frame onset..offset (clip products)
    pa.field("modalities", pa.list_(pa.string())),  # what this sample has: rgb / gray / depth
    pa.field("ref_subject", pa.string()),  # subject / clip as a reference list names them
    pa.field("ref_clip", pa.string()),  # (MEGC2019 list: sub01, 6, s01 / s01_ne_01)
]
SAMPLE_SCHEMA = pa.schema(SAMPLE_FIELDS)

# Why a sample (or an annotation row) is not in the arrays.
EXCLUSION_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string()),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("ann_file", pa.string()),
        pa.field("ann_row", pa.int32()),
        pa.field("stage", pa.string(), nullable=False),  # 'ingest', 'face', 'read', 'depth', ...
        pa.field("reason", pa.string(), nullable=False),  # short code, e.g. 'apex_before_onset'
        pa.field("detail", pa.string()),  # readable message naming file / row
    ]
)

# The stored manifest: every sample row of the adapter, its array row and its state.
MANIFEST_SCHEMA = pa.schema(
    SAMPLE_FIELDS
    + [
        pa.field("index", pa.int64(), nullable=False),  # row along axis 0 of every array
        pa.field("status", pa.string(), nullable=False),  # 'ok' or 'excluded'
        pa.field("reason", pa.string()),  # exclusion reason code when excluded
        pa.field("crop_x0", pa.int32()),  # crop box in source-frame pixels
        pa.field("crop_y0", pa.int32()),
        pa.field("crop_x1", pa.int32()),
        pa.field("crop_y1", pa.int32()),
        pa.field("landmark_backend", pa.string()),
        pa.field("eye_angle", pa.float32()),  # degrees, onset eye line (alignment)
        pa.field("clip_start", pa.int64()),  # rows of the ragged clip arrays
        pa.field("clip_len", pa.int64()),
        pa.field("fp_crop", pa.string()),  # fingerprints of the product groups:
        pa.field("fp_depth", pa.string()),  # hash of inputs, parameters, code version
        pa.field("fp_flow", pa.string()),
        pa.field("fp_micro", pa.string()),
        pa.field("fp_clip", pa.string()),
    ]
)

# Per-frame AU intensities of the unlabelled videos (AU screening, seed 000 sec. 4.1.1).
# Intensities in [0, 5]; NaN where no (trusted) face. The AUs: OpenFace 2.x's intensity set.
AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_COLUMNS = tuple(f"AU{a:02d}" for a in AUS)

AU_FRAME_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),  # video id: <subject>/<name>
        pa.field("frame", pa.int64(), nullable=False),  # frame number (0-based for video files)
        pa.field("timestamp", pa.float64()),  # seconds from the video start
        pa.field("face", pa.bool_(), nullable=False),  # a face (with landmarks) was found
    ]
    + [pa.field(c, pa.float32()) for c in AU_COLUMNS]
    + [
        pa.field("estimator", pa.string(), nullable=False),  # openface | pyfeat | landmarks
        pa.field("estimator_version", pa.string(), nullable=False),
    ]
)

# One row per unlabelled video: what was screened and how.
VIDEO_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # 'file' (mp4/avi) or 'frames' (folder)
        pa.field("path", pa.string(), nullable=False),  # relative to the dataset root
        pa.field("depth_path", pa.string()),  # depth folder (frame folders only)
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("n_frames", pa.int64(), nullable=False),
        pa.field("n_face", pa.int64()),
        pa.field("estimator", pa.string()),
        pa.field("fp_screen", pa.string()),  # fingerprint of the AU table rows
        pa.field("n_candidates", pa.int64()),  # frames with any AU > phi
        pa.field("n_pairs", pa.int64()),
    ]
)

# one row per (sample, array): sha256 of the sample's values as written (C order, the
# array's dtype; for a ragged array the sample's frames). `mepipe verify` re-reads and
# compares; rows are carried over for samples a run did not rewrite.
CHECKSUM_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("index", pa.int64(), nullable=False),  # row of the arrays
        pa.field("array", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
    ]
)

TABLES = {
    "manifest": MANIFEST_SCHEMA,
    "exclusions": EXCLUSION_SCHEMA,
    "samples": SAMPLE_SCHEMA,
    "au_frames": AU_FRAME_SCHEMA,
    "videos": VIDEO_SCHEMA,
    "checksums": CHECKSUM_SCHEMA,
}

# progress of a run that is still going, on its scratch branch only (never in a version):
# the samples written so far, so that a killed run resumes instead of starting over
CHECKPOINT = "tables/_checkpoint"
CHECKPOINT_SCHEMA = pa.schema(
    [
        pa.field("index", pa.int64(), nullable=False),
        pa.field("fingerprints", pa.string(), nullable=False),  # JSON: the sample's fingerprints when written
        pa.field("info", pa.string()),  # JSON: the task's result without arrays (null: a copy)
        pa.field("shas", pa.string(), nullable=False),  # JSON: array -> sha256 of what was written
    ]
)

# AU screening of a run that has not committed yet, one file per video named by its screening
# fingerprint (<runs_root>/<dataset>/<this folder>/<fingerprint>.parquet, AU_FRAME_SCHEMA rows,
# the video's exclusion rows as JSON in the file's metadata): a killed run's successor
# reads them instead of estimating again; cleared once a version is committed
SCREEN_CHECKPOINT_DIR = "au-screening-checkpoint"
SCREEN_CHECKPOINT_EXCLUSIONS = b"mepipe.exclusions"

# the generated dataset card (markdown, UTF-8 bytes in a uint8 array) of each version
CARD = "docs/dataset_card"


def conform(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Return `df` as a pyarrow Table with exactly `schema`'s columns and types.

    Missing nullable columns are added as nulls; extra columns are an error (every stored
    name must be declared here).
    """
    extra = set(df.columns) - set(schema.names)
    if extra:
        raise ValueError(f"columns not declared in schemas/tables.py: {sorted(extra)}")
    cols = {}
    for f in schema:
        if f.name in df.columns:
            cols[f.name] = pa.array(df[f.name].tolist(), type=f.type, from_pandas=True)
        elif f.nullable:
            cols[f.name] = pa.nulls(len(df), type=f.type)
        else:
            raise ValueError(f"required column {f.name!r} missing")
    return pa.table(cols, schema=schema)
