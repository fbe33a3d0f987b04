"""Find where a user's copy of a dataset keeps its frames and annotation files.

Releases unpack differently from copy to copy: CAS(ME)^3 Part A's archive holds one more
``part_A/`` level (``part_A/data/part_A/spNO.1/a/color/1.jpg``) than a hand-made copy,
public loaders keep the label sheets under ``part_A/annotation/``, zip tools add a folder
of the archive's name. The catalog's ``frames_dir`` and ``annotation`` say where to start
looking; this module checks what is really there against the dataset's signature (e.g.
"``spNO.<n>`` subject folders") and returns the layout it found, or an error saying what
it tried and what it found instead, with the catalog line to write.

Only folder names are listed (never the frame files), at most a few levels deep, so this
costs milliseconds on a full release.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.catalog import CatalogError, Dataset
from pipeline.io import symlink_loop

SHEET_EXT = (".xlsx", ".xls", ".csv")
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv")
SCAN_DEPTH = 5  # folder levels below the root searched for a frames folder
SCAN_LIMIT = 4000  # folders listed at most while searching


IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Signature:
    """What the frames folder of a dataset holds: child folders whose names match
    `child`, each (when `inside` is given) holding an entry that `inside` accepts, with
    image (or video) files `media_at` levels below the child (0 = in it; e.g. 2 for
    spNO.1/a/color/1.jpg), looked for in its first few sub-folders. The media depth is
    what tells the frames folder from a folder one level above it."""

    what: str
    child: str
    inside: str | None = None  # regex an entry of each matching child must match
    media_at: tuple = (1,)

    def count(self, folder: Path) -> int:
        """Children of `folder` that match (0 when it is not a readable folder)."""
        n = 0
        for name in _subdirs(folder):
            if (
                re.fullmatch(self.child, name, re.IGNORECASE)
                and (
                    self.inside is None
                    or any(re.fullmatch(self.inside, e, re.IGNORECASE) for e in _entries(folder / name))
                )
                and any(_media_below(folder / name, d) for d in self.media_at)
            ):
                n += 1
        return n


def _media_below(folder: Path, depth: int, breadth: int = 3) -> bool:
    """An image or video file `depth` folder levels below `folder` (first `breadth`
    sub-folders per level; stops at the first file found)."""
    if depth == 0:
        try:
            with os.scandir(folder) as it:
                return any(e.name.lower().endswith(IMAGE_EXT + VIDEO_EXT) for e in it)
        except OSError:
            return False
    return any(_media_below(folder / d, depth - 1, breadth) for d in _subdirs(folder)[:breadth])


SIGNATURES = {
    "casme3_part_a": Signature("spNO.<n> subject folders", r"spNO\.\d+", media_at=(2, 1)),
    "casme3_part_c": Signature("subject folders holding color/", r"[^.].*", inside=r"color"),
    "casme2": Signature("sub<nn> subject folders", r"sub\d+"),
    "samm": Signature("<nnn> subject folders", r"\d{2,3}"),
    "smic_hs": Signature("s<n> subject folders holding micro/", r"s\d+", inside=r"micro", media_at=(3,)),
    "mmew": Signature(
        "emotion folders (happiness, surprise, ...)", r"happiness|surprise|disgust|fear|sadness|others|anger|repression"
    ),
    "4dme": Signature("subject folders holding clip folders of frames", r"[^.].*"),
    "casme2_sq": Signature("s<nn> subject folders holding <nn>_<code> clip folders", r"s\d+", inside=r"\d+_\d{4}.*"),
}
# long recordings: <subject>/<video file>, or <subject>/<name>/color/<n>.jpg
UNLABELLED = Signature("subject folders holding videos or frame folders", r"[^.].*", media_at=(0, 2))
# CAS(ME)^3 Part B (the unlabelled long recordings) keeps spNO.<n> subject folders like Part A
UNLABELLED_FOR = {"casme3_part_a": dataclasses.replace(SIGNATURES["casme3_part_a"], media_at=(0, 2))}


@dataclass
class Detected:
    """The layout found for one dataset copy (paths relative to the dataset root)."""

    frames_dir: str
    annotation: str | None = None
    known_bad: str | None = None
    macro_annotation: str | None = None  # the all-expressions sheet (macro-expression rows)
    unlabelled_frames_dir: str | None = None
    lines: list[str] = field(default_factory=list)  # what was found, for plan/validate/run logs

    def describe(self) -> str:
        return "; ".join(self.lines)


def _subdirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.is_dir())
    except OSError:
        return []


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def find_frames_dir(root: Path, configured: str, sig: Signature, key: str) -> tuple[str, str]:
    """(frames folder relative to `root`, a line saying what was found). Tries the
    configured folder, then each of its child folders (the release's extra level, e.g.
    part_A/data/part_A); nothing there -> a CatalogError naming what was tried and any
    folder under the root that does match."""
    base = root / configured
    if symlink_loop(base):
        raise CatalogError(f"{key}: frames folder {base} is a symlink loop")
    n = sig.count(base)
    if n:
        return configured, f"frames {configured}/ ({n} {sig.what})"
    tried = [f"{configured}/ ({_what_is(base)})"]
    for child in _subdirs(base):
        m = sig.count(base / child)
        if m:
            rel = f"{configured}/{child}"
            return rel, f"frames {rel}/ ({m} {sig.what}; one level below {key}: {configured})"
        tried.append(f"{configured}/{child}/ (no {sig.what})")
    found = _search(root, sig)
    hint = (
        (
            f"found {found}/ ({sig.count(root / found)} {sig.what}, e.g. "
            f"{found}/{next(c for c in _subdirs(root / found) if re.fullmatch(sig.child, c, re.I))}/...); "
            f"set {key}: {found}"
        )
        if found
        else f"no folder under {root} holds {sig.what}"
    )
    raise CatalogError(
        f"{key}: no frames found under {root}. Tried {', '.join(tried[:6])}"
        f"{' and more' if len(tried) > 6 else ''}; {hint}"
    )


def _what_is(p: Path) -> str:
    if not p.exists():
        return "absent"
    if not p.is_dir():
        return "not a folder"
    subs = _subdirs(p)
    return f"holds {', '.join(subs[:4])}{', ...' if len(subs) > 4 else ''}" if subs else "empty"


def _search(root: Path, sig: Signature) -> str | None:
    """The shallowest folder under `root` (breadth first, SCAN_DEPTH levels, SCAN_LIMIT
    folders) whose children match `sig`, relative to root."""
    level, seen = [root], 0
    for _ in range(SCAN_DEPTH):
        nxt = []
        for d in level:
            for name in _subdirs(d):
                seen += 1
                if seen > SCAN_LIMIT:
                    return None
                p = d / name
                if sig.count(p):
                    return _rel(p, root)
                nxt.append(p)
        level = nxt
    return None


def find_file(root: Path, name: str, frames_dir: str, key: str, required: bool = True) -> str | None:
    """A catalog file (annotation sheet, known-bad list) relative to the root: as written,
    else under <top>/annotation/, annotation/ or <top>/ where <top> is the frames folder's
    first component (part_A/annotation/ of CAS(ME)^3). Missing -> CatalogError naming
    every place tried and the spreadsheets that are there."""
    top = frames_dir.split("/", 1)[0] if frames_dir else ""
    base = Path(name).name
    cands = list(
        dict.fromkeys([name] + [f"{d}/{base}" for d in (f"{top}/annotation", "annotation", top, "annotations") if d])
    )
    for c in cands:
        p = root / c
        if symlink_loop(p):
            raise CatalogError(f"{key}: {p} is a symlink loop")
        if p.is_file():
            if not p.resolve().is_relative_to(root.resolve()):
                raise CatalogError(f"{key}: {c} leaves the dataset root {root}")
            return c
    if not required:
        return None
    sheets = []
    for d in ["", "annotation", "annotations", top, f"{top}/annotation" if top else ""]:
        for e in _entries(root / d) if d is not None else []:
            if e.lower().endswith(SHEET_EXT):
                sheets.append(f"{d}/{e}" if d else e)
    sheets = sorted(set(sheets))
    raise CatalogError(
        f"{key}: file {base!r} not found under {root}; tried {', '.join(cands)}"
        + (f"; spreadsheets there: {', '.join(sheets[:8])}" if sheets else "; no spreadsheet found")
    )


def detect(ds: Dataset) -> Detected:
    """The layout of dataset `ds`'s copy (its root must exist)."""
    root = ds.root()
    where = f"datasets.{ds.name}"
    sig = SIGNATURES.get(ds.adapter)
    if sig is None:
        raise CatalogError(f"{where}.adapter: no layout signature for {ds.adapter!r}")
    # a looping frames folder, then the sheets: a copy without its annotation is the more
    # basic problem than frames in an unexpected place
    if symlink_loop(root / ds.frames_dir):
        raise CatalogError(f"{where}.frames_dir: frames folder {root / ds.frames_dir} is a symlink loop")
    ann = find_file(root, ds.annotation, ds.frames_dir, f"{where}.annotation") if ds.annotation else None
    bad = find_file(root, ds.known_bad, ds.frames_dir, f"{where}.known_bad") if ds.known_bad else None
    mac = (
        find_file(root, ds.macro_annotation, ds.frames_dir, f"{where}.macro_annotation")
        if ds.macro_annotation
        else None
    )
    frames, line = find_frames_dir(root, ds.frames_dir, sig, f"{where}.frames_dir")
    out = Detected(frames_dir=frames, annotation=ann, known_bad=bad, macro_annotation=mac, lines=[line])
    if ann:
        out.lines.append(f"annotation {ann}")
    if bad:
        out.lines.append(f"known-bad list {bad}")
    if mac:
        out.lines.append(f"macro-expression sheet {mac}")
    if ds.has_depth and ds.adapter == "casme3_part_a":
        out.lines.append(f"depth {_depth_layout(root / frames)}")
    if ds.unlabelled:
        rel = ds.unlabelled["frames_dir"]
        ufr, uline = find_frames_dir(
            root, rel, UNLABELLED_FOR.get(ds.adapter, UNLABELLED), f"{where}.unlabelled.frames_dir"
        )
        out.unlabelled_frames_dir = ufr
        out.lines.append("unlabelled " + uline)
    return out


def _depth_layout(frames: Path) -> str:
    """Where the first clip keeps its depth frames: <clip>/depth/ or PNGs in <clip>/."""
    for subj in _subdirs(frames)[:3]:
        for clip in _subdirs(frames / subj)[:3]:
            c = frames / subj / clip
            if (c / "depth").is_dir():
                return "in <clip>/depth/ (16-bit PNG)"
            if any(e.lower().endswith(".png") for e in _entries(c)):
                return "as PNGs in the clip folder"
            return "not found in the first clip (samples without depth frames are excluded)"
    return "not found"


def resolve(ds: Dataset) -> tuple[Dataset, Detected | None]:
    """`ds` with its frames folder, annotation, known-bad list and unlabelled folder
    replaced by the ones found in the copy, and the layout found (None: a composite,
    whose parts are resolved one by one)."""
    if ds.adapter == "composite":
        return ds, None
    found = detect(ds)
    unl = dict(ds.unlabelled, frames_dir=found.unlabelled_frames_dir) if ds.unlabelled else None
    return dataclasses.replace(
        ds,
        frames_dir=found.frames_dir,
        annotation=found.annotation or ds.annotation,
        known_bad=found.known_bad or ds.known_bad,
        macro_annotation=found.macro_annotation or ds.macro_annotation,
        unlabelled=unl,
    ), found
