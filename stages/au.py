"""Per-frame AU intensities (0-5) and seed 000's onset/apex pair selection (eq. 1-4).

Three estimators share one output: a float32 array (T, len(AUS)) of intensities in
[0, 5] for the AUs of `AUS`, NaN on frames without a (trusted) face.

- ``openface``: OpenFace 2.x CSV (``AUxx_r`` intensities; rows with success == 0 or
  confidence below a threshold become NaN). The tool seed 000 used.
- ``pyfeat``: py-feat's AU occurrence probabilities p times 5 (eq. 1), see pipeline.
- ``landmarks``: geometry of the 68 landmarks relative to a per-video neutral
  reference (median of each feature over the video), times a per-AU gain calibrated
  against OpenFace on the real OpenFace CSV shipped by py-feat (see
  `calibrate_gains`, data/landmark_au_gains.json and docs/au_landmarks.md). It sees
  only shape, not texture: AUs without a landmark signature (e.g. AU6 cheek raise vs AU7)
  are approximations, and its numbers are not OpenFace's.
"""

from __future__ import annotations

import json
import math
import warnings
from importlib import resources

import numpy as np
import pandas as pd

from schemas.tables import AU_COLUMNS, AUS  # OpenFace 2.x intensity AUs (AUxx_r columns)

LANDMARK_ESTIMATOR_VERSION = "1"


def pyfeat_intensities(probs: dict[str, np.ndarray], n: int) -> np.ndarray:
    """py-feat AU outputs -> (n, len(AUS)) intensities 0-5 (seed 000 eq. 1: probability
    x 5). `probs` maps py-feat's column names ('AU01', ..., one probability per frame,
    NaN without a face) to arrays of length n. AUs py-feat does not detect (AU45: blink;
    its AU43 'eyes closed' is another action) are NaN; its AUs outside AUS are ignored."""
    out = np.full((n, len(AUS)), np.nan, np.float32)
    for j, a in enumerate(AUS):
        col = f"AU{a:02d}"
        if col in probs:
            p = np.asarray(probs[col], np.float32)
            if p.shape != (n,):
                raise ValueError(f"py-feat column {col}: {p.shape} values for {n} frames")
            out[:, j] = 5.0 * p
    return out


class AUInputError(ValueError):
    pass


# ---------------------------------------------------------------- OpenFace CSV
def openface_intensities(
    df: pd.DataFrame, min_confidence: float = 0.75, name: str = "OpenFace CSV"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame numbers (T,), timestamps s (T,), intensities (T, len(AUS))) from an OpenFace CSV.

    OpenFace pads its column names with spaces; they are stripped. Rows with
    success == 0 or confidence < `min_confidence` are NaN. AUs the CSV lacks are NaN.
    """
    df = df.rename(columns=lambda c: str(c).strip())
    need = {"frame", "success", "confidence"}
    if not need <= set(df.columns):
        raise AUInputError(f"{name}: columns {sorted(need - set(df.columns))} missing (not an OpenFace CSV?)")
    if not any(f"{c}_r" in df.columns for c in AU_COLUMNS):
        raise AUInputError(f"{name}: no AUxx_r intensity columns (was OpenFace run with -aus?)")
    out = np.full((len(df), len(AUS)), np.nan, np.float32)
    for j, c in enumerate(AU_COLUMNS):
        if f"{c}_r" in df.columns:
            out[:, j] = pd.to_numeric(df[f"{c}_r"], errors="coerce").to_numpy(np.float32)
    bad = (pd.to_numeric(df["success"], errors="coerce").fillna(0).to_numpy() == 0) | (
        pd.to_numeric(df["confidence"], errors="coerce").fillna(0).to_numpy() < min_confidence
    )
    out[bad] = np.nan
    ts = (
        pd.to_numeric(df["timestamp"], errors="coerce").to_numpy(np.float64)
        if "timestamp" in df
        else np.full(len(df), np.nan)
    )
    return df["frame"].to_numpy(np.int64), ts, np.clip(out, 0, 5)


# ---------------------------------------------------------------- OpenFace rows -> frames
# OpenFace 2.x (lib/local/Utilities/src/SequenceCapture.cpp) numbers its CSV rows itself:
# `frame` = 1, 2, ... by position, one row per frame/image read (success = 0 rows
# included), and no file name. With -fdir it reads the folder's entries sorted by a plain
# character (byte) comparison ("10.jpg" < "2.jpg", "B" < "a") and keeps those whose
# extension is exactly one of OPENFACE_IMAGE_EXT (case-sensitive: ".JPG" is skipped);
# `timestamp` is 0 on every row. From a video it counts decoded frames in time order,
# `timestamp` = (frame - 1) / fps. Its `<name>_of_details.txt` sidecar says the input.
OPENFACE_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
OPENFACE_VIDEO_SUFFIXES = (
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".wmv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".m4v",
    ".flv",
    ".3gp",
    ".ogv",
    ".mts",
    ".ts",
)


def _boost_extension(name: str) -> str:
    """The extension as boost/std::filesystem's path::extension() gives it: from the last
    dot of the file name (a dot-file such as '.jpg' counts as its own extension)."""
    i = name.rfind(".")
    return name[i:] if i >= 0 and name not in (".", "..") else ""


def openface_image_order(names) -> list[str]:
    """The images OpenFace 2.x reads from a folder given with -fdir, in the order it reads
    them: `names` (file names of the folder, without directory parts, any order) sorted by
    their bytes (UTF-8; 'img10.jpg' before 'img2.jpg', upper case before lower case), kept
    when the extension is exactly '.jpg', '.jpeg', '.png' or '.bmp'. Row k (1-based) of
    the CSV is element k - 1 of the returned list (length = the number of CSV rows)."""
    kept = [str(n) for n in names if _boost_extension(str(n)) in OPENFACE_IMAGE_EXT]
    return sorted(kept, key=lambda n: n.encode("utf-8", "surrogateescape"))


def openface_details_input(text: str | None) -> str | None:
    """The input path of an OpenFace ``<name>_of_details.txt`` (its ``Input:<path>`` line,
    normally the first), or None if there is none."""
    for line in (text or "").splitlines()[:20]:
        if line.strip().startswith("Input:"):
            path = line.strip()[len("Input:") :].strip()
            return path or None
    return None


def openface_input_kind(timestamps, input_path: str | None = None) -> str | None:
    """What OpenFace read to write a CSV: 'video', 'images' (a -fdir folder) or None (cannot tell).

    `input_path`: the ``Input:`` path of the CSV's _of_details.txt sidecar, if any; it
    decides (a path ending in a video suffix -> 'video', anything else -> 'images').
    Otherwise `timestamps` (T,) seconds, the CSV's timestamp column: all 0 with T > 1 ->
    'images'; strictly increasing -> 'video'; else (one row, NaN, other patterns) None."""
    if input_path:
        p = str(input_path).strip().rstrip("/\\").lower()
        return "video" if p.endswith(OPENFACE_VIDEO_SUFFIXES) else "images"
    ts = np.asarray(timestamps, np.float64).ravel()
    if len(ts) < 2 or not np.isfinite(ts).all():
        return None
    if (ts == 0).all():
        return "images"
    if (np.diff(ts) > 0).all():
        return "video"
    return None


def _basename(path: str) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


def openface_frame_map(
    csv_frames,
    input_kind: str | None,
    recording_kind: str,
    frames,
    names=None,
    *,
    csv: str = "OpenFace CSV",
    source: str = "the recording",
) -> np.ndarray:
    """The recording's frame number of each row of an OpenFace 2.x CSV.

    csv_frames (T,): the CSV's `frame` column (must be 1..T in order: one row per frame
    or image, as FeatureExtraction writes it). input_kind: 'video' | 'images' | None
    (see `openface_input_kind`). recording_kind: 'file' (a video file; `frames` = its
    frame count) or 'frames' (a frame folder; `frames` = {frame number: path}, `names` =
    the folder's file names as listed, needed for 'images').

    Returns int64 (T,):
    - video file, 'video' (or None): row k -> 0-based frame k - 1; T must equal the
      recording's frame count.
    - frame folder, 'images': row k -> the number of the k-th image in OpenFace's order
      (`openface_image_order(names)`), T must equal that list's length; an image OpenFace
      read that is not one of `frames` (no frame number) gives -1.
    - frame folder, 'video' (a video made of these frames): row k -> the k-th frame in
      numeric order; T must equal len(frames).
    - frame folder, None: whichever of the two fits; both fitting with different answers
      is an error (the _of_details.txt sidecar would tell).
    Raises AUInputError naming `csv`, both counts and `source` on any mismatch, and for
    an 'images' CSV against a video file."""
    fr = np.asarray(csv_frames, np.float64).ravel()
    t = len(fr)
    if not np.array_equal(fr, np.arange(1, t + 1)):
        bad = int(np.nonzero(fr != np.arange(1, t + 1))[0][0]) if t else 0
        raise AUInputError(
            f"{csv}: its 'frame' column is not 1..{t} in order (row {bad + 1} has frame "
            f"{fr[bad]:g}); OpenFace's FeatureExtraction writes one row per frame numbered "
            f"from 1 (a multi-face or edited CSV cannot be matched to {source})"
        )
    if recording_kind == "file":
        n = int(frames if not hasattr(frames, "__len__") else len(frames))
        if input_kind == "images":
            raise AUInputError(
                f"{csv}: OpenFace read an image folder (-fdir) to write it, but {source} is a "
                f"video file ({n} frames); run FeatureExtraction -f on the video"
            )
        if t != n:
            raise AUInputError(
                f"{csv}: {t} rows, but {source} has {n} frames; OpenFace writes one row per "
                f"decoded frame, so this CSV is not of this video (or of a cut/other copy)"
            )
        return np.arange(t, dtype=np.int64)
    if recording_kind != "frames":
        raise ValueError(f"recording_kind {recording_kind!r}: 'file' or 'frames'")
    frames = dict(frames)

    def as_video():
        if t != len(frames):
            raise AUInputError(
                f"{csv}: {t} rows, but {source} holds {len(frames)} numbered frames; read as "
                f"OpenFace's output for a video of these frames it needs one row per frame"
            )
        return np.asarray(sorted(frames), np.int64)

    def as_images():
        if names is None:
            raise ValueError("openface_frame_map: the folder's file names are needed for an image-folder CSV")
        order = openface_image_order(names)
        if t != len(order):
            raise AUInputError(
                f"{csv}: {t} rows, but OpenFace -fdir would have read {len(order)} images from {source} "
                f"(files ending exactly in {', '.join(OPENFACE_IMAGE_EXT)}); the CSV is not of this folder as "
                f"it is now, or OpenFace stopped early on an unreadable image"
            )
        number = {_basename(p): k for k, p in frames.items()}
        return np.asarray([number.get(n, -1) for n in order], np.int64)

    if input_kind == "video":
        return as_video()
    if input_kind == "images":
        return as_images()
    got, errs = [], []
    for f in (as_images, as_video):
        try:
            got.append(f())
        except AUInputError as e:
            errs.append(str(e))
    if not got:
        raise AUInputError(
            f"{csv}: cannot tell whether OpenFace read a video or the image folder {source} "
            f"(no _of_details.txt, timestamps neither all 0 nor increasing), and neither fits: " + "; ".join(errs)
        )
    if len(got) == 2 and not np.array_equal(got[0], got[1]):
        raise AUInputError(
            f"{csv}: cannot tell whether OpenFace read a video or the image folder {source} "
            f"(no _of_details.txt, timestamps neither all 0 nor increasing), and the two readings "
            f"give different frames; put OpenFace's _of_details.txt next to the CSV"
        )
    return got[0]


def openface_landmarks(df: pd.DataFrame) -> np.ndarray:
    """(T, 68, 2) 2-D landmarks (x_0..x_67, y_0..y_67) of an OpenFace CSV, in pixels."""
    df = df.rename(columns=lambda c: str(c).strip())
    xs = df[[f"x_{i}" for i in range(68)]].to_numpy(np.float64)
    ys = df[[f"y_{i}" for i in range(68)]].to_numpy(np.float64)
    return np.stack([xs, ys], axis=2)


def probability_to_intensity(p: np.ndarray) -> np.ndarray:
    """Seed 000 eq. 1: intensity = p x T with T = 5 (p in [0, 1])."""
    return np.clip(np.asarray(p, np.float32), 0, 1) * 5.0


# ---------------------------------------------------------------- landmark geometry
def normalise_shape(lm: np.ndarray) -> np.ndarray:
    """Similarity-normalise (..., 68, 2) landmarks: eye centres to (-0.5, 0) and (0.5, 0),
    so distances are in inter-ocular units and the eye line is horizontal (y down)."""
    lm = np.asarray(lm, np.float64)
    le = lm[..., 36:42, :].mean(axis=-2)
    re = lm[..., 42:48, :].mean(axis=-2)
    mid = (le + re) / 2
    v = re - le
    iod = np.linalg.norm(v, axis=-1, keepdims=True)
    c, s = v[..., :1] / iod, v[..., 1:] / iod
    p = lm - mid[..., None, :]
    x = (p[..., 0] * c + p[..., 1] * s) / iod
    y = (-p[..., 0] * s + p[..., 1] * c) / iod
    return np.stack([x, y], axis=-1)


def _d(a, b):
    return np.linalg.norm(a - b, axis=-1)


def landmark_features(lm: np.ndarray) -> np.ndarray:
    """(T, len(AUS)) geometric signal per AU from (T, 68, 2) landmarks, in IOD units,
    signed so that the AU's action makes it grow. Rows with NaN landmarks are NaN."""
    n = normalise_shape(lm)
    y = n[..., 1]
    eye_y = (n[:, 36:48, 1]).mean(axis=1)
    inner_brow = -(y[:, [20, 21, 22, 23]].mean(1) - eye_y)  # height above the eyes
    outer_brow = -(y[:, [17, 18, 25, 26]].mean(1) - eye_y)
    brow_gap = _d(n[:, 21], n[:, 22])
    aperture = (_d(n[:, 37], n[:, 41]) + _d(n[:, 38], n[:, 40]) + _d(n[:, 43], n[:, 47]) + _d(n[:, 44], n[:, 46])) / 4
    lower_lid = -(y[:, [40, 41, 46, 47]].mean(1) - y[:, [36, 39, 42, 45]].mean(1))
    mouth_c = (n[:, 51] + n[:, 57]) / 2
    corner_up = -(y[:, [48, 54]].mean(1) - mouth_c[:, 1])
    width = _d(n[:, 48], n[:, 54])
    nose_lip = _d(n[:, 33], n[:, 51])
    nose_brow = _d(n[:, 27], n[:, 33])
    lip_chin = _d(n[:, 57], n[:, 8])
    lip_thick = _d(n[:, 51], n[:, 62]) + _d(n[:, 57], n[:, 66])
    lip_gap = _d(n[:, 62], n[:, 66])
    jaw = _d(n[:, 33], n[:, 8])
    f = {
        1: inner_brow,
        2: outer_brow,
        4: -inner_brow - brow_gap,
        5: aperture,
        6: lower_lid,
        7: -aperture,
        9: -nose_brow,
        10: -nose_lip,
        12: corner_up + 0.5 * width,
        14: width,
        15: -corner_up,
        17: -lip_chin,
        20: width - corner_up,
        23: -lip_thick,
        25: lip_gap,
        26: jaw,
        45: -aperture,
    }
    return np.stack([f[a] for a in AUS], axis=1).astype(np.float64)


def neutral_reference(features: np.ndarray) -> np.ndarray:
    """Per-video neutral: the median of each feature over the frames with a face."""
    with np.errstate(all="ignore"):
        ref = np.nanmedian(features, axis=0)
    return ref


def landmark_gains() -> dict:
    """The calibrated per-AU gains (intensity units per IOD) shipped as data."""
    text = resources.files("stages").joinpath("data/landmark_au_gains.json").read_text()
    return json.loads(text)


def temporal_median(f: np.ndarray, width: int) -> np.ndarray:
    """Centred running median over `width` frames (odd), per column; NaN frames stay NaN
    and are ignored by their neighbours. Suppresses single-frame landmark jitter while
    keeping movements that last several frames (an ME's onset phase is ~8 frames at 30 fps)."""
    if width <= 1:
        return f
    r = width // 2
    pad = np.pad(f, ((r, r), (0, 0)), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, width, axis=0)
    with warnings.catch_warnings():  # an all-NaN window (no face) is NaN, expected
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmedian(win, axis=-1)
    out[np.isnan(f).any(axis=1)] = np.nan
    return out


def landmark_intensities(
    lm: np.ndarray, gains: dict | None = None, neutral: np.ndarray | None = None, smooth: int = 3
) -> np.ndarray:
    """(T, len(AUS)) intensities in [0, 5] from (T, 68, 2) landmarks of one video.

    I = clip(gain_au x max(0, f_au - neutral_au), 0, 5), features median-smoothed over
    `smooth` frames; NaN where landmarks are NaN.
    """
    g = gains or landmark_gains()
    k = np.array([g["gains"][f"AU{a:02d}"] for a in AUS], np.float64)
    f = temporal_median(landmark_features(lm), smooth)
    ref = neutral_reference(f) if neutral is None else neutral
    out = np.clip(k * np.maximum(f - ref, 0.0), 0, 5)
    out[np.isnan(f).any(axis=1)] = np.nan
    return out.astype(np.float32)


def fit_gain(delta: np.ndarray, target: np.ndarray) -> float:
    """Least-squares gain k of target ~ k x max(delta, 0) (no intercept), k >= 0."""
    x = np.maximum(delta, 0.0)
    ok = np.isfinite(x) & np.isfinite(target)
    den = float((x[ok] ** 2).sum())
    return max(float((x[ok] * target[ok]).sum()) / den, 0.0) if den > 0 else math.nan


# ---------------------------------------------------------------- selection (eq. 2-4)
def onset_offset_frames(fps: float, frames_at_30: int = 8) -> int:
    """Onset lag in frames: 8 frames at 30 fps (about 267 ms); other frame rates keep the
    time offset, round(8 / 30 x fps) frames (e.g. 53 at 200 fps, 16 at 60 fps)."""
    return max(1, int(round(frames_at_30 / 30.0 * fps)))


def select_pairs(
    frames: np.ndarray,
    intensities: np.ndarray,
    phi: float,
    lag: int,
    face: np.ndarray | None = None,
    bad: set | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed 000 eq. 2-3 on one video.

    frames (T,) frame numbers (consecutive), intensities (T, A). A frame is an apex if
    ANY AU intensity > phi (NaN never exceeds); each apex, consecutive ones included,
    makes its own pair with onset = apex - lag. Returns (pairs, excluded) DataFrames:
    pairs: apex, onset, max_intensity, aus (AU numbers > phi);
    excluded: apex, onset, reason in {onset_before_start, onset_no_face, known_bad_frame}.
    """
    frames = np.asarray(frames, np.int64)
    inten = np.asarray(intensities, np.float64)
    with np.errstate(invalid="ignore"):
        above = np.nan_to_num(inten, nan=-1.0) > phi
    cand = np.nonzero(above.any(axis=1))[0]
    pos = {int(f): i for i, f in enumerate(frames)}
    has_face = np.isfinite(inten).all(axis=1) if face is None else np.asarray(face, bool)
    pairs, excl = [], []
    for i in cand:
        apex = int(frames[i])
        onset = apex - lag
        aus = [AUS[j] for j in np.nonzero(above[i])[0]]
        rec = {"apex": apex, "onset": onset, "max_intensity": float(np.nanmax(inten[i])), "aus": aus}
        if onset not in pos:
            excl.append({**rec, "reason": "onset_before_start"})
        elif not has_face[pos[onset]]:
            excl.append({**rec, "reason": "onset_no_face"})
        elif bad and (onset in bad or apex in bad):
            excl.append({**rec, "reason": "known_bad_frame"})
        else:
            pairs.append(rec)
    cols = ["apex", "onset", "max_intensity", "aus"]
    return pd.DataFrame(pairs, columns=cols), pd.DataFrame(excl, columns=cols + ["reason"])


def candidates_vs_phi(intensities: np.ndarray, phis: np.ndarray) -> np.ndarray:
    """Number of apex candidates (eq. 2) for each threshold in `phis` (seed 000 Fig. 4)."""
    m = np.nan_to_num(np.asarray(intensities, np.float64), nan=-1.0).max(axis=1)
    return np.array([(m > p).sum() for p in phis], np.int64)
