"""Ingest: read a dataset's annotation (header row detected) and list its frame folders,
then run its adapter (stages/adapters)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.catalog import DEFAULT_MAX_DURATION_S, CatalogError, Dataset
from pipeline.io import MAX_PIXELS, image_size, shown, symlink_loop
from pipeline.layout import Detected, resolve
from stages.adapters.annotated import EXCLUSION_COLUMNS, KNOWN_BAD_NOTE, AnnotationError, annotated_samples, find_header
from stages.adapters.casme2_sq import casme2_sq_samples
from stages.adapters.common import as_frame, exclusion_row, index_frames, is_hidden, safe_part
from stages.adapters.composite import match_official_list, parse_official_list
from stages.adapters.layouts import LAYOUTS, MACRO_SHEETS
from stages.adapters.macro import MacroReport, macro_samples
from stages.adapters.repairs import RepairError, apply_repairs, from_catalog
from stages.adapters.smic import smic_samples
from stages.labels import class_index


@dataclass
class Ingested:
    """What ingest found: the samples and exclusions, the layout it detected, the sheet
    repairs it applied and what the known-bad list did (for plan, provenance, the card)."""

    samples: pd.DataFrame
    exclusions: pd.DataFrame
    layouts: dict = field(default_factory=dict)  # dataset name -> Detected
    repairs: list = field(default_factory=list)  # records of stages.adapters.repairs.apply_repairs
    known_bad: dict = field(default_factory=dict)  # dataset -> {file, listed, on_list, excluded, policy}
    composite: dict = field(default_factory=dict)  # composite: official list matching report
    datasets: dict = field(default_factory=dict)  # dataset name -> Dataset with its layout resolved
    macro: MacroReport | None = None  # what the all-expressions sheet gave (None: no macro_annotation)


IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


class FrameIndex(dict):
    """index_tree's result; `clashes`: folder (relative to the dataset root) -> what two
    files carry one frame number there (a per-clip problem, never a dataset-wide stop)."""

    def __init__(self):
        super().__init__()
        self.clashes: dict[str, str] = {}
        self.outside: list[str] = []  # folders / frames reached through links leaving the dataset root


def leads_outside(path: str | Path, real_root: str, allow: bool) -> bool:
    """Whether `path` resolves outside the dataset root (`real_root`, already resolved).
    Such a path (a frame folder, a frame, a recording reached through a symlink) is
    refused like a link-out annotation - a CatalogError naming it - unless the catalog
    allows it (`allow_links_outside_root`): then True."""
    real = os.path.realpath(path)
    if real == real_root or real.startswith(real_root + os.sep):
        return False
    if not allow:
        raise CatalogError(
            f"{shown(path)} leads outside the dataset root {shown(real_root)} (to {shown(real)}); "
            "set allow_links_outside_root: true in the catalog to use it"
        )
    return True


def _check_links(dirpath: str, names: list[str], root: str, allow: bool, out: FrameIndex) -> None:
    """A frame folder, and each frame in it that is a symlink, must stay in the dataset
    root (leads_outside); the ones the catalog allows outside are recorded."""
    if leads_outside(dirpath, root, allow):
        out.outside.append(shown(dirpath))
        return
    for p in [os.path.join(dirpath, n) for n in names if os.path.islink(os.path.join(dirpath, n))]:
        if leads_outside(p, root, allow):
            out.outside.append(shown(p))


def exclude_clashing_folders(s: pd.DataFrame, e: pd.DataFrame, clashes: dict, dataset: str) -> tuple:
    """Move the samples reading a folder where two files carry one frame number to the
    exclusions (reason frame_name_clash, naming both files); the others stay."""
    if not clashes or not len(s):
        return s, e
    keep, excl = [], []
    for r in s.to_dict("records"):
        paths = [r.get("onset_path"), r.get("apex_path"), *(r.get("seq_paths") or [])]
        hit = sorted({p.rsplit("/", 1)[0] for p in paths if isinstance(p, str)} & set(clashes))
        keep.append(not hit)
        if hit:
            why = f"{r['sample_id']}: " + "; ".join(clashes[h] for h in hit)
            excl.append(exclusion_row(dataset, r["ann_file"], r["ann_row"], "frame_name_clash", why, r["sample_id"]))
    e = pd.concat([e, pd.DataFrame(excl, columns=e.columns)], ignore_index=True) if excl else e
    return s[keep].reset_index(drop=True), e


def index_tree(frames_root: Path, rel_prefix: str, root: Path | None = None, allow_outside: bool = False) -> FrameIndex:
    """{folder relative to frames_root: {frame number: path relative to the dataset root}}
    for every folder that holds image files, numbers parsed from the names (never listing
    order); hidden files and folders are skipped, two files with one number are recorded
    in `.clashes`. Symlink loops and unreadable folders are errors naming the folder."""
    if symlink_loop(frames_root):
        raise CatalogError(f"frames folder {frames_root} is a symlink loop")
    if not frames_root.is_dir():
        raise CatalogError(f"frames folder {frames_root} not found")
    out = FrameIndex()
    seen = set()
    real_root = os.path.realpath(root if root is not None else frames_root)
    for dirpath, dirnames, filenames in os.walk(frames_root, followlinks=True, onerror=_walk_error):
        real = os.path.realpath(dirpath)
        if real in seen:
            raise CatalogError(f"{dirpath}: symlink loop under the frames folder")
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        imgs = [f for f in filenames if f.lower().endswith(IMAGE_EXT) and not is_hidden(f)]
        if not imgs:
            continue
        _check_links(dirpath, imgs, real_root, allow_outside, out)
        rel = Path(dirpath).relative_to(frames_root).as_posix()
        base = rel_prefix if rel == "." else f"{rel_prefix}/{rel}"
        # a folder holding both JPEG/BMP (colour) and PNG (depth) frames: colour keeps the
        # folder's key, the PNGs are listed under "<folder>#png"
        for ext_group, suffix in (((".jpg", ".jpeg", ".bmp"), ""), ((".png",), "#png")):
            names = [f for f in imgs if f.lower().endswith(ext_group)]
            if not names:
                continue
            clashes: list = []
            idx = index_frames(names, ext_group, clashes)
            if clashes:
                out.clashes[base] = "; ".join(
                    f"two files carry frame number {k}: {shown(f'{base}/{a}')} and {shown(f'{base}/{b}')}"
                    for k, a, b in clashes
                )
            key = rel if rel not in out else rel + suffix
            out[key] = {n: f"{base}/{f}" for n, f in idx.items()}
    return out


def _walk_error(e: OSError):
    raise CatalogError(f"{e.filename}: cannot be listed ({e.strerror})")


def read_annotation(
    path: Path, sheet, required: list[str], dataset: str, key: str = "annotation"
) -> tuple[pd.DataFrame, int]:
    """The sheet as a DataFrame with its header row found (1-based sheet row returned).
    Errors name catalog key `key` (the file) or `<key>_sheet`."""
    try:
        raw = pd.read_excel(path, sheet_name=sheet if sheet is not None else 0, header=None)
    except ValueError as e:
        raise CatalogError(f"datasets.{dataset}.{key}_sheet: {path}: {e}") from e
    except Exception as e:  # not a spreadsheet, truncated file, ...
        raise CatalogError(f"datasets.{dataset}.{key}: {path} cannot be read as a spreadsheet: {e}") from e
    try:
        h = find_header(raw, required)
    except AnnotationError as e:
        raise CatalogError(f"datasets.{dataset}.{key}: {path}: {e}") from e
    df = raw.iloc[h + 1 :].reset_index(drop=True)
    df.columns = [str(c).strip() if not pd.isna(c) else f"_blank{i}" for i, c in enumerate(raw.iloc[h])]
    df = df.infer_objects()
    return df, h + 1


def sheet_quirks(path: Path, sheet) -> dict[int, list[str]]:
    """{sheet row: what is odd there} for the cells pandas reads as blank although the
    file holds something: merged cells (only the top-left cell has the value) and
    formulas saved without a computed value. .xlsx/.xlsm only (openpyxl); {} otherwise.
    The workbook is loaded whole once (merged ranges exist only there); the saved values
    are streamed (read-only) and only when the sheet holds formulas."""
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return {}
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path)
    except Exception:
        return {}  # the reader above reports an unreadable file
    name = sheet if isinstance(sheet, str) else wb.sheetnames[sheet or 0]
    ws = wb[name]
    out: dict[int, list[str]] = {}
    for rng in ws.merged_cells.ranges:
        top = rng.start_cell
        for row in range(rng.min_row, rng.max_row + 1):
            if row != top.row or rng.max_col > rng.min_col:
                out.setdefault(row, []).append(
                    f"cells {rng.coord} are merged (the value {top.value!r} is in {top.coordinate} only)"
                )
    formulas = {(c.row, c.column): c for row in ws.iter_rows() for c in row if c.data_type == "f"}
    wb.close()
    for cell in _without_saved_value(path, name, formulas):
        out.setdefault(cell.row, []).append(
            f"cell {cell.coordinate} holds the formula {cell.value!r} with no saved value (the program "
            "that wrote the file did not compute it; open and save it in a spreadsheet application)"
        )
    return out


def _without_saved_value(path: Path, sheet: str, formulas: dict) -> list:
    """The formula cells (by (row, column)) whose saved value in `sheet` is empty, read
    from the workbook's cached values in read-only (streaming) mode."""
    if not formulas:
        return []
    import openpyxl

    values = openpyxl.load_workbook(path, data_only=True, read_only=True)
    try:
        saved = {
            (c.row, c.column)
            for row in values[sheet].iter_rows()
            for c in row
            if (getattr(c, "row", None), getattr(c, "column", None)) in formulas and c.value is not None
        }
    finally:
        values.close()
    return [c for k, c in sorted(formulas.items()) if k not in saved]


QUIRK_REASONS = {"unsafe_path", "frame_not_numeric", "apex_missing", "au_unparsable", "clip_missing"}


def name_sheet_quirks(e: pd.DataFrame, quirks: dict, ann_file: str) -> pd.DataFrame:
    """Exclusions of rows whose blank cell is really a merged cell or an uncomputed
    formula say so (reason merged_cell / formula_without_value), with the original detail."""
    if not quirks or not len(e):
        return e
    e = e.copy()
    for i, r in e.iterrows():
        found = quirks.get(int(r["ann_row"])) if pd.notna(r["ann_row"]) and r["ann_file"] == ann_file else None
        if not found or r["reason"] not in QUIRK_REASONS:
            continue
        e.at[i, "reason"] = "merged_cell" if any("merged" in q for q in found) else "formula_without_value"
        e.at[i, "detail"] = f"{ann_file} row {int(r['ann_row'])}: {'; '.join(found)} ({r['detail']})"
    return e


REMOVE = "去除"  # the authors' list: "我们目前的解决方法" (our solution) = "去除该张" (remove it)


def read_known_bad(path: Path) -> set:
    """(subject, clip, frame) of the authors' damaged/occluded frame list (apex column).
    Where the list has a solution column (CAS(ME)^3's ZhouJu list: "我们目前的解决方法"),
    only the rows it says to remove count; its other rows (spNO.216 e: "Onset、Apex帧均+1",
    shift both by one) are sheet repairs, carried in the catalog's `repairs:`."""
    bad = set()
    for _, sheet in pd.read_excel(path, sheet_name=None).items():
        if not {"Subject", "Filename", "Apex"} <= set(sheet.columns):
            continue
        how = next((c for c in sheet.columns if "解决方法" in str(c) or "solution" in str(c).lower()), None)
        for r in sheet.to_dict("records"):
            if how is not None and REMOVE not in str(r[how]):
                continue
            s, c, a = safe_part(r["Subject"]), safe_part(r["Filename"]), as_frame(r["Apex"])
            if s and c and a is not None:
                bad.add((s, c, a))
    return bad


def ingest(ds: Dataset, catalog=None, log=print, scheme_notes: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, exclusions) of dataset `ds` from its files (see `ingest_all`)."""
    got = ingest_all(ds, catalog, log, scheme_notes)
    return got.samples, got.exclusions


def ingest_all(ds: Dataset, catalog=None, log=print, scheme_notes: bool = True) -> Ingested:
    """Samples and exclusions of dataset `ds` from its files, with the layout detected,
    the repairs applied and the known-bad list's effect. Each sample lists the
    modalities it actually has (depth only where its depth frames were found). Samples
    whose depth and colour frames differ in size are excluded; with `scheme_notes`, an
    emotion outside the label scheme is noted (a composite maps its parts' words itself)."""
    if ds.adapter == "composite":
        got = ingest_composite(ds, catalog, log)
    else:
        ds, found = resolve(ds)
        got = _ingest(ds, found, log)
    got.datasets[ds.name] = ds
    s, e = got.samples, got.exclusions
    if len(s) and ds.has_depth and "onset_depth_path" in s:
        s, e = exclude_depth_size_mismatch(s, e, ds.root())
    if len(s):
        colour = [m for m in ds.modalities if m != "depth"] or ["rgb"]
        s["modalities"] = [colour + (["depth"] if isinstance(d, str) else []) for d in s["onset_depth_path"]]
        if scheme_notes:
            note_emotions_outside_scheme(s, ds, log)
    for name, kb in got.known_bad.items():
        if kb["on_list"]:
            log(
                f"[{name}] known-bad list {kb['file']}: {kb['on_list']} sample(s) with a listed frame "
                + (
                    "excluded (exclude_known_bad: true)"
                    if kb["excluded"]
                    else "kept and noted (exclude_known_bad: false; true would exclude them)"
                )
            )
    if got.macro is not None:
        log(f"[{ds.name}] {got.macro.describe()}")
    got.samples, got.exclusions = s, e
    return got


def depth_size_problem(r: dict, root: Path) -> str | None:
    """Why sample row `r` cannot use its depth frames (their size differs from the colour
    frame they go with: the crop box would land elsewhere on the face), or None. Sizes
    come from the file headers; an unreadable header, or one declaring more than
    MAX_PIXELS (frame_too_large), is left to the frame readers, which name it."""
    for ckey, dkey in (("onset_path", "onset_depth_path"), ("apex_path", "apex_depth_path")):
        if not isinstance(r.get(dkey), str):
            continue
        cs, ds_ = image_size(root / r[ckey]), image_size(root / r[dkey])
        if cs is None or ds_ is None or max(cs[0] * cs[1], ds_[0] * ds_[1]) > MAX_PIXELS:
            continue
        if cs != ds_:
            return (
                f"{_where(r)}: depth frame {r[dkey]} is {ds_[1]}x{ds_[0]} but its colour frame {r[ckey]} is "
                f"{cs[1]}x{cs[0]} (depth must share the colour frame's pixel grid)"
            )
    return None


def exclude_depth_size_mismatch(s: pd.DataFrame, e: pd.DataFrame, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move the samples whose depth and colour frames differ in size to the exclusions."""
    keep, excl = [], []
    for r in s.to_dict("records"):
        problem = depth_size_problem(r, root)
        keep.append(problem is None)
        if problem is not None:
            excl.append(
                exclusion_row(
                    r["dataset"], r["ann_file"], r["ann_row"], "depth_size_mismatch", problem, sample_id=r["sample_id"]
                )
            )
    if not excl:
        return s, e
    e = (
        pd.concat([e, pd.DataFrame(excl, columns=e.columns)], ignore_index=True)
        if len(e)
        else pd.DataFrame(excl, columns=e.columns)
    )
    return s[keep].reset_index(drop=True), e


EMOTION_NOTE = "emotion not in label scheme"


def _where(r: dict) -> str:
    """'<sheet> row <n>' of a sample from an annotation sheet, else its sample id."""
    row = r.get("ann_row")
    return f"{r['ann_file']} row {int(row)}" if row is not None and row == row else r["sample_id"]


def note_emotions_outside_scheme(s: pd.DataFrame, ds: Dataset, log=print) -> None:
    """Labelled samples whose emotion is not a word of the dataset's label scheme stay in
    the store (their arrays are fine, and another scheme or an unsupervised method can
    use them) but say so in their manifest note; label-based readers skip them."""
    odd = []
    for i, r in enumerate(s.to_dict("records")):
        if r.get("source", "labelled") != "labelled" or class_index(r["emotion"], ds.scheme) is not None:
            continue
        raw = "(empty)" if r.get("emotion_raw") is None else repr(r["emotion_raw"])
        part = f"{EMOTION_NOTE}: {raw} ({_where(r)}) is not a word of label scheme {ds.label_scheme}"
        s.at[i, "note"] = part if not isinstance(r.get("note"), str) else f"{r['note']}; {part}"
        odd.append(f"{_where(r)} {raw}")
    if odd:
        log(
            f"[{ds.name}] {len(odd)} labelled sample(s) with an emotion outside label scheme {ds.label_scheme} "
            f"(kept; label-based readers skip them): {', '.join(odd[:5])}"
        )


def _read_casme2_sq_sheets(ds: Dataset) -> tuple:
    """(samples sheet, naming rule1, naming rule2) of CAS(ME)^2's workbook."""
    path = ds.file("annotation")
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None)
    except Exception as e:
        raise CatalogError(f"datasets.{ds.name}.annotation: {path} cannot be read: {e}") from e
    names = {k.lower(): k for k in sheets}
    for need in ("naming rule1", "naming rule2"):
        if need not in names:
            raise CatalogError(f"datasets.{ds.name}.annotation: {path} has no sheet {need!r} (sheets: {list(sheets)})")
    return sheets[next(iter(sheets))], sheets[names["naming rule1"]], sheets[names["naming rule2"]]


def _sheet_args(ds: Dataset, index: dict) -> dict:
    """The keyword arguments every sheet-reading adapter takes from the dataset."""
    return {
        "ann_file": ds.file("annotation").name,
        "dataset": ds.name,
        "fps": ds.fps,
        "frames_prefix": ds.frames_dir,
        "frame_index": index,
        "emotion_synonyms": ds.emotion_synonyms,
        "max_duration_s": ds.max_duration_s,
    }


def _ingest_casme2_sq(ds: Dataset, index: dict) -> tuple:
    return casme2_sq_samples(*_read_casme2_sq_sheets(ds), **_sheet_args(ds, index))


@dataclass
class Sheet:
    """An annotation sheet as read and as repaired by the catalog's repairs."""

    file: str  # its file name (exclusions and notes name it)
    read: pd.DataFrame  # as the file holds it (header row found)
    rows: pd.DataFrame  # repaired
    header_row: int  # 1-based sheet row of the header
    repairs: list  # records of stages.adapters.repairs.apply_repairs
    row_notes: dict  # sheet row -> [note]: the repairs applied and the sheet's quirks there
    quirks: dict  # sheet row -> [merged cell / formula without value]


def _repaired_sheet(ds: Dataset, required: list[str], key: str = "annotation", repairs_key: str = "repairs") -> Sheet:
    """The sheet named by catalog key `key` (sheet `<key>_sheet`; header: the row holding
    `required`), repaired by the catalog's `repairs_key`."""
    if not getattr(ds, key):
        raise CatalogError(f"datasets.{ds.name}.{key}: adapter {ds.adapter} needs an annotation file")
    path = ds.file(key)
    sheet = getattr(ds, f"{key}_sheet")
    read, header_row = read_annotation(path, sheet, required, ds.name, key)
    rows = [header_row + 1 + i for i in range(len(read))]
    try:
        ann, repairs, row_notes = apply_repairs(read, rows, from_catalog(getattr(ds, repairs_key)), path.name)
    except RepairError as e:
        raise CatalogError(f"datasets.{ds.name}.{repairs_key}: {e}") from e
    quirks = sheet_quirks(path, sheet)
    row_notes = {r: [*row_notes.get(r, []), *quirks.get(r, [])] for r in set(row_notes) | set(quirks)}
    return Sheet(path.name, read, ann, header_row, repairs, row_notes, quirks)


def _known_bad_report(ds: Dataset, bad, s: pd.DataFrame, e: pd.DataFrame) -> dict:
    """The known-bad list's effect: frames listed, samples on it, excluded or noted."""
    if bad is None:
        return {}
    noted = int(s["note"].fillna("").str.contains(KNOWN_BAD_NOTE).sum()) if len(s) else 0
    dropped = int((e["reason"] == "known_bad_frame").sum()) if len(e) else 0
    return {
        ds.name: {
            "file": ds.known_bad,
            "listed": len(bad),
            "on_list": noted + dropped,
            "excluded": ds.exclude_known_bad,
        }
    }


def _ingest_annotated(ds: Dataset, index: dict, layouts: dict) -> Ingested:
    """A dataset with an annotation sheet read by its layout (CAS(ME)^3, CASME II, SAMM, ...)."""
    layout = LAYOUTS.get(ds.adapter)
    if layout is None:
        raise CatalogError(f"datasets.{ds.name}.adapter: {ds.adapter!r} not implemented")
    sh = _repaired_sheet(ds, [layout.columns[k] for k in ("subject", "clip", "onset")])
    bad = read_known_bad(ds.file("known_bad")) if ds.known_bad else None
    try:
        s, e = annotated_samples(
            sh.rows,
            layout,
            **_sheet_args(ds, index),
            depth_index=index if ds.has_depth else None,
            bad_frames=bad,
            header_row=sh.header_row,
            row_notes=sh.row_notes,
            flag_duration_s=DEFAULT_MAX_DURATION_S if ds.max_duration_s > DEFAULT_MAX_DURATION_S else None,
            exclude_bad=ds.exclude_known_bad,
        )
    except AnnotationError as ex:
        raise CatalogError(str(ex)) from ex
    e = name_sheet_quirks(e, sh.quirks, sh.file)
    repairs, macro = sh.repairs, None
    if ds.macro_annotation:
        ms, me, macro_repairs, macro = _ingest_macro(ds, index, sh, bad)
        s = pd.concat([s, ms], ignore_index=True) if len(ms) else s
        e = pd.concat([e, me], ignore_index=True) if len(me) else e
        repairs = repairs + macro_repairs
    return Ingested(s, e, layouts, repairs, _known_bad_report(ds, bad, s, e), macro=macro)


def _ingest_macro(ds: Dataset, index: dict, labelled: Sheet, bad) -> tuple:
    """(samples, exclusions, repairs applied, MacroReport) of the macro-expression rows of
    the dataset's all-expressions sheet (catalog `macro_annotation`): samples of source
    'macro' without emotion, read like the labelled rows (frame folders, depth, known-bad
    list, max_duration_s, `macro_repairs`) once its micro-expression rows are rows of the
    `labelled` sheet (as read or as repaired), i.e. it numbers frames alike
    (stages.adapters.macro); otherwise a CatalogError naming the rows that differ."""
    mac = MACRO_SHEETS[ds.adapter]
    required = [mac.layout.columns[k] for k in ("subject", "clip", "onset", "apex")] + [mac.type_column]
    sh = _repaired_sheet(ds, required, "macro_annotation", "macro_repairs")
    try:
        s, e, report = macro_samples(
            sh.rows,
            mac,
            row_numbers=[sh.header_row + 1 + i for i in range(len(sh.rows))],
            labelled=[labelled.read, labelled.rows],
            label_file=labelled.file,
            **{**_sheet_args(ds, index), "ann_file": sh.file},
            depth_index=index if ds.has_depth else None,
            bad_frames=bad,
            row_notes=sh.row_notes,
            exclude_bad=ds.exclude_known_bad,
        )
    except AnnotationError as ex:
        raise CatalogError(f"datasets.{ds.name}.macro_annotation: {ex}") from ex
    return s, name_sheet_quirks(e, sh.quirks, sh.file), sh.repairs, report


def _ingest(ds: Dataset, found: Detected, log=print) -> Ingested:
    """One (non-composite) dataset whose layout `resolve` found."""
    index = index_tree(ds.root() / ds.frames_dir, ds.frames_dir, ds.root(), ds.allow_links_outside_root)
    if index.outside:
        log(
            f"[{ds.name}] {len(index.outside)} frame folder(s)/file(s) are links leaving the dataset root, used "
            f"because allow_links_outside_root is true, e.g. {index.outside[0]}"
        )
    layouts = {ds.name: found}
    if ds.adapter == "smic_hs":
        s, e = smic_samples(
            index, dataset=ds.name, fps=ds.fps, frames_prefix=ds.frames_dir, max_duration_s=ds.max_duration_s
        )
        got = Ingested(s, e, layouts)
    elif ds.adapter == "casme2_sq":
        got = Ingested(*_ingest_casme2_sq(ds, index), layouts)
    else:
        got = _ingest_annotated(ds, index, layouts)
    got.samples, got.exclusions = exclude_clashing_folders(got.samples, got.exclusions, index.clashes, ds.name)
    return got


def _by_emotion(ds: Dataset, part: str, samples: pd.DataFrame, word_to_class: dict) -> tuple[list, list]:
    """Without an official list: a part's samples whose emotion the composite's mapping
    names (class words replace emotion words); the others excluded by design."""
    keep, excl = [], []
    for r in samples.to_dict("records"):
        cls = word_to_class.get(r["emotion"])
        if cls is not None:
            keep.append({**r, "emotion": cls})
            continue
        detail = (
            f"{part} {r['sample_id']}: emotion {r['emotion']!r} is not in the {ds.name} mapping of {part} "
            "(dropped by design)"
        )
        row = exclusion_row(ds.name, r["ann_file"], r["ann_row"], "not_in_composite", detail, sample_id=r["sample_id"])
        excl.append(_in_composite(row, ds.name, part))
    return keep, excl


def _into_composite(r: dict, ds: Dataset, part: str) -> dict:
    """A part's sample re-addressed: composite sample id, part-prefixed subject and paths."""
    r["sample_id"] = f"{ds.name}/{part}/" + r["sample_id"].split("/", 1)[1]
    r.update({"dataset": ds.name, "subject": f"{part}_{r['subject']}"})
    for k in ("onset_path", "apex_path", "onset_depth_path", "apex_depth_path"):
        if isinstance(r.get(k), str):
            r[k] = f"{part}/{r[k]}"
    r["seq_paths"] = [f"{part}/{p}" for p in (r.get("seq_paths") or [])]
    return r


def _log_composite(ds: Dataset, got: Ingested, counts: dict, missing: list, log) -> None:
    log(f"[{ds.name}] composite counts {counts}" + (f"; missing parts {missing}" if missing else ""))
    for part, rep in got.composite.items():
        if rep["missing"]:
            log(
                f"[{ds.name}] {part}: {len(rep['missing'])} clip(s) of the official list not in the copy, e.g. "
                f"{rep['missing'][0]}"
            )
        if rep["mapping_would_add"]:
            log(
                f"[{ds.name}] {part}: {len(rep['mapping_would_add'])} clip(s) the emotion mapping would add are "
                f"not in the official list (not used), e.g. {rep['mapping_would_add'][0]}"
            )


def _composite_part(ds: Dataset, part: str, mapping: dict, lst, catalog, got: Ingested, log) -> tuple[list, list]:
    """(samples, exclusions) one part contributes; its ingest record joins `got`. A part
    without a configured root contributes nothing (said; with an official list its
    lines are reported missing). Raises _PartMissing for the caller's count."""
    classes = list(ds.scheme)
    word_to_class = {w: c for c, words in mapping.items() for w in words}
    try:
        proot = catalog.dataset(part).root()
    except CatalogError as e:
        log(f"[{ds.name}] part {part} skipped: {e}")
        ex = []
        if lst is not None:
            _, ex, rep = match_official_list(
                lst, part, pd.DataFrame(), classes, word_to_class, ds.official_list.name, ds.name
            )
            got.composite[part] = {**rep, "skipped": str(e)}
        raise _PartMissing(ex) from e
    _link(ds.root() / part, proot)
    sub = ingest_all(catalog.dataset(part), catalog, log, scheme_notes=False)
    got.layouts.update(sub.layouts)
    got.repairs += sub.repairs
    got.known_bad.update(sub.known_bad)
    got.datasets.update(sub.datasets)
    if lst is not None:
        keep, ex, rep = match_official_list(
            lst, part, sub.samples, classes, word_to_class, ds.official_list.name, ds.name
        )
        got.composite[part] = rep
        excl = [_in_composite(e, ds.name, part) for e in ex]
    else:
        keep, excl = _by_emotion(ds, part, sub.samples, word_to_class)
    excl += [_in_composite(e, ds.name, part) for e in sub.exclusions.to_dict("records")]
    return [_into_composite(r, ds, part) for r in keep], excl


class _PartMissing(Exception):
    """A composite's part has no root configured; `exclusions`: its official-list lines."""

    def __init__(self, exclusions: list):
        super().__init__("part missing")
        self.exclusions = exclusions


def ingest_composite(ds: Dataset, catalog, log=print) -> Ingested:
    """A composite (MEGC2019-CD): the parts' samples, subject ids prefixed by the part
    (LOSO stays subject-disjoint across datasets), paths prefixed by the part name (the
    composite root holds a link to each part's root). With an `official_list` the
    composite is that list (stages.adapters.composite: classes from the list, the list's
    names kept as ref_subject/ref_clip, lines the copy lacks and clips the mapping would
    add reported); without one, the parts' emotion words map to classes. Parts whose
    root is not configured are skipped and said so."""
    if catalog is None:
        raise CatalogError(f"datasets.{ds.name}: a composite needs the catalog to find its parts")
    ds.root().mkdir(parents=True, exist_ok=True)
    lst = _official_list(ds, list(ds.scheme))
    got = Ingested(pd.DataFrame(), pd.DataFrame(columns=EXCLUSION_COLUMNS))
    all_s, all_e, counts, missing = [], [], {}, []
    for part, mapping in ds.parts.items():
        try:
            keep, excl = _composite_part(ds, part, mapping, lst, catalog, got, log)
        except _PartMissing as m:
            missing.append(part)
            all_e += m.exclusions
            continue
        counts[part] = len(keep)
        all_s += keep
        all_e += excl
    if not all_s and missing:
        raise CatalogError(f"datasets.{ds.name}: none of its parts is available ({', '.join(missing)})")
    _log_composite(ds, got, counts, missing, log)
    got.samples = pd.DataFrame(all_s).sort_values("sample_id").reset_index(drop=True) if all_s else pd.DataFrame()
    got.exclusions = pd.DataFrame(all_e, columns=EXCLUSION_COLUMNS)
    return got


def _official_list(ds: Dataset, classes: list[str]) -> pd.DataFrame | None:
    if ds.official_list is None:
        return None
    try:
        return parse_official_list(pd.read_csv(ds.official_list, header=None), ds.official_list.name, classes, ds.parts)
    except (ValueError, OSError) as e:
        raise CatalogError(f"datasets.{ds.name}.official_list: {e}") from e


def _in_composite(e: dict, name: str, part: str) -> dict:
    """A part's exclusion record re-addressed to the composite's sample ids."""
    sid = e.get("sample_id")
    if isinstance(sid, str) and not sid.startswith(f"{name}/"):
        e = {**e, "sample_id": f"{name}/{part}/" + sid.split("/", 1)[1]}
    return {**e, "dataset": name}


def _link(link: Path, target: Path) -> None:
    """`link` -> `target` (re-pointed when it points elsewhere)."""
    if link.is_symlink() and os.readlink(link) != str(target):
        link.unlink()
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)
