"""Reading frames and hashing files. Every error names the file."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from stages.depth import DepthError, check_depth


class FrameReadError(IOError):
    """A frame file that is missing, empty, truncated or not decodable."""


def _check_jpeg_complete(path: Path) -> None:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read().rstrip(b"\x00\r\n ")
    if not tail.endswith(b"\xff\xd9"):
        raise FrameReadError(f"{path}: truncated JPEG (no end-of-image marker)")


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; gray files are expanded to 3 channels."""
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise FrameReadError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        _check_jpeg_complete(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FrameReadError(f"{path}: not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_depth(path: str | Path) -> np.ndarray:
    """(H, W) uint16 depth, read unchanged (16-bit PNG)."""
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(f"{path}: depth file not found")
    if path.stat().st_size == 0:
        raise FrameReadError(f"{path}: empty depth file (0 bytes)")
    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise FrameReadError(f"{path}: not a decodable depth image")
    if d.ndim == 3:
        raise DepthError(f"{path}: depth has {d.shape[2]} channels, expected one 16-bit channel")
    try:
        check_depth(d)
    except DepthError as e:
        raise DepthError(f"{path}: {e}") from None
    return d


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()
