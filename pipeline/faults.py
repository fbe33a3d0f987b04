"""Fault injection for the crash tests (inactive unless MEPIPE_FAULT is set).

MEPIPE_FAULT=<point>         the process exits at once at <point> as if killed (no cleanup)
MEPIPE_FAULT=<point>:pause   it writes $MEPIPE_FAULT_FILE and sleeps, so a test can
                             `kill -9` it exactly there
Points: before_commit, after_commit, after_reset, after_checkpoint, screened_one (after
the first unlabelled video's AU table is saved to the screening checkpoint) (driver); clip:<sample_id> (the worker
process running that sample dies once: the marker $MEPIPE_FAULT_FILE records it);
clip_error:<sample_id> (that sample's task raises every time; clip_error:* every sample's);
slow:<seconds> (every clip task sleeps that long first: a run slow enough for a test to
cancel a worker job, send SIGTERM or outlive a walltime in the middle of it).

MEPIPE_TRACE=<folder>        every clip task start, shard write, batch of TV-L1 flows
                             and AU screening of a video submitted appends a line "<unix time> <event>" to
                             <folder>/<pid>.log (tests count what was computed twice)
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
    trace(f"clip {sample_id}")
    if want.startswith("slow:"):
        time.sleep(float(want.removeprefix("slow:")))
    if want in (f"clip_error:{sample_id}", "clip_error:*"):
        raise RuntimeError(f"injected failure for sample {sample_id}")
    if want == f"clip:{sample_id}":
        marker = Path(os.environ["MEPIPE_FAULT_FILE"])
        if not marker.exists():
            marker.write_text(f"killed worker {os.getpid()}")
            os._exit(137)


def trace(event: str) -> None:
    """Append "<unix time> <event>" to $MEPIPE_TRACE/<pid>.log (nothing when unset)."""
    folder = os.environ.get("MEPIPE_TRACE")
    if folder:
        with open(Path(folder) / f"{os.getpid()}.log", "a") as f:
            f.write(f"{time.time():.3f} {event}\n")
