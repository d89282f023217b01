"""Kafka mode on the real services: the same scan flow as the embedded default, through
Kafka, Postgres and Redis, plus tenant isolation and Redis outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from datrix.jobs.bench.generate import generate
from datrix.projections.store import PostgresReadStore
from datrix.streams.progress import RedisKeys
from datrix.streams.settings import Settings, load_settings
from tests.integration.conftest import KafkaCli

pytestmark = pytest.mark.integration


def s3_keys(cli: KafkaCli) -> list[str]:
    """The object keys under the test's prefix of the S3 store, relative to it."""
    import obstore

    from datrix.streams.object_store import S3ObjectStore
    from datrix.streams.settings import s3_location

    env = cli.env()
    url = env["DATRIX_OBJECT_STORE"]
    store = S3ObjectStore(
        s3_location(
            url,
            Settings(
                home=cli.home,
                tenant="default",
                actor="test",
                kafka_bootstrap=None,
                database_url=None,
                redis_url=None,
                spark_master=None,
                object_store=url,
                s3_endpoint=env["DATRIX_S3_ENDPOINT"],
                s3_access_key=env["DATRIX_S3_ACCESS_KEY"],
                s3_secret_key=env["DATRIX_S3_SECRET_KEY"],
                s3_region=env["DATRIX_S3_REGION"],
            ),
        )
    )
    prefix = store.where.prefix + "/"
    listed = obstore.list(store._store, prefix=prefix).collect()
    return sorted(m["path"][len(prefix) :] for m in listed)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("kafka-data")
    return out, generate(5_000, out, seed=3)


def test_scan_through_kafka_matches_ground_truth(
    kafka_cli: KafkaCli, data: tuple[Path, dict[str, Any]]
) -> None:
    out, truth = data
    kafka_cli.start_worker()
    run = kafka_cli("scan", str(out / "dirty.csv"), "--name", "k", "--format", "json", timeout=300)
    assert run.code == 0, run.stderr
    doc = run.json()
    dup = next(i for i in doc["issues"] if i["type"] == "exact_duplicates")
    assert dup["affected_count"] == truth["exact_duplicates"]["count"]
    assert {c["name"]: c["null_count"] for c in doc["column_profiles"]} == truth["nulls"]
    rows = kafka_cli("rows", doc["scan_id"], dup["id"])
    assert [int(x) for x in rows.stdout.split()] == sorted(truth["exact_duplicates"]["rows"])

    # the job published its progress on datrix.job-progress, in order, one job
    progress = kafka_cli("progress", doc["scan_id"], "--format", "json")
    assert progress.code == 0, progress.stderr
    updates = progress.json()
    assert len(updates) >= 2
    assert [u["seq"] for u in updates] == list(range(1, len(updates) + 1))
    assert len({u["job_id"] for u in updates}) == 1
    assert len({u["phase"] for u in updates}) >= 2

    html = out.parent / f"k-{doc['scan_id']}.html"
    second = kafka_cli(
        "scan", str(out / "dirty.parquet"), "--name", "k", "--format", "json", "--html", str(html)
    )
    assert second.code == 0, second.stderr
    assert second.json()["version"] == 2
    page = html.read_text()  # rendered from the objects in S3, downloaded by the CLI
    assert page.startswith("<!DOCTYPE html") and "k v2" in page

    # the objects are in S3 only: neither the CLI's home nor the worker's (another
    # DATRIX_HOME) holds one, and the store holds the versions, reports and rows
    homes = [kafka_cli.home, kafka_cli.worker_home(0)]
    assert all(h.is_dir() and not (h / "objects").exists() for h in homes)
    keys = s3_keys(kafka_cli)
    assert sum(k.endswith(".report.json") for k in keys) == 2
    assert sum(k.endswith(".rows.parquet") for k in keys) >= 1
    assert all(k.startswith("default/sha256/") for k in keys)

    datasets = kafka_cli("datasets", "--format", "json").json()
    assert [(d["name"], d["latest_version"]) for d in datasets] == [("k", 2)]

    verify = kafka_cli("audit", "verify")
    assert verify.code == 0, verify.stderr
    replay = kafka_cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout


def test_tenants_are_isolated_by_row_level_security(
    kafka_cli: KafkaCli, data: tuple[Path, dict[str, Any]], services: dict[str, str]
) -> None:
    out, _ = data
    kafka_cli.start_worker()
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": "acme"}
    assert kafka_cli("scan", str(out / "dirty.csv"), "--name", "acme-data").code == 0
    kafka_cli.extra = {**kafka_cli.extra, "DATRIX_TENANT": "globex"}
    assert kafka_cli("scan", str(out / "dirty.csv"), "--name", "globex-data").code == 0

    # through the CLI, each tenant sees its own datasets only
    assert [d["name"] for d in kafka_cli("datasets", "--format", "json").json()] == ["globex-data"]
    kafka_cli.extra = {**kafka_cli.extra, "DATRIX_TENANT": "acme"}
    acme = kafka_cli("datasets", "--format", "json").json()
    assert [d["name"] for d in acme] == ["acme-data"]
    # another tenant's dataset id is simply not there
    kafka_cli.extra = {**kafka_cli.extra, "DATRIX_TENANT": "globex"}
    assert kafka_cli("scans", acme[0]["id"]).code == 2

    # by construction: a query with no tenant filter at all still sees one tenant's rows
    url, schema = services["DATRIX_DATABASE_URL"], (kafka_cli.extra or {})["DATRIX_DATABASE_SCHEMA"]
    reader = services["DATRIX_DATABASE_READER_URL"]
    scoped = PostgresReadStore(url, schema, reader_url=reader).for_tenant("acme")
    names = {r[0] for r in scoped.query("SELECT name FROM datasets")}
    assert names == {"acme-data"}
    tenants = {r[0] for r in scoped.query("SELECT DISTINCT tenant FROM quality_issues")}
    assert tenants == {"acme"}
    # and the reader role cannot write
    with pytest.raises(psycopg.Error), scoped.transaction() as tx:
        tx.execute("DELETE FROM datasets")


def test_redis_down_degrades_without_losing_anything(
    kafka_cli: KafkaCli, data: tuple[Path, dict[str, Any]]
) -> None:
    out, truth = data
    # point workers and CLI at a Redis that is not there
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_REDIS_URL": "redis://127.0.0.1:1/0"}
    kafka_cli.start_worker()
    run = kafka_cli("scan", str(out / "dirty.csv"), "--format", "json", timeout=300)
    assert run.code == 0, run.stderr
    assert run.json()["rows"] == truth["rows"]
    assert kafka_cli("replay", "--verify").code == 0


def test_redis_caches_reports_and_counts_per_tenant(
    kafka_cli: KafkaCli, data: tuple[Path, dict[str, Any]], services: dict[str, str]
) -> None:
    import json
    import time

    import redis

    out, _ = data
    tenant = f"cache-{(kafka_cli.extra or {})['DATRIX_DATABASE_SCHEMA']}"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    kafka_cli.start_worker()
    doc = kafka_cli("scan", str(out / "dirty.csv"), "--format", "json").json()
    r = redis.Redis.from_url(services["DATRIX_REDIS_URL"])
    env = kafka_cli.env()
    keys = RedisKeys.of(
        Settings(
            topic_prefix=env["DATRIX_TOPIC_PREFIX"], database_schema=env["DATRIX_DATABASE_SCHEMA"]
        )
    )

    def counters() -> dict[str, int]:
        raw = r.hgetall(keys.counters(tenant))
        return {k.decode(): int(v) for k, v in raw.items()}

    deadline = time.monotonic() + 30
    while counters().get("events_projected", 0) < 9 and time.monotonic() < deadline:
        time.sleep(0.1)  # the last outcome events may still be on their way
    assert counters() == {"commands_submitted": 3, "events_projected": 9}

    key = keys.summary(tenant, doc["scan_id"])
    r.delete(key)
    again = kafka_cli("report", doc["scan_id"], "--format", "json").json()
    assert again == doc
    cached = r.get(key)
    assert cached is not None and json.loads(cached) == doc
    # served from the cache: a marker we plant is what comes back
    r.set(key, json.dumps({**doc, "rows": -1}))
    assert kafka_cli("report", doc["scan_id"], "--format", "json").json()["rows"] == -1


def test_cancel_skips_a_queued_job_and_stops_a_running_one(
    kafka_cli: KafkaCli, data: tuple[Path, dict[str, Any]]
) -> None:
    """The worker's job role honours a cancel: the running job (held at a phase by the
    test switch) is stopped and reports nothing, the job queued behind it never runs;
    both scans end as failed, "cancelled by" whoever cancelled them."""
    import subprocess
    import time

    from datrix.streams.job_progress import read_job_progress
    from tests.integration.conftest import DATRIX

    out, _ = data
    extra = dict(kafka_cli.extra or {})
    kafka_cli.extra = {**extra, "DATRIX_TEST_JOB_FAULT": "pause@duplicates"}
    worker = kafka_cli.start_worker()
    kafka_cli.extra = extra
    settings = load_settings(extra)
    progress_topic = f"{extra['DATRIX_TOPIC_PREFIX']}job-progress"

    def start_scan(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [DATRIX, "scan", str(out / "dirty.csv"), "--name", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=kafka_cli.env(),
            stdin=subprocess.DEVNULL,
        )

    def jobs() -> list[dict[str, Any]]:
        listed = kafka_cli("jobs", "list", "--format", "json")
        assert listed.code == 0, listed.stderr
        return list(listed.json())

    def await_(what: str, check: Any) -> Any:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            assert worker.poll() is None, "the worker died"
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    first = start_scan("first")
    try:
        running = await_("the first job", lambda: [j for j in jobs() if j["dataset"] == "first"])[0]
        phases = await_(
            "the first job to reach its held phase",
            lambda: [
                u.phase
                for u in read_job_progress(settings, progress_topic, running["scan_id"])
                if u.phase == "duplicates"
            ],
        )
        assert phases == ["duplicates"]
        second = start_scan("second")
        try:
            queued = await_(
                "the second job", lambda: [j for j in jobs() if j["dataset"] == "second"]
            )[0]
            kafka_cli.extra = {**extra, "DATRIX_ACTOR": "cli:erin"}
            for job in (queued, running):  # the queued one first, while the other runs
                cancel = kafka_cli("jobs", "cancel", job["scan_id"][:8])
                assert cancel.code == 0, cancel.stderr
                assert "cancelled by cli:erin" in cancel.stdout
            kafka_cli.extra = extra
            for proc in (first, second):
                _stdout, stderr = proc.communicate(timeout=300)
                assert proc.returncode == 1 and "cancelled by cli:erin" in stderr, stderr
        finally:
            if second.poll() is None:
                second.kill()
    finally:
        if first.poll() is None:
            first.kill()

    ended = {j["dataset"]: j for j in kafka_cli("jobs", "list", "--all", "--format", "json").json()}
    assert {n: (j["status"], j["error"]) for n, j in ended.items()} == {
        "first": ("failed", "cancelled by cli:erin"),
        "second": ("failed", "cancelled by cli:erin"),
    }
    assert jobs() == []
    # the queued job never ran: no progress of its own on the topic
    assert read_job_progress(settings, progress_topic, queued["scan_id"]) == []
    log = (kafka_cli.home.parent / "worker-0.log").read_text()
    await_(
        "the worker to log both decisions",
        lambda: (
            f"job {running['job_id']} stopped"
            in (kafka_cli.home.parent / "worker-0.log").read_text()
            and f"skipping job {queued['job_id']}"
            in (kafka_cli.home.parent / "worker-0.log").read_text()
        ),
    )
    assert worker.poll() is None, log
    assert kafka_cli("audit", "verify").code == 0
    replay = kafka_cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr


def test_progress_in_a_terminal_shows_the_job_progress(
    kafka_cli: KafkaCli, data: tuple[Path, dict[str, Any]]
) -> None:
    from tests.integration.conftest import DATRIX
    from tests.integration.terminal import run_in_terminal

    out, _ = data
    kafka_cli.start_worker()
    scan = run_in_terminal(
        [DATRIX, "scan", str(out / "dirty.csv"), "--name", "tty"], kafka_cli.env()
    )
    assert "internal error" not in scan.text
    assert scan.code == 0, scan.text[-3000:]
    assert "Datrix quality report" in scan.text
    scan_id = kafka_cli("scans", "tty", "--format", "json").json()[0]["id"]
    run = run_in_terminal([DATRIX, "progress", scan_id[:8]], kafka_cli.env())  # a prefix
    assert "internal error" not in run.text
    assert run.code == 0, run.text[-3000:]
    assert f"Progress of scan {scan_id}" in run.text
    rows = [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in run.text.splitlines()
        if line.strip().startswith("│")
    ]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)), run.text
    assert {"profile", "score"} <= {r[2] for r in rows}, run.text
    # id prefixes resolve on Postgres too, and the JSON issue counts are an object
    report = kafka_cli("report", scan_id[:6].upper(), "--format", "json")
    assert report.code == 0, report.stderr
    assert report.json()["scan_id"] == scan_id
    counts = kafka_cli("scans", "tty", "--format", "json").json()[0]["issue_count"]
    assert sum(counts.values()) == len(report.json()["issues"])
