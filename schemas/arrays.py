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
FLOW224 = 224  # seed 004: onset->apex flow image size
ALIGN = 72  # seed 003: aligned frames 3 x 72 x 72 (random 64 x 64 crops at load time)
TIM_SIZE, TIM_FRAMES = 112, 16  # seed 002: TIM to 16 frames of 112 x 112
DI_FRAMES = 8  # seed 003: t = 8 uniformly sampled frames
RAGGED_SHARD = 64  # frames per shard of a ragged array


@dataclass(frozen=True)
class ArraySpec:
    name: str  # path inside the store group
    dtype: str  # numpy dtype name
    shape: tuple  # per-sample shape (axis 0 = sample is prepended)
    group: str  # the product that computes it (products/<group>.py)
    units: str
    description: str
    attrs: dict = field(default_factory=dict)
    ragged: bool = False  # frames of all clips concatenated on axis 0 (manifest clip_start/clip_len)
    dims: tuple = ()  # names of the per-sample axes; () derives them from the shape (per_sample_dims)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """Zarr's `dimension_names` (what xarray reads): 'sample' (or 'frame' for a ragged
        array) then the per-sample axes."""
        return ("frame" if self.ragged else "sample", *(self.dims or per_sample_dims(self.shape)))

    @property
    def cf_attrs(self) -> dict:
        """CF-style attributes xarray and netCDF tools show: units and long_name, and for a
        per-sample array `coordinates` naming its group's sample-id coordinate."""
        return {
            "units": self.units,
            "long_name": self.description,
            **({} if self.ragged else {"coordinates": SAMPLE_ID}),
        }

    @property
    def fill_value(self):
        return 0

    def full_shape(self, n: int) -> tuple:
        return (n, *self.shape)

    def chunk_shape(self) -> tuple:
        return (1, *self.shape)  # one sample, or one frame of a ragged array

    def shard_shape(self) -> tuple:
        return ((RAGGED_SHARD if self.ragged else SHARD_SAMPLES), *self.shape)


# the coordinate array along `sample` in each group of per-sample arrays: the manifest's
# sample_id of each row (variable-length UTF-8), so xarray labels samples by id
SAMPLE_ID = "sample_id"
SAMPLE_ID_DESCRIPTION = "sample id of each row along `sample` (the manifest's sample_id; row = its index)"


def coordinate_paths(group) -> list[str]:
    """The sample-id coordinate array of every group holding per-sample (not ragged) arrays
    among the declared arrays found in `group` (a zarr group, or any container of array
    names): 'pairs/sample_id', ..."""
    names = [n for n, spec in ARRAYS.items() if n in group and not spec.ragged]
    return [f"{g}/{SAMPLE_ID}" for g in sorted({n.rsplit("/", 1)[0] for n in names})]


# the last axis of an image array, by its size: colour channels or flow components
CHANNEL_DIMS = {3: "rgb", 2: "uv"}


def bytes_dims(path: str) -> tuple[str]:
    """The dimension of a table's or the card's bytes (Parquet / UTF-8 in a 1-D uint8
    array): one per array ('manifest_byte'), as their lengths differ within a group."""
    return (f"{path.rsplit('/', 1)[-1]}_byte",)


def per_sample_dims(shape: tuple) -> tuple[str, ...]:
    """Names of the per-sample axes of an image-like array: (y, x) for a plane, then 'rgb'
    or 'uv' for a last axis of 3 colour channels or 2 flow components; 68 landmarks of
    (x, y) are (landmark, xy). Names are per meaning, so arrays of one Zarr group share a
    dimension only where its size is the same."""
    if shape == (68, 2):
        return ("landmark", "xy")
    if len(shape) == 2:
        return ("y", "x")
    if len(shape) == 3 and shape[-1] in CHANNEL_DIMS:
        return ("y", "x", CHANNEL_DIMS[shape[-1]])
    raise ValueError(f"per-sample shape {shape}: declare its dims in schemas/arrays.py")


_S = (CROP, CROP)

ARRAYS: dict[str, ArraySpec] = {
    s.name: s
    for s in [
        ArraySpec(
            "pairs/onset_rgb",
            "uint8",
            (*_S, 3),
            "crop",
            "8-bit intensity, RGB",
            "onset frame cropped on the onset landmarks and resized to 310x310",
        ),
        ArraySpec(
            "pairs/apex_rgb",
            "uint8",
            (*_S, 3),
            "crop",
            "8-bit intensity, RGB",
            "apex frame cropped with the onset frame's box (same pixel positions)",
        ),
        ArraySpec(
            "pairs/onset_landmarks",
            "float32",
            (68, 2),
            "crop",
            "pixels of the 310x310 crop (x, y)",
            "68-point landmarks (dlib/iBUG convention) of the onset frame, in crop coordinates",
        ),
        ArraySpec(
            "pairs/rgb_diff",
            "int16",
            (*_S, 3),
            "crop",
            "8-bit intensity difference, RGB",
            "apex - onset per channel (seed 000 eq. 5), range [-255, 255]",
        ),
        ArraySpec(
            "pairs/gray_diff",
            "int16",
            _S,
            "crop",
            "8-bit intensity difference",
            "apex - onset of the gray (ITU-R BT.601 luma) crops (seed 000 eq. 6)",
        ),
        ArraySpec(
            "pairs/onset_depth",
            "uint16",
            _S,
            "depth",
            "depth units of the sensor (about mm)",
            "onset depth cropped with the colour box, zeros filled (seed 000 eq. 15-17)",
        ),
        ArraySpec(
            "pairs/apex_depth",
            "uint16",
            _S,
            "depth",
            "depth units of the sensor (about mm)",
            "apex depth cropped with the colour box, zeros filled",
        ),
        ArraySpec(
            "pairs/depth_diff",
            "int32",
            _S,
            "depth",
            "depth units difference",
            "apex - onset of the filled depth crops (seed 000 eq. 6), range [-65535, 65535]",
        ),
        # -- flow group: onset -> apex flow of the 310 crops (gray)
        ArraySpec(
            "pairs/flow_tvl1",
            "float16",
            (*_S, 2),
            "flow",
            "pixels of the 310x310 crop (u, v)",
            "Dual TV-L1 flow onset -> apex (catalog params.flow.tvl1)",
            {"convention": "source=onset; I_onset(x, y) ~ I_apex(x + u, y + v)"},
        ),
        ArraySpec(
            "pairs/flow_farneback",
            "float16",
            (*_S, 2),
            "flow",
            "pixels of the 310x310 crop (u, v)",
            "Farnebäck flow onset -> apex (catalog params.flow.farneback)",
            {"convention": "source=onset; I_onset(x, y) ~ I_apex(x + u, y + v)"},
        ),
        ArraySpec(
            "pairs/strain_tvl1",
            "float16",
            _S,
            "flow",
            "dimensionless (pixels per pixel)",
            "optical strain sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2) of the TV-L1 flow",
        ),
        ArraySpec("pairs/flowmag_tvl1", "float16", _S, "flow", "pixels", "magnitude of the TV-L1 flow"),
        # -- micro group (seed 004): flow of magnified frames, apex landmarks
        ArraySpec(
            "micro/flow224",
            "float16",
            (FLOW224, FLOW224, 2),
            "micro",
            "pixels of the 224x224 image (u, v)",
            "TV-L1 flow onset -> Eulerian-magnified apex (x alpha, params.magnify), both resized to 224 first",
            {"convention": "source=onset; I_onset(x, y) ~ I_apex_magnified(x + u, y + v)"},
        ),
        ArraySpec(
            "micro/apex_landmarks224",
            "float32",
            (68, 2),
            "micro",
            "pixels of the 224x224 image (x, y)",
            "68 landmarks detected on the apex frame, in the 224x224 flow image's coordinates",
        ),
        # -- clip group: whole clips (onset..offset)
        ArraySpec(
            "clips/frames72",
            "uint8",
            (ALIGN, ALIGN, 3),
            "clip",
            "8-bit intensity, RGB",
            "every frame onset..offset aligned by a similarity transform to 72x72 (seed 003); "
            "ragged: rows clip_start .. clip_start + clip_len of the manifest",
            ragged=True,
        ),
        ArraySpec(
            "fdp/dynamic_image",
            "float16",
            (ALIGN, ALIGN),
            "clip",
            "[0, 1] (min-max normalised)",
            "approximate-rank-pooling dynamic image of 8 uniformly sampled gray aligned frames",
        ),
        ArraySpec(
            "fdp/dynamic_image_rgb",
            "float16",
            (ALIGN, ALIGN, 3),
            "clip",
            "[0, 1] (min-max normalised)",
            "approximate-rank-pooling dynamic image of 8 uniformly sampled RGB aligned frames",
        ),
        ArraySpec(
            "attrcl/rgb16",
            "uint8",
            (TIM_FRAMES, TIM_SIZE, TIM_SIZE, 3),
            "clip",
            "8-bit intensity, RGB",
            "aligned 112x112 clip interpolated to 16 frames with TIM (seed 002)",
            dims=("tim_frame", "y", "x", "rgb"),
        ),
        ArraySpec(
            "attrcl/flow16",
            "float16",
            (TIM_FRAMES - 1, TIM_SIZE, TIM_SIZE, 2),
            "clip",
            "pixels of the 112x112 frames (u, v)",
            "Farnebäck flow between consecutive TIM frames (frame k -> k + 1)",
            {"convention": "source=frame k; I_k(x, y) ~ I_k+1(x + u, y + v)"},
            dims=("tim_step", "y", "x", "uv"),
        ),
    ]
}


def array_spec(name: str) -> ArraySpec:
    try:
        return ARRAYS[name]
    except KeyError:
        raise KeyError(f"unknown array {name!r}; known: {sorted(ARRAYS)}") from None


def arrays_of_group(group: str) -> list[ArraySpec]:
    return [s for s in ARRAYS.values() if s.group == group]
