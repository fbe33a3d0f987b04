"""`mepipe validate`: check a user's copy of a dataset without writing any store.

Runs the dataset's adapter (annotation found and parsed, header row detected, every row
checked against the frame folders), then decodes every frame the samples reference
(onset, apex, and the whole clip unless --quick), checks depth frames against their
colour frames, and the emotions against the label scheme. Prints counts per problem
with the first examples (paths, sheet rows) and returns a non-zero status when a
problem blocks preprocessing (missing or undecodable frames); inconsistent annotation
rows are reported but do not block (the real datasets ship some).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipeline.catalog import Dataset
from pipeline.ingest import EMOTION_NOTE, ingest_all
from pipeline.io import FrameReadError, read_depth, read_rgb
from schemas.tables import LABELLED
from stages.adapters.common import is_blank
from stages.depth import DepthError
from stages.labels import class_index

BLOCKING = {
    "clip_missing",
    "frame_missing",
    "depth_missing",
    "frame_unreadable",
    "frame_corrupt",
    "frame_too_large",
    "frame_name_clash",
    "depth_unusable",
    "depth_size_mismatch",
    "unsafe_path",
}


def _where(r: dict):
    """A sample's sheet row, or its id when it has none."""
    return r["ann_row"] if r["ann_row"] == r["ann_row"] else r["sample_id"]


def _check_labels(r: dict, ds: Dataset, problems: dict, notes: dict) -> None:
    """The sample's ingest notes, and a labelled sample's emotion outside the label scheme
    (a problem; AU-selected and macro-expression samples have none)."""
    note = r.get("note")
    for part in [] if is_blank(note) else str(note).split("; "):
        if not part.startswith(EMOTION_NOTE):  # that one is reported below as a problem
            notes[part.split(":")[0]].append((_where(r), part))
    if r["source"] == LABELLED and class_index(r["emotion"], ds.scheme) is None:
        problems["emotion_not_in_scheme"].append(
            (_where(r), f"{r['sample_id']}: emotion {r['emotion_raw']!r} is not in label scheme {ds.label_scheme}")
        )


def _check_frames(r: dict, root: Path, quick: bool, problems: dict) -> dict:
    """Decode the sample's colour frames (onset/apex only when `quick`); returns their sizes."""
    refs = [r["onset_path"], r["apex_path"]]
    if not quick:
        refs = list(dict.fromkeys([*refs, *(r.get("seq_paths") or [])]))
    sizes = {}
    for ref in refs:
        try:
            sizes[ref] = read_rgb(root / ref).shape[:2]
        except FrameReadError as ex:
            problems[ex.reason].append((ref, str(ex)))
    return sizes


def _check_depth(r: dict, root: Path, sizes: dict, problems: dict) -> None:
    """The sample's onset/apex depth maps decode and match their colour frames' size."""
    for key, ckey in (("onset_depth_path", "onset_path"), ("apex_depth_path", "apex_path")):
        ref = r.get(key)
        if not isinstance(ref, str):
            continue
        try:
            d = read_depth(root / ref)
        except (FrameReadError, DepthError) as ex:
            problems["depth_unusable"].append((ref, str(ex)))
            continue
        if r[ckey] in sizes and d.shape != sizes[r[ckey]]:
            colour = sizes[r[ckey]]
            problems["depth_size_mismatch"].append(
                (ref, f"{ref}: depth {d.shape[1]}x{d.shape[0]} but colour {r[ckey]} is {colour[1]}x{colour[0]}")
            )


def _check_recordings(ds: Dataset, problems: dict) -> int:
    """The unlabelled recordings (Part B) a run would screen: each opens and has frames
    (an empty or undecodable video, a frame folder with clashing names, depth of another
    size are problems naming the recording). Returns how many are usable."""
    from pipeline.screening import list_recordings
    from stages.adapters.unlabelled import unlabelled_videos

    videos, excl = unlabelled_videos(list_recordings(ds), dataset=ds.name, fps=ds.fps)
    for e in excl.itertuples():
        problems[e.reason].append((e.ann_file, e.detail))
    return len(videos)


def validate(ds: Dataset, quick: bool = False, catalog=None) -> dict:
    """{problems: {reason: [(where, detail)]}, notes: {...}, samples: n, blocking: bool,
    layout: {dataset: what was detected}, repairs: [applied repair records]}."""
    root = ds.root()
    got = ingest_all(ds, catalog, log=lambda *a: None)
    problems: dict[str, list] = defaultdict(list)
    notes: dict[str, list] = defaultdict(list)
    for e in got.exclusions.itertuples():
        where = int(e.ann_row) if e.ann_row == e.ann_row and e.ann_row is not None else e.ann_file
        problems[e.reason].append((where, e.detail))
    for r in got.samples.to_dict("records"):
        _check_labels(r, ds, problems, notes)
        _check_depth(r, root, _check_frames(r, root, quick, problems), problems)
    n_recordings = _check_recordings(ds, problems) if ds.unlabelled else 0
    return {
        "problems": dict(problems),
        "notes": dict(notes),
        "samples": len(got.samples),
        "recordings": n_recordings,
        "blocking": any(k in BLOCKING for k in problems),
        "layout": {k: v.describe() for k, v in got.layouts.items()},
        "repairs": got.repairs,
    }


def print_report(ds: Dataset, rep: dict, examples: int = 3, out=print) -> None:
    out(
        f"validate {ds.name} ({ds.adapter}) at {ds.root()}: {rep['samples']} usable samples"
        + (f", {rep['recordings']} unlabelled recording(s) to screen" if rep.get("recordings") else "")
    )
    for name, line in rep.get("layout", {}).items():
        out(f"  layout detected ({name}): {line}")
    if rep.get("repairs"):
        out(
            f"  sheet repairs: {sum(r['applied'] for r in rep['repairs'])} applied of {len(rep['repairs'])} "
            "(catalog repairs:; `mepipe plan` lists them)"
        )
    if not rep["problems"]:
        out("  no problems found")
    for reason, items in sorted(rep["problems"].items()):
        tag = "BLOCKING" if reason in BLOCKING else "warning"
        out(f"  [{tag}] {reason}: {len(items)}")
        for _, detail in items[:examples]:
            out(f"      {detail}")
    for what, items in sorted(rep["notes"].items()):
        out(f"  [note] {what}: {len(items)} (e.g. {items[0][1]})")
    out("  result: " + ("BLOCKING problems - fix the copy before preprocessing" if rep["blocking"] else "ok"))
