"""mepipe command line: preprocess / batch, plan, validate, versions, verify, info,
export, publish / pull, cluster-script, train, demo.

The only module that imports both the engine (`pipeline`) and the training module
(`training`): the engine never imports upward (tests/test_methods.py checks the graph).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from pipeline.catalog import CatalogError, load_catalog


def ensure_demo(ds, log=print) -> None:
    """The demo dataset generated on first use (imported late: the CLI starts fast)."""
    from pipeline.demo import ensure_demo as ensure

    ensure(ds, log=log)


def _run_log(cat, ds, run_id: str):
    """(log function, its file handler): every line to stdout and <runs>/<dataset>/<run>/run.log."""
    import logging

    log_path = cat.runs_root / ds.name / run_id / "run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"mepipe.run.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fh = logging.FileHandler(log_path)
    fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(fh)

    def log(msg):
        print(msg, flush=True)
        logger.info(msg)

    return log, logger, fh, log_path


class RunStopped(BaseException):
    """A run stopped by SIGTERM (scancel, a batch job's time limit, kill) or SIGINT:
    raised in the main thread, and not an Exception, so that every `finally` on the way
    out runs (the dask cluster closed, its batch jobs cancelled, the store lock freed)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal_name(signum))


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def _stop_run(signum, frame):
    raise RunStopped(signum)


def _main_head(cat, ds) -> str | None:
    """The version main is at (None: no store yet, or only the store's creation, which
    carries no run's provenance)."""
    from pipeline.store import Store

    try:
        versions = Store(cat.store_root / ds.name, create=False).versions()
    except Exception:
        return None
    return versions[0]["snapshot"] if versions and versions[0]["metadata"] else None


def _stopped(e: RunStopped, before: str | None, after: str | None, name: str, log) -> int:
    """Say what a stopped run left behind; exit status 128 + signal number."""
    done = (
        "nothing committed (main unchanged)"
        if after == before
        else f"main moved to {after} before the signal (that version is complete)"
    )
    log(
        f"[{name}] stopped by {signal_name(e.signum)}: {done}; its dask workers were stopped (batch jobs "
        "cancelled) and the store lock released; samples written up to the run's last checkpoint stay on its "
        "branch and the next run resumes from there"
    )
    return 128 + e.signum


def _method_list(text: str) -> list[str] | None:
    """--methods a,b -> ['a', 'b'] (None: all); an unknown name is a CatalogError."""
    from schemas.feeds import FEEDS

    methods = [m.strip().lower() for m in text.split(",") if m.strip()] or None
    bad = sorted(set(methods or []) - set(FEEDS))
    if bad:
        raise CatalogError(f"--methods {bad}: unknown; known: {sorted(FEEDS)}")
    return methods


def _preprocess(args, cat, ds, run_id: str, log) -> int:
    """Run, write the QC page, report failed samples; the exit status."""
    from pipeline.commit import CommittedButFailed
    from pipeline.qc import write_report
    from pipeline.runner import run
    from pipeline.store import Store

    ensure_demo(ds, log=log)
    res = run(
        cat,
        ds,
        workers=args.workers,
        progress=not args.no_progress,
        methods=_method_list(args.methods),
        cluster=args.cluster or None,
        lock_wait=args.wait,
        run_id=run_id,
        log=log,
        checkpoint_s=args.checkpoint_s,
        trust_model_files=args.trust_model_files,
    )
    if res.failed_run:
        return 1  # said by the run: main not moved, result kept on a branch
    if res.committed:
        try:
            rep, warnings = write_report(Store(cat.store_root / ds.name), ds, res.snapshot, res.run_dir, res.timings)
        except Exception as e:
            raise CommittedButFailed(res.snapshot, f"writing the QC report in {res.run_dir / 'qc'}", e) from e
        for w in warnings:
            log(f"[{ds.name}] warning: {w}")
        log(f"[{ds.name}] QC report: {rep}" + (f" ({len(warnings)} warning(s))" if warnings else ""))
    if res.failed:
        log(
            f"[{ds.name}] FAILED: {len(res.failed)} sample task(s) failed after retries (committed as "
            "excluded; the next run retries them):"
        )
        for d in res.failed:
            log(f"  {d}")
        return 1
    return 0


def cmd_preprocess(args) -> int:
    """Exit 0: committed or up to date; 1: the run failed or samples failed (listed);
    2: bad arguments or catalog; 3: the store stayed locked by another run; 4: committed
    (main moved, the version is complete), then a later step failed (said which);
    128 + n: stopped by signal n (143 SIGTERM, 130 SIGINT), its workers and jobs stopped."""
    import traceback

    from pipeline.commit import CommittedButFailed
    from pipeline.runner import new_run_id
    from pipeline.store import StoreLockedError

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    _method_list(args.methods)  # bad arguments stop before a run folder is made
    run_id = new_run_id()
    log, logger, fh, log_path = _run_log(cat, ds, run_id)
    log(f"[{ds.name}] run {run_id} (pid {os.getpid()}); log {log_path}")
    before = _main_head(cat, ds)
    handlers = {sig: signal.signal(sig, _stop_run) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _preprocess(args, cat, ds, run_id, log)
    except RunStopped as e:
        return _stopped(e, before, _main_head(cat, ds), ds.name, log)
    except StoreLockedError as e:
        log(f"[{ds.name}] not run: {e}")
        return 3
    except CommittedButFailed as e:
        logger.info(traceback.format_exc())
        log(f"[{ds.name}] {e}. The version is complete and is main; details in {log_path}")
        return 4
    except CatalogError:
        raise
    except Exception as e:
        logger.info(traceback.format_exc())
        log(
            f"[{ds.name}] FAILED: {type(e).__name__}: {e}. Nothing was committed; the previous version is "
            f"intact; details in {log_path}"
        )
        return 1
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        logger.removeHandler(fh)
        fh.close()


def cmd_cluster_script(args) -> int:
    from pipeline.cluster import job_script

    cat = load_catalog(args.catalog)
    print(job_script(cat.cluster(args.cluster)), end="")
    return 0


def _store(args, create=False):
    """The store a command reads: --store (a folder or s3://bucket/prefix, optionally
    @tag; no catalog needed) or the catalog's store of --dataset."""
    from pipeline.store import Store

    if getattr(args, "store", ""):
        from pipeline.remote import RemoteError
        from pipeline.store import one_line

        try:
            return Store(args.store, create=False)
        except Exception as e:  # a wrong URL, tag or credentials: one line, not a storage trace
            raise RemoteError(f"{args.store}: cannot be opened ({one_line(e)})") from e
    cat = load_catalog(args.catalog)
    return Store(cat.store_root / cat.dataset(args.dataset).name, create=create)


def cmd_versions(args) -> int:
    from pipeline import versions as V

    st = _store(args)
    action = args.action or "list"
    if action == "list":
        for v in st.versions():
            m = v["metadata"] or {}
            c = m.get("counts", {})
            tags = f"  tags: {', '.join(v['tags'])}" if v["tags"] else ""
            print(
                f"{v['snapshot']}  {v['written_at']:%Y-%m-%d %H:%M:%S}  {v['message']}"
                + (f"  [code {m.get('code_version')}, ok {c.get('ok')}/{c.get('samples')}]" if c else "")
                + tags
            )
    elif action == "show":
        print(json.dumps(V.provenance(st, args.ref), indent=1, default=str))
    elif action == "card":
        print(V.card(st, args.ref))
    elif action == "diff":
        if not args.ref or not args.to:
            print("error: versions diff needs --ref A --to B", file=sys.stderr)
            return 2
        print(V.format_diff(V.diff(st, args.ref, args.to)))
    elif action == "tag":
        if not args.name:
            print("error: versions tag needs --name", file=sys.stderr)
            return 2
        snap = V.tag(st, args.name, args.ref)
        print(f"tagged {snap} as {args.name}")
    return 0


def cmd_gc(args) -> int:
    """Collect the objects no version reaches (killed runs, amended commits)."""
    from pipeline.gc import collect, disk_bytes
    from pipeline.store import store_lock

    st = _store(args)
    with store_lock(st.path, wait=args.wait):
        before = disk_bytes(st.path)
        done = collect(st, dry_run=args.dry_run)
        after = disk_bytes(st.path)
    verb = "would delete" if done.dry_run else "deleted"
    print(
        f"{st.path}: {verb} {done.objects_deleted} objects ({done.bytes_deleted / 1e6:.1f} MB) no branch or tag "
        f"reaches"
        + (f" and {len(done.branches_deleted)} killed run(s)' scratch branches" if done.branches_deleted else "")
        + f"; {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB on disk"
    )
    return 0


def cmd_verify(args) -> int:
    from pipeline.verify import verify
    from pipeline.versions import resolve

    st = _store(args)
    rep = verify(st, resolve(st, args.ref))
    for p in rep.problems:
        print(f"  PROBLEM {p}")
    print("OK" if rep.ok else f"FAILED: {len(rep.problems)} problem(s)")
    return 0 if rep.ok else 1


def cmd_publish(args) -> int:
    from pipeline.remote import publish

    publish(_store(args).path, args.tag, args.to)
    return 0


def cmd_pull(args) -> int:
    from pathlib import Path

    from pipeline.remote import pull

    pull(args.url, Path(args.dest))
    return 0


def cmd_info(args) -> int:
    st = _store(args)
    info = st.info(args.snapshot)
    print(f"store {st.path} @ {args.snapshot or st.head()}")
    print(f"samples: {info['counts']}")
    for name, a in info["arrays"].items():
        print(
            f"  {name:24s} {str(a['shape']):22s} {a['dtype']:8s} chunk {a['chunks']} shard {a['shards']} "
            f"{a['stored_bytes'] / 1e6:8.2f} MB stored"
        )
    return 0


def cmd_validate(args) -> int:
    from pipeline.validate import print_report, validate

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    ensure_demo(ds)
    rep = validate(ds, quick=args.quick, catalog=cat)
    print_report(ds, rep)
    return 1 if rep["blocking"] else 0


def cmd_plan(args) -> int:
    from pipeline.plan import make_plan, print_plan

    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    ensure_demo(ds)
    methods = _method_list(args.methods)
    print_plan(ds, make_plan(cat, ds, out=args.out or None, methods=methods))
    return 0


def cmd_train(args) -> int:
    from pathlib import Path

    from training.registry import UnknownMethod, get_method, train

    try:
        method = get_method(args.method)
    except UnknownMethod as e:
        print(f"error: METHOD={args.method}: unknown; known: {', '.join(e.known)}", file=sys.stderr)
        return 2
    cat = load_catalog(args.catalog)
    ds = cat.dataset(args.dataset)
    store = args.store or cat.store_root / ds.name
    if not args.store and not store.exists():
        print(
            f"error: no store for {ds.name} at {store}; run `make preprocess DATASET={ds.name}` first", file=sys.stderr
        )
        return 2
    options = {o.name: getattr(args, o.name) for o in method.options}  # other methods' options are ignored
    scheme = args.scheme or method.scheme_for(ds.adapter, ds.label_scheme)
    if scheme not in cat.label_schemes:
        if args.scheme:
            print(f"error: --scheme {scheme}: unknown; the catalog has {', '.join(cat.label_schemes)}", file=sys.stderr)
            return 2
        print(f"{method.name}: the paper's scheme {scheme} is not in this catalog; using {ds.label_scheme}")
        scheme = ds.label_scheme
    tag = method.tag(args.config, options) + ("" if scheme == ds.label_scheme else f"-{scheme}")
    out = Path(args.out) if args.out else cat.runs_root.parent / "train" / ds.name / tag
    print(f"{method.name}: label scheme {scheme} ({', '.join(cat.label_schemes[scheme])})")
    summary = train(
        method.name,
        store,
        cat.label_schemes[scheme],
        out,
        args.config,
        options,
        cache_dir=args.cache_dir or None,
        progress=not args.no_progress,
        device=args.device or None,
        precision=args.precision or None,
        adapter=ds.adapter,
    )
    print(f"predictions and summary in {out}")
    return 0 if summary else 1


def _train_parser(sub) -> None:
    """`mepipe train`: the common options, then every registered method's own (training.registry)."""
    from training.registry import REGISTRY, cli_options, config_names

    a = sub.add_parser("train", help="train a method under LOSO on a store (tiny CPU config or the paper's)")
    a.add_argument("--method", default="dvscl", help=f"one of {', '.join(REGISTRY)}")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--config", default="tiny", choices=config_names())
    for o, help_ in cli_options():
        a.add_argument(o.flag, dest=o.name, default=o.default or "", choices=o.choices, help=help_)
    a.add_argument(
        "--cache-dir",
        default=os.environ.get("MEPIPE_FEED_CACHE", ""),
        help="decode the feed arrays once into this local folder and train from there "
        "(keyed by snapshot; default $MEPIPE_FEED_CACHE, none)",
    )
    a.add_argument(
        "--store",
        default="",
        help="train from this store instead of the catalog's, e.g. a "
        "published s3://bucket/prefix@tag (read in place, not copied)",
    )
    a.add_argument("--out", default="")
    a.add_argument(
        "--scheme",
        default="",
        help="label scheme of the catalog to train under (default: the method's paper scheme for the dataset, "
        "e.g. casme3_4 for DVSCL on CAS(ME)^3, else the dataset's label_scheme)",
    )
    a.add_argument("--device", default="", help="cuda, cuda:1 or cpu (default: cuda when present, else cpu)")
    a.add_argument(
        "--precision",
        default="",
        choices=["", "fp32", "bf16"],
        help="fp32, or bf16 autocast (no loss scaling needed; default: the config's, else fp32)",
    )
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(fn=cmd_train)


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
    ensure_demo(ds)
    print(ds.root())
    return 0


def _add_run_options(a, wait: float, wait_help: str) -> None:
    """The options `preprocess` and `batch` share (batch differs in its --wait default)."""
    a.add_argument("--dataset", default="demo")
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--methods", default="", help="comma-separated method feeds (default: all)")
    a.add_argument("--cluster", default="", help="cluster profile of the catalog (default: a LocalCluster)")
    a.add_argument("--wait", type=float, default=wait, help=wait_help)
    a.add_argument(
        "--checkpoint-s",
        type=float,
        default=120.0,
        help="make written shards durable every N seconds (a killed run resumes from there)",
    )
    a.add_argument(
        "--trust-model-files",
        action="store_true",
        help="use model files whose sha256 differs from models.lock (your own predictor or AU models)",
    )


def _add_run_commands(sub) -> None:
    a = sub.add_parser("preprocess", help="run the pipeline on a dataset and commit a version")
    _add_run_options(a, 0.0, "seconds to wait for a store locked by another run (default: fail at once)")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(fn=cmd_preprocess)
    a = sub.add_parser(
        "batch",
        help="preprocess for cron/sbatch: no progress bars, waits for the store lock, "
        "log file per run, exit status 0 ok / 1 failed / 3 still locked / 4 committed, then a later step failed",
    )
    _add_run_options(a, 3600.0, "seconds to wait for the store lock (default 3600)")
    a.set_defaults(fn=cmd_preprocess, no_progress=True)
    a = sub.add_parser("cluster-script", help="print the batch job script of a cluster profile (submits nothing)")
    a.add_argument("--cluster", required=True)
    a.set_defaults(fn=cmd_cluster_script)


STORE_HELP = "a store folder or s3://bucket/prefix, optionally @tag (default: the catalog's store of --dataset)"


def _add_store_commands(sub) -> None:
    a = sub.add_parser("versions", help="list / show / card / diff / tag the versions of a store")
    a.add_argument("action", nargs="?", default="list", choices=["list", "show", "card", "diff", "tag"])
    a.add_argument("--dataset", default="demo")
    a.add_argument("--store", default="", help=STORE_HELP)
    a.add_argument("--ref", default=None, help="tag, snapshot id or 'main' (default: latest)")
    a.add_argument("--to", default=None, help="diff: the second version")
    a.add_argument("--name", default="", help="tag: the new tag's name (tags are immutable)")
    a.set_defaults(fn=cmd_versions)
    a = sub.add_parser("verify", help="re-read a version and check every array against its write-time checksums")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--store", default="", help=STORE_HELP)
    a.add_argument("--ref", default=None)
    a.set_defaults(fn=cmd_verify)
    a = sub.add_parser("gc", help="delete the objects no version reaches (killed runs, amended commits)")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--store", default="", help="a local store folder (default: the catalog's store of --dataset)")
    a.add_argument("--dry-run", action="store_true", help="count only")
    a.add_argument("--wait", type=float, default=0.0, help="seconds to wait for a run holding the store")
    a.set_defaults(fn=cmd_gc)
    a = sub.add_parser("info", help="arrays (shape, dtype, bytes) and sample counts of a version")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--store", default="", help=STORE_HELP)
    a.add_argument("--snapshot", default=None)
    a.set_defaults(fn=cmd_info)
    a = sub.add_parser("export", help="write a version's tables (manifest, exclusions, au_frames, videos) as Parquet")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--snapshot", default=None)
    a.add_argument("--out", required=True)
    a.set_defaults(fn=cmd_export)


def _add_sharing_commands(sub) -> None:
    a = sub.add_parser("publish", help="upload a store so that URL@TAG opens remotely (S3-compatible)")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--store", default="", help=STORE_HELP)
    a.add_argument("--tag", required=True)
    a.add_argument("--to", required=True, help="s3://bucket/prefix (endpoint/credentials: AWS_* environment)")
    a.set_defaults(fn=cmd_publish)
    a = sub.add_parser("pull", help="download a published store to a local folder")
    a.add_argument("url", help="s3://bucket/prefix[@tag]")
    a.add_argument("dest")
    a.set_defaults(fn=cmd_pull)


def _add_dataset_commands(sub) -> None:
    a = sub.add_parser("validate", help="check a dataset copy (annotation, frames, depth) without writing anything")
    a.add_argument("--dataset", default="demo")
    a.add_argument("--quick", action="store_true", help="decode only onset/apex frames")
    a.set_defaults(fn=cmd_validate)
    a = sub.add_parser(
        "plan",
        help="dry run: detected layout, samples per class and scheme, exclusions, repairs, "
        "what a run would compute; writes the sample/exclusion tables (no frame decoded)",
    )
    a.add_argument("--dataset", default="demo")
    a.add_argument(
        "--out",
        default="",
        help="samples Parquet file (exclusions beside it as "
        "<stem>.exclusions.parquet); default <runs_root>/<dataset>/plan/samples.parquet",
    )
    a.add_argument("--methods", default="", help="plan a run of these methods' products only (as preprocess)")
    a.set_defaults(fn=cmd_plan)
    a = sub.add_parser("demo", help="generate the demo dataset (also done on first use)")
    a.set_defaults(fn=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mepipe", description=__doc__)
    p.add_argument("--catalog", default=os.environ.get("MEPIPE_CATALOG", "catalog.yaml"))
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_run_commands(sub)
    _add_store_commands(sub)
    _add_sharing_commands(sub)
    _add_dataset_commands(sub)
    _train_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from icechunk import IcechunkError

    from pipeline.remote import RemoteError
    from pipeline.store import one_line
    from pipeline.versions import VersionError

    try:
        return args.fn(args)
    except CatalogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (VersionError, RemoteError) as e:  # a wrong tag/snapshot, an S3 refusal: named, exit 1
        print(f"error: {e}", file=sys.stderr)
        return 1
    except IcechunkError as e:  # a damaged store file: one line (`mepipe verify` says more)
        print(f"error: the store cannot be read ({one_line(e)}); run `mepipe verify`", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
