"""Fingerprints: a product is recomputed exactly when its fingerprint changes.

fp(product) is derived from its declaration (products/base.py `Product.fingerprint`):
its name and version, the parameters it declares, the checksums of the input files it
declares, the fingerprints of the products it builds on, its arrays' per-sample shapes
and dtypes, and the checksum of a model file it declares.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.io import sha256_file, split_ref
from products import fingerprints


def sample_fingerprints(
    row: dict, root: Path, params: dict, has_depth: bool, file_hash=sha256_file
) -> dict[str, str | None]:
    def fh(ref: str) -> str:
        p = root / ref  # an absolute path (a model file) stays itself
        return file_hash(p) if split_ref(p)[0].is_file() else "missing"

    return fingerprints(row, params, has_depth, fh)
