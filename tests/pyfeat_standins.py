"""Stand-in model files for py-feat 2.1.5's Detectorv1, in the Hugging Face cache layout
our `pyfeat` estimator reads (the real weights cannot be downloaded here).

Same architectures and file formats as py-feat's published models, built from py-feat's
own classes: RetinaFace-R34 (safetensors) with its class head set to "no face" (random
weights fire everywhere and break py-feat's box post-processing), MobileFaceNet (torch
checkpoint) whose output is py-feat's neutral 68-point face (random landmarks make the
alignment matrix singular), and the AU model (skops) holding StandardScaler + PCA for
the upper / lower / full face and one small XGBoost classifier per AU fitted on random
data of the right width. The AU probabilities are therefore arbitrary but come from the
real HOG + PCA + XGBoost pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REV = "0" * 40


def _snapshot(root: Path, repo: str) -> Path:
    org, name = repo.split("/")
    d = root / f"models--{org}--{name}"
    (d / "refs").mkdir(parents=True, exist_ok=True)
    (d / "refs" / "main").write_text(REV)
    snap = d / "snapshots" / REV
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def build(root: Path, n_pca: int = 16, seed: int = 0) -> Path:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import pandas as pd
    import torch
    import xgboost as xgb
    from feat.au_detectors.StatLearning.SL_test import XGBClassifier as FeatXGB
    from feat.face_detectors.Retinaface.Retinaface_model import RETINAFACE_R34_CFG, RetinaFace
    from feat.landmark_detectors.mobilefacenet_test import MobileFaceNet
    from feat.utils.image_operations import HOGLayer
    from feat.utils.io import get_resource_path
    from safetensors.torch import save_file
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    from skops.io import dump

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    root = Path(root)

    sd = {k: v.detach().clone().contiguous() for k, v in RetinaFace(RETINAFACE_R34_CFG).state_dict().items()}
    for k in sd:
        if k.startswith("ClassHead.") and k.endswith(".weight"):
            sd[k].zero_()
        elif k.startswith("ClassHead.") and k.endswith(".bias"):
            sd[k] = torch.tensor([5.0, -5.0] * (sd[k].numel() // 2))  # logits (not face, face)
    save_file(sd, str(_snapshot(root, "py-feat/retinaface_r34") / "model.safetensors"))

    lm = MobileFaceNet([112, 112], 136, device="cpu").state_dict()
    neutral = pd.read_csv(Path(get_resource_path()) / "neutral_face_coordinates.csv").to_numpy()
    norm = (neutral - neutral.min(0)) / (neutral.max(0) - neutral.min(0))
    norm = np.stack([0.15 + 0.7 * norm[:, 0], 0.25 + 0.7 * norm[:, 1]], axis=1)
    lm["output_layer.bn.weight"] = torch.zeros(136)
    lm["output_layer.bn.bias"] = torch.tensor(norm.reshape(-1), dtype=torch.float32)
    torch.save({"state_dict": lm}, _snapshot(root, "py-feat/mobilefacenet") / "mobilefacenet_model_best.pth.tar")

    hog = HOGLayer(
        orientations=8,
        pixels_per_cell=8,
        cells_per_block=2,
        block_normalization="L2-Hys",
        feature_vector=True,
        device="cpu",
    )
    with torch.inference_mode():
        n_hog = hog(torch.zeros(1, 3, 112, 112)).shape[1]
    n_fit = max(64, n_pca + 8)

    def scaler_pca():
        x = rng.normal(size=(n_fit, n_hog)).astype(np.float32)
        sc = StandardScaler().fit(x)
        return sc, PCA(n_components=n_pca, random_state=seed).fit(sc.transform(x))

    (su, pu), (sl, pl), (sf, pf) = scaler_pca(), scaler_pca(), scaler_pca()
    wrapper = FeatXGB()
    classifiers = {}
    for key in wrapper.au_keys:
        x = rng.normal(size=(n_fit, n_pca + 136)).astype(np.float32)
        y = rng.integers(0, 2, size=n_fit)
        y[:2] = [0, 1]
        classifiers[key] = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1, random_state=seed).fit(x, y)
    wrapper.load_weights(
        scaler_upper=su,
        pca_model_upper=pu,
        scaler_lower=sl,
        pca_model_lower=pl,
        scaler_full=sf,
        pca_model_full=pf,
        classifiers=classifiers,
    )
    dump(wrapper, _snapshot(root, "py-feat/xgb_au") / "xgb_au_classifier_v2.skops")
    return root
