"""mepipe command line: preprocess, versions, info, demo."""
from __future__ import annotations

import argparse
import json
import os
import sys

from pipeline.catalog import CatalogError, load_catalog


def _ensure_demo(ds, log=print):
    if ds.generate == "demo" and not os.environ.get(ds.root_env):
        from pipeline.demo import generate, is_complete

        root = ds.root(must_exist=False)
        if not is_complete(root):
            log(f"[{ds.name}] generating the demo dataset in {root} (first use)")
            generate(root, log=log)


def cmd_preprocess(args) -> int:
    from pipeline.qc import write_report
    from pipeline.runner import run
    from pipeline.store import Store

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    from schemas.feeds import FEEDS

    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()] or None
    bad = sorted(set(methods or []) - set(FEEDS))
    if bad:
        print(f"error: --methods {bad}: unknown; known: {sorted(FEEDS)}", file=sys.stderr)
        return 2
    _ensure_demo(ds)
    res = run(cat, ds, workers=args.workers, progress=not args.no_progress, methods=methods,
              cluster=args.cluster or None)
    if res.committed:
        summary = json.loads((res.run_dir / "summary.json").read_text())
        rep = write_report(Store(cat.store_root / ds.name), ds, res.snapshot, res.run_dir, summary)
        print(f"[{ds.name}] QC report: {rep}")
    return 0


def cmd_cluster_script(args) -> int:
    from pipeline.cluster import job_script

    cat = load_catalog(args.catalog)
    print(job_script(cat.cluster(args.cluster)), end="")
    return 0


def cmd_versions(args) -> int:
    from pipeline.store import Store

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    st = Store(cat.store_root / ds.name, create=False)
    for v in st.versions():
        m = v["metadata"] or {}
        c = m.get("counts", {})
        print(f"{v['snapshot']}  {v['written_at']:%Y-%m-%d %H:%M:%S}  {v['message']}"
              + (f"  [code {m.get('code_version')}, ok {c.get('ok')}/{c.get('samples')}]" if c else ""))
    return 0


def cmd_info(args) -> int:
    from pipeline.store import Store

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    st = Store(cat.store_root / ds.name, create=False)
    info = st.info(args.snapshot)
    print(f"store {st.path} @ {args.snapshot or st.head()}")
    print(f"samples: {info['counts']}")
    for name, a in info["arrays"].items():
        print(f"  {name:24s} {str(a['shape']):22s} {a['dtype']:8s} chunk {a['chunks']} shard {a['shards']} "
              f"{a['stored_bytes'] / 1e6:8.2f} MB stored")
    return 0


def cmd_validate(args) -> int:
    from pipeline.validate import print_report, validate

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    _ensure_demo(ds)
    rep = validate(ds, quick=args.quick, catalog=cat)
    print_report(ds, rep)
    return 1 if rep["blocking"] else 0


def cmd_train(args) -> int:
    from pathlib import Path

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    store = cat.store_root / ds.name
    if not store.exists():
        print(f"error: no store for {ds.name} at {store}; run `make preprocess DATASET={ds.name}` first",
              file=sys.stderr)
        return 2
    tag = f"{args.method}-{args.config}" + (f"-{args.view}" if args.method == "dvscl" else "") \
        + (f"-{args.motion}" if args.method == "selfme" else "") \
        + (f"-{args.protocol}" if args.method == "attrcl" else "")
    out = Path(args.out) if args.out else cat.runs_root.parent / "train" / ds.name / tag
    if args.method == "dvscl":
        from training.dvscl import train_dvscl

        summary = train_dvscl(store, ds.scheme, out, args.config, args.view, args.weights or None,
                              progress=not args.no_progress)
    elif args.method == "fdp":
        from training.fdp import train_fdp

        summary = train_fdp(store, ds.scheme, out, args.config, progress=not args.no_progress)
    elif args.method == "attrcl":
        from training.attrcl import train_attrcl

        summary = train_attrcl(store, ds.scheme, out, args.config, args.protocol, args.text_model or None,
                               progress=not args.no_progress)
    elif args.method == "microauclip":
        from training.microauclip import train_microauclip

        summary = train_microauclip(store, ds.scheme, out, args.config, progress=not args.no_progress,
                                    weights=args.weights or None)
    elif args.method == "selfme":
        from training.selfme import train_selfme

        summary = train_selfme(store, ds.scheme, out, args.config, args.weights or None, progress=not args.no_progress,
                               motion=args.motion)
    else:
        print(f"error: METHOD={args.method}: unknown; use dvscl, fdp, attrcl, microauclip or selfme", file=sys.stderr)
        return 2
    print(f"predictions and summary in {out}")
    return 0 if summary else 1


def cmd_export(args) -> int:
    from pathlib import Path

    from pipeline.store import Store
    from schemas.tables import TABLES

    cat = load_catalog(args.catalog)
    st = Store(cat.store_root / cat.dataset(args.dataset).name, create=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        t = st.table(name, args.snapshot)
        if t is not None:
            t.to_parquet(out / f"{name}.parquet")
            print(f"{out / (name + '.parquet')}: {len(t)} rows")
    return 0


def cmd_demo(args) -> int:
    cat = load_catalog(args.catalog)
    ds = cat.dataset("demo")
    _ensure_demo(ds)
    print(ds.root())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="mepipe", description=__doc__)
    p.add_argument("--catalog", default=os.environ.get("MEPIPE_CATALOG", "catalog.yaml"))
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("preprocess", help="run the pipeline on a dataset and commit a version")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--methods", default="", help="comma-separated method feeds (default: all)")
    a.add_argument("--no-progress", action="store_true")
    a.add_argument("--cluster", default="", help="cluster profile of the catalog (default: a LocalCluster)")
    a.set_defaults(fn=cmd_preprocess)
    a = sub.add_parser("cluster-script", help="print the batch job script of a cluster profile (submits nothing)")
    a.add_argument("--cluster", required=True)
    a.set_defaults(fn=cmd_cluster_script)
    a = sub.add_parser("versions", help="list the versions (commits) of a dataset's store")
    a.add_argument("--dataset", default="demo")
    a.set_defaults(fn=cmd_versions)
    a = sub.add_parser("info", help="arrays (shape, dtype, bytes) and sample counts of a version")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--snapshot", default=None)
    a.set_defaults(fn=cmd_info)
    a = sub.add_parser("validate", help="check a dataset copy (annotation, frames, depth) without writing anything")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--quick", action="store_true", help="decode only onset/apex frames")
    a.set_defaults(fn=cmd_validate)
    a = sub.add_parser("train", help="train a method under LOSO on a store (tiny CPU config or the paper's)")
    a.add_argument("--method", default="dvscl")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--config", default="tiny", choices=["tiny", "paper"])
    a.add_argument("--view", default="depth", choices=["depth", "gray"], help="second view of DVSCL")
    a.add_argument("--weights", default="", help="optional local weights: ImageNet ResNet18 (dvscl) or "
                   "open_clip ViT-B-32 (microauclip) state_dict")
    a.add_argument("--protocol", default="split", choices=["split", "loso"],
                   help="AttrCL: subject-disjoint 3:2 split x 5 runs (the paper) or LOSO")
    a.add_argument("--text-model", default="", help="AttrCL: local BERT/sentence-transformers folder")
    a.add_argument("--motion", default="learned", choices=["learned", "tvl1"],
                   help="SelfME: the learned motion (default) or the TV-L1 baseline")
    a.add_argument("--out", default="")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(fn=cmd_train)
    a = sub.add_parser("export", help="write a version's tables (manifest, exclusions, au_frames, videos) as Parquet")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--snapshot", default=None)
    a.add_argument("--out", required=True)
    a.set_defaults(fn=cmd_export)
    a = sub.add_parser("demo", help="generate the demo dataset (also done on first use)")
    a.set_defaults(fn=cmd_demo)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except CatalogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
