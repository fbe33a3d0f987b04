"""Reading frames and hashing files. Every error names the file."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import struct
from pathlib import Path

import cv2
import numpy as np

from stages.depth import DepthError, check_depth


class FrameReadError(IOError):
    """A frame file that is missing, empty, truncated or not decodable."""

    reason = "frame_unreadable"  # the exclusion reason code


class FrameCorrupt(FrameReadError):
    """A JPEG whose compressed data the decoder reports as corrupt (a file cut and
    re-terminated, bytes flipped): OpenCV would decode it to damaged pixels silently."""

    reason = "frame_corrupt"


class FrameTooLarge(FrameReadError):
    """An image whose header declares more pixels than MAX_PIXELS: refused before
    decoding (a corrupt header or not a face frame; decoding it could exhaust memory)."""

    reason = "frame_too_large"


MAX_PIXELS = 50_000_000  # 8K UHD is 33 MP; a 16000 x 16000 frame (256 MP) is refused


def shown(path: str | Path) -> str:
    """A path as it can be printed and stored: bytes that are not UTF-8 (a Latin-1
    folder name) escaped as \\xNN instead of breaking the message or the table."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes (Python reads any file name; OpenCV's imread crashes on names
    that are not UTF-8), with the pixel limit checked from the header first."""
    size = image_size(path)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise FrameTooLarge(
            f"{shown(path)}: {what} of {size[1]}x{size[0]} = {size[0] * size[1]} pixels is above the limit of "
            f"{MAX_PIXELS} (pipeline.io.MAX_PIXELS); not decoded"
        )
    return path.read_bytes()


def _check_jpeg_data(path: Path, data: bytes) -> None:
    """Decode the JPEG strictly (libjpeg-turbo via simplejpeg, corrupt-data warnings as
    errors) at 1/8 scale: every entropy-coded byte is read, the pixels are not needed.
    OpenCV then decodes the pixels as before (its output is what the store holds)."""
    import simplejpeg

    try:
        simplejpeg.decode_jpeg(data, strict=True, min_factor=8)
    except ValueError as e:
        raise FrameCorrupt(f"{shown(path)}: corrupt JPEG data ({e})") from None


class DepthReadError(FrameReadError, DepthError):
    """A depth file that is missing, empty or not decodable: both a read error and an
    unusable depth map, so a clip task reports it as ``depth_unusable`` like any other
    depth problem (and `validate` does the same)."""


def _absent(path: Path, what: str) -> str:
    """Why `path` cannot be opened: a symlink loop, a dangling symlink, or not there."""
    if symlink_loop(path):
        return f"{shown(path)}: {what} is a symlink loop"
    if path.is_symlink():
        return f"{shown(path)}: {what} is a symlink to {shown(os.readlink(path))!r}, which does not exist"
    return f"{shown(path)}: {what} not found"


def symlink_loop(path: str | Path) -> bool:
    """True if following `path` (or one of its parent folders) loops (ELOOP)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def _check_jpeg_complete(path: Path) -> None:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read().rstrip(b"\x00\r\n ")
    if not tail.endswith(b"\xff\xd9"):
        raise FrameReadError(f"{shown(path)}: truncated JPEG (no end-of-image marker)")


from stages.adapters.unlabelled import VIDEO_EXT  # noqa: E402  (one list of video suffixes)


def split_ref(ref: str | Path) -> tuple[Path, int | None]:
    """A frame reference is a file path, or ``<video file>#<0-based frame index>``."""
    s = str(ref)
    if "#" in s:
        p, _, k = s.rpartition("#")
        if p.lower().endswith(VIDEO_EXT) and k.isdigit():
            return Path(p), int(k)
    return Path(s), None


def read_video_frame(path: Path, index: int) -> np.ndarray:
    """Frame `index` (0-based) of a video file as (H, W, 3) uint8 RGB (OpenCV decoder;
    seeking is frame-accurate for the codecs tested, see tests/test_screening.py)."""
    if not path.is_file():
        raise FrameReadError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FrameReadError(f"{path}: not a decodable video")
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
    finally:
        cap.release()
    if not ok or bgr is None:
        raise FrameReadError(f"{path}: frame {index} could not be decoded (corrupt or beyond the end)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_video(path: Path, start: int, stop: int):
    """Yield (index, RGB frame) for frames start..stop-1 of a video, decoding sequentially
    from `start` (one frame in memory at a time). A frame that does not decode ends the
    iteration early; the caller sees which indices are missing."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FrameReadError(f"{path}: not a decodable video")
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        for i in range(start, stop):
            ok, bgr = cap.read()
            if not ok or bgr is None:
                return
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def video_frame_count(path: Path) -> tuple[int, float]:
    """(frame count reported by the container, fps)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FrameReadError(f"{path}: not a decodable video")
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()


def decoded_frame_count(path: Path) -> int:
    """Frames a video really decodes to (grabbed one by one: slow, exact), for when the
    container's CAP_PROP_FRAME_COUNT, an estimate for many MP4s, must be checked."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise FrameReadError(f"{path}: not a decodable video")
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image file or a ``video#index`` reference; gray files
    are expanded to 3 channels."""
    path, index = split_ref(path)
    if index is not None:
        return read_video_frame(path, index)
    if not path.is_file():
        raise FrameReadError(_absent(path, "frame file"))
    if path.stat().st_size == 0:
        raise FrameReadError(f"{shown(path)}: empty file (0 bytes)")
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    if jpeg:
        _check_jpeg_complete(path)
    data = _read_bytes(path, "frame")
    if jpeg:
        _check_jpeg_data(path, data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FrameReadError(f"{shown(path)}: not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_depth(path: str | Path) -> np.ndarray:
    """(H, W) uint16 depth, read unchanged (16-bit PNG)."""
    path = Path(path)
    if not path.is_file():
        raise DepthReadError(_absent(path, "depth file"))
    if path.stat().st_size == 0:
        raise DepthReadError(f"{shown(path)}: empty depth file (0 bytes)")
    try:
        data = _read_bytes(path, "depth map")
    except FrameTooLarge as e:
        raise DepthReadError(str(e)) from None
    d = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise DepthReadError(f"{shown(path)}: not a decodable depth image (truncated or not a PNG)")
    if d.ndim == 3:
        raise DepthError(f"{shown(path)}: depth has {d.shape[2]} channels, expected one 16-bit channel")
    try:
        check_depth(d)
    except DepthError as e:
        raise DepthError(f"{shown(path)}: {e}") from None
    return d


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of a PNG, JPEG or BMP file from its header alone (no decoding),
    or None when the header is unreadable or the format is another one (the frame's
    reader then reports the file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return h, w
            if head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return abs(h), w
            if head[:2] == b"\xff\xd8":
                f.seek(2)
                return _jpeg_size(f)
    except OSError:
        return None
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(f) -> tuple[int, int] | None:
    """Walk the JPEG marker segments up to the start-of-frame, which holds the size."""
    while True:
        b = f.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            continue
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if marker in _SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return h, w
        f.seek(length - 2, 1)
        if f.read(1) != b"\xff":
            return None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes; a ``video#index`` reference hashes the video and the index.
    Memoised on (path, size, mtime) so a video is read once per process."""
    p, index = split_ref(path)
    st = p.stat()
    h = _sha256_cached(str(p), st.st_size, st.st_mtime_ns, chunk)
    return h if index is None else hashlib.sha256(f"{h}#{index}".encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _sha256_cached(path: str, size: int, mtime_ns: int, chunk: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()
