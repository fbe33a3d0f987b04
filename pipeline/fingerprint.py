"""Fingerprints: a product is recomputed exactly when its fingerprint changes.

fp(group) = sha256 of (group name, group code version, the parameters the group reads,
the checksums of the input files it reads, the fingerprints of the groups it depends on).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.io import sha256_file
from pipeline.tasks import GROUP_VERSIONS


def _h(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def sample_fingerprints(row: dict, root: Path, params: dict, has_depth: bool,
                        file_hash=sha256_file) -> dict[str, str | None]:
    fp_crop = _h(["crop", GROUP_VERSIONS["crop"], params["face"], params["crop"],
                  file_hash(root / row["onset_path"]) if (root / row["onset_path"]).is_file() else "missing",
                  file_hash(root / row["apex_path"]) if (root / row["apex_path"]).is_file() else "missing"])
    fp_depth = None
    if has_depth:
        hs = [file_hash(root / row[k]) if (root / row[k]).is_file() else "missing"
              for k in ("onset_depth_path", "apex_depth_path")]
        fp_depth = _h(["depth", GROUP_VERSIONS["depth"], fp_crop, params["depth"], hs])
    return {"crop": fp_crop, "depth": fp_depth}
