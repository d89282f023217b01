"""``registry_lookup`` offline: what its errors say (the lookup against a real registry is
tests/integration/test_stream_avro_registry.py, Apicurio from ``deploy/local/up registry``)."""

from __future__ import annotations

import socket

import pytest

from datrix.jobs.streams.formats import registry_lookup


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_registry_is_an_outage_named_without_its_credentials() -> None:
    port = closed_port()
    lookup = registry_lookup(f"http://reader:s3cret@127.0.0.1:{port}/apis/ccompat/v7/", 2.0)
    with pytest.raises(OSError) as outage:
        lookup(1)
    message = str(outage.value)
    assert message.startswith(
        f"schema registry http://127.0.0.1:{port}/apis/ccompat/v7 unreachable: "
    ), message
    assert "s3cret" not in message and "reader" not in message
    assert outage.value.__cause__ is None  # (the httpx error, whose request has the URL)
