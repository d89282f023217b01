"""The S3 adapter of the object store against a real S3-API server (S3Proxy, started by
deploy/local/up s3): the same content-addressed, tenant-prefixed layout as the local
folder, verified reads, one-line errors; and the CLI with its objects there."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import obstore
import pytest

from datrix.streams.object_store import SCHEME, ObjectStoreError, S3Location, S3ObjectStore
from tests.integration.conftest import ROOT, Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def s3_env() -> dict[str, str]:
    proc = subprocess.run(
        [str(ROOT / "deploy" / "local" / "up"), "s3"],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/up s3 failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = dict(
        line[len("export ") :].split("=", 1)
        for line in proc.stdout.splitlines()
        if line.startswith("export ")
    )
    assert found["DATRIX_OBJECT_STORE"].startswith("s3://")
    return found


def location(env: dict[str, str], **changes: Any) -> S3Location:
    bucket = env["DATRIX_OBJECT_STORE"][len("s3://") :].split("/", 1)[0]
    where = S3Location(
        bucket=bucket,
        prefix=f"test-{uuid.uuid4().hex[:12]}",
        endpoint=env["DATRIX_S3_ENDPOINT"],
        access_key=env["DATRIX_S3_ACCESS_KEY"],
        secret_key=env["DATRIX_S3_SECRET_KEY"],
        region=env["DATRIX_S3_REGION"],
    )
    return S3Location(**{**where.__dict__, **changes})


def keys(store: S3ObjectStore) -> list[str]:
    prefix = store.where.prefix + "/"
    listed = obstore.list(store._store, prefix=prefix).collect()
    return sorted(m["path"][len(prefix) :] for m in listed)


def test_objects_are_content_addressed_and_tenant_prefixed(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    store = S3ObjectStore(location(s3_env))
    source = tmp_path / "v1.parquet"
    source.write_bytes(b"PAR1 not really parquet" * 1000)
    uri, sha = store.put_file("acme", source, ".parquet")
    assert uri == f"{SCHEME}acme/sha256/{sha[:2]}/{sha}.parquet"
    assert store.put_file("acme", source, ".parquet") == (uri, sha)  # same bytes: no-op
    other_uri, _ = store.put_file("globex", source, ".parquet")  # another tenant's copy
    report_uri, report_sha = store.put_bytes("acme", b'{"rows": 3}', ".report.json")
    assert keys(store) == sorted(
        [
            f"acme/sha256/{sha[:2]}/{sha}.parquet",
            f"globex/sha256/{sha[:2]}/{sha}.parquet",
            f"acme/sha256/{report_sha[:2]}/{report_sha}.report.json",
        ]
    )
    assert store.read_bytes(report_uri) == b'{"rows": 3}'
    copy = store.local_copy(uri, tmp_path / "scratch")
    assert copy.parent == tmp_path / "scratch" and copy.read_bytes() == source.read_bytes()
    assert store.exists(uri) and store.exists(other_uri)

    store.remove(uri)
    store.remove(uri)  # already gone: nothing to do
    assert not store.exists(uri) and store.exists(other_uri)
    with pytest.raises(FileNotFoundError, match="not in the store"):
        store.local_copy(uri, tmp_path / "scratch")

    with pytest.raises(ValueError, match="invalid tenant"):
        store.put_bytes("..", b"x", ".json")
    with pytest.raises(ValueError, match="not a Datrix object URI"):
        store.read_bytes(f"{SCHEME}acme/../../etc/passwd")


def test_a_read_checks_the_bytes_against_the_name(s3_env: dict[str, str]) -> None:
    store = S3ObjectStore(location(s3_env))
    uri, _ = store.put_bytes("acme", b"the original", ".report.json")
    key = f"{store.where.prefix}/{uri[len(SCHEME) :]}"
    obstore.put(store._store, key, b"something else")  # tampered with behind our back
    with pytest.raises(ObjectStoreError, match="does not hold the bytes its name says"):
        store.read_bytes(uri)


def test_wrong_keys_and_a_store_that_is_down_fail_in_one_line(s3_env: dict[str, str]) -> None:
    wrong = S3ObjectStore(location(s3_env, secret_key="not-the-secret"))
    with pytest.raises(ObjectStoreError) as refused:
        wrong.put_bytes("acme", b"x", ".json")
    assert str(refused.value).startswith(f"object store {wrong.location}: cannot ")
    assert "\n" not in str(refused.value)

    down = S3ObjectStore(location(s3_env, endpoint="http://127.0.0.1:1"))
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match="object store s3://"):
        down.put_bytes("acme", b"x", ".json")
    assert time.monotonic() - started < 60  # a few retries, not the library's 3 minutes


def test_the_cli_keeps_its_objects_in_s3(s3_env: dict[str, str], cli: Cli, tmp_path: Path) -> None:
    """Embedded mode with DATRIX_OBJECT_STORE=s3://...: the scan, `rows` and the HTML
    report work, and nothing lands in DATRIX_HOME/objects."""
    prefix = f"cli-{uuid.uuid4().hex[:12]}"
    env = {**s3_env, "DATRIX_OBJECT_STORE": f"{s3_env['DATRIX_OBJECT_STORE']}/{prefix}"}
    data = tmp_path / "t.csv"
    data.write_text("id,city\n1,Oslo\n2,Bergen\n1,Oslo\n3,\n")

    class S3Cli(Cli):
        def env(self) -> dict[str, str]:
            return {**super().env(), **env}

    s3cli = S3Cli(cli.home)
    html = tmp_path / "report.html"
    run = s3cli("scan", str(data), "--name", "t", "--format", "json", "--html", str(html))
    assert run.code == 0, run.stderr
    doc = run.json()
    dup = next(i for i in doc["issues"] if i["type"] == "exact_duplicates")
    rows = s3cli("rows", doc["scan_id"], dup["id"])
    assert rows.code == 0, rows.stderr
    assert rows.stdout.split() == ["2"]
    assert html.read_text().startswith("<!DOCTYPE html")
    assert not (cli.home / "objects").exists()
    # the scratch folders of the downloads are gone too
    assert not [p for p in (cli.home / "tmp").iterdir() if p.is_dir()]

    store = S3ObjectStore(location(s3_env, prefix=f"objects/{prefix}"))
    suffixes = sorted(k.split(".", 1)[1] for k in keys(store))
    assert suffixes == ["parquet", "report.json", "rows.parquet"]

    # a refused setting: one line, exit 2, before anything runs
    bad = S3Cli(cli.home)
    env["DATRIX_S3_ENDPOINT"] = "localhost:19000"
    refused = bad("datasets")
    assert refused.code == 2
    assert refused.stderr.startswith("datrix: DATRIX_S3_ENDPOINT must be an http(s)://")
