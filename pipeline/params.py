"""Stage parameters: the defaults live here, catalog.yaml overrides them per dataset.

Each stage's parameters feed the fingerprint of the products that depend on it, so
changing one recomputes only those products.
"""

from __future__ import annotations

import copy
import math

from stages.flow import FARNEBACK_DEFAULTS, TVL1_DEFAULTS

DEFAULTS: dict[str, dict] = {
    "face": {"backend": "dlib", "upsample": 1, "min_detection_confidence": 0.5},
    "crop": {"max_brow_ext": 0.15, "margin": 0.0},  # output size is schemas.arrays.CROP
    "depth": {"fill": "nearest", "window": 5},
    # cv2.optflow.DualTVL1OpticalFlow_create arguments, and which implementation runs them:
    # opencv, torch (stages/flow_torch.py: the same algorithm, on a GPU when the worker has
    # one) or auto (torch when the run's workers have a GPU, opencv otherwise)
    "tvl1": {**TVL1_DEFAULTS, "backend": "opencv"},
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
    ("tvl1", "backend"): ("opencv", "torch", "auto"),
}


def _positive(v) -> bool:
    return v > 0


def _at_least_one(v) -> bool:
    return v >= 1


def _non_negative(v) -> bool:
    return v >= 0


def _unit(v) -> bool:
    return 0 <= v <= 1


def _open_unit(v) -> bool:
    return 0 < v < 1


# (stage, key) -> (test, what it means): a value of the right type must also be in range
RANGES = {
    ("face", "upsample"): (_non_negative, ">= 0"),
    ("face", "min_detection_confidence"): (_unit, "in [0, 1]"),
    ("crop", "max_brow_ext"): (_non_negative, ">= 0"),
    ("crop", "margin"): (_non_negative, ">= 0"),
    ("depth", "window"): (_at_least_one, ">= 1 (pixels)"),
    ("tvl1", "tau"): (_positive, "> 0"),
    ("tvl1", "lambda_"): (_positive, "> 0"),
    ("tvl1", "theta"): (_positive, "> 0"),
    ("tvl1", "nscales"): (_at_least_one, ">= 1"),
    ("tvl1", "warps"): (_at_least_one, ">= 1"),
    ("tvl1", "epsilon"): (_positive, "> 0"),
    ("tvl1", "innnerIterations"): (_at_least_one, ">= 1"),
    ("tvl1", "outerIterations"): (_at_least_one, ">= 1"),
    ("tvl1", "scaleStep"): (_open_unit, "in (0, 1)"),
    ("tvl1", "gamma"): (_non_negative, ">= 0"),
    ("tvl1", "medianFiltering"): (_at_least_one, ">= 1"),
    ("farneback", "pyr_scale"): (_open_unit, "in (0, 1)"),
    ("farneback", "levels"): (_non_negative, ">= 0"),
    ("farneback", "winsize"): (_at_least_one, ">= 1"),
    ("farneback", "iterations"): (_at_least_one, ">= 1"),
    ("farneback", "poly_n"): (_at_least_one, ">= 1"),
    ("farneback", "poly_sigma"): (_positive, "> 0"),
    ("magnify", "alpha"): (_positive, "> 0"),
    ("magnify", "levels"): (_at_least_one, ">= 1"),
    ("au", "phi"): (_non_negative, ">= 0"),
    ("au", "onset_lag_at_30fps"): (_at_least_one, ">= 1 (frames)"),
    ("au", "min_confidence"): (_unit, "in [0, 1]"),
    ("au", "segment_frames"): (_at_least_one, ">= 1 (frames)"),
}


class ParamError(ValueError):
    pass


def _check_range(stage: str, k: str, v, where: str) -> None:
    """A number must be finite and in its declared range (RANGES)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise ParamError(f"{where}.{stage}.{k}: expected a finite number, got {v!r}")
    test = RANGES.get((stage, k))
    if test and not test[0](v):
        raise ParamError(f"{where}.{stage}.{k}: {v!r} is out of range; expected {test[1]}")


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
            _check_range(stage, k, v, where)
            out[stage][k] = v
    return out


def workers_have_gpu(profile: dict | None) -> bool:
    """Whether a run's workers have a GPU: a cluster profile declaring `gpus`, or a local
    run on a machine where torch sees CUDA."""
    if profile and profile.get("gpus"):
        return True
    if profile and profile.get("kind") != "local":
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_flow_backend(params: dict, gpu: bool) -> dict:
    """`params` with tvl1.backend 'auto' replaced by what will run ('torch' on GPU workers,
    else 'opencv'), so fingerprints, provenance and the card name the implementation."""
    if params["tvl1"]["backend"] != "auto":
        return params
    out = copy.deepcopy(params)
    out["tvl1"]["backend"] = "torch" if gpu else "opencv"
    return out
