"""The composition root: everything Datrix runs on, built from one ``Settings``.

``bootstrap()`` reads the settings (``load_settings``: the environment, the only place it
is read) and returns an ``App`` whose parts are built on first use: the object store, the
runtime the settings choose (the embedded default, or Kafka mode when
``DATRIX_KAFKA_BOOTSTRAP`` is set), the engines' tuning, the Kafka topics, and the
Kafka-mode worker. The CLI (``gateway/cli.py``), ``datrix worker`` and the HTTP API build
through it, and so do tests, which pass what they want instead of patching module globals
or the environment::

    app = bootstrap(home=tmp_path, tenant="acme", jobs_in_process=True,
                    engines={"polars": lambda tuning: StandIn()})
    app.runtime.submit(...)

Keyword arguments that name a ``Settings`` field override it (checked like the
environment's values); the others are parts: ``objects`` (an ``ObjectStore``),
``engines`` with ``jobs_in_process`` (stand-in engines, run in this process: a job
process only has the real ones), ``notice`` (the embedded runtime's one-line messages to
the user), ``registry`` (aggregates, policies, job kinds; default: the core plus the
modules of ``DATRIX_EXTENSIONS``) and ``read_models`` (what the projector keeps; default:
the core's and those the registry's modules add). The runtimes and the worker get the same parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from datrix.jobs.engine import ScanTuning
from datrix.projections.read_model import ReadModel
from datrix.runtime.embedded import EmbeddedRuntime
from datrix.runtime.registry import load_registry, read_models_of
from datrix.streams.kafka import Topics, topics_for
from datrix.streams.object_store import open_object_store
from datrix.streams.ports import ObjectStore
from datrix.streams.registry import Registry
from datrix.streams.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from datrix.jobs.runner import EngineFactory
    from datrix.runtime.kafka import KafkaRuntime


class App:
    """The parts of one Datrix process, built from ``settings`` on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        objects: ObjectStore | None = None,
        engines: Mapping[str, EngineFactory] | None = None,
        jobs_in_process: bool = False,
        notice: Callable[[str], None] | None = None,
        registry: Registry | None = None,
        read_models: Sequence[ReadModel] | None = None,
    ) -> None:
        if engines is not None and not jobs_in_process:
            raise ValueError(
                "engines= are stand-ins of this process: pass jobs_in_process=True too "
                "(a job process runs the real engines)"
            )
        if (engines is not None or jobs_in_process) and not settings.embedded:
            raise ValueError("engines= and jobs_in_process= apply to the embedded runtime")
        self.settings = settings
        self._objects = objects
        self._engines = engines
        self._jobs_in_process = jobs_in_process
        self._notice = notice
        self._registry = registry
        self._read_models = read_models

    @cached_property
    def read_models(self) -> tuple[ReadModel, ...]:
        """The read models given, else the core's and the registry's."""
        if self._read_models is not None:
            return tuple(self._read_models)
        return read_models_of(self.registry)

    @cached_property
    def registry(self) -> Registry:
        """The registry given, else the core plus the settings' extensions (a bad
        ``DATRIX_EXTENSIONS`` raises ``SettingsError``)."""
        return self._registry if self._registry is not None else load_registry(self.settings)

    @cached_property
    def objects(self) -> ObjectStore:
        """The object store given, else the one the settings name."""
        return self._objects if self._objects is not None else open_object_store(self.settings)

    @cached_property
    def runtime(self) -> EmbeddedRuntime | KafkaRuntime:
        """The embedded runtime, or the Kafka-mode client when the settings name a broker
        (it connects to the services: errors are the caller's to word)."""
        if self.settings.embedded:
            return EmbeddedRuntime(
                self.settings,
                objects=self.objects,
                engines=self._engines,
                jobs_in_process=self._jobs_in_process,
                notice=self._notice,
                registry=self.registry,
                read_models=self.read_models,
            )
        from datrix.runtime.kafka import KafkaRuntime

        return KafkaRuntime(
            self.settings,
            objects=self.objects,
            registry=self.registry,
            read_models=self.read_models,
        )

    @property
    def tuning(self) -> ScanTuning:
        """What the engines of a job are given (the job process builds the same)."""
        return ScanTuning.from_settings(self.settings)

    @property
    def topics(self) -> Topics:
        return topics_for(self.settings)

    def run_worker(self, roles: tuple[str, ...] | None = None) -> None:
        """Run Kafka-mode worker roles (default: all) until SIGTERM/SIGINT."""
        from datrix.runtime.worker import ROLES, run_worker

        if self.settings.embedded or not self.settings.database_url:
            raise SettingsError(
                "datrix worker needs DATRIX_KAFKA_BOOTSTRAP and DATRIX_DATABASE_URL"
            )
        # the jobs role opens the settings' store itself (again after a crash) unless
        # one was given
        run_worker(
            self.settings,
            self.topics,
            roles or ROLES,
            objects=self._objects,
            registry=self.registry,
            read_models=self.read_models,
        )


def bootstrap(
    settings: Settings | None = None,
    *,
    objects: ObjectStore | None = None,
    engines: Mapping[str, EngineFactory] | None = None,
    jobs_in_process: bool = False,
    notice: Callable[[str], None] | None = None,
    registry: Registry | None = None,
    read_models: Sequence[ReadModel] | None = None,
    **overrides: Any,
) -> App:
    """An ``App`` from ``settings`` (default: ``load_settings()``), with ``overrides`` of
    its fields (``home=...``, ``tenant=...``) and the parts given. A bad setting raises
    ``SettingsError`` (one line naming the variable)."""
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = settings.replace(**overrides)
    return App(
        settings,
        objects=objects,
        engines=engines,
        jobs_in_process=jobs_in_process,
        notice=notice,
        registry=registry,
        read_models=read_models,
    )
