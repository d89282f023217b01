"""Who can produce (issue 12, item 4; docs/security.md "Who can produce"), against the
broker `deploy/local/up` starts: SASL/SCRAM-SHA-512 on the client port, ACLs.

- a client without credentials can neither produce nor consume;
- a wrong password fails, naming authentication;
- an external producer may write its own intake topic only (not ``commands``, and it reads
  nothing); bound to tenant ``a``, its command for tenant ``b`` is refused (recorded
  outcome + dead letter, nothing applied) and its good command after it is applied; a
  ``datrix_principal`` header it sets itself does not make it someone else;
- another tenant's dataset id is answered as if it did not exist;
- the CLI works with the credentials `up` exports (and fails in one line without them).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates import dataset
from datrix.streams.dead_letters import read_dead_letters
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import (
    PRINCIPAL_HEADER,
    KafkaCommandLog,
    Topics,
    client_config,
    to_message,
)
from datrix.streams.messages import command_envelope, decode_event
from datrix.streams.settings import load_settings
from tests.integration.conftest import ROOT, KafkaCli, deploy_local, exports, kafka_user
from tests.integration.test_kafka_faults import start_running_worker

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.1)


def unauthenticated(services: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A client configuration without SASL: what anyone who reaches the port can try."""
    anonymous = {k: v for k, v in services.items() if not k.startswith("DATRIX_KAFKA_SASL")}
    return client_config(load_settings(anonymous), **extra)


def test_a_client_without_credentials_can_neither_produce_nor_consume(
    services: dict[str, str],
) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer

    topic = Topics().commands
    errors: list[str] = []
    producer = Producer(
        unauthenticated(
            services,
            **{"message.timeout.ms": 5000, "error_cb": lambda e: errors.append(str(e))},
        )
    )
    delivered: list[Any] = []
    producer.produce(topic, b"x", on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(15)
    assert len(delivered) == 1 and delivered[0] is not None, delivered  # never written
    consumer = Consumer(unauthenticated(services, **{"group.id": f"anon-{uuid.uuid4()}"}))
    try:
        with pytest.raises(KafkaException):
            consumer.list_topics(topic, timeout=5)  # not even the topic list
    finally:
        consumer.close()


def test_a_wrong_password_fails_naming_authentication(services: dict[str, str]) -> None:
    from confluent_kafka import Producer

    wrong = {**services, "DATRIX_KAFKA_SASL_PASSWORD": "not-the-password"}
    errors: list[str] = []
    producer = Producer(
        client_config(
            load_settings(wrong),
            **{"message.timeout.ms": 5000, "error_cb": lambda e: errors.append(str(e))},
        )
    )
    delivered: list[Any] = []
    producer.produce(Topics().commands, b"x", on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(15)
    assert delivered and delivered[0] is not None
    assert any("Authentication failed" in e or "SASL" in e for e in errors), errors


def test_the_cli_needs_the_exported_credentials(kafka_cli: KafkaCli) -> None:
    """With `up`'s exports the CLI works in Kafka mode; with a wrong password it ends in
    one line naming the authentication failure (exit 1), not a hang or a traceback."""
    start_running_worker(kafka_cli)
    ok = kafka_cli("datasets", "--format", "json", timeout=120)
    assert ok.code == 0, ok.stderr
    extra = dict(kafka_cli.extra or {})
    kafka_cli.extra = {**extra, "DATRIX_KAFKA_SASL_PASSWORD": "wrong"}
    try:
        bad = kafka_cli("datasets", timeout=180)
    finally:
        kafka_cli.extra = extra
    assert bad.code != 0
    assert "Traceback" not in bad.stderr
    assert "authentication" in bad.stderr.lower(), bad.stderr


class External:
    """An external producer principal of the local broker, bound to some tenants."""

    def __init__(self, cli: KafkaCli, name: str) -> None:
        from confluent_kafka import Producer

        env = cli.extra or {}
        self.name = name
        self.topics = Topics(env["DATRIX_TOPIC_PREFIX"])
        self.credentials = kafka_user("producer", name, self.topics.prefix)
        own = {**env, **self.credentials}
        self.settings = load_settings(own)
        self.errors: list[str] = []
        self.producer = Producer(
            client_config(
                self.settings,
                **{"message.timeout.ms": 10000, "error_cb": lambda e: self.errors.append(str(e))},
            )
        )
        self.store = postgres_event_store(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])

    def send(
        self, tenant: str, command: Any, subject: uuid.UUID, topic: str | None = None, **h: bytes
    ) -> tuple[uuid.UUID, Any]:
        env = command_envelope(
            command,
            subject=subject,
            tenant=tenant,
            actor=f"ext:{self.name}",
            time=datetime.now(UTC),
        )
        key, value, headers = to_message(env)
        from confluent_kafka import KafkaException

        delivered: list[Any] = []
        try:
            self.producer.produce(
                topic or self.topics.intake(self.name),
                value=value,
                key=key,
                headers=[*headers, *h.items()],
                on_delivery=lambda err, _m: delivered.append(err),
            )
        except KafkaException as exc:  # refused at once (the client knew the topic's ACL)
            return env.id, exc.args[0]
        self.producer.flush(30)
        return env.id, delivered[0] if delivered else "not delivered"

    def outcome(self, command_id: uuid.UUID) -> tuple[str, str | None] | None:
        stream = self.store.load(command_id)
        if not stream:
            return None
        event = decode_event(stream[0])
        return stream[0].type.rsplit(".", 1)[-1], getattr(event, "reason", None)


def register(tenant: str, name: str) -> tuple[dataset.RegisterDataset, uuid.UUID]:
    ds = dataset.dataset_id_for(tenant, name)
    return dataset.RegisterDataset(ds, name), ds


def test_an_external_producer_produces_only_for_its_tenants(
    kafka_cli: KafkaCli, services: dict[str, str]
) -> None:
    from confluent_kafka import Consumer

    tag = uuid.uuid4().hex[:8]
    name = f"feed-{tag}"
    tenant_a, tenant_b = f"a-{tag}", f"b-{tag}"
    prefix = (kafka_cli.extra or {})["DATRIX_TOPIC_PREFIX"]
    ext = External(kafka_cli, name)
    kafka_cli.worker_env = {
        **(kafka_cli.worker_env or {}),
        "DATRIX_KAFKA_PRODUCERS": f"{name}:{tenant_a}",
    }
    start_running_worker(kafka_cli)

    # its own intake topic only: not the commands topic, and it reads nothing
    _cid, err = ext.send(tenant_a, *register(tenant_a, "direct"), topic=ext.topics.commands)
    assert err is not None and "authoriz" in str(err).lower(), err
    reader = Consumer(client_config(ext.settings, **{"group.id": f"{prefix}snoop"}))
    try:
        reader.subscribe([ext.topics.events])
        deadline = time.monotonic() + 15
        denied = None
        while denied is None and time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is not None and msg.error() is not None:
                denied = msg.error()
            elif msg is not None:
                raise AssertionError("an external producer read an event")
        assert denied is not None and "authoriz" in str(denied).lower(), denied
    finally:
        reader.close()

    # for a tenant it is not bound to: refused, recorded, dead-lettered, nothing applied
    foreign, foreign_ds = register(tenant_b, "sales")
    bad_id, err = ext.send(tenant_b, foreign, foreign_ds)
    assert err is None, err
    # claiming to be another principal in the header changes nothing
    spoof_id, err = ext.send(
        tenant_b, *register(tenant_b, "spoof"), **{PRINCIPAL_HEADER: b"datrix-app"}
    )
    assert err is None, err
    good, good_ds = register(tenant_a, "sales")
    good_id, err = ext.send(tenant_a, good, good_ds)
    assert err is None, err
    assert wait_until(lambda: ext.outcome(good_id), "the good command is processed") == (
        "CommandAccepted",
        None,
    )
    for refused in (bad_id, spoof_id):
        kind, reason = wait_until(lambda r=refused: ext.outcome(r), "the refusal is recorded")
        assert kind == "CommandRejected"
        assert reason == f"Unauthorized: producer {name!r} may not produce for tenant {tenant_b!r}"
    assert ext.store.load(foreign_ds) == []
    assert ext.store.load(good_ds) != []
    letters = wait_until(
        lambda: [
            d
            for d in read_dead_letters(load_settings(services), f"{prefix}commands.dlq")
            if d.ce_id in (str(bad_id), str(spoof_id))
        ],
        "both refusals are dead-lettered",
    )
    assert len(letters) == 2 and all("Unauthorized" in d.error for d in letters)
    assert all(dict(d.headers).get(PRINCIPAL_HEADER) == name.encode() for d in letters)

    # Another tenant's dataset id: the same answer as an id nobody has. Tenant b's
    # "taken" is registered through the trusted path (the gateway/CLI principal); the
    # producer of tenant a then registers that id, and an unused one, under the same name.
    other_ds = dataset.dataset_id_for(tenant_b, "taken")
    log = KafkaCommandLog(load_settings(kafka_cli.extra or {}), ext.topics)
    owner = command_envelope(
        dataset.RegisterDataset(other_ds, "taken"),
        subject=other_ds,
        tenant=tenant_b,
        actor="cli:owner",
        time=datetime.now(UTC),
    )
    log.append(owner)
    log.flush()
    assert wait_until(lambda: ext.outcome(owner.id), "b registers 'taken'")[0] == (
        "CommandAccepted"
    )
    probe_id, _ = ext.send(tenant_a, dataset.RegisterDataset(other_ds, "taken"), other_ds)
    unused = uuid.uuid4()
    blank_id, _ = ext.send(tenant_a, dataset.RegisterDataset(unused, "taken"), unused)
    probe = wait_until(lambda: ext.outcome(probe_id), "the probe is answered")
    blank = wait_until(lambda: ext.outcome(blank_id), "the unused id is answered")
    assert probe[0] == blank[0] == "CommandRejected"
    assert probe[1] is not None and blank[1] is not None
    assert probe[1].replace(str(other_ds), "ID") == blank[1].replace(str(unused), "ID")
    assert "already" not in probe[1]


def test_up_prints_the_gateway_credentials(services: dict[str, str]) -> None:
    """`up` exports the gateway/CLI principal (SCRAM-SHA-512) beside the other exports."""
    assert services["DATRIX_KAFKA_SASL_USERNAME"] == "datrix-app"
    assert services["DATRIX_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert len(services["DATRIX_KAFKA_SASL_PASSWORD"]) == 32
    worker = kafka_user("worker")
    assert worker["DATRIX_KAFKA_SASL_USERNAME"] == "datrix-worker"
    assert worker["DATRIX_KAFKA_SASL_PASSWORD"] != services["DATRIX_KAFKA_SASL_PASSWORD"]


OLD_SERVER_PROPERTIES = """\
# What an up before issue 12 item 4 wrote: no authentication on the client port.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_up_restarts_an_unsecured_broker_secured_and_keeps_its_data(
    services: dict[str, str], tmp_path: Path
) -> None:
    """A broker an older `up` started (PLAINTEXT client port, no authorizer) in the state
    folder: the next `up` does not reuse it open but restarts it with SASL and ACLs, and
    its topics and records are still there for the exported principal."""
    import os
    import socket

    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined,unused-ignore]

    port, controller = _free_port(), _free_port()
    state = tmp_path / "state"
    kafka = state / "kafka"
    (kafka / "logs").mkdir(parents=True)
    env = {
        **os.environ,
        "DATRIX_STATE": str(state),
        "DATRIX_KAFKA_PORT": str(port),
        "DATRIX_KAFKA_CONTROLLER_PORT": str(controller),
    }
    cache = Path(os.environ.get("DATRIX_CACHE", Path.home() / ".cache" / "datrix"))
    libs = cache / "kafka" / os.environ.get("DATRIX_KAFKA_VERSION", "4.3.1") / "libs"
    props = kafka / "server.properties"
    props.write_text(
        OLD_SERVER_PROPERTIES.format(port=port, controller=controller, data=kafka / "data")
    )
    tool = str(ROOT / "deploy" / "local" / "kafka-class")
    subprocess.run(
        [tool, "storage", "format", "-t", "AAAAAAAAAAAAAAAAAAAAAA", "-c", str(props)],
        check=True,
        capture_output=True,
        env=env,
        timeout=180,
    )
    with open(kafka / "logs" / "stdout.log", "ab") as log:
        subprocess.Popen(
            [
                "setsid",
                "bash",
                "-c",
                'echo $$ >"$1"; shift; exec "$@"',
                "_",
                str(kafka / "kafka.pid"),
                "java",
                "-Xmx256m",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    down = [str(ROOT / "deploy" / "local" / "down"), "kafka"]
    try:
        bootstrap = f"127.0.0.1:{port}"
        open_client = client_config(load_settings({"DATRIX_KAFKA_BOOTSTRAP": bootstrap}))
        admin = AdminClient(open_client)  # the old, open broker
        wait_until(lambda: _answers(admin), "the old broker answers", timeout=180)
        admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(timeout=60)
        old = Producer(open_client)
        old.produce("kept", b"written while it was open")
        assert old.flush(30) == 0

        up = deploy_local("up", "kafka", env=env, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        assert "without authentication - restarting it" in up.stderr
        for secret in ("server.properties", "admin.properties", "secrets"):
            assert (kafka / secret).stat().st_mode & 0o077 == 0, secret  # passwords inside
        exported = exports(up.stdout)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the port is served again
        anonymous = AdminClient(open_client)
        with pytest.raises(KafkaException):
            anonymous.list_topics(timeout=5)
        secured = load_settings(exported)
        consumer = Consumer(client_config(secured, **{"group.id": f"kept-{uuid.uuid4()}"}))
        try:
            consumer.assign([TopicPartition("kept", 0, 0)])
            msg = wait_until(lambda: consumer.poll(0.5), "the old record is read")
            assert msg.error() is None and msg.value() == b"written while it was open"
        finally:
            consumer.close()
    finally:
        subprocess.run(down, env=env, capture_output=True, timeout=120)


def _answers(admin: Any) -> bool:
    from confluent_kafka import KafkaException

    try:
        admin.list_topics(timeout=5)
        return True
    except KafkaException:
        return False


def test_up_from_another_state_reuses_the_broker_with_its_principals(
    services: dict[str, str], tmp_path: Path
) -> None:
    """A CI run with a HOME (so a DATRIX_STATE) of its own finds the broker of another
    state on the port: it reuses it with that state's principals, it does not fail or
    print credentials the broker does not know."""
    import os

    env = {**os.environ, "DATRIX_STATE": str(tmp_path / "other-state")}
    up = deploy_local("up", "kafka", env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    assert "taking that state's principals" in up.stderr
    found = exports(up.stdout)
    for key in (
        "DATRIX_KAFKA_BOOTSTRAP",
        "DATRIX_KAFKA_SASL_USERNAME",
        "DATRIX_KAFKA_SASL_PASSWORD",
    ):
        assert found[key] == services[key], key
    worker = subprocess.run(
        [str(ROOT / "deploy" / "local" / "kafka-user"), "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr
    assert exports(worker.stdout)["DATRIX_KAFKA_SASL_USERNAME"] == "datrix-worker"
