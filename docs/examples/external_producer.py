"""Produce one Datrix command from outside Datrix: plain confluent-kafka and fastavro.

docs/events.md explains every part. Either CloudEvents content mode:

- ``--mode binary``: the value is the command Avro single-object encoded (``C3 01``, the
  writer schema's CRC-64-AVRO fingerprint little-endian, the Avro body) with the schema
  from ``schemas/avro/<type>.avsc``; the attributes are ``ce_`` headers;
- ``--mode structured``: the value is one CloudEvents JSON object
  (``content-type: application/cloudevents+json``) whose ``data`` is the command as JSON;
  Datrix checks it against the same Avro schema.

Example (a producer principal made by ``deploy/local/kafka-user producer billing``, bound
to tenant ``acme`` by the workers' ``DATRIX_KAFKA_PRODUCERS=billing:acme``)::

    export KAFKA_USERNAME=... KAFKA_PASSWORD=...   # the exports of kafka-user
    python docs/examples/external_producer.py --bootstrap 127.0.0.1:19092 \\
        --topic datrix.intake.billing --tenant acme --actor billing-service \\
        --type datrix.dataset.RegisterDataset --mode structured \\
        --data '{"dataset_id": "<uuid5 of acme/invoices>", "name": "invoices"}'

It prints the command's id: ask Datrix what became of it (``GET /v1/commands/{id}``).
Only the standard library, confluent-kafka and fastavro: no Datrix module is imported.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

# The namespace of dataset ids: a dataset's id is uuid5(DATASETS, "<tenant>/<name>").
DATASETS = uuid.UUID("5b0c6f1e-3d0a-4f43-9a55-0d7a7c1d2a10")
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"


def single_object(schema_file: Path, record: dict[str, Any]) -> tuple[bytes, str]:
    """Avro single-object encoding of ``record`` and the schema's fingerprint (16 hex)."""
    schema = parse_schema(json.loads(schema_file.read_text()))
    fp = int(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"), 16)
    out = io.BytesIO()
    out.write(b"\xc3\x01" + fp.to_bytes(8, "little"))
    schemaless_writer(out, schema, record)
    return out.getvalue(), f"{fp:016x}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True, help="your intake topic: <prefix>intake.<name>")
    p.add_argument("--tenant", required=True)
    p.add_argument("--actor", required=True)
    p.add_argument("--type", required=True, help="the command's Avro full name")
    p.add_argument("--data", required=True, help="the command's fields as a JSON object")
    p.add_argument("--subject", help="the aggregate id (default: the data's dataset_id)")
    p.add_argument("--key", help="the record key (default: the data's dataset_id)")
    p.add_argument("--mode", choices=("binary", "structured"), default="binary")
    p.add_argument("--source", default="urn:example:external-producer")
    p.add_argument("--schemas", type=Path, default=SCHEMAS, help="folder of the .avsc files")
    args = p.parse_args()

    data = json.loads(args.data)
    subject = args.subject or data["dataset_id"]
    key = (args.key or data.get("dataset_id") or subject).encode()
    command_id = str(uuid.uuid4())
    attributes = {
        "specversion": "1.0",
        "id": command_id,
        "type": args.type,
        "source": args.source,
        "subject": subject,
        "time": datetime.now(UTC).isoformat(),
        "tenant": args.tenant,
        "actor": args.actor,
        "correlationid": command_id,
    }
    if args.mode == "binary":
        value, fp = single_object(args.schemas / f"{args.type}.avsc", data)
        headers = [(f"ce_{k}", v.encode()) for k, v in attributes.items()]
        headers += [
            ("content-type", b"application/avro"),
            ("ce_dataschema", f"urn:datrix:avro:{args.type}:{fp}".encode()),
        ]
    else:
        event = {**attributes, "datacontenttype": "application/json", "data": data}
        value = json.dumps(event).encode()
        headers = [("content-type", b"application/cloudevents+json")]

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",  # SASL_SSL across machines
            "sasl.mechanism": os.environ.get("KAFKA_MECHANISM", "SCRAM-SHA-512"),
            "sasl.username": os.environ["KAFKA_USERNAME"],
            "sasl.password": os.environ["KAFKA_PASSWORD"],
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer.produce(args.topic, value=value, key=key, headers=headers, on_delivery=delivered)
    if producer.flush(30) or failures:
        print(f"not delivered: {'; '.join(failures) or 'timed out'}", file=sys.stderr)
        return 1
    print(command_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
