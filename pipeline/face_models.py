"""The face models of the engine: where the offline landmark model files live, and building
the per-process landmark backends (dlib, MediaPipe).

Nothing here downloads: a missing file is an error that says which file, where it was
looked for, and how to provide it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from stages.face import Dlib68, MediaPipe68


class ModelMissingError(FileNotFoundError):
    pass


def dlib_predictor_path() -> Path:
    """The 68-point predictor shipped by the face-recognition-models package.

    Located with importlib (the package's own helper needs the removed pkg_resources).
    ``MEPIPE_DLIB_PREDICTOR`` overrides it with a local file.
    """
    override = os.environ.get("MEPIPE_DLIB_PREDICTOR")
    if override:
        p = Path(override)
        if not p.is_file():
            raise ModelMissingError(f"MEPIPE_DLIB_PREDICTOR={override} is not a file")
        return p
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelMissingError(
            "dlib 68-point predictor not found: the package 'face-recognition-models' is not "
            "installed (pip install face-recognition-models), or set MEPIPE_DLIB_PREDICTOR to "
            "a local shape_predictor_68_face_landmarks.dat"
        )
    p = Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"
    if not p.is_file():
        raise ModelMissingError(f"dlib 68-point predictor missing: looked for {p}")
    return p


_CACHE: dict[tuple, object] = {}


def landmark_backend(name: str, **params):
    """A landmark backend, built once per process (workers reuse it across tasks)."""
    key = (name, tuple(sorted(params.items())))
    if key not in _CACHE:
        if name == "dlib":
            _CACHE[key] = Dlib68(dlib_predictor_path(), upsample=params.get("upsample", 1))
        elif name == "mediapipe":
            try:
                import mediapipe  # noqa: F401
            except ImportError as e:
                raise ModelMissingError(
                    "landmark backend 'mediapipe' needs mediapipe==0.10.21 (the last wheel that "
                    "ships the face-mesh models): pip install --no-deps mediapipe==0.10.21"
                ) from e
            _CACHE[key] = MediaPipe68(params.get("min_detection_confidence", 0.5))
        else:
            raise ValueError(f"unknown landmark backend {name!r}; use 'dlib' or 'mediapipe'")
    return _CACHE[key]


def landmark_backend_for(face_params: dict):
    """The backend a dataset's `params.face` names, with that backend's own options."""
    name = face_params["backend"]
    opts = (
        {"upsample": face_params["upsample"]}
        if name == "dlib"
        else {"min_detection_confidence": face_params["min_detection_confidence"]}
    )
    return landmark_backend(name, **opts)
