"""A broker outage as a person at a terminal sees it (issue 12 item 9): no raw librdkafka
line, one warning when the broker is unreachable, one when it is back, and one readable
line with exit 2 when the command's deadline (DATRIX_KAFKA_TIMEOUT_S) passes.

The shared broker is never stopped: the CLI is pointed at a ``BrokerDoor``, a port that
refuses connections until the test opens it, then forwards them to the broker."""

from __future__ import annotations

import logging
import re
import time
import uuid

import pytest

from datrix.streams.kafka import client_config, producer_config
from datrix.streams.kafka_logging import BrokerHealth, kafka_logging_config
from datrix.streams.settings import load_settings
from tests.integration.broker_door import BrokerDoor
from tests.integration.conftest import DATRIX, KafkaCli
from tests.integration.terminal import run_in_terminal

pytestmark = pytest.mark.integration

# librdkafka's own format: %3|1796112277.984|FAIL|rdkafka#producer-1| [thrd:...]: ...
RAW_LINE = re.compile(r"%\d\|\d+\.\d+\||rdkafka#")


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "argv", [["datasets"], ["worker", "--roles", "processor"]], ids=["datasets", "worker"]
)
def test_a_command_during_an_outage_warns_once_and_exits_2_at_its_deadline(
    kafka_cli: KafkaCli, argv: list[str]
) -> None:
    with BrokerDoor(kafka_cli.env()["DATRIX_KAFKA_BOOTSTRAP"]) as door:  # never opened
        env = {**kafka_cli.env(), "DATRIX_KAFKA_BOOTSTRAP": door.address}
        env["DATRIX_KAFKA_TIMEOUT_S"] = "3"
        started = time.monotonic()
        run = run_in_terminal([DATRIX, *argv], env, timeout=120)
        took = time.monotonic() - started
    assert not RAW_LINE.search(run.text), run.text[:3000]
    said = lines(run.text)
    assert len(said) == 2, run.text
    assert said[0].endswith(
        f"WARNING Kafka broker {door.address} unreachable (Connection refused); retrying"
        if argv[0] == "worker"  # the worker's log format: time, thread, level
        else f"Kafka broker {door.address} unreachable (Connection refused); retrying"
    ), said
    assert said[1] == (
        f"datrix: no Kafka broker answered at {door.address} within 3 s "
        "(DATRIX_KAFKA_TIMEOUT_S); is it running, and is DATRIX_KAFKA_BOOTSTRAP right?"
    )
    assert run.code == 2
    assert took < 30  # the deadline, not librdkafka's own timeouts


def test_a_command_waits_through_a_short_outage_and_says_when_it_is_over(
    kafka_cli: KafkaCli,
) -> None:
    with BrokerDoor(kafka_cli.env()["DATRIX_KAFKA_BOOTSTRAP"]) as door:
        env = {**kafka_cli.env(), "DATRIX_KAFKA_BOOTSTRAP": door.address}
        env["DATRIX_KAFKA_TIMEOUT_S"] = "120"

        def open_when_warned(seen: bytes) -> None:
            if b"unreachable" in seen and not door.opened:
                door.open()  # the broker comes back once the outage has been reported

        run = run_in_terminal([DATRIX, "datasets"], env, timeout=120, on_output=open_when_warned)
    assert not RAW_LINE.search(run.text), run.text[:3000]
    assert run.code == 0, run.text[-3000:]
    said = lines(run.text)
    assert said[:2] == [
        f"Kafka broker {door.address} unreachable (Connection refused); retrying",
        f"Kafka broker {door.address} reachable again",
    ], said
    assert "Datasets" in run.text  # and the command did its work
    assert [s for s in said if "Kafka" in s] == said[:2]


def test_clients_log_an_outage_and_its_end_once_and_deliver_after_it(
    kafka_cli: KafkaCli,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """In process, through the clients' own callbacks (no wait_for_broker): a producer
    that lost every broker logs one warning; the first statistics report with a broker
    up after the door opens logs the end; the record sent during the outage arrives."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined,unused-ignore]

    caplog.set_level(logging.DEBUG, logger="datrix.kafka")
    settings = load_settings(kafka_cli.env())
    bootstrap = str(settings.kafka_bootstrap)
    topic = f"{kafka_cli.env()['DATRIX_TOPIC_PREFIX']}outage"
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    # a health of its own: another test's client in this process (the suite runs on
    # pytest-xdist workers) may have lost a broker and been dropped while still "down"
    health = BrokerHealth()
    try:
        with BrokerDoor(bootstrap) as door:
            config = producer_config(settings.replace(kafka_bootstrap=door.address))
            producer = Producer({**config, **kafka_logging_config(door.address, health)})
            delivered: list[object] = []
            producer.produce(
                topic, b"sent during the outage", on_delivery=lambda e, m: delivered.append(e)
            )
            deadline = time.monotonic() + 30
            while not health.down and time.monotonic() < deadline:
                producer.poll(0.1)
            assert health.down
            door.open()
            while (health.down or not delivered) and time.monotonic() < deadline:
                producer.poll(0.1)
            assert delivered == [None]  # no delivery error
            assert not health.down
        consumer = Consumer(client_config(settings, **{"group.id": str(uuid.uuid4())}))
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(30)
        consumer.close()
        assert msg is not None and msg.value() == b"sent during the outage"
    finally:
        admin.delete_topics([topic])[topic].result(30)
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "datrix.kafka" and r.levelno >= logging.WARNING
    ]
    assert warned == [
        f"Kafka broker {door.address} unreachable (Connection refused); retrying",
        f"Kafka broker {door.address} reachable again",
    ]
    assert health.outages == 1
    assert not RAW_LINE.search(capfd.readouterr().err)
