"""Fault injection for the crash tests (inactive unless MEPIPE_FAULT is set).

MEPIPE_FAULT=<point>         the process exits at once at <point> as if killed (no cleanup)
MEPIPE_FAULT=<point>:pause   it writes $MEPIPE_FAULT_FILE and sleeps, so a test can
                             `kill -9` it exactly there
Points: before_commit, after_commit, after_reset (driver); clip:<sample_id> (the worker
process running that sample dies once: the marker $MEPIPE_FAULT_FILE records it);
clip_error:<sample_id> (that sample's task raises every time; clip_error:* every sample's).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def fault_point(name: str) -> None:
    want = os.environ.get("MEPIPE_FAULT", "")
    if not want or want.removesuffix(":pause") != name:
        return
    if want.endswith(":pause"):
        Path(os.environ["MEPIPE_FAULT_FILE"]).write_text(f"{name} {os.getpid()}")
        time.sleep(3600)
    os._exit(137)


def clip_fault(sample_id: str) -> None:
    """In a worker: die once (clip:<id>) or raise (clip_error:<id>) for that sample."""
    want = os.environ.get("MEPIPE_FAULT", "")
    if want in (f"clip_error:{sample_id}", "clip_error:*"):
        raise RuntimeError(f"injected failure for sample {sample_id}")
    if want == f"clip:{sample_id}":
        marker = Path(os.environ["MEPIPE_FAULT_FILE"])
        if not marker.exists():
            marker.write_text(f"killed worker {os.getpid()}")
            os._exit(137)
