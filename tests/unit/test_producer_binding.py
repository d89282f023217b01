"""The processor's check of an external producer's command against its binding
(``DATRIX_KAFKA_PRODUCERS``; docs/security.md "Who can produce"). The same check against
the real broker: tests/integration/test_producer_auth.py."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

from datrix.aggregates import dataset
from datrix.runtime.worker.processor import unauthorized
from datrix.streams.kafka import PRINCIPAL_HEADER, Topics
from datrix.streams.messages import Envelope, command_envelope
from datrix.streams.settings import load_settings


def envelope(tenant: str) -> object:
    ds = uuid.uuid4()
    return command_envelope(
        dataset.RegisterDataset(ds, "x"),
        subject=ds,
        tenant=tenant,
        actor="ext",
        time=datetime.now(UTC),
    )


def test_a_forwarded_command_must_be_for_a_tenant_of_its_producer() -> None:
    settings = load_settings({"DATRIX_KAFKA_PRODUCERS": "feed:a+b,other:c"})
    stamped = [(PRINCIPAL_HEADER, b"feed")]
    assert unauthorized(settings, stamped, envelope("a")) is None  # type: ignore[arg-type]
    assert unauthorized(settings, stamped, envelope("b")) is None  # type: ignore[arg-type]
    assert (
        unauthorized(settings, stamped, envelope("c"))  # type: ignore[arg-type]
        == "producer 'feed' may not produce for tenant 'c'"
    )
    # a principal the workers do not bind may produce for no tenant (fail closed)
    assert unauthorized(settings, [(PRINCIPAL_HEADER, b"gone")], envelope("a")) is not None  # type: ignore[arg-type]
    # no header: a trusted principal's own command (only they can write the commands topic)
    assert unauthorized(settings, [("tenant", b"c")], envelope("c")) is None  # type: ignore[arg-type]
    assert unauthorized(load_settings({}), stamped, envelope("a")) is not None  # type: ignore[arg-type]


def test_intake_topics_name_their_principal() -> None:
    topics = Topics("staging.")
    assert topics.intake("feed") == "staging.intake.feed"
    assert topics.principal_of("staging.intake.feed") == "feed"
    assert topics.principal_of("staging.commands") is None
    assert topics.principal_of("prod.intake.feed") is None


def test_an_external_producer_may_not_send_a_jobs_result() -> None:
    """A scan's job id is derivable (uuid5 of the scan id), so a bound producer could
    otherwise complete its tenant's pending scan with a made-up result."""
    from datrix.runtime.worker.processor import TRUSTED_ONLY
    from datrix.streams.registry import core_registry

    settings = load_settings({"DATRIX_KAFKA_PRODUCERS": "feed:a"})
    stamped = [(PRINCIPAL_HEADER, b"feed")]
    result = replace(cast(Envelope, envelope("a")), type="datrix.scan.CompleteScan")
    assert unauthorized(settings, stamped, result) == (
        "producer 'feed' may not send datrix.scan.CompleteScan (the workers' own command)"
    )
    assert unauthorized(settings, [], result) is None  # the jobs role's own
    known = set(core_registry().table.types)
    assert known >= TRUSTED_ONLY, TRUSTED_ONLY - known  # no stale name


def test_an_external_producer_may_not_add_a_stream_snapshot_version() -> None:
    """A version with cause ``stream`` is recorded on its stream as a period's snapshot:
    only the stream-snapshot job adds one (uploads and pipeline versions are the
    producer's to add)."""
    settings = load_settings({"DATRIX_KAFKA_PRODUCERS": "feed:a"})
    stamped = [(PRINCIPAL_HEADER, b"feed")]

    def version(cause: str) -> Envelope:
        ds = uuid.uuid4()
        add = dataset.AddDatasetVersion(
            ds, "u", "ab" * 32, "datrix-stream://x/0-4000", "cd" * 32, "parquet", 1, 1, 1, "{}",
            cause=cause,
        )  # fmt: skip
        return command_envelope(add, subject=ds, tenant="a", actor="ext", time=datetime.now(UTC))

    assert unauthorized(settings, stamped, version("stream")) == (
        "producer 'feed' may not add a dataset version with cause 'stream' "
        "(a stream snapshot job's own)"
    )
    assert unauthorized(settings, [], version("stream")) is None  # the jobs role's own
    assert unauthorized(settings, stamped, version("pipeline")) is None
