"""Stage parameters: the defaults live here, catalog.yaml overrides them per dataset.

Each stage's parameters feed the fingerprint of the products that depend on it, so
changing one recomputes only those products.
"""

from __future__ import annotations

import copy

from stages.flow import FARNEBACK_DEFAULTS, TVL1_DEFAULTS

DEFAULTS: dict[str, dict] = {
    "face": {"backend": "dlib", "upsample": 1, "min_detection_confidence": 0.5},
    "crop": {"max_brow_ext": 0.15, "margin": 0.0},  # output size is schemas.arrays.CROP
    "depth": {"fill": "nearest", "window": 5},
    "tvl1": dict(TVL1_DEFAULTS),  # cv2.optflow.DualTVL1OpticalFlow_create arguments
    "farneback": dict(FARNEBACK_DEFAULTS),  # cv2.calcOpticalFlowFarneback arguments
    "magnify": {"alpha": 3.0, "levels": 4, "method": "eulerian", "weights": ""},  # seed 004: x3
    # AU screening of unlabelled video (seed 000 sec. 4.1.1)
    "au": {
        "estimator": "landmarks",
        "phi": 2.1,
        "onset_lag_at_30fps": 8,
        "min_confidence": 0.75,
        "segment_frames": 120,
        "aus": [],  # aus: AU numbers used for selection ([] = all)
        "pyfeat_faces": "retinaface",
    },  # pyfeat: its RetinaFace, or boxes of the face backend's landmarks
}
CHOICES = {
    ("face", "backend"): ("dlib", "mediapipe"),
    ("depth", "fill"): ("nearest", "min", "mean"),
    ("au", "estimator"): ("landmarks", "openface", "pyfeat"),
    ("au", "pyfeat_faces"): ("retinaface", "landmarks"),
    ("magnify", "method"): ("eulerian", "learned"),
}


class ParamError(ValueError):
    pass


def resolve(overrides: dict | None, where: str) -> dict[str, dict]:
    """Defaults updated by `overrides`; unknown stages/keys and wrong types are errors."""
    out = copy.deepcopy(DEFAULTS)
    for stage, values in (overrides or {}).items():
        if stage not in out:
            raise ParamError(f"{where}.{stage}: unknown stage; known: {sorted(out)}")
        if not isinstance(values, dict):
            raise ParamError(f"{where}.{stage}: expected a mapping, got {type(values).__name__}")
        for k, v in values.items():
            if k not in out[stage]:
                raise ParamError(f"{where}.{stage}.{k}: unknown parameter; known: {sorted(out[stage])}")
            want = type(DEFAULTS[stage][k])
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or isinstance(v, bool) != (want is bool):
                raise ParamError(f"{where}.{stage}.{k}: expected {want.__name__}, got {v!r}")
            choices = CHOICES.get((stage, k))
            if choices and v not in choices:
                raise ParamError(f"{where}.{stage}.{k}: {v!r} is not one of {choices}")
            out[stage][k] = v
    return out
