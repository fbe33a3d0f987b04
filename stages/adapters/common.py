"""What every adapter shares: frame-number parsing, safe path parts, row checks."""

from __future__ import annotations

import math
import re

import pandas as pd

_NUM = re.compile(r"(\d+)(?!.*\d)")  # the last number in a file name


def frame_number(filename: str) -> int | None:
    """Frame number of a file name: the last run of digits (``img10.jpg`` -> 10)."""
    m = _NUM.search(filename.rsplit(".", 1)[0])
    return int(m.group(1)) if m else None


def is_hidden(name: str) -> bool:
    """Hidden files and folders, macOS metadata included (``.DS_Store``, AppleDouble
    ``._13.jpg``, ``__MACOSX``): never frames."""
    return name.startswith(".") or name == "__MACOSX"


def index_frames(names: list[str], exts: tuple[str, ...], clashes: list | None = None) -> dict[int, str]:
    """{frame number: file name} for the (not hidden) names with one of `exts`, sorted
    by number (never by listing order: ``img9`` < ``img10``). Two names with one number
    (``13.jpg`` and ``13 - Copy.jpg``) raise, or with `clashes` given are appended to it
    as (number, first name, second name) and the first is kept."""
    out: dict[int, str] = {}
    for n in sorted(names):  # listing order varies by file system: the first kept is the first by name
        if is_hidden(n) or not n.lower().endswith(exts):
            continue
        k = frame_number(n)
        if k is None:
            continue
        if k in out:
            if clashes is None:
                raise ValueError(f"two files carry frame number {k}: {out[k]!r} and {n!r}")
            clashes.append((k, out[k], n))
            continue
        out[k] = n
    return dict(sorted(out.items()))


def safe_part(value) -> str | None:
    """A path component from an annotation cell, or None if it could escape the root
    (``..``, separators, absolute paths, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        s = str(int(value))
    if not s or s in (".", "..") or "/" in s or "\\" in s or s.startswith("~") or "\x00" in s:
        return None
    return s


def as_frame(value) -> int | None:
    """An annotation frame cell as int, None if blank / not numeric (e.g. '/')."""
    if value is None:
        return None
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) or not value.is_integer() else int(value)
    s = str(value).strip()
    return int(s) if s.isdigit() else None


EXCLUSION_COLUMNS = ["sample_id", "dataset", "ann_file", "ann_row", "stage", "reason", "detail"]


def exclusion_row(dataset, ann_file, row, reason, detail, sample_id=None, stage="ingest") -> dict:
    """One row of the exclusions table (schemas.tables.EXCLUSION_SCHEMA): why a sheet row,
    a clip folder, a recording or a sample is not in the arrays."""
    return {
        "sample_id": sample_id,
        "dataset": dataset,
        "ann_file": ann_file,
        "ann_row": row,
        "stage": stage,
        "reason": reason,
        "detail": detail,
    }


def is_blank(value) -> bool:
    """An empty sheet cell: None, NaN/NA, or only whitespace."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # not a scalar
        return False
