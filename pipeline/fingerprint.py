"""Fingerprints: a product is recomputed exactly when its fingerprint changes.

fp(group) = sha256 of (group name, group code version, the parameters the group reads,
the checksums of the input files it reads, the fingerprints of the groups it depends on).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.io import sha256_file, split_ref
from pipeline.tasks import GROUP_VERSIONS


def _h(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def sample_fingerprints(row: dict, root: Path, params: dict, has_depth: bool,
                        file_hash=sha256_file) -> dict[str, str | None]:
    def fh(ref):
        if not isinstance(ref, str):   # None / NaN: no such modality for this sample
            return None
        p = root / ref
        return file_hash(p) if split_ref(p)[0].is_file() else "missing"

    fp_crop = _h(["crop", GROUP_VERSIONS["crop"], params["face"], params["crop"],
                  fh(row["onset_path"]), fh(row["apex_path"])])
    fp_depth = None
    if has_depth and isinstance(row.get("onset_depth_path"), str):
        hs = [fh(row[k]) for k in ("onset_depth_path", "apex_depth_path")]
        fp_depth = _h(["depth", GROUP_VERSIONS["depth"], fp_crop, params["depth"], hs])
    fp_flow = _h(["flow", GROUP_VERSIONS["flow"], fp_crop, params["tvl1"], params["farneback"]])
    mag = dict(params["magnify"])
    if mag.get("method") == "learned" and mag.get("weights") and Path(mag["weights"]).is_file():
        mag["weights_sha256"] = file_hash(Path(mag["weights"]))     # new weights = new products
    fp_micro = _h(["micro", GROUP_VERSIONS["micro"], fp_crop, params["face"], mag, params["tvl1"]])
    seq = row.get("seq_paths")
    seq = list(seq) if seq is not None and not isinstance(seq, float) else []
    fp_clip = _h(["clip", GROUP_VERSIONS["clip"], fp_crop, [fh(p) for p in seq]])
    return {"crop": fp_crop, "depth": fp_depth, "flow": fp_flow, "micro": fp_micro, "clip": fp_clip}
