"""Array specs of the store.

Every array is indexed by sample along axis 0 (row `index` of the manifest). One chunk
holds one sample (the unit a loader reads); one shard holds `SHARD_SAMPLES` samples
(the unit one write task owns). Samples that were excluded keep their row and are
never written, so they cost no storage and read back as the fill value.

Image arrays are height x width x channels, channels in RGB order (not OpenCV's BGR).
"""
from __future__ import annotations

from dataclasses import dataclass, field

CROP = 310  # seed 000 section 4.1.2: crops are resized to 310 x 310
SHARD_SAMPLES = 8  # samples per shard (= per write task)


@dataclass(frozen=True)
class ArraySpec:
    name: str            # path inside the store group
    dtype: str           # numpy dtype name
    shape: tuple         # per-sample shape (axis 0 = sample is prepended)
    group: str           # product group that computes it (see pipeline.dag)
    units: str
    description: str
    attrs: dict = field(default_factory=dict)

    @property
    def fill_value(self):
        return 0

    def full_shape(self, n: int) -> tuple:
        return (n, *self.shape)

    def chunk_shape(self) -> tuple:
        return (1, *self.shape)

    def shard_shape(self) -> tuple:
        return (SHARD_SAMPLES, *self.shape)


_S = (CROP, CROP)

ARRAYS: dict[str, ArraySpec] = {s.name: s for s in [
    ArraySpec("pairs/onset_rgb", "uint8", (*_S, 3), "crop", "8-bit intensity, RGB",
              "onset frame cropped on the onset landmarks and resized to 310x310"),
    ArraySpec("pairs/apex_rgb", "uint8", (*_S, 3), "crop", "8-bit intensity, RGB",
              "apex frame cropped with the onset frame's box (same pixel positions)"),
    ArraySpec("pairs/onset_landmarks", "float32", (68, 2), "crop", "pixels of the 310x310 crop (x, y)",
              "68-point landmarks (dlib/iBUG convention) of the onset frame, in crop coordinates"),
    ArraySpec("pairs/rgb_diff", "int16", (*_S, 3), "crop", "8-bit intensity difference, RGB",
              "apex - onset per channel (seed 000 eq. 5), range [-255, 255]"),
    ArraySpec("pairs/gray_diff", "int16", _S, "crop", "8-bit intensity difference",
              "apex - onset of the gray (ITU-R BT.601 luma) crops (seed 000 eq. 6)"),
    ArraySpec("pairs/onset_depth", "uint16", _S, "depth", "depth units of the sensor (about mm)",
              "onset depth cropped with the colour box, zeros filled (seed 000 eq. 15-17)"),
    ArraySpec("pairs/apex_depth", "uint16", _S, "depth", "depth units of the sensor (about mm)",
              "apex depth cropped with the colour box, zeros filled"),
    ArraySpec("pairs/depth_diff", "int32", _S, "depth", "depth units difference",
              "apex - onset of the filled depth crops (seed 000 eq. 6), range [-65535, 65535]"),
]}


def array_spec(name: str) -> ArraySpec:
    try:
        return ARRAYS[name]
    except KeyError:
        raise KeyError(f"unknown array {name!r}; known: {sorted(ARRAYS)}") from None


def arrays_of_group(group: str) -> list[ArraySpec]:
    return [s for s in ARRAYS.values() if s.group == group]
