"""Sharing versioned stores through an S3-compatible object store.

A store is one Icechunk repository. Publishing mirrors the repository's objects to
``s3://<bucket>/<prefix>``: the content-addressed objects (snapshots, manifests, chunks,
transaction logs) are uploaded first and only the ones the remote lacks, the repository
info (branches and tags) last, so a reader never sees a tag whose data is not there yet.
Snapshot ids are content ids, so a consumer that opens ``s3://bucket/prefix@<tag>`` reads
exactly the snapshot the producer tagged (same id, same bytes).

Credentials and endpoint come from the environment or an AWS profile, never from the
catalog: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``) or
``AWS_PROFILE`` (~/.aws/credentials), ``AWS_ENDPOINT_URL`` for non-AWS servers (MinIO,
Ceph, moto), ``AWS_REGION`` (default us-east-1). Nothing here logs or stores them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SCHEME = "s3://"
# the mutable repository info, uploaded last; `overwritten/` holds local backups of it
REFS = ("config.yaml", "repo")
SKIP_DIRS = ("overwritten",)


class RemoteError(RuntimeError):
    pass


@dataclass(frozen=True)
class Location:
    bucket: str
    prefix: str
    tag: str | None = None

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


def is_remote(path) -> bool:
    return str(path).startswith(SCHEME)


def split_tag(path: str) -> tuple[str, str | None]:
    """'<store>@<tag>' -> (store, tag); a store without '@' -> (store, None)."""
    s = str(path)
    base, sep, tag = s.rpartition("@")
    if sep and tag and "/" not in tag:
        return base, tag
    return s, None


def parse_url(url: str) -> Location:
    """'s3://bucket/prefix[@tag]' -> Location. A prefix is required (Icechunk does not
    create repositories at a bucket root)."""
    base, tag = split_tag(url)
    if not is_remote(base):
        raise RemoteError(f"{url}: expected s3://<bucket>/<prefix>[@<tag>]")
    bucket, _, prefix = base[len(SCHEME) :].partition("/")
    prefix = prefix.strip("/")
    if not bucket or not prefix:
        raise RemoteError(f"{url}: expected s3://<bucket>/<prefix>[@<tag>] (a prefix is required)")
    return Location(bucket, prefix, tag)


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None
    region: str
    key: str | None
    secret: str | None
    token: str | None

    def __repr__(self) -> str:  # never print secrets
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r}, credentials={'set' if self.key else 'none'})"


def settings() -> S3Settings:
    """Endpoint, region and credentials from the environment or the AWS profile."""
    import boto3

    sess = boto3.Session(profile_name=os.environ.get("AWS_PROFILE") or None)
    creds = sess.get_credentials()
    frozen = creds.get_frozen_credentials() if creds is not None else None
    return S3Settings(
        endpoint=os.environ.get("AWS_ENDPOINT_URL") or None,
        region=os.environ.get("AWS_REGION") or sess.region_name or "us-east-1",
        key=frozen.access_key if frozen else None,
        secret=frozen.secret_key if frozen else None,
        token=frozen.token if frozen else None,
    )


def icechunk_storage(loc: Location):
    import icechunk as ic

    s = settings()
    return ic.s3_storage(
        bucket=loc.bucket,
        prefix=loc.prefix,
        region=s.region,
        endpoint_url=s.endpoint,
        allow_http=bool(s.endpoint and s.endpoint.startswith("http://")),
        access_key_id=s.key,
        secret_access_key=s.secret,
        session_token=s.token,
        anonymous=s.key is None,
        force_path_style=bool(s.endpoint),
    )


def _client():
    import boto3

    s = settings()
    return boto3.client(
        "s3",
        endpoint_url=s.endpoint,
        region_name=s.region,
        aws_access_key_id=s.key,
        aws_secret_access_key=s.secret,
        aws_session_token=s.token,
    )


def _remote_keys(client, loc: Location) -> dict[str, int]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.prefix + "/"):
        for o in page.get("Contents", []):
            out[o["Key"][len(loc.prefix) + 1 :]] = o["Size"]
    return out


def _local_objects(root: Path) -> tuple[list[str], list[str]]:
    """(immutable object keys, ref keys) of a local repository folder."""
    data, refs = [], []
    for f in sorted(root.rglob("*")):
        if not f.is_file():
            continue
        key = f.relative_to(root).as_posix()
        top = key.split("/", 1)[0]
        if top in SKIP_DIRS:
            continue
        (refs if key in REFS else data).append(key)
    missing = [r for r in REFS if r not in refs]
    if "repo" in missing:
        raise RemoteError(f"{root}: not an Icechunk repository (no 'repo' object)")
    return data, refs


_HINTS = {
    "AccessDenied": "these credentials may not write there (consumers have read-only access)",
    "InvalidAccessKeyId": "unknown access key (check AWS_ACCESS_KEY_ID / AWS_PROFILE)",
    "SignatureDoesNotMatch": "wrong secret key",
    "NoSuchBucket": "the bucket does not exist",
}


def _wrap(e: Exception, what: str, loc: Location) -> RemoteError:
    """An S3 failure as one line naming the location and the server's error code
    (botocore puts the code in the message of its errors and of boto3's transfer errors)."""
    code = next((c for c in _HINTS if c in str(e)), "")
    return RemoteError(f"{what} {loc.url}: {code or type(e).__name__}" + (f" - {_HINTS[code]}" if code else ""))


def _upload(client, loc: Location, src: Path, have: dict) -> tuple[list, int, list]:
    """Upload the objects of the local store `src` the remote lacks, then its refs (last:
    the tag becomes visible only then). Returns (uploaded keys, bytes, all object keys)."""
    data, refs = _local_objects(src)
    up = [k for k in data if k not in have]
    nbytes = 0
    try:
        for k in up:
            client.upload_file(str(src / k), loc.bucket, f"{loc.prefix}/{k}")
            nbytes += (src / k).stat().st_size
        for k in refs:
            client.upload_file(str(src / k), loc.bucket, f"{loc.prefix}/{k}")
    except Exception as e:
        raise _wrap(e, "cannot upload to", loc) from e
    return up, nbytes, data


def publish(store_path: Path, tag: str, url: str, log=print) -> dict:
    """Upload the local store at `store_path` to `url` so that `url@tag` opens remotely.

    Refuses an untagged version, and a remote that has tags this store does not have or
    that point elsewhere (another lab's repository at that prefix). Returns counts.
    """
    import icechunk as ic

    loc = parse_url(url)
    if loc.tag:
        raise RemoteError(f"{url}: give the tag with --tag, not in the URL")
    local = ic.Repository.open(ic.local_filesystem_storage(str(store_path)))
    if tag not in local.list_tags():
        raise RemoteError(
            f"tag {tag!r} does not exist in {store_path}; tag a version first "
            f"(mepipe versions tag NAME --ref SNAPSHOT); tags: {sorted(local.list_tags())}"
        )
    snap = local.lookup_tag(tag)
    client = _client()
    try:
        have = _remote_keys(client, loc)
    except Exception as e:
        raise _wrap(e, "cannot list", loc) from e
    remote_tags = set()
    if "repo" in have:
        remote = ic.Repository.open(icechunk_storage(loc))
        for t in remote.list_tags():
            if t not in local.list_tags() or local.lookup_tag(t) != remote.lookup_tag(t):
                raise RemoteError(f"{loc.url} holds tag {t!r} that is not this store's; publish to another prefix")
            remote_tags.add(t)
    import tempfile

    from pipeline.gc import reachable_copy

    # only what the tag (and the tags already there) reach: no other branch, no killed run's objects
    with tempfile.TemporaryDirectory(dir=Path(store_path).parent, prefix=".publish-") as tmp:
        src = reachable_copy(Path(store_path), tag, remote_tags, Path(tmp) / "store")
        up, nbytes, data = _upload(client, loc, src, have)
    remote = ic.Repository.open(icechunk_storage(loc))
    if remote.lookup_tag(tag) != snap:
        raise RemoteError(f"{loc.url}: after upload, tag {tag!r} does not resolve to {snap}")
    log(
        f"published {store_path}@{tag} (snapshot {snap}) to {loc.url}: {len(up)} objects uploaded "
        f"({nbytes / 1e6:.2f} MB), {len(data) - len(up)} already there"
    )
    return {
        "snapshot": snap,
        "uploaded": len(up),
        "bytes": nbytes,
        "skipped": len(data) - len(up),
        "url": f"{loc.url}@{tag}",
    }


def checked_key(dest: Path, key: str) -> Path:
    """The local file of remote object `key` under `dest`; a key that is absolute, holds a
    backslash, a NUL, an empty, '.' or '..' segment, or resolves outside `dest` (a hostile
    or broken bucket) is refused with a RemoteError naming it."""
    parts = key.split("/")
    bad = (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or (len(key) > 1 and key[1] == ":")
        or any(p in ("", ".", "..") for p in parts)
    )
    target = (dest / key).resolve() if not bad else None
    if bad or not target.is_relative_to(dest.resolve()):
        raise RemoteError(f"remote object key {key!r} would be written outside {dest}: refused (nothing downloaded)")
    return dest / key


def pull(url: str, dest: Path, log=print) -> dict:
    """Download the repository at `url` to the local folder `dest` (a store openable by
    every mepipe command); objects already in `dest` are not downloaded again."""
    import icechunk as ic

    loc = parse_url(url)
    client = _client()
    try:
        keys = _remote_keys(client, loc)
    except Exception as e:
        raise _wrap(e, "cannot list", loc) from e
    if "repo" not in keys:
        raise RemoteError(f"{loc.url}: no published store there")
    dest = Path(dest)
    files = {k: checked_key(dest, k) for k in keys}  # every key checked before anything is written
    n, nbytes = 0, 0
    try:
        order = [k for k in keys if k not in REFS] + [k for k in REFS if k in keys]
        for k in order:
            f = files[k]
            if k not in REFS and f.is_file() and f.stat().st_size == keys[k]:
                continue
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f.name + ".part")
            client.download_file(loc.bucket, f"{loc.prefix}/{k}", str(tmp))
            os.replace(tmp, f)
            n, nbytes = n + 1, nbytes + keys[k]
    except Exception as e:
        raise _wrap(e, "cannot download from", loc) from e
    repo = ic.Repository.open(ic.local_filesystem_storage(str(dest)))
    if loc.tag and loc.tag not in repo.list_tags():
        raise RemoteError(f"{loc.url} has no tag {loc.tag!r}; tags: {sorted(repo.list_tags())}")
    log(f"pulled {loc.url} to {dest}: {n} objects ({nbytes / 1e6:.2f} MB); tags {sorted(repo.list_tags())}")
    return {"downloaded": n, "bytes": nbytes, "tags": sorted(repo.list_tags())}
