"""External producers (issue 13, item 6; docs/events.md): a system outside Datrix writes
commands with plain confluent-kafka and fastavro, in both CloudEvents content modes, to its
intake topic on the SASL broker of `deploy/local/up`, with its own SCRAM principal.

The producing code is docs/examples/external_producer.py, run as a subprocess in which
importing ``datrix`` fails: it is what a reader of docs/events.md copies; the events are
read back the same way by docs/examples/event_consumer.py.

- a RegisterDataset in binary mode (Avro single-object value, ``ce_`` headers) and one in
  structured JSON mode (``application/cloudevents+json``, ``data`` as JSON) are both
  accepted (``command_status``) and the datasets are listed by ``datrix datasets``;
- a structured one whose data does not fit the schema is rejected with the reason naming
  the field, dead-lettered, and ``datrix dlq replay`` of it sends a new id (still refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from datrix.aggregates.dataset import dataset_id_for
from datrix.projections.store import PostgresReadStore
from datrix.streams.dead_letters import read_dead_letters
from datrix.streams.settings import load_settings
from tests.integration.conftest import ROOT, KafkaCli, kafka_user
from tests.integration.test_kafka_faults import start_running_worker
from tests.integration.test_producer_auth import wait_until

pytestmark = pytest.mark.integration

EXAMPLES = ROOT / "docs" / "examples"


def without_datrix(script: str) -> list[str]:
    """``python`` running one of the examples with every datrix module unimportable: it
    must need none."""
    path = str(EXAMPLES / script)
    return [
        sys.executable,
        "-I",
        "-c",
        "import runpy, sys; sys.modules['datrix'] = None; "
        f"sys.argv = [{path!r}, *sys.argv[1:]]; runpy.run_path({path!r}, run_name='__main__')",
    ]


def run_example(script: str, credentials: dict[str, str], *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KAFKA_USERNAME": credentials["DATRIX_KAFKA_SASL_USERNAME"],
        "KAFKA_PASSWORD": credentials["DATRIX_KAFKA_SASL_PASSWORD"],
    }
    proc = subprocess.run(
        [*without_datrix(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def produce(
    credentials: dict[str, str], bootstrap: str, topic: str, tenant: str, mode: str, data: Any
) -> uuid.UUID:
    out = run_example(
        "external_producer.py",
        credentials,
        *("--bootstrap", bootstrap, "--topic", topic, "--tenant", tenant),
        *("--actor", "billing-service", "--mode", mode),
        *("--type", "datrix.dataset.RegisterDataset", "--data", json.dumps(data)),
    )
    return uuid.UUID(out.strip())


def test_commands_in_both_content_modes_from_plain_confluent_kafka(kafka_cli: KafkaCli) -> None:
    env = kafka_cli.extra or {}
    tag = uuid.uuid4().hex[:8]
    name, tenant = f"billing-{tag}", f"acme-{tag}"
    prefix = env["DATRIX_TOPIC_PREFIX"]
    credentials = kafka_user("producer", name, prefix)
    kafka_cli.extra = {**env, "DATRIX_TENANT": tenant}
    kafka_cli.worker_env = {
        **(kafka_cli.worker_env or {}),
        "DATRIX_KAFKA_PRODUCERS": f"{name}:{tenant}",
    }
    start_running_worker(kafka_cli)  # creates the intake topic of the bound producer

    def send(mode: str, data: Any) -> uuid.UUID:
        topic = f"{prefix}intake.{name}"
        return produce(credentials, env["DATRIX_KAFKA_BOOTSTRAP"], topic, tenant, mode, data)

    avro_ds, json_ds = dataset_id_for(tenant, "invoices"), dataset_id_for(tenant, "payments")
    binary = send("binary", {"dataset_id": str(avro_ds), "name": "invoices", "description": None})
    structured = send(
        "structured",
        {"dataset_id": str(json_ds), "name": "payments", "description": {"string": "daily"}},
    )
    broken_ds = dataset_id_for(tenant, "broken")
    broken = send("structured", {"dataset_id": str(broken_ds), "name": 42})

    owner = PostgresReadStore(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])

    def status(command_id: uuid.UUID) -> tuple[str, str | None] | None:
        rows = owner.query(
            "SELECT status, reason FROM command_status WHERE command_id = ?", (str(command_id),)
        )
        return (str(rows[0][0]), rows[0][1]) if rows else None

    assert wait_until(lambda: status(binary), "the binary command is processed") == (
        "accepted",
        None,
    )
    assert wait_until(lambda: status(structured), "the structured one is processed") == (
        "accepted",
        None,
    )
    assert wait_until(lambda: status(broken), "the broken one is refused") == (
        "rejected",
        "BadMessage: data.name: expected a string, got 42",
    )

    listed = kafka_cli("datasets", "--format", "json", timeout=120)
    assert listed.code == 0, listed.stderr
    names = {d["name"]: d for d in listed.json()}
    assert set(names) == {"invoices", "payments"}
    assert (names["invoices"]["id"], names["payments"]["id"]) == (str(avro_ds), str(json_ds))
    described = owner.query("SELECT name, description FROM datasets WHERE tenant = ?", (tenant,))
    assert sorted(tuple(r) for r in described) == [("invoices", None), ("payments", "daily")]

    # any system reads the events with plain confluent-kafka + fastavro (docs/events.md);
    # the external producer's principal may not: the app principal reads them here
    lines = run_example(
        "event_consumer.py",
        env,
        *("--bootstrap", env["DATRIX_KAFKA_BOOTSTRAP"], "--topic", f"{prefix}events"),
    )
    events = [json.loads(line) for line in lines.splitlines()]
    registered = {
        e["data"]["name"]: e for e in events if e["type"] == "datrix.dataset.DatasetRegistered"
    }
    assert set(registered) == {"invoices", "payments"}
    assert registered["payments"]["data"]["description"] == "daily"
    assert registered["invoices"]["subject"] == str(avro_ds)
    assert {e["tenant"] for e in events} == {tenant}

    settings = load_settings({**env, "DATRIX_TENANT": tenant})
    [letter] = wait_until(
        lambda: [
            d
            for d in read_dead_letters(settings, f"{prefix}commands.dlq")
            if d.ce_id == str(broken)
        ],
        "the broken command is dead-lettered",
    )
    assert letter.ce_type == "datrix.dataset.RegisterDataset"
    assert letter.error == "BadMessage: data.name: expected a string, got 42"
    assert dict(letter.headers)["datrix_principal"] == name.encode()

    # replayed as it is, under a new id (in the JSON): refused again, for the same reason
    replayed = kafka_cli("dlq", "replay", str(letter.offset), timeout=120)
    assert replayed.code == 0, replayed.stderr
    new_id = uuid.uuid5(broken, f"replay:{prefix}commands.dlq@{letter.offset}")
    assert str(new_id) in replayed.stdout
    assert wait_until(lambda: status(new_id), "the replay is refused") == (
        "rejected",
        "BadMessage: data.name: expected a string, got 42",
    )
