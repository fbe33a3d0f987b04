"""The `pyfeat` AU estimator: py-feat 2.1.5's Detectorv1 (RetinaFace-R34 faces,
MobileFaceNet 68 landmarks, HOG + PCA + XGBoost AU classifiers), run fully offline from
model files on local disk. Seed 000 eq. 1: intensity = AU probability x 5.

py-feat looks its models up in a Hugging Face cache inside its package folder and would
fetch missing ones; here the hub is forced offline for the whole process (`offline()`,
before py-feat is imported) and, while the detector is built, py-feat's model folder is
pointed at the user's folder (``models--py-feat--<name>/snapshots/<rev>/<file>``). Missing files are reported before
anything is loaded. Faces come from py-feat's RetinaFace (params.au.pyfeat_faces =
'retinaface', py-feat's own pipeline) or from the pipeline's landmark backend
('landmarks': the box around the dlib/MediaPipe 68 points, so py-feat and the crop use
the same face).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

PYFEAT_VERSION = "2.1.5"
# repo -> accepted file names (the first is py-feat's current name, then its fallback)
MODEL_FILES = {
    "py-feat/retinaface_r34": ("model.safetensors", "retinaface_r34.safetensors"),
    "py-feat/mobilefacenet": ("mobilefacenet_model_best.pth.tar",),
    "py-feat/xgb_au": ("xgb_au_classifier_v2.skops", "xgb_au_classifier.skops"),
}


def repo_dir(folder: Path, repo: str) -> Path:
    org, name = repo.split("/")
    return Path(folder) / f"models--{org}--{name}"


def model_files(folder: Path) -> dict[str, Path | None]:
    """repo -> the model file found under `folder` (None: missing)."""
    out = {}
    for repo, names in MODEL_FILES.items():
        snaps = repo_dir(folder, repo) / "snapshots"
        found = None
        for name in names:
            hits = sorted(snaps.glob(f"*/{name}")) if snaps.is_dir() else []
            if hits:
                found = hits[0]
                break
        out[repo] = found
    return out


def models_signature(folder: Path) -> list:
    """(repo, file name, size) of each model file: changes when a model is replaced."""
    return [(r, p.name, p.stat().st_size) for r, p in sorted(model_files(folder).items()) if p is not None]


@contextlib.contextmanager
def _models_folder(folder: Path):
    """py-feat's model cache folder pointed at `folder` while models load (only then:
    its package resources must keep resolving to the package)."""
    # isort: off  (the hub's constants before py-feat's modules)
    import feat.detector as fd
    import feat.utils.io as fio
    import huggingface_hub.constants as hc
    # isort: on

    saved = (fd.get_resource_path, fio.get_resource_path)
    fd.get_resource_path = fio.get_resource_path = lambda: str(folder)
    hc.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        fd.get_resource_path, fio.get_resource_path = saved


def offline() -> None:
    """No network, ever: py-feat also looks up optional models (head pose) while it runs;
    with the hub offline a missing one is skipped instead of fetched."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants as hc

    hc.HF_HUB_OFFLINE = True


_DETECTORS: dict = {}


def detector(folder: str, device: str = "cpu"):
    """py-feat's Detectorv1 built once per process from `folder` (no emotion, identity
    or gaze models: only what AU estimation needs)."""
    key = (str(folder), device)
    offline()
    if key not in _DETECTORS:
        import warnings

        import torch  # before feat: feat sets OMP_NUM_THREADS when unset
        from feat import Detectorv1

        from pipeline.model_trust import check_skops_types

        check_skops_types(model_files(Path(folder))["py-feat/xgb_au"])  # py-feat trusts every type it names
        grad = torch.is_grad_enabled()  # py-feat's RetinaFace turns autograd off process-wide
        try:
            with _models_folder(Path(folder)), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _DETECTORS[key] = Detectorv1(
                    face_model="retinaface",
                    landmark_model="mobilefacenet",
                    au_model="xgb",
                    emotion_model=None,
                    identity_model=None,
                    gaze_model=None,
                    device=device,
                )
        finally:
            torch.set_grad_enabled(grad)
    return _DETECTORS[key]


class _GivenBoxes:
    """Stands in for py-feat's face detector: returns boxes found by someone else,
    [x1, y1, x2, y2, score] per face, per frame of the batch."""

    def __init__(self, boxes: list[list]):
        self.boxes = boxes

    def __call__(self, frames):
        return [[list(b) for b in self.boxes[i]] for i in range(frames.shape[0])]


def landmark_box(lm: np.ndarray, shape: tuple) -> list[float]:
    """A face box around 68 landmarks (brows to chin), raised to include the forehead like
    a face detector's box: [x1, y1, x2, y2, score=1]."""
    x0, y0 = np.nanmin(lm, axis=0)
    x1, y1 = np.nanmax(lm, axis=0)
    w, h = x1 - x0, y1 - y0
    box = [x0 - 0.05 * w, y0 - 0.25 * h, x1 + 0.05 * w, y1 + 0.05 * h]
    H, W = shape[:2]
    return [
        float(np.clip(box[0], 0, W - 1)),
        float(np.clip(box[1], 0, H - 1)),
        float(np.clip(box[2], 0, W - 1)),
        float(np.clip(box[3], 0, H - 1)),
        1.0,
    ]


def au_probabilities(det, frames: list[np.ndarray], boxes: list[list] | None = None) -> dict[str, np.ndarray]:
    """py-feat AU probabilities of RGB uint8 frames (same size): column -> (n,) array,
    NaN where no face. With `boxes` (per frame, a list of [x1, y1, x2, y2, score]; empty
    = no face) those faces are used instead of RetinaFace's. Several faces: the one
    with the highest score."""
    import torch
    from feat.pretrained import AU_LANDMARK_MAP

    cols = AU_LANDMARK_MAP["Feat"]
    n = len(frames)
    out = {c: np.full(n, np.nan, np.float32) for c in cols}
    if not n:
        return out
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # uint8 [B, 3, H, W]
    batch = {
        "Image": x,
        "Scale": torch.ones(n),
        "Padding": {k: torch.zeros(n, dtype=torch.int64) for k in ("Left", "Top", "Right", "Bottom")},
    }
    real = det.facepose_detector
    if boxes is not None:
        det.facepose_detector = _GivenBoxes(boxes)
    try:
        with torch.inference_mode():
            faces = det.detect_faces(x, face_size=det.face_size)
            df = det.forward(faces, batch)
    finally:
        det.facepose_detector = real
    # forward() lists faces frame by frame (a frame without a face: one row of NaN)
    df = df.assign(frame=np.repeat(np.arange(n), [f["faces"].shape[0] for f in faces]))
    df = df[df["FaceScore"].notna() & df["FaceRectX"].notna()]
    for frame, rows in df.groupby("frame"):
        best = rows.loc[rows["FaceScore"].idxmax()]
        for c in cols:
            out[c][int(frame)] = float(best[c])
    return out
