"""OpenFace 2.x CSV rows -> the recording's frames (estimator: openface).

OpenFace writes no file name per row. Facts used here (OpenFace 2.x,
lib/local/Utilities/src/SequenceCapture.cpp; OpenFace issues #149, #487): with -fdir it
reads the folder's entries sorted by a plain byte comparison ('10.jpg' < '2.jpg') and
keeps those whose extension is exactly .jpg/.jpeg/.png/.bmp ('.JPG' is skipped); rows are
numbered frame = 1, 2, ... by position, one per image, timestamp 0. From a video,
frame counts decoded frames from 1 and timestamp = (frame - 1) / fps. The sidecar
<name>_of_details.txt starts with 'Input:<path>'.

`openface_like_csv` below writes CSVs the way OpenFace numbers them (written from those
facts, not with the code under test), with one planted high AU intensity on one known
image; the screening must put the apex on that image's frame number.
"""

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.catalog import CatalogError, load_catalog
from pipeline.screening import screen
from stages.adapters.common import frame_number
from stages.au import (
    AU_COLUMNS,
    AUS,
    AUInputError,
    openface_details_input,
    openface_frame_map,
    openface_image_order,
    openface_input_kind,
)
from tests.conftest import write_catalog

PLANTED_AU = 12  # AU12_r = 4.0 on the planted image, 0.2 everywhere else
PHI = 2.1
LAG = 3  # onset_lag_at_30fps 3 at 30 fps: onset = apex - 3


# ---------------------------------------------------------------- OpenFace-like CSVs
def openface_fdir_order(names):
    """What OpenFace -fdir reads, in its order: names sorted by their bytes, kept when the
    part from the last dot is exactly one of its four extensions."""
    keep = [n for n in names if "." in n and n[n.rindex(".") :] in (".jpg", ".jpeg", ".png", ".bmp")]
    return [b.decode() for b in sorted(n.encode() for n in keep)]


def openface_like_csv(sources, planted, video=False, fps=30.0):
    """A FeatureExtraction-style CSV: one row per source (image or video frame) in the
    order OpenFace read them, frame = 1.., timestamp 0 (images) or (frame - 1) / fps
    (video); columns named with OpenFace's leading spaces."""
    n = len(sources)
    cols = {
        "frame": np.arange(1, n + 1),
        " face_id": np.zeros(n, int),
        " timestamp": np.round(np.arange(n) / fps, 3) if video else np.zeros(n),
        " confidence": np.full(n, 0.98),
        " success": np.ones(n, int),
    }
    for c in AU_COLUMNS:
        cols[f" {c}_r"] = np.full(n, 0.2)
    df = pd.DataFrame(cols)
    df.loc[[s == planted for s in sources], f" AU{PLANTED_AU:02d}_r"] = 4.0
    assert (df[f" AU{PLANTED_AU:02d}_r"] == 4.0).sum() == 1
    return df


def jpeg_bytes(value=128):
    ok, buf = cv2.imencode(".jpg", np.full((8, 8, 3), value, np.uint8))
    return buf.tobytes()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A dataset root holding only unlabelled recordings (part_B/data) and OpenFace CSVs
    (openface/), and a catalog for it with estimator: openface."""
    root = tmp_path / "data"
    (root / "part_B" / "data").mkdir(parents=True)
    (root / "openface").mkdir()
    monkeypatch.setenv("MEPIPE_TEST_ROOT", str(root))
    cat = write_catalog(tmp_path, params=f"au: {{estimator: openface, phi: {PHI}, onset_lag_at_30fps: {LAG}}}\n")
    cat.write_text(cat.read_text() + "    unlabelled:\n      frames_dir: part_B/data\n      openface_dir: openface\n")
    return root, cat


def frame_folder(root, names, subject="s1", name="v1"):
    color = root / "part_B" / "data" / subject / name / "color"
    color.mkdir(parents=True)
    for n in names:
        (color / n).write_bytes(jpeg_bytes())
    return color


def write_csv(root, df, subject="s1", name="v1", details=None):
    d = root / "openface" / subject
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / f"{name}.csv", index=False)
    if details is not None:
        (d / f"{name}_of_details.txt").write_text(f"Input:{details}\nCamera parameters:500,500,4,4\nOutput:\nAU\n")
    return d / f"{name}.csv"


def run_screen(cat, prev=None):
    c = load_catalog(cat)
    return screen(c.dataset("t"), *(prev or (None, None)), get_client=None, log=lambda *a: None, progress=False)


def assert_single_apex(scr, apex, file_name):
    assert list(scr.samples["apex"]) == [apex], scr.samples[["apex", "onset"]]
    assert list(scr.samples["onset"]) == [apex - LAG]
    assert scr.samples["apex_path"].iloc[0].endswith(f"/color/{file_name}")
    t = scr.au_frames.set_index("frame")
    assert t.loc[apex, f"AU{PLANTED_AU:02d}"] == pytest.approx(4.0)
    assert (t.drop(index=apex)[f"AU{PLANTED_AU:02d}"].dropna() < 1).all()


PLAIN = [f"{k}.jpg" for k in range(1, 13)]  # text order 1, 10, 11, 12, 2, ...
PADDED = [f"{k:04d}.jpg" for k in range(1, 13)]  # text order = numeric order
ZERO_BASED = [f"{k}.jpg" for k in range(0, 12)]  # as the demo and CAS(ME)^3 Part B: 0.jpg ..


# ---------------------------------------------------------------- whole screening
@pytest.mark.parametrize("names", [PLAIN, PADDED, ZERO_BASED], ids=["plain", "padded", "zero-based"])
def test_image_folder_csv_apex_lands_on_the_planted_image(env, names):
    root, cat = env
    frame_folder(root, names)
    planted = next(n for n in names if frame_number(n) == 7)
    write_csv(root, openface_like_csv(openface_fdir_order(names), planted))  # timestamps all 0
    scr = run_screen(cat)
    assert_single_apex(scr, 7, planted)
    assert sorted(scr.au_frames["frame"]) == sorted(frame_number(n) for n in names)
    assert scr.au_frames["face"].all()


@pytest.mark.parametrize("names", [PLAIN, ZERO_BASED], ids=["plain", "zero-based"])
def test_video_input_csv_maps_rows_in_numeric_frame_order(env, names):
    """A CSV of a video made of the folder's frames (timestamps increasing): row k is the
    k-th frame in time (numeric) order."""
    root, cat = env
    frame_folder(root, names)
    numeric = sorted(names, key=frame_number)
    planted = next(n for n in names if frame_number(n) == 7)
    write_csv(root, openface_like_csv(numeric, planted, video=True))
    assert_single_apex(run_screen(cat), 7, planted)


def test_sidecar_saying_video_decides_over_zero_timestamps(env):
    """The _of_details.txt 'Input:' line is the CSV's own statement of what OpenFace read:
    a video file -> numeric order, even though the timestamps (all 0) alone would say
    image folder; without the sidecar the same CSV is read as an image folder."""
    root, cat = env
    frame_folder(root, PLAIN)
    csv = write_csv(root, openface_like_csv(PLAIN, "7.jpg"), details="/recordings/s1/v1.mp4")  # numeric order
    assert_single_apex(run_screen(cat), 7, "7.jpg")
    (csv.parent / "v1_of_details.txt").unlink()
    assert_single_apex(run_screen(cat), 4, "4.jpg")  # row 7 of the byte order 1,10,11,12,2,3,4 is 4.jpg
    # and a sidecar naming the folder reads it as one (same answer as the timestamps)
    write_csv(root, openface_like_csv(openface_fdir_order(PLAIN), "7.jpg"), details="/recordings/s1/v1/color")
    assert_single_apex(run_screen(cat), 7, "7.jpg")


@pytest.mark.parametrize("extra", [-1, 1])
def test_row_count_mismatch_is_a_clear_error(env, extra):
    root, cat = env
    color = frame_folder(root, PLAIN)
    order = openface_fdir_order(PLAIN)
    df = openface_like_csv(order, "7.jpg")
    df = df.iloc[: len(df) + extra] if extra < 0 else pd.concat([df, df.iloc[[0]]], ignore_index=True)
    df["frame"] = np.arange(1, len(df) + 1)
    csv = write_csv(root, df)
    with pytest.raises(CatalogError) as e:
        run_screen(cat)
    msg = str(e.value)
    assert str(csv) in msg and f"{12 + extra} rows" in msg and "12 images" in msg and str(color) in msg


def test_frame_column_not_one_to_n_is_an_error(env):
    root, cat = env
    frame_folder(root, PLAIN)
    df = openface_like_csv(openface_fdir_order(PLAIN), "7.jpg")
    df["frame"] = np.arange(0, 12)  # 0-based: not what FeatureExtraction writes
    csv = write_csv(root, df)
    with pytest.raises(CatalogError, match=r"'frame' column is not 1\.\.12"):
        run_screen(cat)
    assert csv.is_file()


def test_upper_case_extension_is_skipped_like_openface(env):
    """'5.JPG' is a frame of ours (extensions compared case-insensitively) but OpenFace
    -fdir skips it: its CSV has 11 rows; frame 5 gets no estimate (NaN, said in an
    exclusion) and the apex still lands on 7.jpg. A 12-row CSV cannot be of this folder."""
    root, cat = env
    names = [n if n != "5.jpg" else "5.JPG" for n in PLAIN]
    frame_folder(root, names)
    order = openface_fdir_order(names)
    assert len(order) == 11 and "5.JPG" not in order
    write_csv(root, openface_like_csv(order, "7.jpg"))
    scr = run_screen(cat)
    assert_single_apex(scr, 7, "7.jpg")
    t = scr.au_frames.set_index("frame")
    assert len(t) == 12 and not t.loc[5, "face"] and t.drop(index=5)["face"].all()
    ex = scr.exclusions[scr.exclusions["reason"] == "frames_not_estimated"]
    assert len(ex) == 1 and "[5]" in ex["detail"].iloc[0]
    write_csv(root, openface_like_csv(names, "7.jpg"))  # 12 rows: as if 5.JPG had been read
    with pytest.raises(CatalogError, match="12 rows.*11 images"):
        run_screen(cat)


def video_file(root, n=12):
    """part_B/data/s1/v1.avi: `n` frames of 16x16 (MJPG, 30 fps)."""
    d = root / "part_B" / "data" / "s1"
    d.mkdir(parents=True)
    w = cv2.VideoWriter(str(d / "v1.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (16, 16))
    for i in range(n):
        w.write(np.full((16, 16, 3), 10 * i, np.uint8))
    w.release()


def test_video_file_recording(env):
    """A video file: row k is 0-based frame k - 1 (as before); an image-folder CSV or a
    wrong row count is an error naming the video."""
    root, cat = env
    video_file(root)
    frames = list(range(12))
    write_csv(root, openface_like_csv(frames, 7, video=True), details="/recordings/s1/v1.avi")
    scr = run_screen(cat)
    assert list(scr.samples["apex"]) == [7] and scr.samples["apex_path"].iloc[0].endswith("v1.avi#7")
    write_csv(root, openface_like_csv(frames, 7), details="/recordings/s1/v1_frames")
    with pytest.raises(CatalogError, match="image folder.*video file"):
        run_screen(cat)
    (root / "openface" / "s1" / "v1_of_details.txt").unlink()
    write_csv(root, openface_like_csv(frames[:11], 7, video=True))
    with pytest.raises(CatalogError, match=r"v1\.csv: 11 rows, but video .*v1\.avi has 12 frames"):
        run_screen(cat)


def test_a_container_frame_count_that_is_off_is_checked_by_decoding(env, monkeypatch):
    """MP4 containers often report an estimated frame count: a CSV that fits the frames
    the video really decodes to is accepted; one that fits neither names both counts."""
    import pipeline.screening as scr_mod

    root, cat = env
    video_file(root)
    real = scr_mod.video_frame_count
    monkeypatch.setattr(scr_mod, "video_frame_count", lambda p: (real(p)[0] + 2, real(p)[1]))  # says 14
    write_csv(root, openface_like_csv(list(range(12)), 7, video=True))
    scr = run_screen(cat)
    assert list(scr.samples["apex"]) == [7]
    write_csv(root, openface_like_csv(list(range(13)), 7, video=True))
    with pytest.raises(
        CatalogError,
        match=r"13 rows, but video .*v1\.avi has 12 frames.*the container says 14 "
        r"frames, decoding gives 12",
    ):
        run_screen(cat)


def test_changed_csv_or_sidecar_is_re_estimated(env):
    root, cat = env
    frame_folder(root, PLAIN)
    csv = write_csv(root, openface_like_csv(PLAIN, "7.jpg"), details="/recordings/s1/v1.mp4")
    first = run_screen(cat)
    assert first.recomputed == ["s1/v1"]
    again = run_screen(cat, (first.au_frames, first.videos))
    assert again.recomputed == [] and list(again.samples["apex"]) == [7]
    (csv.parent / "v1_of_details.txt").unlink()  # now read as an image folder
    third = run_screen(cat, (first.au_frames, first.videos))
    assert third.recomputed == ["s1/v1"] and list(third.samples["apex"]) == [4]


# ---------------------------------------------------------------- the pure functions
def test_image_order_hand_worked():
    names = [f"{k}.jpg" for k in range(1, 13)]
    assert openface_image_order(reversed(names)) == [
        "1.jpg",
        "10.jpg",
        "11.jpg",
        "12.jpg",
        "2.jpg",
        "3.jpg",
        "4.jpg",
        "5.jpg",
        "6.jpg",
        "7.jpg",
        "8.jpg",
        "9.jpg",
    ]
    mixed = [
        "b.png",
        "B.png",
        "a.JPG",
        "c.jpeg",
        "d.JPEG",
        "e.bmp",
        "f.tif",
        "notes.txt",
        "g.tar.png",
        "h.jpg.bak",
        "Thumbs.db",
        "i.Png",
    ]
    assert openface_image_order(mixed) == ["B.png", "b.png", "c.jpeg", "e.bmp", "g.tar.png"]


def test_details_input_line():
    text = "Input:/data/s1/v1.mp4\nCamera parameters:500,500,320,240\nOutput:/out/v1.csv\n"
    assert openface_details_input(text) == "/data/s1/v1.mp4"
    assert openface_details_input("Input:C:\\data\\s1\\v1\\color\r\nOutput:x\r\n") == "C:\\data\\s1\\v1\\color"
    assert openface_details_input("") is None and openface_details_input(None) is None


def test_input_kind():
    assert openface_input_kind([0, 0, 0], "/data/s1/v1.MP4") == "video"
    assert openface_input_kind([0, 0.033, 0.067], "/data/s1/v1/color/") == "images"  # the sidecar decides
    assert openface_input_kind([0, 0, 0]) == "images"
    assert openface_input_kind([0, 0.033, 0.067]) == "video"
    assert openface_input_kind([0]) is None  # one row: both read 0
    assert openface_input_kind([0, 0.033, 0.033]) is None  # neither pattern
    assert openface_input_kind([np.nan, np.nan]) is None  # no timestamp column


def test_frame_map_cases():
    plain = {k: f"part_B/data/s1/v1/color/{k}.jpg" for k in range(1, 13)}
    names = list(reversed(PLAIN))
    # image folder: row k -> number of the k-th image in byte order
    np.testing.assert_array_equal(
        openface_frame_map(range(1, 13), "images", "frames", plain, names), [1, 10, 11, 12, 2, 3, 4, 5, 6, 7, 8, 9]
    )
    # video of these frames: numeric order
    np.testing.assert_array_equal(openface_frame_map(range(1, 13), "video", "frames", plain, names), range(1, 13))
    # an image OpenFace reads that is not a numbered frame of ours -> -1
    np.testing.assert_array_equal(
        openface_frame_map(range(1, 14), "images", "frames", plain, names + ["cover.jpg"]),
        [1, 10, 11, 12, 2, 3, 4, 5, 6, 7, 8, 9, -1],
    )
    # video file: 0-based
    np.testing.assert_array_equal(openface_frame_map([1, 2, 3], "video", "file", 3), [0, 1, 2])
    np.testing.assert_array_equal(openface_frame_map([1, 2, 3], None, "file", 3), [0, 1, 2])
    # unknown kind on a folder: the reading that fits; both fitting differently is an error
    with pytest.raises(AUInputError, match="different frames"):
        openface_frame_map(range(1, 13), None, "frames", plain, names)
    padded = {k: f"x/color/{k:04d}.jpg" for k in range(1, 13)}
    np.testing.assert_array_equal(openface_frame_map(range(1, 13), None, "frames", padded, PADDED), range(1, 13))
    skipped = {**plain, 5: "x/color/5.JPG"}
    names_skipped = [n if n != "5.jpg" else "5.JPG" for n in PLAIN]
    np.testing.assert_array_equal(
        openface_frame_map(range(1, 12), None, "frames", skipped, names_skipped), [1, 10, 11, 12, 2, 3, 4, 6, 7, 8, 9]
    )  # 11 rows: only the folder reading fits


def test_frame_map_errors():
    plain = {k: f"c/{k}.jpg" for k in range(1, 13)}
    with pytest.raises(
        AUInputError, match=r"a\.csv: 11 rows, but OpenFace -fdir would have read 12 images from folder F"
    ):
        openface_frame_map(range(1, 12), "images", "frames", plain, PLAIN, csv="a.csv", source="folder F")
    with pytest.raises(AUInputError, match=r"a\.csv: 13 rows, but folder F holds 12 numbered frames"):
        openface_frame_map(range(1, 14), "video", "frames", plain, PLAIN, csv="a.csv", source="folder F")
    with pytest.raises(AUInputError, match=r"a\.csv: 4 rows, but video V has 3 frames"):
        openface_frame_map(range(1, 5), "video", "file", 3, csv="a.csv", source="video V")
    with pytest.raises(AUInputError, match="image folder.*video file"):
        openface_frame_map(range(1, 4), "images", "file", 3, csv="a.csv", source="video V")
    with pytest.raises(AUInputError, match=r"'frame' column is not 1\.\.3 in order \(row 2 has frame 1\)"):
        openface_frame_map([1, 1, 2], "video", "file", 3, csv="a.csv")
    with pytest.raises(AUInputError, match="neither fits"):
        openface_frame_map(range(1, 5), None, "frames", plain, PLAIN, csv="a.csv", source="folder F")
    assert len(AUS) == len(AU_COLUMNS)
