"""Fault tests on the real services: SIGKILLed workers, a broker restart and a Postgres
restart while commands stream in. Afterwards every command's events exist exactly once,
the read models equal a full replay, and the audit chains verify."""

from __future__ import annotations

import collections
import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from datrix.aggregates.dataset import RegisterDataset, dataset_id_for
from datrix.projections.store import PostgresReadStore
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import KafkaCommandLog, Topics, client_config
from datrix.streams.messages import command_envelope
from datrix.streams.settings import load_settings
from tests.integration.conftest import KafkaCli, deploy_local

pytestmark = pytest.mark.integration
TENANT = "faults"


def _env(cli: KafkaCli) -> dict[str, str]:
    return cli.extra or {}


def produce(cli: KafkaCli, n: int, per_second: float, ids: list[uuid.UUID]) -> None:
    """Send n RegisterDataset commands at a steady rate (the pause is the rate, not a
    wait), appending each command id to ``ids`` as it is sent."""
    env = _env(cli)
    log = KafkaCommandLog(load_settings(env), Topics(env["DATRIX_TOPIC_PREFIX"]))
    start = time.monotonic()
    for i in range(n):
        name = f"ds-{i:05d}-{uuid.uuid4().hex[:8]}"  # new names each run (topics persist)
        ds = dataset_id_for(TENANT, name)
        envelope = command_envelope(
            RegisterDataset(ds, name),
            subject=ds,
            tenant=TENANT,
            actor="fault-test",
            time=datetime.now(UTC),
        )
        log.append(envelope)
        ids.append(envelope.id)
        ahead = start + (i + 1) / per_second - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    log.flush(timeout=300)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.1)


class Worker:
    """A worker process and its log."""

    def __init__(self, cli: KafkaCli) -> None:
        self.log = cli.home.parent / f"worker-{len(cli.workers or [])}.log"
        self.proc = cli.start_worker(log=self.log)

    def running(self) -> bool:
        """Whether it runs its roles (topics and tables exist, every role's thread
        started): its log says so. Fails if it exited."""
        assert self.proc.poll() is None, f"{self.log.name}: exited with {self.proc.returncode}"
        return self.log.exists() and "worker running roles" in self.log.read_text(
            "utf-8", "replace"
        )


def start_running_worker(cli: KafkaCli) -> Worker:
    worker = Worker(cli)
    wait_until(worker.running, f"the worker of {worker.log.name} runs", timeout=120)
    return worker


def _owner(cli: KafkaCli) -> PostgresReadStore:
    env = _env(cli)
    return PostgresReadStore(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])


def _count(owner: PostgresReadStore) -> int:
    try:
        return int(
            owner.query("SELECT COUNT(*) FROM command_status WHERE tenant = ?", (TENANT,))[0][0]
        )
    except Exception:  # the database may be restarting
        return -1


def wait_all_processed(
    cli: KafkaCli, n: int, ids: list[uuid.UUID] | None = None, timeout: float = 600
) -> None:
    """Wait until n commands reached the read models; fail early (with a diagnosis of
    where the missing ones stopped) when the count has not moved for 90 s."""
    env = _env(cli)
    owner = PostgresReadStore(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    deadline = time.monotonic() + timeout
    seen, moved = -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - moved < 90:
        now = _count(owner)
        if now == n:
            return
        if now != seen:
            seen, moved = now, time.monotonic()
        time.sleep(0.5)
    raise AssertionError(
        f"only {seen} of {n} commands reached the read models\n" + diagnose(cli, ids or [])
    )


def diagnose(cli: KafkaCli, ids: list[uuid.UUID]) -> str:
    """Where did the missing commands stop: event store, topic, or projector?"""
    import psycopg
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    env = _env(cli)
    schema = env["DATRIX_DATABASE_SCHEMA"]
    lines: list[str] = []
    with psycopg.connect(env["DATRIX_DATABASE_URL"], autocommit=True) as db:
        done = {
            str(r[0])
            for r in db.execute(f'SELECT command_id FROM "{schema}".command_status').fetchall()
        }
        missing = [str(i) for i in ids if str(i) not in done]
        lines.append(f"missing {len(missing)} command ids, e.g. {missing[:3]}")
        notes = {
            str(r[0]): int(r[1])
            for r in db.execute(
                f'SELECT originator_id, notification_id FROM "{schema}".stored_events '
                "WHERE originator_id = ANY(%s)",
                ([uuid.UUID(m) for m in missing[:50]],),
            ).fetchall()
        }
        lines.append(f"their outcome events in the event store: {sorted(notes.values())[:20]}")
        lines.append(
            "projector positions: "
            + str(db.execute(f'SELECT * FROM "{schema}".projector_position').fetchall())
        )
        for (table,) in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name LIKE %s",
            (schema, "%tracking%"),
        ).fetchall():
            rows = db.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            lines.append(f"{table}: {rows}")
    topic = Topics(env["DATRIX_TOPIC_PREFIX"]).events
    consumer = Consumer(
        client_config(
            load_settings(env),
            **{
                "group.id": f"diag-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )
    )
    meta = consumer.list_topics(topic, timeout=30)
    parts = sorted(meta.topics[topic].partitions)
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts if ends[p]])
    where: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    seq: dict[int, list[int]] = collections.defaultdict(list)
    todo = {p for p in parts if ends[p]}
    stop = time.monotonic() + 120
    while todo and time.monotonic() < stop:
        for msg in consumer.consume(5000, timeout=0.5):
            if msg.error():
                if msg.offset() >= ends[msg.partition()]:
                    todo.discard(msg.partition())
                continue
            h = dict(msg.headers() or [])
            pos = int(h.get("datrix_position", b"0"))
            seq[msg.partition()].append(pos)
            if pos in set(notes.values()):
                where[pos].append((msg.partition(), msg.offset()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.discard(msg.partition())
    consumer.close()
    lines.append(f"topic ends {ends}")
    for pos in sorted(notes.values())[:10]:
        for p, off in where.get(pos, []):
            s = seq[p]
            i = s.index(pos)
            lines.append(
                f"position {pos}: partition {p} offset {off}; neighbours {s[max(0, i - 5) : i + 6]}"
            )
        if pos not in where:
            lines.append(f"position {pos}: NOT on the topic")
    for p, s in seq.items():
        backwards = sum(1 for a, b in itertools.pairwise(s) if b < a)
        dups = len(s) - len(set(s))
        lines.append(
            f"partition {p}: {len(s)} records, {dups} duplicates, {backwards} backward steps"
        )
    for log in sorted(cli.home.parent.glob("worker-*.log")):
        text = log.read_text(errors="replace")
        bad = [
            ln for ln in text.splitlines() if "ERROR" in ln or "crashed" in ln or "WARNING" in ln
        ]
        lines.append(f"{log.name}: {len(bad)} warning/error lines; last: {bad[-3:]}")
    return "\n".join(lines)


def check_exactly_once(cli: KafkaCli, ids: list[uuid.UUID]) -> None:
    env = _env(cli)
    store = postgres_event_store(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    events = []
    position = 0
    while True:
        batch = store.read(position, 5000)
        if not batch:
            break
        events.extend(e for _, e in batch)
        position = batch[-1][0]
    types = collections.Counter(e.type for e in events)
    assert types["datrix.dataset.DatasetRegistered"] == len(ids)
    assert types["datrix.command.CommandAccepted"] == len(ids)
    assert types["datrix.command.CommandRejected"] == 0
    per_command = collections.Counter(e.causation_id for e in events)
    assert set(per_command) == {str(i) for i in ids}
    assert set(per_command.values()) == {2}  # one DatasetRegistered + one outcome, once
    owner = PostgresReadStore(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    assert owner.query("SELECT COUNT(*) FROM datasets")[0][0] == len(ids)

    verify = cli("audit", "verify")
    assert verify.code == 0, verify.stderr
    replay = cli("replay", "--verify", timeout=600)
    assert replay.code == 0, replay.stdout + replay.stderr


def test_sigkill_workers_while_10000_commands_stream_in(kafka_cli: KafkaCli) -> None:
    """Two workers, SIGKILLed in turn again and again (each restart rejoins the consumer
    groups mid-stream, so partitions move between live consumers while batches are in
    flight). Workers log at DEBUG, so a failure's diagnosis can follow every partition."""
    kafka_cli.extra = {**_env(kafka_cli), "DATRIX_TENANT": TENANT, "DATRIX_LOG_LEVEL": "DEBUG"}
    workers = [start_running_worker(kafka_cli), start_running_worker(kafka_cli)]
    owner = _owner(kafka_cli)
    rng = random.Random(42)
    ids: list[uuid.UUID] = []
    producer = threading.Thread(target=produce, args=(kafka_cli, 10_000, 700.0, ids))
    producer.start()
    # Kill points by progress, not by the clock: each kill comes once the read models have
    # moved on by a seeded 300 to 900 commands since the last one, and hits a worker that
    # runs its roles, so every kill lands mid-stream on a fast or a slow machine (with
    # kills after 0.8-2 s, a slow machine could kill workers still starting up, or kill
    # before a command was processed).
    kills, mark = 0, 0
    for _ in range(6):
        target = mark + rng.randint(300, 900)
        wait_until(
            lambda: _count(owner) >= target,  # noqa: B023 (waited on at once)
            f"{target} commands reached the read models",
        )
        mark = _count(owner)
        assert mark < 10_000, "every command was processed before the kill: not mid-stream"
        running = [i for i, w in enumerate(workers) if w.running()]
        assert running  # the read models moved: some worker runs
        victim = running[rng.randrange(len(running))]
        workers[victim].proc.kill()
        workers[victim].proc.wait()
        kills += 1
        workers[victim] = Worker(kafka_cli)
    producer.join()
    assert kills == 6 and len(ids) == 10_000
    wait_all_processed(kafka_cli, 10_000, ids)
    check_exactly_once(kafka_cli, ids)


def _restart(service: str, down_while: Callable[[], bool]) -> None:
    """Stop the service (``down`` returns once it has stopped), keep it down while
    ``down_while()`` holds, then start it again."""
    _local("down", service, timeout=120)
    wait_until(lambda: not down_while(), f"{service} has been down long enough")
    _local("up", service, timeout=300)


def _local(script: str, service: str, timeout: float) -> None:
    """Run ``deploy/local/<script> <service>``; on failure, fail with what it printed."""
    done = deploy_local(script, service, timeout=timeout)
    assert done.returncode == 0, (
        f"deploy/local/{script} {service} exited {done.returncode}:\n{done.stderr[-4000:]}"
    )


@pytest.mark.serial  # stops the shared broker / database: no other test may run meanwhile
@pytest.mark.parametrize("service", ["kafka", "postgres"])
def test_service_restart_mid_stream(kafka_cli: KafkaCli, service: str) -> None:
    """The service goes down once commands are flowing (some 300 processed) and stays down
    while 500 more commands are sent (a second at 500/s), whatever the machine's speed."""
    kafka_cli.extra = {**_env(kafka_cli), "DATRIX_TENANT": TENANT}
    start_running_worker(kafka_cli)
    owner = _owner(kafka_cli)
    ids: list[uuid.UUID] = []
    producer = threading.Thread(target=produce, args=(kafka_cli, 3_000, 500.0, ids))
    producer.start()
    wait_until(lambda: _count(owner) >= 300, "300 commands reached the read models")
    assert _count(owner) < 3_000 and producer.is_alive(), "not mid-stream"
    sent = len(ids)
    _restart(service, down_while=lambda: len(ids) < min(sent + 500, 3_000))
    producer.join()
    wait_all_processed(kafka_cli, 3_000, ids)
    check_exactly_once(kafka_cli, ids)
