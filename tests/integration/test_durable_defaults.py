"""Durable by default (issue 12, item 7): the PostgreSQL that ``deploy/local/up`` starts
runs with fsync, synchronous_commit and full_page_writes on unless DATRIX_LOCAL_FAST=1
asks otherwise, a running server is switched by a reload (never a restart), and the Kafka
topics get the replication factor and min.insync.replicas the settings name."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from datrix.streams.kafka import Topics, client_config, ensure_topics, topics_for
from datrix.streams.settings import Settings, load_settings
from tests.integration.conftest import DATRIX, ROOT

pytestmark = pytest.mark.integration

DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a PostgreSQL of this test's own (state folder and port), so
    switching its settings and stopping it touches no server other tests use."""
    env = {k: v for k, v in os.environ.items() if k != "DATRIX_LOCAL_FAST"}
    env.update(DATRIX_STATE=str(tmp_path / "state"), DATRIX_PG_PORT=str(_free_port()))
    yield env
    subprocess.run(
        [str(ROOT / "deploy/local/down"), "postgres"], env=env, capture_output=True, timeout=120
    )


def _up(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "deploy/local/up"), "postgres"],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _durability(up: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert up.returncode == 0, up.stderr[-3000:]
    (line,) = [x for x in up.stdout.splitlines() if x.startswith("export DATRIX_DATABASE_URL=")]
    url = line.split("=", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in DURABILITY}


def test_local_postgres_is_durable_by_default_and_fast_only_on_request(
    own_postgres: dict[str, str],
) -> None:
    on = dict.fromkeys(DURABILITY, "on")
    off = dict.fromkeys(DURABILITY, "off")
    assert _durability(_up(own_postgres)) == on  # initdb + first start
    # the same running server, reused: each switch is applied by a reload, no restart
    pid = (Path(own_postgres["DATRIX_STATE"]) / "postgres/data/postmaster.pid").read_text()
    assert _durability(_up(own_postgres, DATRIX_LOCAL_FAST="1")) == off
    assert _durability(_up(own_postgres, DATRIX_LOCAL_FAST="0")) == on
    assert _durability(_up(own_postgres)) == on
    after = (Path(own_postgres["DATRIX_STATE"]) / "postgres/data/postmaster.pid").read_text()
    assert after.split()[0] == pid.split()[0], "the server was restarted"


def test_a_local_fast_value_that_is_not_0_or_1_is_refused_before_anything_starts(
    own_postgres: dict[str, str],
) -> None:
    up = _up(own_postgres, DATRIX_LOCAL_FAST="yes")
    assert up.returncode != 0 and up.stdout == ""
    assert "DATRIX_LOCAL_FAST must be 1" in up.stderr and "'yes'" in up.stderr
    assert not (Path(own_postgres["DATRIX_STATE"]) / "postgres").exists()


def test_topics_get_the_configured_replication(services: dict[str, str]) -> None:
    from confluent_kafka.admin import (  # type: ignore[attr-defined,unused-ignore]
        AdminClient,
        ConfigResource,
        ConfigSource,
    )

    settings = load_settings(services)
    admin = AdminClient(client_config(settings))
    prefix = f"durable-{uuid.uuid4().hex[:8]}."
    topics = topics_for(
        Settings(topic_prefix=prefix, kafka_replication_factor=1, kafka_min_insync_replicas=1)
    )
    names = [topics.commands, topics.events, topics.jobs, topics.progress]
    try:
        ensure_topics(settings, topics)
        wanted = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
        for resource, future in admin.describe_configs(wanted).items():
            isr = future.result(timeout=30)["min.insync.replicas"]
            # set on the topic itself, not inherited from the broker's default
            source = getattr(isr.source, "value", isr.source)
            assert (isr.value, source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value), (
                resource,
                isr,
            )
        meta = admin.list_topics(timeout=30)
        assert all(len(meta.topics[n].partitions[0].replicas) == 1 for n in names)
        # the factor really is asked for: three replicas on the one local broker is refused
        with pytest.raises(RuntimeError, match=r"cannot create topic .*replication factor"):
            ensure_topics(settings, Topics(f"{prefix}rf3.", replication_factor=3))
    finally:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=60)


def test_the_cli_refuses_replication_that_cannot_work_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
    env.update(
        DATRIX_HOME=str(tmp_path / "home"),
        DATRIX_KAFKA_REPLICATION_FACTOR="2",
        DATRIX_KAFKA_MIN_INSYNC_REPLICAS="3",
    )
    proc = subprocess.run(
        [DATRIX, "datasets"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "DATRIX_KAFKA_MIN_INSYNC_REPLICAS (3) cannot exceed" in proc.stderr
