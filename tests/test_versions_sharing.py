"""Versions (list / show / card / diff / tag), integrity (`verify`, a flipped byte on disk)
and sharing through a real S3-compatible server (moto's standalone server on loopback):
publish -> a second lab opens the tag read-only and gets bit-identical arrays -> trains
from the remote store -> pulls it; consumer credentials cannot write."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from mepipe.cli import main as cli
from pipeline.catalog import load_catalog
from pipeline.remote import RemoteError, publish, pull
from pipeline.runner import run
from pipeline.store import Store
from pipeline.verify import verify
from pipeline.versions import VersionError, card, diff, provenance, tag
from schemas.arrays import ARRAYS
from schemas.tables import TABLES
from tests.conftest import write_catalog

pytestmark = pytest.mark.slow
QUIET = dict(log=lambda *a: None, progress=False, methods=["dvscl"], workers=2)


@pytest.fixture(scope="module")
def two_versions(demo_source, tmp_path_factory):
    """A store with two versions of the demo: v1, then a depth-fill change (depth only)."""
    tmp = tmp_path_factory.mktemp("versions")
    root = tmp / "data"
    shutil.copytree(demo_source, root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEPIPE_TEST_ROOT", str(root))
        cat = load_catalog(write_catalog(tmp))
        r1 = run(cat, cat.dataset("t"), **QUIET)
        cat2 = load_catalog(write_catalog(tmp, params="depth:\n  fill: min\n"))
        r2 = run(cat2, cat2.dataset("t"), **QUIET)
    return tmp, cat, r1, r2


def test_versions_tag_show_card_diff(two_versions, capsys):
    tmp, cat, r1, r2 = two_versions
    st = Store(cat.store_root / "t", create=False)
    assert tag(st, "v1", r1.snapshot) == r1.snapshot
    with pytest.raises(VersionError, match="immutable"):
        tag(st, "v1", r2.snapshot)  # re-tagging is refused
    assert st.repo.lookup_tag("v1") == r1.snapshot  # and changed nothing
    with pytest.raises(VersionError, match="neither a tag"):
        provenance(st, "nope")
    p = provenance(st, "v1")
    assert p["tags"] == ["v1"] and p["counts"]["ok"] == 20
    ann = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    import hashlib

    want = hashlib.sha256((tmp / "data" / ann).read_bytes()).hexdigest()
    assert p["sources"] == {ann: want}
    assert p["exclusion_reasons"] == {"ingest/apex_before_onset": 1}
    assert p["landmark_backends"] == ["dlib"] and p["label_scheme"] == "casme3_7"
    # the card: generated from the provenance and the schemas, stored in the version
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        assert cli(["--catalog", str(tmp / "catalog.yaml"), "versions", "card", "--dataset", "t", "--ref", "v1"]) == 0
        card = capsys.readouterr().out
        assert cli(["--catalog", str(tmp / "catalog.yaml"), "versions", "list", "--dataset", "t"]) == 0
        listing = capsys.readouterr().out
        assert cli(["--catalog", str(tmp / "catalog.yaml"), "versions", "tag", "--dataset", "t", "--name", "v1"]) == 1
        assert "immutable" in capsys.readouterr().err
    finally:
        os.chdir(cwd)
    assert "# Dataset card: t" in card and "`pairs/rgb_diff`" in card and "(20, 310, 310, 3)" in card
    assert want in card and "apex_before_onset" in card and "| dvscl | 000 |" in card
    assert r1.snapshot in listing and "tags: v1" in listing
    # diff: only the depth arrays of every sample changed, and the parameter that did it
    d = diff(st, "v1", r2.snapshot)
    assert d["params_changed"] == {"depth.fill": ("nearest", "min")}
    assert not d["added"] and not d["removed"] and not d["status_changed"]
    assert set(d["values_changed"]) <= {"pairs/onset_depth", "pairs/apex_depth", "pairs/depth_diff"}
    assert len(d["values_changed"]["pairs/onset_depth"]) == 20
    assert "pairs/rgb_diff" not in d["chunks_rewritten"] and "pairs/onset_depth" in d["chunks_rewritten"]
    assert diff(st, "v1", "v1")["values_changed"] == {}


def test_verify_detects_a_flipped_byte_and_names_it(two_versions):
    tmp, cat, r1, r2 = two_versions
    src = cat.store_root / "t"
    rep = verify(Store(src, create=False), log=lambda *a: None)
    assert rep.ok and rep.checked == 20 * 8, rep.problems  # 8 dvscl arrays x 20 samples
    bad = tmp / "damaged"
    shutil.copytree(src, bad)
    chunk_files = sorted((bad / "chunks").iterdir(), key=lambda f: f.stat().st_size)
    target = chunk_files[-1]  # the largest shard
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x40
    target.write_bytes(bytes(data))
    rep = verify(Store(bad, create=False), log=lambda *a: None)
    assert not rep.ok
    assert any(p.startswith("pairs/") and "sample " in p for p in rep.problems), rep.problems
    # the untouched original still verifies
    assert verify(Store(src, create=False), log=lambda *a: None).ok


def _tampered_copy(two_versions, name: str, edit) -> Store:
    """A copy of the store whose main gets a commit changing the card or an array's
    attributes while carrying the original version's metadata (what a flipped byte in
    a card chunk or a snapshot's attributes looks like to a reader)."""
    tmp, cat, r1, r2 = two_versions
    bad = tmp / name
    shutil.copytree(cat.store_root / "t", bad)
    st = Store(bad, create=False)
    meta = st.repo.lookup_snapshot(st.head()).metadata
    s = st.repo.writable_session("main")
    edit(zarr.open_group(s.store, mode="a"))
    s.commit("tampered", metadata=meta)
    return Store(bad, create=False)


def test_verify_checks_the_card_and_array_metadata_against_the_commit(two_versions, capsys):
    """Issue 15, item 16: a damaged card or changed units passed verify before."""
    from pipeline.store import write_text_array
    from schemas.tables import CARD

    st = _tampered_copy(two_versions, "card", lambda g: write_text_array(g, CARD, "# not the card\n"))
    rep = verify(st, log=lambda *a: None)
    assert not rep.ok and any(p.startswith("docs/dataset_card: the dataset card is ") for p in rep.problems)

    def units(g):
        g["pairs/rgb_diff"].attrs["units"] = "furlongs"

    st = _tampered_copy(two_versions, "attrs", units)
    rep = verify(st, log=lambda *a: None)
    assert rep.problems == [
        "pairs/rgb_diff: its metadata (shape, dtype, attributes) differs from what the commit recorded"
    ]


def test_a_damaged_card_chunk_is_a_one_line_error_not_a_traceback(two_versions, capsys):
    from pipeline.store import write_text_array
    from schemas.tables import CARD

    def damage(g):
        write_text_array(g, CARD, "the card")
        g[CARD].attrs["sha256"] = "0" * 64  # the bytes no longer match their own checksum

    st = _tampered_copy(two_versions, "card2", damage)
    with pytest.raises(VersionError, match=r"the dataset card cannot be read \(OSError: docs/dataset_card: checksum"):
        card(st)
    rc = cli(["versions", "card", "--store", str(st.path)])
    assert rc == 1 and capsys.readouterr().err.startswith("error: ")


# --- a loopback S3 server with two users: a publisher (read/write) and a consumer (read) ---


@pytest.fixture(scope="module")
def s3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = Path(sys.executable).parent / "moto_server"
    # the first 6 requests (IAM set-up below) are unauthenticated; every later one is checked
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="6")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        url = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup"
        )

        def user(name, actions):
            iam.create_user(UserName=name)
            iam.put_user_policy(
                UserName=name,
                PolicyName="p",
                PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
                ),
            )
            k = iam.create_access_key(UserName=name)["AccessKey"]
            return k["AccessKeyId"], k["SecretAccessKey"]

        # AWS checks s3:ListBucket for ListObjectsV2 and s3:GetObject for HeadObject; moto 5.2
        # checks the operations' own names, s3:ListObjectsV2 and s3:HeadObject (no such IAM
        # actions on AWS): both are granted, none lets the reader write
        reader = ["s3:GetObject", "s3:ListBucket", "s3:ListObjectsV2", "s3:HeadObject"]
        users = {"publisher": user("publisher", ["s3:*"]), "reader": user("reader", reader)}
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=users["publisher"][0],
            aws_secret_access_key=users["publisher"][1],
        ).create_bucket(Bucket="labs")
        yield url, users
    finally:
        proc.terminate()
        proc.wait(10)


def as_user(mp, s3, who):
    url, users = s3
    mp.setenv("AWS_ENDPOINT_URL", url)
    mp.setenv("AWS_ACCESS_KEY_ID", users[who][0])
    mp.setenv("AWS_SECRET_ACCESS_KEY", users[who][1])
    mp.setenv("AWS_REGION", "us-east-1")
    mp.delenv("AWS_PROFILE", raising=False)
    mp.delenv("AWS_SESSION_TOKEN", raising=False)
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    mp.setenv("AWS_CONFIG_FILE", "/nonexistent")


def test_publish_open_remote_train_and_pull(two_versions, s3, tmp_path, capsys):
    tmp, cat, r1, r2 = two_versions
    local = Store(cat.store_root / "t", create=False)
    if "v1" not in local.repo.list_tags():
        tag(local, "v1", r1.snapshot)
    logs = []
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, s3, "publisher")
        with pytest.raises(RemoteError, match="does not exist"):
            publish(local.path, "nope", "s3://labs/demo")
        res = publish(local.path, "v1", "s3://labs/demo", log=logs.append)
        assert res["uploaded"] > 0 and res["snapshot"] == r1.snapshot
        # only what v1 reaches goes up: not the second version's new depth chunks (issue 15, item 15)
        from pipeline.remote import _local_objects

        assert res["uploaded"] < len(_local_objects(local.path)[0])
        again = publish(local.path, "v1", "s3://labs/demo", log=logs.append)
        assert again["uploaded"] == 0  # content-addressed: nothing twice
    secret_w = s3[1]["publisher"][1]
    assert not any(secret_w in line for line in logs)
    assert secret_w not in json.dumps(provenance(local, "v1"), default=str)

    # the second lab: read-only credentials, opens the tag in place, gets the same bytes
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, s3, "reader")
        remote = Store("s3://labs/demo@v1", create=False)
        assert remote.head() == r1.snapshot
        gl, gr = local.group(r1.snapshot), remote.group()
        for name in ARRAYS:
            if name in gl:
                a, b = gl[name][:], gr[name][:]
                assert a.dtype == b.dtype and np.array_equal(a, b), name
        for name in TABLES:
            ta, tb = local.table(name, r1.snapshot), remote.table(name)
            assert (ta is None) == (tb is None)
            if ta is not None:
                assert ta.equals(tb), name
        assert verify(remote, log=lambda *a: None).ok
        # consumers cannot write: publishing with their credentials is refused by the server
        with pytest.raises(RemoteError, match="AccessDenied"):
            publish(local.path, "v1", "s3://labs/other")
        with pytest.raises(Exception):
            remote.repo.create_tag("mine", r1.snapshot)
        assert remote.repo.list_tags() == {"v1"}
        # train from the remote store (not copied first)
        out = tmp_path / "train"
        rc = cli(
            [
                "--catalog",
                str(tmp / "catalog.yaml"),
                "train",
                "--dataset",
                "t",
                "--method",
                "dvscl",
                "--store",
                "s3://labs/demo@v1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        assert rc == 0
        summary = json.loads((out / "summary.json").read_text())
        # the pooled predictions are of the remote version's ok labelled samples, and the
        # summary's scores are those of these predictions (scikit-learn recomputes them)
        from sklearn.metrics import f1_score

        man = remote.table("manifest")
        preds = pd.concat([pd.read_parquet(p) for p in sorted((out / "folds").glob("fold_*.parquet"))])
        labelled_ok = man[(man["status"] == "ok") & (man["source"] == "labelled")]
        assert len(preds) == summary["samples"] > 0
        assert set(preds["sample_id"]) <= set(labelled_ok["sample_id"])
        assert summary["folds"] == preds["subject"].nunique()
        uf1 = f1_score(preds["y_true"], preds["y_pred"], average="macro")  # over the classes present
        assert summary["UF1"] == pytest.approx(uf1)
        # pull to local disk: the same snapshot, verifiable offline
        dest = tmp_path / "pulled"
        info = pull("s3://labs/demo@v1", dest, log=lambda *a: None)
        assert info["tags"] == ["v1"]
    pulled = Store(f"{dest}@v1", create=False)
    assert pulled.head() == r1.snapshot
    assert verify(pulled, log=lambda *a: None).ok
    np.testing.assert_array_equal(pulled.group()["pairs/rgb_diff"][:], gl["pairs/rgb_diff"][:])


@pytest.mark.parametrize(
    "key",
    ["../../outside.txt", "snapshots/../../outside.txt", "/etc/evil", "chunks\\..\\..\\x", "a/\x00b", "a//b", "./repo"],
)
def test_a_hostile_object_key_is_refused_before_anything_is_written(tmp_path, key):
    from pipeline.remote import checked_key

    with pytest.raises(RemoteError, match="would be written outside"):
        checked_key(tmp_path / "dest", key)
    assert checked_key(tmp_path / "dest", "chunks/ABC") == tmp_path / "dest" / "chunks" / "ABC"


def test_pull_from_a_hostile_bucket_writes_nothing_outside(s3, tmp_path):
    """A bucket whose listing holds `prefix/../../x` (S3 keys are plain strings) next to a
    valid-looking store: pull refuses it before downloading anything."""
    import boto3

    url, users = s3
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=users["publisher"][0],
        aws_secret_access_key=users["publisher"][1],
    )
    for key in ("evil/repo", "evil/chunks/AAAA", "evil/../../pwned.txt"):
        client.put_object(Bucket="labs", Key=key, Body=b"x")
    listed = [o["Key"] for o in client.list_objects_v2(Bucket="labs", Prefix="evil/")["Contents"]]
    assert "evil/../../pwned.txt" in listed  # the server keeps the key as written
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, s3, "reader")
        with pytest.raises(RemoteError, match=r"'\.\./\.\./pwned\.txt' would be written outside"):
            pull("s3://labs/evil", dest, log=lambda *a: None)
    assert not (tmp_path / "a" / "pwned.txt").exists() and not (tmp_path / "pwned.txt").exists()
    assert not dest.exists()  # nothing was written at all


def test_verify_and_versions_with_store_need_no_catalog(two_versions, tmp_path, monkeypatch, capsys):
    """Issue 15, item 17: `--store` names everything the command needs."""
    tmp, cat, r1, r2 = two_versions
    monkeypatch.chdir(tmp_path)  # no catalog.yaml here
    assert cli(["verify", "--store", str(cat.store_root / "t")]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert cli(["versions", "list", "--store", str(cat.store_root / "t")]) == 0


def test_a_store_url_that_cannot_be_opened_is_one_line(s3, capsys):
    """Issue 15, item 17: a wrong prefix or credentials on S3 gives a one-line error."""
    with pytest.MonkeyPatch.context() as mp:
        as_user(mp, s3, "reader")
        rc = cli(["verify", "--store", "s3://labs/nothing-here@v1"])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("error: s3://labs/nothing-here@v1: ") and err.count("\n") == 1
        mp.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        rc = cli(["info", "--store", "s3://labs/demo@v1"])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("error: s3://labs/demo@v1: cannot be opened (") and err.count("\n") == 1


def test_a_damaged_repo_file_is_one_error_line_and_verify_names_it(two_versions, capsys):
    """Issue 15, item 16: a damaged repository file gave a raw trace. The file is cut in
    half: a single flipped byte may land where Icechunk does not look (a commit message),
    so whether it is noticed depends on the run's snapshot ids; a cut file always is."""
    tmp, cat, r1, r2 = two_versions
    bad = tmp / "damaged_repo"
    shutil.copytree(cat.store_root / "t", bad)
    data = (bad / "repo").read_bytes()
    (bad / "repo").write_bytes(data[: len(data) // 2])
    rc = cli(["versions", "list", "--store", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    rc = cli(["verify", "--store", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1, err


def test_opening_a_store_prints_no_warning_the_user_cannot_act_on(two_versions):
    """Issue 17: Icechunk's 'not safe for concurrent commits' on local storage (runs hold a
    lock per store) is silenced however the store is reached first."""
    tmp, cat, r1, r2 = two_versions
    code = (
        "import icechunk as ic; import pipeline.store as s; "
        f"st = s.Store({str(cat.store_root / 't')!r}, create=False); st.group(); print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "ICECHUNK_LOG"}
    p = subprocess.run([sys.executable, "-c", "import pipeline; " + code], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
    assert "not safe for concurrent commits" not in p.stderr
