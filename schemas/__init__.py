"""The data contracts: every stored name is defined here and nowhere else.

- `schemas.arrays`: array specs (name, dtype, per-sample shape, chunk/shard layout,
  units, attrs) of everything written to the Zarr store.
- `schemas.tables`: pyarrow schemas of every Parquet table (samples, manifest,
  exclusions, provenance).
"""

from schemas.arrays import ARRAYS, ArraySpec, array_spec, arrays_of_group
from schemas.tables import (
    AU_FRAME_SCHEMA,
    EXCLUSION_SCHEMA,
    MANIFEST_SCHEMA,
    SAMPLE_SCHEMA,
    TABLES,
    VIDEO_SCHEMA,
    conform,
)

__all__ = [
    "ARRAYS",
    "ArraySpec",
    "array_spec",
    "arrays_of_group",
    "SAMPLE_SCHEMA",
    "MANIFEST_SCHEMA",
    "EXCLUSION_SCHEMA",
    "AU_FRAME_SCHEMA",
    "VIDEO_SCHEMA",
    "TABLES",
    "conform",
]
