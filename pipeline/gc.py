"""Store hygiene: collect the objects nothing reaches any more, and publish only what a
tag reaches.

A killed or failed run leaves chunks, manifests and snapshots on its scratch branch;
every run amends its scratch commit, leaving the superseded snapshot behind. Icechunk
keeps all of them until garbage collection. `collect` deletes the objects reachable from
no branch and no tag (every committed version and its history stay readable);
`reachable_copy` builds a copy of a store holding only what some tags reach, which
`publish` uploads.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import icechunk as ic

from pipeline.store import BRANCH, Store


def disk_bytes(path: Path) -> int:
    """Bytes of the files under a local folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


@dataclass
class Collected:
    bytes_deleted: int
    objects_deleted: int
    branches_deleted: list[str]
    dry_run: bool


def _objects(summary) -> int:
    return int(
        summary.chunks_deleted
        + summary.manifests_deleted
        + summary.snapshots_deleted
        + summary.attributes_deleted
        + summary.transaction_logs_deleted
    )


def collect(store: Store, dry_run: bool = False) -> Collected:
    """Delete the scratch branches of killed runs (the caller holds the store lock, so no
    run is using one) and every object no branch or tag reaches. `dry_run`: count only."""
    scratch = [b for b in store.repo.list_branches() if b.startswith("run-")]
    if not dry_run:
        for b in scratch:
            store.repo.delete_branch(b)
    summary = store.repo.garbage_collect(dt.datetime.now(dt.UTC), dry_run=dry_run)
    return Collected(int(summary.bytes_deleted), _objects(summary), [] if dry_run else scratch, dry_run)


def collect_if_worth_it(store: Store, threshold_mb: float, log) -> Collected | None:
    """After a committed run: collect when the unreachable bytes reach `threshold_mb`."""
    if store.remote:
        return None
    probe = collect(store, dry_run=True)
    if probe.bytes_deleted < threshold_mb * 1e6:
        return None
    done = collect(store)
    log(
        f"garbage collection: {done.bytes_deleted / 1e6:.1f} MB in {done.objects_deleted} objects no version "
        f"reaches were deleted (threshold {threshold_mb:g} MB; catalog gc_threshold_mb)"
    )
    return done


def _copy_store(src: Path, dest: Path) -> None:
    """Copy a local store: chunk objects (immutable, content-addressed, the bulk) as hard
    links, everything Icechunk may rewrite (refs, repo info) as real copies."""

    def copy(s, d):
        if Path(s).relative_to(src).parts[0] == "chunks":
            try:
                return os.link(s, d)
            except OSError:  # another file system
                pass
        return shutil.copy2(s, d)

    shutil.copytree(src, dest, copy_function=copy)


def reachable_copy(src: Path, tag: str, keep_tags: set[str], dest: Path) -> Path:
    """A copy of the local store `src` at `dest` holding only what `tag` and `keep_tags`
    reach (their snapshots and history, manifests, chunks): no other branch or tag, no
    object of a killed run. Its main points at `tag`."""
    _copy_store(Path(src), Path(dest))
    repo = ic.Repository.open(ic.local_filesystem_storage(str(dest)))
    for b in repo.list_branches():
        if b != BRANCH:
            repo.delete_branch(b)
    for t in repo.list_tags():
        if t != tag and t not in keep_tags:
            repo.delete_tag(t)
    repo.reset_branch(BRANCH, repo.lookup_tag(tag))
    repo.garbage_collect(dt.datetime.now(dt.UTC))
    return Path(dest)
