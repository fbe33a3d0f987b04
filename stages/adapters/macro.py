"""The macro-expression rows of an all-expressions sheet as unlabelled onset/apex samples.

CAS(ME)^3 Part A ships, beside its labelled micro-expression (ME) sheet, the authors' sheet
of every expression they coded (``CAS(ME)3_part_A_v2.xls``, sheet ``AU+Emotion``: 3346
macro- and 860 micro-expression rows with onset, apex, offset and AUs, no emotion). DVSCL
pretrains on "both micro- and macro-expression in Part A" (seed 000 sec. 4.1); with the
catalog's `macro_annotation` the macro rows become samples of source MACRO
(schemas.tables), read by the same row-by-row adapter as the labelled rows (frame folders,
depth, known-bad list, duration limit, exclusions with the sheet row), without emotion.

Their frame numbers are used only when the sheet numbers frames as the labelled sheet
does: each of its micro-expression rows must be a row of the labelled sheet (same subject,
clip, onset and apex, the labelled sheet as released or as repaired). In the v2 release
all 860 are (856 identical, 4 where the v2 sheet holds the catalog's repaired value);
anything else stops ingest with the rows that differ.

Pure: DataFrames of the sheets and their sheet row numbers in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from schemas.tables import MACRO
from stages.adapters.annotated import AnnotationError, Layout, annotated_samples, folded
from stages.adapters.common import EXCLUSION_COLUMNS, as_frame, exclusion_row, is_blank


@dataclass(frozen=True)
class MacroSheet:
    """An all-expressions sheet: `layout` (columns and folders of the labelled sheet, no
    emotion), the column telling the expression type and its two values."""

    layout: Layout
    type_column: str
    macro: str  # e.g. 'Macro-expression'
    micro: str  # e.g. 'Micro-expression'


@dataclass
class MacroReport:
    """What the all-expressions sheet gave (for the log, `mepipe plan` and provenance)."""

    file: str
    label_file: str  # the labelled sheet its micro-expression rows were found in
    rows: int  # macro-expression rows
    samples: int  # ... that became samples
    micro_rows: int  # micro-expression rows, all found in the labelled sheet
    unknown_type: int  # rows of neither type (exclusions: expression_type_unknown)
    excluded: dict = field(default_factory=dict)  # reason -> macro rows excluded

    def describe(self) -> str:
        """One line for the run log and `mepipe plan`."""
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.excluded.items(), key=lambda kv: -kv[1]))
        return (
            f"macro-expression sheet {self.file}: {self.samples} sample(s) (source '{MACRO}', no emotion: "
            f"pretraining only) of its {self.rows} macro-expression rows"
            + (f", {self.rows - self.samples} excluded ({why})" if why else "")
            + (f", {self.unknown_type} row(s) of neither type excluded" if self.unknown_type else "")
            + f"; its {self.micro_rows} micro-expression rows are rows of {self.label_file} (same frame numbering)"
        )


def split_by_type(ann: pd.DataFrame, rows: list[int], sheet: MacroSheet, ann_file: str, dataset: str) -> tuple:
    """(macro rows, their sheet rows, micro rows, their sheet rows, exclusions) of `ann`
    (`rows[i]`: sheet row of ann row i). A type cell is compared without case and outer
    spaces; a row of neither type is an exclusion (expression_type_unknown) naming the
    cell; blank rows are skipped."""
    if sheet.type_column not in ann.columns:
        raise AnnotationError(f"{ann_file}: column {sheet.type_column!r} not found; header is {list(ann.columns)}")
    want = {folded(sheet.macro.strip()): "macro", folded(sheet.micro.strip()): "micro"}
    kind, excl = [], []
    for row, r in zip(rows, ann.to_dict("records")):
        cell = r[sheet.type_column]
        k = None if is_blank(cell) else want.get(folded(str(cell).strip()))
        kind.append(k)
        if k is None and not all(is_blank(v) for v in r.values()):
            detail = (
                f"{ann_file} row {row}: {sheet.type_column} {cell!r} is neither {sheet.macro!r} nor {sheet.micro!r}"
            )
            excl.append(exclusion_row(dataset, ann_file, row, "expression_type_unknown", detail))
    kind = pd.Series(kind, index=ann.index)
    pick = {
        k: (ann[kind == k].reset_index(drop=True), [r for r, x in zip(rows, kind) if x == k]) for k in want.values()
    }
    return (*pick["macro"], *pick["micro"], excl)


def _key(layout: Layout, r: dict) -> tuple | None:
    """(subject, clip, onset, apex) of a sheet row, spelled without case or Unicode form; None
    when a cell is missing."""
    c = layout.columns
    subj, clip = layout.subject(r.get(c["subject"])), r.get(c["clip"])
    onset, apex = as_frame(r.get(c["onset"])), as_frame(r.get(c.get("apex")))
    if subj is None or is_blank(clip) or onset is None or apex is None:
        return None
    return folded(subj), folded(str(clip).strip()), onset, apex


def unmatched_micro_rows(micro: pd.DataFrame, rows: list[int], labelled: list[pd.DataFrame], layout: Layout) -> list:
    """The micro-expression rows of the all-expressions sheet that are no row of the
    labelled sheet (`labelled`: as released and as repaired; same subject, clip, onset and
    apex), as (sheet row, 'subject/clip onset/apex')."""
    known = {_key(layout, r) for df in labelled for r in df.to_dict("records")}
    c = layout.columns
    return [
        (row, f"{r.get(c['subject'])}/{r.get(c['clip'])} onset {r.get(c['onset'])} apex {r.get(c.get('apex'))}")
        for row, r in zip(rows, micro.to_dict("records"))
        if _key(layout, r) not in known
    ]


def check_numbering(
    micro: pd.DataFrame,
    rows: list[int],
    labelled: list[pd.DataFrame],
    sheet: MacroSheet,
    ann_file: str,
    label_file: str,
) -> None:
    """Stop (AnnotationError) unless the all-expressions sheet numbers frames as the
    labelled sheet does: it has micro-expression rows and each is a row of `labelled`."""
    if not len(micro):
        raise AnnotationError(
            f"{ann_file}: no {sheet.micro!r} rows in column {sheet.type_column!r}, so nothing shows that it numbers "
            f"frames as {label_file} does; its macro-expression rows are not used"
        )
    off = unmatched_micro_rows(micro, rows, labelled, sheet.layout)
    if off:
        eg = "; ".join(f"row {r} {what}" for r, what in off[:3])
        raise AnnotationError(
            f"{ann_file}: {len(off)} of its {len(micro)} {sheet.micro} rows are no row of {label_file} (same subject, "
            f"clip, onset and apex, as released or as repaired), e.g. {eg}. The two sheets are not of one release "
            "or number frames differently: its macro-expression frame numbers cannot be trusted. Use the "
            "all-expressions sheet of the labelled sheet's release"
        )


def macro_samples(
    ann: pd.DataFrame,
    sheet: MacroSheet,
    *,
    row_numbers: list[int],
    labelled: list[pd.DataFrame],
    label_file: str,
    ann_file: str,
    dataset: str,
    **adapter_kw,
) -> tuple[pd.DataFrame, pd.DataFrame, MacroReport]:
    """(samples of source MACRO, exclusions, report) of an all-expressions sheet `ann`
    (`row_numbers[i]`: sheet row of ann row i) after check_numbering against the labelled
    sheet (`labelled`: as released and as repaired, named `label_file`). `adapter_kw`:
    annotated_samples' other arguments (fps, frame_index, depth_index, max_duration_s,
    bad_frames, ...), as for the labelled rows. No emotion; no long-clip flag (the 5 s
    note is about micro-expressions)."""
    macro, macro_rows, micro, micro_rows, excl = split_by_type(ann, row_numbers, sheet, ann_file, dataset)
    check_numbering(micro, micro_rows, labelled, sheet, ann_file, label_file)
    s, e = annotated_samples(
        macro,
        sheet.layout,
        row_numbers=macro_rows,
        ann_file=ann_file,
        dataset=dataset,
        source=MACRO,
        flag_duration_s=None,
        **adapter_kw,
    )
    excluded = e["reason"].value_counts().to_dict() if len(e) else {}
    report = MacroReport(ann_file, label_file, len(macro), len(s), len(micro), len(excl), excluded)
    e = pd.concat([e, pd.DataFrame(excl, columns=EXCLUSION_COLUMNS)], ignore_index=True) if excl else e
    return s, e, report
