"""Ingest: read a dataset's annotation (header row detected) and list its frame folders,
then run its adapter (stages/adapters)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pipeline.catalog import CatalogError, Dataset
from pipeline.io import image_size, symlink_loop
from stages.adapters.annotated import AnnotationError, annotated_samples, find_header
from stages.adapters.common import as_frame, index_frames, safe_part
from stages.adapters.layouts import LAYOUTS
from stages.adapters.casme2_sq import casme2_sq_samples
from stages.adapters.smic import smic_samples
from stages.labels import class_index

IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


def index_tree(frames_root: Path, rel_prefix: str) -> dict:
    """{folder relative to frames_root: {frame number: path relative to the dataset root}}
    for every folder that holds image files, numbers parsed from the names (never listing
    order). Symlink loops and unreadable folders are errors naming the folder."""
    if symlink_loop(frames_root):
        raise CatalogError(f"frames folder {frames_root} is a symlink loop")
    if not frames_root.is_dir():
        raise CatalogError(f"frames folder {frames_root} not found")
    out = {}
    seen = set()
    for dirpath, dirnames, filenames in os.walk(frames_root, followlinks=True, onerror=_walk_error):
        real = os.path.realpath(dirpath)
        if real in seen:
            raise CatalogError(f"{dirpath}: symlink loop under the frames folder")
        seen.add(real)
        dirnames.sort()
        imgs = [f for f in filenames if f.lower().endswith(IMAGE_EXT)]
        if not imgs:
            continue
        rel = Path(dirpath).relative_to(frames_root).as_posix()
        base = rel_prefix if rel == "." else f"{rel_prefix}/{rel}"
        # a folder holding both JPEG/BMP (colour) and PNG (depth) frames: colour keeps the
        # folder's key, the PNGs are listed under "<folder>#png"
        for ext_group, suffix in (((".jpg", ".jpeg", ".bmp"), ""), ((".png",), "#png")):
            names = [f for f in imgs if f.lower().endswith(ext_group)]
            if not names:
                continue
            try:
                idx = index_frames(names, ext_group)
            except ValueError as e:
                raise CatalogError(f"{dirpath}: {e}") from e
            key = rel if rel not in out else rel + suffix
            out[key] = {n: f"{base}/{f}" for n, f in idx.items()}
    return out


def _walk_error(e: OSError):
    raise CatalogError(f"{e.filename}: cannot be listed ({e.strerror})")


def read_annotation(path: Path, sheet, required: list[str], dataset: str) -> tuple[pd.DataFrame, int]:
    """The sheet as a DataFrame with its header row found (1-based sheet row returned)."""
    try:
        raw = pd.read_excel(path, sheet_name=sheet if sheet is not None else 0, header=None)
    except ValueError as e:
        raise CatalogError(f"datasets.{dataset}.annotation_sheet: {path}: {e}") from e
    except Exception as e:  # not a spreadsheet, truncated file, ...
        raise CatalogError(f"datasets.{dataset}.annotation: {path} cannot be read as a spreadsheet: {e}") from e
    try:
        h = find_header(raw, required)
    except AnnotationError as e:
        raise CatalogError(f"datasets.{dataset}.annotation: {path}: {e}") from e
    df = raw.iloc[h + 1:].reset_index(drop=True)
    df.columns = [str(c).strip() if not pd.isna(c) else f"_blank{i}" for i, c in enumerate(raw.iloc[h])]
    df = df.infer_objects()
    return df, h + 1


def read_known_bad(path: Path) -> set:
    """(subject, clip, frame) of the authors' damaged/occluded frame list (apex column)."""
    bad = set()
    for _, sheet in pd.read_excel(path, sheet_name=None).items():
        if not {"Subject", "Filename", "Apex"} <= set(sheet.columns):
            continue
        for r in sheet.to_dict("records"):
            s, c, a = safe_part(r["Subject"]), safe_part(r["Filename"]), as_frame(r["Apex"])
            if s and c and a is not None:
                bad.add((s, c, a))
    return bad


def ingest(ds: Dataset, catalog=None, log=print, scheme_notes: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, exclusions) of dataset `ds` from its files; each sample lists the
    modalities it actually has (depth only where its depth frames were found). Samples
    whose depth and colour frames differ in size are excluded; with `scheme_notes`, an
    emotion outside the label scheme is noted (a composite maps its parts' words itself)."""
    s, e = _ingest(ds, catalog, log)
    if len(s) and ds.has_depth and "onset_depth_path" in s:
        s, e = exclude_depth_size_mismatch(s, e, ds.root())
    if len(s):
        colour = [m for m in ds.modalities if m != "depth"] or ["rgb"]
        s["modalities"] = [colour + (["depth"] if isinstance(d, str) else []) for d in s["onset_depth_path"]]
        if scheme_notes:
            note_emotions_outside_scheme(s, ds, log)
    return s, e


def depth_size_problem(r: dict, root: Path) -> str | None:
    """Why sample row `r` cannot use its depth frames (their size differs from the colour
    frame they go with: the crop box would land elsewhere on the face), or None. Sizes
    come from the file headers; an unreadable header is left to the frame readers."""
    for ckey, dkey in (("onset_path", "onset_depth_path"), ("apex_path", "apex_depth_path")):
        if not isinstance(r.get(dkey), str):
            continue
        cs, ds_ = image_size(root / r[ckey]), image_size(root / r[dkey])
        if cs is not None and ds_ is not None and cs != ds_:
            return (f"{_where(r)}: depth frame {r[dkey]} is {ds_[1]}x{ds_[0]} but its colour frame {r[ckey]} is "
                    f"{cs[1]}x{cs[0]} (depth must share the colour frame's pixel grid)")
    return None


def exclude_depth_size_mismatch(s: pd.DataFrame, e: pd.DataFrame, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Move the samples whose depth and colour frames differ in size to the exclusions."""
    keep, excl = [], []
    for r in s.to_dict("records"):
        problem = depth_size_problem(r, root)
        keep.append(problem is None)
        if problem is not None:
            excl.append({"sample_id": r["sample_id"], "dataset": r["dataset"], "ann_file": r["ann_file"],
                         "ann_row": r["ann_row"], "stage": "ingest", "reason": "depth_size_mismatch",
                         "detail": problem})
    if not excl:
        return s, e
    e = pd.concat([e, pd.DataFrame(excl, columns=e.columns)], ignore_index=True) if len(e) else \
        pd.DataFrame(excl, columns=e.columns)
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
        log(f"[{ds.name}] {len(odd)} labelled sample(s) with an emotion outside label scheme {ds.label_scheme} "
            f"(kept; label-based readers skip them): {', '.join(odd[:5])}")


def _ingest(ds: Dataset, catalog=None, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    if ds.adapter == "composite":
        return ingest_composite(ds, catalog, log)
    root = ds.root()
    index = index_tree(root / ds.frames_dir, ds.frames_dir)
    if ds.adapter == "smic_hs":
        return smic_samples(index, dataset=ds.name, fps=ds.fps, frames_prefix=ds.frames_dir)
    if ds.adapter == "casme2_sq":
        path = ds.file("annotation")
        try:
            sheets = pd.read_excel(path, sheet_name=None, header=None)
        except Exception as e:
            raise CatalogError(f"datasets.{ds.name}.annotation: {path} cannot be read: {e}") from e
        names = {k.lower(): k for k in sheets}
        for need in ("naming rule1", "naming rule2"):
            if need not in names:
                raise CatalogError(f"datasets.{ds.name}.annotation: {path} has no sheet {need!r} "
                                   f"(sheets: {list(sheets)})")
        first = next(iter(sheets))
        return casme2_sq_samples(sheets[first], sheets[names["naming rule1"]], sheets[names["naming rule2"]],
                                 ann_file=path.name, dataset=ds.name, fps=ds.fps, frames_prefix=ds.frames_dir,
                                 frame_index=index, emotion_synonyms=ds.emotion_synonyms)
    layout = LAYOUTS.get(ds.adapter)
    if layout is None:
        raise CatalogError(f"datasets.{ds.name}.adapter: {ds.adapter!r} not implemented")
    if not ds.annotation:
        raise CatalogError(f"datasets.{ds.name}.annotation: adapter {ds.adapter} needs an annotation file")
    ann_path = ds.file("annotation")
    required = [layout.columns[k] for k in ("subject", "clip", "onset")]
    ann, header_row = read_annotation(ann_path, ds.annotation_sheet, required, ds.name)
    bad = read_known_bad(ds.file("known_bad")) if ds.known_bad else None
    try:
        return annotated_samples(ann, layout, ann_file=ann_path.name, dataset=ds.name, fps=ds.fps,
                                 frames_prefix=ds.frames_dir, frame_index=index,
                                 depth_index=index if ds.has_depth else None,
                                 emotion_synonyms=ds.emotion_synonyms, bad_frames=bad, header_row=header_row)
    except AnnotationError as e:
        raise CatalogError(str(e)) from e


def ingest_composite(ds: Dataset, catalog, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A composite (MEGC2019-CD): the parts' samples under the composite's class mapping,
    subject ids prefixed by the part (LOSO stays subject-disjoint across datasets), paths
    prefixed by the part name (the composite root holds a link to each part's root).
    Parts whose root is not configured are skipped and said so; when every part is
    present the per-part counts must equal `expected_counts`."""
    if catalog is None:
        raise CatalogError(f"datasets.{ds.name}: a composite needs the catalog to find its parts")
    root = ds.root()
    root.mkdir(parents=True, exist_ok=True)
    all_s, all_e, counts, missing = [], [], {}, []
    for part, mapping in ds.parts.items():
        pds = catalog.dataset(part)
        try:
            proot = pds.root()
        except CatalogError as e:
            missing.append(part)
            log(f"[{ds.name}] part {part} skipped: {e}")
            continue
        link = root / part
        if link.is_symlink() and os.readlink(link) != str(proot):
            link.unlink()
        if not link.exists():
            link.symlink_to(proot, target_is_directory=True)
        s, e = ingest(pds, catalog, log, scheme_notes=False)
        word_to_class = {w: c for c, words in mapping.items() for w in words}
        keep = []
        for r in s.to_dict("records"):
            cls = word_to_class.get(r["emotion"])
            old_id = r["sample_id"]
            r["sample_id"] = f"{ds.name}/{part}/" + old_id.split("/", 1)[1]
            if cls is None:
                all_e.append({"sample_id": r["sample_id"], "dataset": ds.name, "ann_file": r["ann_file"],
                              "ann_row": r["ann_row"], "stage": "ingest", "reason": "not_in_composite",
                              "detail": f"{part} {old_id}: emotion {r['emotion']!r} is not in the {ds.name} "
                                        f"mapping of {part} (dropped by design)"})
                continue
            r.update({"dataset": ds.name, "subject": f"{part}_{r['subject']}", "emotion": cls})
            for k in ("onset_path", "apex_path", "onset_depth_path", "apex_depth_path"):
                if isinstance(r.get(k), str):
                    r[k] = f"{part}/{r[k]}"
            r["seq_paths"] = [f"{part}/{p}" for p in (r.get("seq_paths") or [])]
            keep.append(r)
        counts[part] = len(keep)
        all_s += keep
        e = e.copy()
        e["dataset"] = ds.name
        all_e += e.to_dict("records")
    if not all_s and missing:
        raise CatalogError(f"datasets.{ds.name}: none of its parts is available ({', '.join(missing)})")
    if ds.expected_counts and not missing and counts != ds.expected_counts:
        raise CatalogError(f"datasets.{ds.name}: per-dataset counts {counts} differ from the expected "
                           f"{ds.expected_counts} (datasets.{ds.name}.expected_counts)")
    log(f"[{ds.name}] composite counts {counts}" + (f"; missing parts {missing}" if missing else ""))
    s = pd.DataFrame(all_s).sort_values("sample_id").reset_index(drop=True) if all_s else pd.DataFrame()
    return s, pd.DataFrame(all_e, columns=["sample_id", "dataset", "ann_file", "ann_row", "stage", "reason", "detail"])
