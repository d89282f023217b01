"""Read Datrix events from outside Datrix: plain confluent-kafka and fastavro.

docs/events.md explains every part. Each record of ``datrix.events`` is a CloudEvent in
binary content mode: the attributes are ``ce_`` headers, the value is the event Avro
single-object encoded (``C3 01``, the writer schema's CRC-64-AVRO fingerprint
little-endian, the Avro body). The writer schema is found by its fingerprint among the
schemas of ``schemas/avro/`` (current and ``released/N/``) and resolved to the current one.

Reads the topic from its beginning to its end and prints one JSON line per event::

    export KAFKA_USERNAME=... KAFKA_PASSWORD=...
    python docs/examples/event_consumer.py --bootstrap 127.0.0.1:19092 --topic datrix.events

Deliveries may repeat (at least once): a consumer that keeps state drops a record whose
``datrix_position`` it has already seen on that partition. Only the standard library,
confluent-kafka and fastavro: no Datrix module is imported.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"


def known_schemas(folder: Path) -> tuple[dict[bytes, Any], dict[str, Any]]:
    """Every schema by its fingerprint (the value's 8 bytes), and the current one by name."""
    by_fingerprint: dict[bytes, Any] = {}
    current: dict[str, Any] = {}
    for path in [*sorted(folder.glob("released/*/*.avsc")), *sorted(folder.glob("*.avsc"))]:
        schema: Any = parse_schema(json.loads(path.read_text()), named_schemas={})
        fp = int(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"), 16)
        by_fingerprint[fp.to_bytes(8, "little")] = schema
        if path.parent == folder:
            current[schema["name"]] = schema
    return by_fingerprint, current


def decode(value: bytes, by_fingerprint: dict[bytes, Any], current: dict[str, Any]) -> Any:
    if value[:2] != b"\xc3\x01":
        raise ValueError("not an Avro single-object value")
    writer = by_fingerprint[value[2:10]]
    reader = current.get(writer["name"], writer)
    return schemaless_reader(io.BytesIO(value[10:]), writer, reader)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True, help="<prefix>events")
    p.add_argument("--group", default=f"event-reader-{uuid.uuid4()}")
    p.add_argument("--schemas", type=Path, default=SCHEMAS)
    args = p.parse_args()

    by_fingerprint, current = known_schemas(args.schemas)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": os.environ.get("KAFKA_MECHANISM", "SCRAM-SHA-512"),
            "sasl.username": os.environ["KAFKA_USERNAME"],
            "sasl.password": os.environ["KAFKA_PASSWORD"],
            "group.id": args.group,  # assigned, not subscribed: no group rebalance
            "enable.auto.commit": False,
            "isolation.level": "read_committed",  # the relay writes in transactions
            "enable.partition.eof": True,
        }
    )
    partitions = consumer.list_topics(args.topic, timeout=30).topics[args.topic].partitions
    todo = set(partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    while todo:
        msg = consumer.poll(30)
        if msg is None:
            print("no record within 30 s", file=sys.stderr)
            return 1
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                todo.discard(msg.partition())
                continue
            print(f"error: {err}", file=sys.stderr)
            return 1
        headers: dict[str, str] = {}
        found = msg.headers() or []
        for name, raw in found.items() if isinstance(found, dict) else found:
            headers[name] = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        record = {
            "type": headers["ce_type"],
            "subject": headers["ce_subject"],
            "tenant": headers["ce_tenant"],
            "time": headers["ce_time"],
            "sequence": int(headers["ce_sequence"]),
            "position": int(headers["datrix_position"]),
            "data": decode(msg.value() or b"", by_fingerprint, current),
        }
        print(json.dumps(record, default=str))
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
