"""The QC page (issue 17, item 4): what a reader sees in the rendered HTML. Strips scale to
the window and link to their full-size file, AU-selected pairs and macro-expressions say
they carry no label (never `nan`), the timings table has its unit, the summary counts are
the hand-counted ones, and a version that holds only some feeds' arrays (a run with
METHODS=microauclip) gets a page instead of a KeyError. Checked on a small hand-made
version (every count known in advance), on a real microauclip run, and in headless
Chromium at 1280 px (no horizontal overflow)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import zarr

from pipeline.qc import write_report
from schemas.arrays import ARRAYS

SCHEME = {"happiness": ["happy"], "disgust": ["disgust"], "others": ["others"]}
LONG_DETAIL = "/very/long/path/" + "x" * 400  # one word wider than any window


class Page(HTMLParser):
    """The parts of a page the tests read: text, pictures (src, enclosing link), tables
    (with the heading before each), <style> text."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.style, self.pictures, self.tables = [], "", [], []
        self._href, self._heading, self._in, self._cell = None, "", [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._in.append(tag)
        if tag == "a":
            self._href = a.get("href")
        elif tag == "img":
            self.pictures.append((a.get("src"), self._href, self._heading))
        elif tag == "table":
            self.tables.append((self._heading, []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag in ("h1", "h2", "h3"):
            self._heading = ""

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if tag == "a":
            self._href = None
        elif tag in ("td", "th"):
            self.tables[-1][1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        tag = self._in[-1] if self._in else ""
        if tag == "style":
            self.style += data
        elif tag in ("h1", "h2", "h3"):
            self._heading += data
        elif self._cell is not None:
            self._cell += data

    def table(self, heading_part: str) -> list[list[str]]:
        hits = [rows for h, rows in self.tables if heading_part in h]
        assert len(hits) == 1, f"one table under a heading with {heading_part!r}: {[h for h, _ in self.tables]}"
        return hits[0]


class FakeStore:
    """What write_report reads of a Store: one snapshot's group and tables."""

    def __init__(self, group, tables: dict):
        self.g, self.tables = group, tables

    def group(self, snapshot):
        return self.g

    def table(self, name, snapshot):
        return self.tables.get(name)


def _group(arrays: list[str], n: int):
    g = zarr.group(store=zarr.storage.MemoryStore())
    rng = np.random.default_rng(0)
    for name in arrays:
        spec = ARRAYS[name]
        data = rng.integers(0, 200, (n, *spec.shape)).astype(spec.dtype)
        g.create_array(name, shape=data.shape, dtype=data.dtype)[...] = data
    return g


def _row(i, source, status, emotion, fps=("crop",), reason=None):
    r = {
        "index": i,
        "sample_id": f"t/{source}/{i}",
        "source": source,
        "status": status,
        "reason": reason,
        "emotion": emotion,
        "au_raw": "AU4+L10" if source == "labelled" else None,
        "onset_depth_path": None,
    }
    return r | {
        f"fp_{p}": (f"fp{i}" if p in fps and status == "ok" else None)
        for p in ("crop", "depth", "flow", "micro", "clip")
    }


def _version(arrays: list[str], rows: list[dict]):
    man = pd.DataFrame(rows)
    excl = pd.DataFrame(
        [
            {"sample_id": "t/labelled/4", "stage": "crop", "reason": "no_face", "detail": LONG_DETAIL},
            {"sample_id": "t/s01/x", "stage": "ingest", "reason": "apex_before_onset", "detail": "row 9"},
        ]
    )
    ds = SimpleNamespace(
        name="t", has_depth=False, params={}, schemes={}, label_scheme="s7", scheme=SCHEME, root=lambda: Path(".")
    )
    return FakeStore(_group(arrays, len(rows)), {"manifest": man, "exclusions": excl}), ds


CROP_ARRAYS = ["pairs/onset_rgb", "pairs/apex_rgb", "pairs/onset_landmarks", "pairs/rgb_diff", "pairs/gray_diff"]
ROWS = [
    _row(0, "labelled", "ok", "happy"),
    _row(1, "labelled", "ok", "disgust"),
    _row(2, "selected", "ok", None),
    _row(3, "macro", "ok", None),
    _row(4, "labelled", "excluded", "happy", reason="no_face"),
]
TIMINGS = {"read_ms": 7.34, "face_ms": 437.86}


def _render(tmp_path, arrays, rows=ROWS, timings=TIMINGS) -> tuple[Page, Path, list[str]]:
    store, ds = _version(arrays, rows)
    page, warnings = write_report(store, ds, "SNAP", tmp_path, timings)
    return Page(page.read_text()), page, warnings


def _width(png: Path) -> int:
    return cv2.imread(str(png)).shape[1]


def test_the_summary_counts_sources_classes_and_exclusion_reasons(tmp_path):
    p, _, _ = _render(tmp_path, CROP_ARRAYS)
    text = " ".join(p.text)
    assert text.index("Summary") < text.index("Stage timings") < text.index("onset (landmarks)")  # summary first
    assert p.tables[0][0] == "Samples per source"
    assert p.table("per source")[1:] == [["labelled", "3", "2"], ["selected", "1", "1"], ["macro", "1", "1"]]
    assert p.table("per class")[1:] == [
        ["happiness", "1"],
        ["disgust", "1"],
        ["others", "0"],
        ["(not in the scheme)", "0"],
    ]
    assert p.table("per reason")[1:] == [["crop", "no_face", "1"], ["ingest", "apex_before_onset", "1"]]


def test_unlabelled_sources_say_so_instead_of_nan(tmp_path):
    p, _, _ = _render(tmp_path, CROP_ARRAYS)
    heads = [h for _, _, h in p.pictures if h.startswith("t/")]
    assert "t/selected/2 (AU-selected (no label), AU -)" in heads
    assert "t/macro/3 (macro-expression (no label), AU -)" in heads
    assert "t/labelled/0 (happy, AU AU4+L10)" in heads
    assert not re.search(r"\bnan\b", " ".join(p.text), re.I)


def test_strips_scale_to_the_page_and_link_to_their_full_size_file(tmp_path):
    p, page, _ = _render(tmp_path, CROP_ARRAYS)
    assert re.search(r"img\{[^}]*max-width:100%[^}]*height:auto", p.style)
    strips = [(src, href) for src, href, _ in p.pictures]
    assert len(strips) == 4  # the 4 ok samples
    assert all(href == src and (page.parent / src).is_file() for src, href in strips)
    # onset, apex, RGB diff, gray diff: 4 tiles of 200 px
    assert {_width(page.parent / src) for src, _ in strips} == {800}


def test_timings_table_states_its_unit(tmp_path):
    p, _, _ = _render(tmp_path, CROP_ARRAYS)
    assert p.table("Stage timings") == [["stage", "time per sample (ms)"], ["read", "7.3"], ["face", "437.9"]]
    assert "Mean wall-clock time per sample" in " ".join(p.text)


def test_a_version_with_only_some_feeds_gets_a_page(tmp_path):
    """The KeyError 'pairs/onset_depth' of `make preprocess METHODS=microauclip`: tiles only
    for the arrays the version holds, and for a sample only where its row says they were
    written (fp_<product>)."""
    rows = [
        _row(0, "labelled", "ok", "happy", fps=("micro",)),  # micro only: its flow tile
        _row(1, "labelled", "ok", "disgust", fps=()),  # nothing written for it
    ]
    p, page, warnings = _render(tmp_path, ["micro/flow224", "micro/apex_landmarks224", "pairs/onset_rgb"], rows)
    assert warnings == []
    assert [src for src, _, _ in p.pictures] == ["sample_00000.png"]
    assert _width(page.parent / "sample_00000.png") == 200
    assert "no image array of this sample in this version" in " ".join(p.text)


# -- a real run that made one method's feed -------------------------------------------------


@pytest.fixture(scope="module")
def microauclip_run(small_demo_source, tmp_path_factory):
    from pipeline.catalog import load_catalog
    from pipeline.runner import run
    from pipeline.store import Store
    from tests.conftest import write_catalog

    tmp = tmp_path_factory.mktemp("qc_micro")
    root = tmp / "data"
    shutil.copytree(small_demo_source, root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEPIPE_TEST_ROOT", str(root))
        cat = load_catalog(write_catalog(tmp))
        res = run(cat, cat.dataset("t"), log=lambda *a: None, progress=False, methods=["microauclip"], workers=2)
        st = Store(cat.store_root / "t")
        page, warnings = write_report(st, cat.dataset("t"), res.snapshot, res.run_dir, res.timings)
    return page, warnings, st, res.snapshot


@pytest.mark.slow
def test_the_qc_page_of_a_microauclip_run(microauclip_run):
    page, warnings, _, _ = microauclip_run
    p = Page(page.read_text())
    assert warnings == []
    strips = [src for src, _, h in p.pictures if h.startswith("t/")]
    assert strips
    # crop (onset, apex, RGB diff, gray diff) + micro (magnified apex, flow 224): 6 tiles
    assert {_width(page.parent / s) for s in strips} == {1200}
    assert p.table("Stage timings")[0] == ["stage", "time per sample (ms)"]


# -- headless Chromium at 1280 px ------------------------------------------------------------

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
MEASURE = (
    "<script>window.addEventListener('load', () => {const d = document.createElement('div');"
    "d.id = 'measured'; d.textContent = document.documentElement.scrollWidth + ' ' + window.innerWidth;"
    "document.body.appendChild(d);});</script>"
)


def _scroll_and_window_width(page: Path) -> tuple[int, int]:
    """Render `page` (a copy with a measuring script) in headless Chromium, 1280 px wide."""
    probe = page.with_name("measure.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    m = re.search(r"id=\"measured\">(\d+) (\d+)<", out.stdout)
    assert m, f"no measurement from chromium (rc {out.returncode}): {out.stderr[-2000:]}"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)")
def test_no_horizontal_overflow_at_1280_px_in_chromium(tmp_path, monkeypatch):
    # crop + flow + strain + dynamic image + TIM frame: 8 tiles, a 1600 px strip; a 400-char word
    arrays = CROP_ARRAYS + ["pairs/flow_tvl1", "pairs/strain_tvl1", "fdp/dynamic_image", "attrcl/rgb16"]
    rows = [r | {"fp_flow": "f", "fp_clip": "c"} if r["status"] == "ok" else r for r in ROWS]
    _, page, _ = _render(tmp_path, arrays, rows)
    assert _width(page.parent / "sample_00000.png") == 1600
    scroll, window = _scroll_and_window_width(page)
    assert window == 1280 and scroll <= window, (scroll, window)
    # the same page without its style sheet overflows: the check can fail
    monkeypatch.setattr("pipeline.qc.STYLE", "")
    _, bare, _ = _render(tmp_path / "bare", arrays, rows)
    scroll, window = _scroll_and_window_width(bare)
    assert scroll > window, (scroll, window)


@pytest.mark.slow
def test_the_card_of_a_microauclip_run_lists_that_feed_only(microauclip_run):
    """The stored card of a real version: its hub header names the one feed it holds."""
    from pipeline.versions import card
    from tests.test_card import header

    _, _, st, snap = microauclip_run
    h = header(card(st, snap))
    assert h["configs"] == [
        {
            "config_name": "microauclip",
            "data_files": [{"split": "train", "path": ["micro/flow224", "micro/apex_landmarks224"]}],
        }
    ]
    assert h["size_categories"] == ["n<1K"]  # the 7 rows of the small demo
