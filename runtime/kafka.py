"""Kafka mode seen from a client (the CLI, later the API): commands go to
``datrix.commands``; answers come from the Postgres read models that ``datrix worker``
keeps; live progress comes from Redis when it is there."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from datrix.aggregates.common import Command
from datrix.jobs.engine import ProgressFn, no_progress
from datrix.projections.read_model import ReadModel
from datrix.projections.store import PostgresReadStore
from datrix.runtime.embedded import client_envelope
from datrix.streams import scratch
from datrix.streams.kafka import KafkaCommandLog, ensure_topics, topics_for
from datrix.streams.messages import Envelope
from datrix.streams.object_store import open_object_store
from datrix.streams.ports import ObjectStore
from datrix.streams.private_state import open_home
from datrix.streams.progress import ProgressSubscriber, SummaryCache, TenantCounters
from datrix.streams.registry import Registry
from datrix.streams.settings import Settings, SettingsError


class NoAnswer(RuntimeError):
    """The workers did not answer in time."""


class KafkaRuntime:
    def __init__(
        self,
        settings: Settings,
        *,
        objects: ObjectStore | None = None,
        registry: Registry | None = None,
        read_models: Sequence[ReadModel] | None = None,
    ) -> None:
        """Built by the composition root (``runtime/bootstrap.py``); ``objects``: the
        object store (default: the one the settings name); ``registry``: the aggregates,
        policies and job kinds (default: the core and the settings' extensions);
        ``read_models``: what replay rebuilds (default: the core's and the registry's)."""
        if not settings.database_url:
            raise RuntimeError("Kafka mode needs DATRIX_DATABASE_URL as well")
        if not settings.database_reader_url:
            raise SettingsError(
                "Kafka mode needs DATRIX_DATABASE_READER_URL as well (the datrix_reader "
                "login the tenant's queries run as)"
            )
        assert settings.kafka_bootstrap is not None
        from datrix.runtime.registry import load_registry, read_models_of

        self.settings = settings
        self.registry = registry or load_registry(settings)
        self.registry.install()
        self.read_models = (
            tuple(read_models) if read_models is not None else read_models_of(self.registry)
        )
        self.topics = topics_for(settings)
        ensure_topics(settings, self.topics)
        self.commands = KafkaCommandLog(settings, self.topics)
        self.owner_store = PostgresReadStore(
            settings.database_url,
            settings.database_schema,
            reader_url=settings.database_reader_url,
        )
        # The query layer's identity is the CLI's configured tenant (the HTTP API will take
        # its key's): the reader sees that tenant's rows and no other.
        self.read_store = self.owner_store.for_tenant(settings.tenant)
        exposed = open_home(settings.home)  # folders 0700, files 0600
        if exposed:
            logging.getLogger("datrix").warning("%s", exposed)
        self.objects = objects if objects is not None else open_object_store(settings)
        self.progress = ProgressSubscriber(settings)
        self.cache = SummaryCache(settings)
        self.counters = TenantCounters(settings)

    def submit(
        self,
        command: Command,
        subject: UUID,
        *,
        command_id: UUID | None = None,
        cause: Envelope | None = None,
        actor: str | None = None,
    ) -> Envelope:
        envelope = client_envelope(
            self.settings, command, subject, command_id=command_id, cause=cause, actor=actor
        )
        self.commands.append(envelope, key=self.registry.routing_key(command, subject))
        self.counters.incr(envelope.tenant, "commands_submitted")
        return envelope

    def drain(self, progress: ProgressFn = no_progress) -> None:
        """Make sure every submitted command reached the broker; sweep the temp folders
        of killed runs (jobs themselves run in the workers)."""
        scratch.sweep(self.settings.home / "tmp")
        self.commands.flush()

    def await_processed(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        self.wait_for(done, timeout=timeout)

    def wait_for(
        self,
        done: Callable[[], bool],
        progress: ProgressFn = no_progress,
        scan_id: str | None = None,
        timeout: float = 900.0,
    ) -> None:
        self.commands.flush()
        updates: Any = None
        if scan_id is not None:
            updates = self.progress.listen(self.settings.tenant, scan_id)
        deadline = time.monotonic() + timeout
        last_check = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now - last_check >= 0.05:
                last_check = now
                if done():
                    return
            if updates is not None:
                phase, n, total = next(updates, ("", -1, -1))
                if n >= 0:
                    progress(phase, n, total)
            else:
                time.sleep(0.05)
        raise NoAnswer(
            f"no answer from the workers within {timeout:.0f} s; is `datrix worker` running "
            f"against {self.settings.kafka_bootstrap}?"
        )
