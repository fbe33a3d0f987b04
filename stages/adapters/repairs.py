"""Repairs of known errors in released annotation sheets, carried as data with their source.

Every ME dataset ships sheet rows that are wrong in a known way (CAS(ME)^3 Part A's apex
before onset, onset 0, offset 0; 4DME's two rows with exchanged labels; MMEW's rows
without an apex). The dataset's authors or public loaders publish the fix; the catalog
carries it as a `repairs:` entry naming the sheet row, the column, the value the sheet
holds, the value to use and where the fix comes from. A repair is applied only to the
sheet it was written for: a cell holding anything but the expected old value (or the new
value already) is an error, because the sheet changed and the fix may no longer apply.

Pure: a DataFrame of the sheet and its sheet row numbers in, a repaired copy out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from stages.adapters.common import is_blank


class RepairError(ValueError):
    pass


@dataclass(frozen=True)
class Repair:
    """Set `column` of sheet row `row` (1-based, header = its own row) from `old` to `new`.
    `old` None means a blank cell, NOT_A_FRAME a cell that is blank or no frame number
    (for sources that say "no usable apex" without the cell's text), ANY a cell whose old
    value the source does not give (the value replaced is recorded). `match` = {column: value} the row must also hold
    (e.g. its subject and clip), so a re-ordered sheet is caught."""

    row: int
    column: str
    old: object
    new: object
    source: str
    match: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"row {self.row} {self.column} {_show(self.old)} -> {_show(self.new)}"


@dataclass(frozen=True)
class Swap:
    """Exchange the values of `columns` between two sheet rows (labels known to be swapped);
    `columns_from` instead names the first of the columns, every column to its right
    included (the MEB toolkit's rule for 4DME: the AU string and the one-hot labels).
    With `labels_agree_with` (e.g. 4DME's `Emotion`), the swap is checked against the
    sheet itself: each row's one-hot column named by that cell must be 0 before and 1
    after (already 1 before: the sheet is fixed, nothing is done; neither: an error)."""

    rows: tuple
    columns: tuple = ()
    source: str = ""
    columns_from: str | None = None
    labels_agree_with: str | None = None  # a column naming each row's one-hot label column

    def describe(self) -> str:
        cols = f"{self.columns_from} and every column after it" if self.columns_from else ", ".join(self.columns)
        return f"rows {self.rows[0]} and {self.rows[1]}: {cols} exchanged"


NOT_A_FRAME = "not-a-frame"
ANY = "any"  # the source does not say what the cell held: any value, recorded when replaced


def _show(v) -> str:
    if isinstance(v, str) and v == NOT_A_FRAME:
        return "(blank or not a frame number)"
    if isinstance(v, str) and v == ANY:
        return "(any value)"
    if _blank(v):
        return "(blank)"
    return str(int(float(v))) if _is_frame(v) else repr(v)


_blank = is_blank


def same_value(cell, want) -> bool:
    """A sheet cell equals a catalog value: both blank, equal as numbers, or equal as
    stripped text (``'14'`` and ``14`` are the same cell)."""
    if isinstance(want, str) and want == NOT_A_FRAME:
        return _blank(cell) or not _is_frame(cell)
    if isinstance(want, str) and want == ANY:
        return True
    if _blank(cell) or _blank(want):
        return _blank(cell) and _blank(want)
    try:
        return float(cell) == float(want)
    except (TypeError, ValueError):
        return str(cell).strip() == str(want).strip()


def _is_frame(cell) -> bool:
    try:
        f = float(cell)
    except (TypeError, ValueError):
        return False
    return f.is_integer() and f >= 0


def from_catalog(entries: list[dict]) -> list[Repair | Swap]:
    """Catalog `repairs:` entries (already type-checked) as Repair / Swap objects."""
    out = []
    for e in entries:
        if "swap" in e:
            out.append(
                Swap(
                    tuple(e["swap"]),
                    tuple(e.get("columns") or ()),
                    e["source"],
                    e.get("columns_from"),
                    e.get("labels_agree_with"),
                )
            )
        else:
            out.append(Repair(e["row"], e["column"], e.get("old"), e["new"], e["source"], dict(e.get("match") or {})))
    return out


def apply_repairs(
    df: pd.DataFrame, row_numbers: list[int], repairs: list[Repair | Swap], ann_file: str
) -> tuple[pd.DataFrame, list[dict], dict[int, list[str]]]:
    """(repaired copy of `df`, one record per repair {file, row(s), column(s), old, new,
    source, applied}, {sheet row: [note]}). `row_numbers[i]` is the sheet row of df row i.
    A row, column or old value that is not there raises RepairError naming the file, the
    row and the source."""
    df = df.copy()
    pos = {r: i for i, r in enumerate(row_numbers)}
    applied, notes = [], {}
    for rep in repairs:
        if isinstance(rep, Swap):
            applied.append(_swap(df, pos, rep, ann_file, notes))
            continue
        i = _position(pos, rep.row, rep, ann_file)
        _check_columns(df, [rep.column, *rep.match], rep, ann_file)
        for col, want in rep.match.items():
            if not same_value(df.iat[i, df.columns.get_loc(col)], want):
                raise RepairError(
                    f"{ann_file} row {rep.row}: {col} is {_show(df.iat[i, df.columns.get_loc(col)])}, "
                    f"the repair ({rep.describe()}; {rep.source}) is for {col} {want!r}: the sheet's "
                    "rows moved; check the sheet and edit or remove the repair in the catalog"
                )
        j = df.columns.get_loc(rep.column)
        cell = df.iat[i, j]
        rec = {
            "file": ann_file,
            "row": rep.row,
            "column": rep.column,
            "old": rep.old,
            "new": rep.new,
            "sheet_value": _plain(cell),
            "source": rep.source,
        }
        if same_value(cell, rep.new) and (not same_value(cell, rep.old) or rep.old == ANY):
            applied.append({**rec, "applied": False, "why": "the sheet already holds the repaired value"})
            continue
        if not same_value(cell, rep.old):
            raise RepairError(
                f"{ann_file} row {rep.row}: {rep.column} is {_show(cell)}, the repair "
                f"({rep.describe()}; {rep.source}) expects {_show(rep.old)}: the sheet is not the "
                "one the repair was written for; check the row and edit or remove the repair"
            )
        if df[rep.column].dtype != object:
            df[rep.column] = df[rep.column].astype(object)
        df.iat[i, j] = rep.new
        applied.append({**rec, "applied": True})
        notes.setdefault(rep.row, []).append(
            f"repaired: {rep.column} {_show(cell)} -> {_show(rep.new)} ({_note_text(rep.source)})"
        )
    return df, applied, notes


def _position(pos: dict, row: int, rep, ann_file: str) -> int:
    if row not in pos:
        rows = f"the sheet's data rows are {min(pos)}..{max(pos)}" if pos else "the sheet has no data rows"
        raise RepairError(f"{ann_file}: the repair ({rep.describe()}; {rep.source}) names sheet row {row}, but {rows}")
    return pos[row]


def _check_columns(df: pd.DataFrame, cols: list[str], rep, ann_file: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise RepairError(
            f"{ann_file}: the repair ({rep.describe()}; {rep.source}) names column(s) {missing}, "
            f"not in the sheet (columns {list(df.columns)})"
        )


def _swap(df: pd.DataFrame, pos: dict, rep: Swap, ann_file: str, notes: dict) -> dict:
    a, b = (_position(pos, r, rep, ann_file) for r in rep.rows)
    names = [rep.columns_from] if rep.columns_from else list(rep.columns)
    _check_columns(df, names, rep, ann_file)
    if rep.columns_from:
        names = list(df.columns[df.columns.get_loc(rep.columns_from) :])
    cols = [df.columns.get_loc(c) for c in names]
    va, vb = [df.iat[a, j] for j in cols], [df.iat[b, j] for j in cols]
    if rep.labels_agree_with:
        state = _labels_state(df, (a, b), (va, vb), (vb, va), names, rep, ann_file)
        if state == "already":
            return {
                "file": ann_file,
                "row": list(rep.rows),
                "column": names,
                "old": None,
                "new": None,
                "source": rep.source,
                "applied": False,
                "why": f"both rows' one-hot labels already agree with {rep.labels_agree_with}",
            }
    if all(same_value(x, y) for x, y in zip(va, vb)):
        raise RepairError(
            f"{ann_file}: the swap ({rep.describe()}; {rep.source}) would change nothing: rows "
            f"{rep.rows[0]} and {rep.rows[1]} hold the same {', '.join(names)}; the sheet "
            "changed; check it and edit or remove the repair"
        )
    for j, x, y in zip(cols, va, vb):
        col = df.columns[j]
        if df[col].dtype != object:
            df[col] = df[col].astype(object)
        df.iat[a, j], df.iat[b, j] = y, x
    for r, old, new in ((rep.rows[0], va, vb), (rep.rows[1], vb, va)):
        notes.setdefault(r, []).append(
            f"repaired: {', '.join(f'{c} {_show(o)} -> {_show(n)}' for c, o, n in zip(names, old, new) if not same_value(o, n))} "
            f"(exchanged with row {rep.rows[1] if r == rep.rows[0] else rep.rows[0]}, {_note_text(rep.source)})"
        )
    return {
        "file": ann_file,
        "row": list(rep.rows),
        "column": names,
        "old": [[_plain(v) for v in va], [_plain(v) for v in vb]],
        "new": [[_plain(v) for v in vb], [_plain(v) for v in va]],
        "source": rep.source,
        "applied": True,
    }


def _labels_state(df, idx, before, after, names, rep: Swap, ann_file: str) -> str:
    """'swap' when both rows' one-hot labels disagree with their label cell now and agree
    after the swap, 'already' when they agree now; anything else raises RepairError."""
    col = rep.labels_agree_with
    _check_columns(df, [col], rep, ann_file)
    lower = {n.lower(): k for k, n in enumerate(names)}

    def agree(i, values):
        label = str(df.iat[i, df.columns.get_loc(col)]).strip().lower()
        if label not in lower:
            raise RepairError(
                f"{ann_file} row {rep.rows[idx.index(i)]}: {col} {label!r} names no column among "
                f"the swapped ones ({', '.join(names)}); the swap ({rep.describe()}; {rep.source}) "
                "cannot be checked"
            )
        return same_value(values[lower[label]], 1)

    now = [agree(i, v) for i, v in zip(idx, before)]
    then = [agree(i, v) for i, v in zip(idx, after)]
    if all(now):
        return "already"
    if not any(now) and all(then):
        return "swap"
    yn = lambda xs: "/".join("yes" if x else "no" for x in xs)  # noqa: E731
    raise RepairError(
        f"{ann_file}: the swap ({rep.describe()}; {rep.source}) does not fit the sheet: do the "
        f"one-hot labels of rows {rep.rows[0]}/{rep.rows[1]} agree with {col}? {yn(now)} now, "
        f"{yn(then)} after the swap (expected no/no, then yes/yes); the sheet changed; check it and "
        "edit or remove the repair"
    )


def _note_text(source: str) -> str:
    """A source as it goes into a manifest note, whose parts are joined by '; '."""
    return source.replace(";", ",")


def _plain(v):
    """A cell as a JSON-friendly value (blank -> None, numpy scalars -> Python)."""
    if _blank(v):
        return None
    return v.item() if hasattr(v, "item") else v
