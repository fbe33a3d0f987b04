"""The shared adapter of every dataset that comes with an annotation sheet: one row = one
ME clip; a `Layout` says which columns hold what and where the clip's frames live.

Pure: the pipeline reads the sheet (header row detected) and lists the frame folders
into `frame_index` = {clip folder relative to the frames root: {frame number: path
relative to the dataset root}}; this module decides, row by row, what becomes a sample
and why any row does not (an exclusion with the sheet row number and the path).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from itertools import islice

import pandas as pd

from schemas.tables import LABELLED
from stages.adapters.common import EXCLUSION_COLUMNS, as_frame, exclusion_row, is_blank, safe_part
from stages.aus import AUParseError, au_marked, au_numbers
from stages.labels import normalise_emotion


class AnnotationError(ValueError):
    pass


@dataclass(frozen=True)
class Layout:
    """Where a dataset keeps what. `columns` maps roles (subject, clip, onset, apex, offset,
    au, emotion) to the sheet's column names (apex/offset/au may be absent). `clip_dir`
    is a format string over {subject} (after `subject_format`), {clip} and {emotion} (the
    cell as written); `depth_dirs` are the candidate depth folders, same fields."""

    name: str
    columns: dict
    clip_dir: str
    subject_format: str = "{}"
    depth_dirs: tuple = ()
    apex_missing: str = "midpoint"  # 'midpoint' (derived, flagged) or 'exclude'
    offset_zero_means: str = "unknown"  # 'unknown' or 'apex'
    extra: dict = field(default_factory=dict)

    def subject(self, raw) -> str | None:
        s = safe_part(raw)
        if s is None:
            return None
        try:
            return self.subject_format.format(int(s) if s.isdigit() else s)
        except (ValueError, TypeError):
            return s


_excl = exclusion_row


def annotated_samples(
    ann: pd.DataFrame,
    layout: Layout,
    *,
    ann_file: str,
    dataset: str,
    fps: float,
    frames_prefix: str,
    frame_index: dict,
    depth_index: dict | None = None,
    emotion_synonyms: dict | None = None,
    bad_frames: set | None = None,
    header_row: int = 1,
    row_numbers: list[int] | None = None,
    row_notes: dict[int, list[str]] | None = None,
    max_duration_s: float | None = None,
    flag_duration_s: float | None = None,
    exclude_bad: bool = True,
    source: str = LABELLED,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn an annotation sheet into (samples, exclusions). `header_row` is the sheet row
    (1-based) of the header, so data row i is reported as sheet row header_row + 1 + i,
    unless `row_numbers` gives each row's sheet row. `row_notes` ({sheet row: [text]},
    e.g. the repairs applied to it) open the sample's note. A clip whose onset..offset
    spans more than `max_duration_s` seconds cannot be a micro-expression: excluded as
    `too_long`; one longer than `flag_duration_s` but within the limit is kept with a
    LONG_NOTE. Onset/apex frames on the `bad_frames` list are excluded
    (`known_bad_frame`) when `exclude_bad`, else kept with a note. `source`
    (schemas.tables.SOURCES): the samples' source; other than LABELLED (a macro-expression
    sheet's rows) their sample ids carry it (``<dataset>/macro/<subject>/<clip>/<onset>-<apex>``,
    never an id of the labelled sheet) and the layout has no emotion column."""
    cols = layout.columns
    missing = [c for r, c in cols.items() if r in ("subject", "clip", "onset") and c not in ann.columns]
    if missing:
        raise AnnotationError(f"{ann_file}: columns {missing} not found; header is {list(ann.columns)}")
    samples, excl, seen = [], [], {}
    spellings = Spellings()
    find_clip = folder_finder(frame_index)
    find_depth = find_clip if depth_index is frame_index else folder_finder(depth_index or {})

    def cell(r, role):
        c = cols.get(role)
        return r.get(c) if c is not None else None

    for i, r in enumerate(ann.to_dict("records")):
        row = row_numbers[i] if row_numbers is not None else header_row + 1 + i
        if all(pd.isna(v) for v in r.values()):
            continue  # blank spreadsheet row
        subj, clip = layout.subject(cell(r, "subject")), safe_part(cell(r, "clip"))
        written = None if subj is None or clip is None else f"{subj}/{clip}"  # as this row spells it
        if written is not None:
            subj, clip = spellings.first(subj, clip)
        else:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "unsafe_path",
                    f"{ann_file} row {row}: subject={cell(r, 'subject')!r} clip={cell(r, 'clip')!r} "
                    "is empty or would leave the dataset root",
                )
            )
            continue
        onset, apex, offset = (as_frame(cell(r, k)) for k in ("onset", "apex", "offset"))
        if onset is None:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "frame_not_numeric",
                    f"{ann_file} row {row} ({subj}/{clip}): {_not_a_frame('onset', cell(r, 'onset'))}",
                )
            )
            continue
        notes = list((row_notes or {}).get(row, []))
        if written != f"{subj}/{clip}":
            notes.append(f"spelled {written!r} here, {subj}/{clip} in an earlier row: one subject and clip")
        if offset is None and "offset" in cols:
            notes.append(f"{_not_a_frame('offset', cell(r, 'offset'))}: offset unknown")
        if offset == 0:
            offset = apex if layout.offset_zero_means == "apex" else None
            notes.append(
                "offset 0 in the annotation: "
                + ("apex used" if layout.offset_zero_means == "apex" else "offset unknown")
            )
        apex_derived = False
        if apex is None:
            raw_apex = cell(r, "apex")
            if layout.apex_missing == "midpoint" and offset is not None and offset >= onset:
                apex, apex_derived = (onset + offset) // 2, True
                notes.append(f"apex {raw_apex!r} in the annotation: midpoint used")
            else:
                excl.append(_apex_exclusion(layout, dataset, ann_file, row, f"{subj}/{clip}", raw_apex))
                continue
        sid = (
            f"{dataset}/{subj}/{clip}/{onset}-{apex}"
            if source == LABELLED
            else f"{dataset}/{source}/{subj}/{clip}/{onset}-{apex}"
        )
        if onset == 0:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "onset_zero",
                    f"{ann_file} row {row} ({subj}/{clip}): onset 0 (apex {apex}) is not a coded frame",
                    sid,
                )
            )
            continue
        if apex < onset:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "apex_before_onset",
                    f"{ann_file} row {row} ({subj}/{clip}): apex {apex} < onset {onset}",
                    sid,
                )
            )
            continue
        if apex == onset:
            notes.append("apex == onset: the onset-apex difference is zero")
        if offset is not None and offset < apex:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "offset_before_apex",
                    f"{ann_file} row {row} ({subj}/{clip}): offset {offset} < apex {apex}",
                    sid,
                )
            )
            continue
        if max_duration_s is not None and offset is not None and (offset - onset + 1) / fps > max_duration_s:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "too_long",
                    f"{ann_file} row {row} ({subj}/{clip}): onset {onset} .. offset {offset} spans "
                    f"{offset - onset + 1} frames = {(offset - onset + 1) / fps:.1f} s at {fps:g} fps, longer "
                    f"than max_duration_s {max_duration_s:g} s"
                    + (
                        ": not a micro-expression"
                        if source == LABELLED
                        else f" ({source} row: the limit applies as to labelled rows)"
                    ),
                    sid,
                )
            )
            continue
        if flag_duration_s is not None and offset is not None and (offset - onset + 1) / fps > flag_duration_s:
            notes.append(
                f"{LONG_NOTE} {flag_duration_s:g} s: onset..offset spans {(offset - onset + 1) / fps:.1f} s "
                f"(kept: max_duration_s {max_duration_s:g} s)"
            )
        if sid in seen:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "duplicate_row",
                    _duplicate_detail(ann_file, row, seen[sid], (cell(r, "emotion"), cell(r, "au")), written),
                    sid,
                )
            )
            continue
        try:
            aus = au_numbers(cell(r, "au"))
        except AUParseError as e:
            excl.append(_excl(dataset, ann_file, row, "au_unparsable", f"{ann_file} row {row}: {e}", sid))
            continue
        emotion_raw = cell(r, "emotion")
        fmt = {"subject": subj, "clip": clip, "emotion": "" if pd.isna(emotion_raw) else str(emotion_raw).strip()}
        rel = layout.clip_dir.format(**fmt)
        rel = find_clip(rel) or rel
        frames = frame_index.get(rel)
        if frames is None:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "clip_missing",
                    f"{ann_file} row {row}: no frames in {frames_prefix}/{rel}",
                    sid,
                )
            )
            continue
        lost = [f for f in (onset, apex) if f not in frames]
        if lost:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "frame_missing",
                    f"{ann_file} row {row}: frame(s) {lost} not in {frames_prefix}/{rel}",
                    sid,
                )
            )
            continue
        bad = [f for f in (onset, apex) if bad_frames and (subj, clip, f) in bad_frames]
        if bad and exclude_bad:
            excl.append(
                _excl(
                    dataset,
                    ann_file,
                    row,
                    "known_bad_frame",
                    f"{ann_file} row {row}: frame(s) {bad} of {subj}/{clip} are on the known-bad list",
                    sid,
                )
            )
            continue
        if bad:
            notes.append(f"{KNOWN_BAD_NOTE}: frame(s) {bad} (kept: exclude_known_bad is off)")
        dpaths = (None, None)
        if depth_index is not None:
            dframes = next(
                (depth_index[d] for d in (find_depth(t.format(**fmt)) for t in layout.depth_dirs) if d is not None), {}
            )
            dlost = [f for f in (onset, apex) if f not in dframes]
            if dlost:
                excl.append(
                    _excl(
                        dataset,
                        ann_file,
                        row,
                        "depth_missing",
                        f"{ann_file} row {row}: depth frame(s) {dlost} missing for {frames_prefix}/{rel}",
                        sid,
                    )
                )
                continue
            dpaths = (dframes[onset], dframes[apex])
        seen[sid] = (row, (emotion_raw, cell(r, "au")), written)
        end = offset if offset is not None else apex + (apex - onset)
        # bounded by the folder's files, not by the span (an offset typo of 10^9 costs nothing)
        present = [k for k in frames if onset <= k <= end]
        seq = [frames[k] for k in sorted(present)]
        n_gaps = end - onset + 1 - len(present)
        if n_gaps:
            first = list(islice((k for k in range(onset, end + 1) if k not in frames), 5))
            notes.append(f"{n_gaps} frame(s) of the clip missing: {first}")
        samples.append(
            {
                "sample_id": sid,
                "dataset": dataset,
                "subject": subj,
                "clip": clip,
                "source": source,
                "ann_file": ann_file,
                "ann_row": row,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "apex_derived": apex_derived,
                "au_raw": None if pd.isna(cell(r, "au")) else str(cell(r, "au")),
                "au_list": aus,
                "au_marked": au_marked(cell(r, "au")),
                "emotion_raw": None if pd.isna(emotion_raw) else str(emotion_raw),
                "emotion": normalise_emotion(emotion_raw, emotion_synonyms),
                "fps": float(fps),
                "onset_path": frames[onset],
                "apex_path": frames[apex],
                "onset_depth_path": dpaths[0],
                "apex_depth_path": dpaths[1],
                "note": "; ".join(notes) or None,
                "seq_paths": seq,
            }
        )
    s = pd.DataFrame(samples)
    if len(s):
        s = s.sort_values("sample_id", kind="stable").reset_index(drop=True)
    return s, pd.DataFrame(excl, columns=EXCLUSION_COLUMNS)


KNOWN_BAD_NOTE = "on the known-bad list"
LONG_NOTE = "longer than"  # a kept clip longer than a micro-expression can be


def folded(text: str) -> str:
    """Text compared without case or Unicode form (NFC; a folder named on macOS is often
    NFD: ``é`` as ``e`` + combining accent)."""
    return unicodedata.normalize("NFC", text).casefold()


def canonical_name(rel: str) -> str:
    """A folder path compared without case, Unicode form and zero padding (``sub1`` = ``Sub01``)."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), folded(rel))


class Spellings:
    """The first spelling of each subject and clip in a sheet: later rows spelling them
    in another case or Unicode form (``SPNO.1/A`` for ``spNO.1/a``) name the same
    subject and clip, so they cannot become a second subject across LOSO folds."""

    def __init__(self):
        self.subjects: dict[str, str] = {}
        self.clips: dict[tuple, str] = {}

    def first(self, subj: str, clip: str) -> tuple[str, str]:
        subj, clip = unicodedata.normalize("NFC", subj), unicodedata.normalize("NFC", clip)
        s = self.subjects.setdefault(folded(subj), subj)
        return s, self.clips.setdefault((s, folded(clip)), clip)


def folder_finder(frame_index: dict):
    """f(folder as the sheet spells it) -> the folder of `frame_index` it names (as
    written, else without case or Unicode form, else without zero padding), or None."""
    by_fold = _unique_keys(frame_index, folded)  # folder names whose case or form differs from the sheet's
    padded = _unique_keys(frame_index, canonical_name)  # ... or whose numbers are zero-padded (1 / 01)

    def find(rel: str) -> str | None:
        return rel if rel in frame_index else by_fold.get(folded(rel)) or padded.get(canonical_name(rel))

    return find


def _unique_keys(frame_index: dict, key) -> dict:
    """{key(folder): folder} for the folders whose key no other folder shares (an
    ambiguous key is no fallback)."""
    out, dup = {}, set()
    for k in frame_index:
        c = key(k)
        if c in out:
            dup.add(c)
        out[c] = k
    return {c: k for c, k in out.items() if c not in dup}


_blank = is_blank


def _not_a_frame(role: str, raw) -> str:
    """'onset cell is empty' / "apex '12a' is not a frame number"."""
    return f"{role} cell is empty" if _blank(raw) else f"{role} {raw!r} is not a frame number"


def _apex_exclusion(layout: Layout, dataset, ann_file, row, clip: str, raw_apex) -> dict:
    """An apex that is no frame number and cannot be derived: empty -> apex_missing,
    anything else ('12a') -> frame_not_numeric."""
    why = (
        "this layout does not derive a missing apex"
        if layout.apex_missing == "exclude"
        else "and there is no usable offset to take the midpoint with"
    )
    reason = "apex_missing" if _blank(raw_apex) else "frame_not_numeric"
    return _excl(
        dataset, ann_file, row, reason, f"{ann_file} row {row} ({clip}): {_not_a_frame('apex', raw_apex)} ({why})"
    )


def _duplicate_detail(ann_file, row, first: tuple, labels: tuple, written: str | None = None) -> str:
    """A duplicated row names the row that is kept, both spellings when they differ only
    in case or Unicode form, and says when their labels disagree."""
    first_row, first_labels, first_written = (*first, None)[:3]
    same = all((_blank(a) and _blank(b)) or str(a).strip() == str(b).strip() for a, b in zip(first_labels, labels))
    detail = f"{ann_file} row {row}: same clip and onset/apex as row {first_row} (row {first_row} is kept)"
    if written and first_written and written != first_written:
        detail += f"; spelled {written!r} here and {first_written!r} in row {first_row}"
    if not same:
        detail += (
            f"; the labels differ: emotion/AU {labels[0]!r}/{labels[1]!r} here, "
            f"{first_labels[0]!r}/{first_labels[1]!r} in row {first_row}"
        )
    return detail


def find_header(raw: pd.DataFrame, required: list[str], max_rows: int = 40) -> int:
    """0-based row of a header-less sheet that holds all `required` column names (SAMM's
    header sits under a 13-row preamble in one release and on row 1 in others)."""
    want = {c.strip().lower() for c in required}
    for i in range(min(max_rows, len(raw))):
        cells = {str(v).strip().lower() for v in raw.iloc[i].tolist() if not pd.isna(v)}
        if want <= cells:
            return i
    raise AnnotationError(f"no header row with {required} in the first {max_rows} rows")
