"""Face detection + 68-point landmarks, two offline backends.

Both take an RGB uint8 image (H, W, 3) and return the 68 landmarks of the largest face
as a float32 (68, 2) array of (x, y) pixels in the iBUG/dlib order the papers use, or
None when no face is found.

- ``dlib``: HOG frontal-face detector + the 68-point shape predictor that ships in
  the ``face-recognition-models`` package (the default).
- ``mediapipe``: MediaPipe face mesh (478 points, model files inside the mediapipe
  0.10.21 wheel), reduced to 68 points with the index table ``data/mediapipe_to_68.json``
  (for each iBUG point, the mesh vertex nearest to dlib's point on real faces, see
  ``tools``/tests). Its jaw line follows the mesh contour, so it sits a few pixels off
  dlib's; the crop uses only the extremes, which agree closely.

The model files are passed in by the caller (the pipeline finds them); nothing here
downloads anything.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np


def mediapipe_to_68_indices() -> np.ndarray:
    """(68,) int array: mesh vertex index for each iBUG-68 point."""
    text = resources.files("stages").joinpath("data/mediapipe_to_68.json").read_text()
    idx = np.asarray(json.loads(text)["indices"], dtype=np.int64)
    assert idx.shape == (68,)
    return idx


class Dlib68:
    """dlib HOG detector + 68-point shape predictor."""

    name = "dlib"

    def __init__(self, predictor_path: str, upsample: int = 1):
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path))
        self.upsample = int(upsample)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        rects = self.detector(np.ascontiguousarray(rgb), self.upsample)
        if len(rects) == 0:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        shape = self.predictor(rgb, r)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


class MediaPipe68:
    """MediaPipe face mesh (478 points) mapped to the 68-point convention."""

    name = "mediapipe"

    def __init__(self, min_detection_confidence: float = 0.5):
        import mediapipe as mp

        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=4,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
        )
        self._index = None

    def mesh_points(self, rgb: np.ndarray) -> np.ndarray | None:
        """(478, 2) float32 pixel coordinates of the largest face's mesh, or None."""
        res = self.mesh.process(np.ascontiguousarray(rgb))
        if not res.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        faces = [np.array([[p.x * w, p.y * h] for p in f.landmark], dtype=np.float32) for f in res.multi_face_landmarks]
        return max(faces, key=lambda f: np.ptp(f[:, 0]) * np.ptp(f[:, 1]))

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        pts = self.mesh_points(rgb)
        if pts is None:
            return None
        if self._index is None:
            self._index = mediapipe_to_68_indices()
        return pts[self._index]


def nearest_vertex_map(dlib_points: list[np.ndarray], mesh_points: list[np.ndarray]) -> np.ndarray:
    """For each of the 68 dlib points, the mesh vertex that is most often its nearest
    neighbour over several faces (distances normalised by inter-ocular distance)."""
    votes = np.zeros((68, 478), dtype=np.float64)
    for d, m in zip(dlib_points, mesh_points):
        iod = np.linalg.norm(d[36:42].mean(0) - d[42:48].mean(0))
        dist = np.linalg.norm(d[:, None, :] - m[None, :, :], axis=2) / iod
        votes += -dist  # summed distance: the vertex with the smallest total wins
    return votes.argmax(axis=1)
