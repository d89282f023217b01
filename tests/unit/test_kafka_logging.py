"""librdkafka's lines go through Python logging, one warning per outage
(``streams/kafka_logging.py``). A real confluent-kafka client against a port nobody
listens on is a real outage; no broker is needed (the way back from one, through a
real broker, is in tests/integration/test_broker_outage.py)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined,unused-ignore]

from datrix.runtime.worker.common import WorkerContext, _retrying
from datrix.streams.kafka import KafkaCommandLog, Topics, client_config
from datrix.streams.kafka_logging import (
    HEALTH,
    BrokerHealth,
    BrokerUnreachable,
    kafka_logging_config,
    wait_for_broker,
)
from datrix.streams.settings import Settings, load_settings

RAW_LINE = "|FAIL|rdkafka#"  # librdkafka's own format: %3|<time>|FAIL|rdkafka#producer-1| ...


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A port bound but not listening: every connection to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def at(bootstrap: str, timeout_s: float = 30.0) -> Settings:
    """Settings of a client of the broker at ``bootstrap`` (no principal)."""
    return load_settings(
        {"DATRIX_KAFKA_BOOTSTRAP": bootstrap, "DATRIX_KAFKA_TIMEOUT_S": str(timeout_s)}
    )


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "datrix.kafka" and r.levelno >= logging.WARNING
    ]


def test_an_unreachable_broker_is_one_warning_and_no_raw_line(
    closed_port: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="datrix.kafka")
    health = BrokerHealth()
    producer = Producer(client_config(at(closed_port), **kafka_logging_config(closed_port, health)))
    producer.produce("anything", b"x")
    deadline = time.monotonic() + 20
    while not health.down and time.monotonic() < deadline:
        producer.poll(0.1)
    assert health.down
    # librdkafka keeps retrying (a failure every ~50-500 ms): poll through several more
    failures_before = len([r for r in caplog.records if "Connection refused" in r.getMessage()])
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        producer.poll(0.1)
    failures = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(failures) > failures_before  # they still arrive, ...
    assert all(r.levelno == logging.DEBUG for r in failures if "FAIL" in r.getMessage())
    assert warnings_of(caplog) == [  # ... and the outage is said once
        f"Kafka broker {closed_port} unreachable (Connection refused); retrying"
    ]
    assert health.outages == 1
    assert RAW_LINE not in capfd.readouterr().err
    producer.purge()
    producer.flush(0)


def test_waiting_for_an_unreachable_broker_ends_in_one_line(
    closed_port: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    health = BrokerHealth()
    admin = AdminClient(client_config(at(closed_port), **kafka_logging_config(closed_port, health)))
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable) as refused:
        wait_for_broker(admin, closed_port, 1.5, health)
    took = time.monotonic() - started
    assert 1.5 <= took < 5
    assert str(refused.value) == (
        f"no Kafka broker answered at {closed_port} within 1.5 s (DATRIX_KAFKA_TIMEOUT_S); "
        "is it running, and is DATRIX_KAFKA_BOOTSTRAP right?"
    )
    assert warnings_of(caplog) == [
        f"Kafka broker {closed_port} unreachable (Connection refused); retrying"
    ]
    assert RAW_LINE not in capfd.readouterr().err


def test_one_warning_per_outage_whatever_the_number_of_clients(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = BrokerHealth()
    where = "broker:9092"
    health.lost(1, where, "Connection refused")
    health.lost(2, where, "Connection refused")  # the process's other clients: said already
    health.reached(3, where)  # a client that never lost the broker ends nothing
    assert health.down
    health.reached(2, where)  # the first one back ends the outage ...
    health.reached(1, where)  # ... once
    assert not health.down
    health.lost(1, where, "Connection reset by peer")  # a second outage is a second warning
    health.reached(None, where)  # a metadata answer (wait_for_broker) ends it too
    assert warnings_of(caplog) == [
        "Kafka broker broker:9092 unreachable (Connection refused); retrying",
        "Kafka broker broker:9092 reachable again",
        "Kafka broker broker:9092 unreachable (Connection reset by peer); retrying",
        "Kafka broker broker:9092 reachable again",
    ]
    assert health.outages == 2


def test_lines_other_than_connection_failures_keep_their_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="datrix.kafka")
    watch = kafka_logging_config("broker:9092", BrokerHealth())["logger"]
    # what confluent-kafka calls: logger.log(level, "%s [%s] %s", facility, client, text)
    watch.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "odd setting")
    watch.log(
        logging.ERROR,
        "%s [%s] %s",
        "FAIL",
        "rdkafka#producer-1",
        "[thrd:b:9092/bootstrap]: b:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: "
        "Connection refused (after 0ms in state CONNECT)",
    )
    levels = [(r.levelno, r.getMessage().split(" ", 1)[0]) for r in caplog.records]
    assert levels == [(logging.WARNING, "CONFWARN"), (logging.DEBUG, "FAIL")]
    assert watch.last_failure == "Connection refused"


def test_answers_librdkafka_retries_by_itself_are_info_not_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker that has just started answers "coordinator load in progress"; librdkafka
    retries and says so at warning level (CI stop 18 saw it after an outage's end)."""
    caplog.set_level(logging.DEBUG, logger="datrix.kafka")
    watch = kafka_logging_config("broker:9092", BrokerHealth())["logger"]
    transient = (
        "[thrd:main]: Failed to acquire idempotence PID from broker "
        "sasl_plaintext://127.0.0.1:19092/1: Broker: Coordinator load in progress: retrying"
    )
    watch.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-2", transient)
    final = "[thrd:main]: Failed to acquire idempotence PID: Broker: Cluster authorization failed"
    watch.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-2", final)
    levels = [(r.levelno, r.getMessage().rsplit(": ", 1)[-1]) for r in caplog.records]
    assert levels == [
        (logging.INFO, "retrying"),
        (logging.WARNING, "Cluster authorization failed"),
    ]


def test_commands_not_confirmed_during_an_outage_are_one_line(
    closed_port: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """The CLI's command producer (the process's own ``HEALTH``): past its deadline during
    an outage, ``BrokerUnreachable`` (the CLI: one line, exit 2), not a bare RuntimeError."""
    from datrix.aggregates.dataset import RegisterDataset, dataset_id_for
    from datrix.streams.messages import command_envelope

    log = KafkaCommandLog(at(closed_port, timeout_s=1.5), Topics("t."))
    ds = dataset_id_for("acme", "sales")
    log.append(
        command_envelope(
            RegisterDataset(ds, "sales"),
            subject=ds,
            tenant="acme",
            actor="test",
            time=datetime.now(UTC),
        )
    )
    try:
        with pytest.raises(BrokerUnreachable) as refused:
            log.flush()
        assert str(refused.value) == (
            f"Kafka did not confirm 1 command(s) within 1.5 s: the broker at {closed_port} "
            "is unreachable (DATRIX_KAFKA_TIMEOUT_S)"
        )
    finally:
        log.producer.purge()
        HEALTH.reached(None, closed_port)  # the process's state back to "no outage"
    assert not HEALTH.down
    assert RAW_LINE not in capfd.readouterr().err


def test_a_worker_retry_warns_once_and_says_when_it_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="datrix.worker")
    ctx = WorkerContext(Settings(), Topics(), threading.Event())
    attempts = iter([OSError("connection refused")] * 4 + [None])

    def flaky() -> str:
        failure = next(attempts)
        if failure is not None:
            raise failure
        return "done"

    assert _retrying(ctx, "sending", flaky) == "done"
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "datrix.worker"]
    assert [level for level, _ in said] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
        logging.DEBUG,
        logging.WARNING,
    ]
    assert said[0][1].startswith("sending failed (connection refused); retrying")
    assert said[-1][1] == "sending works again (after 4 failed attempts)"
