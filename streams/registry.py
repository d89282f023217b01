"""What a Datrix process knows how to handle: aggregates, policies and job kinds.

A ``Registry`` holds

- **aggregates** (``AggregateSpec``, declared once by each aggregate module as
  ``AGGREGATE``): their commands and events, the ids a command loads, ``decide``,
  ``evolve`` and the Kafka routing key. The command processor, the type table of the
  codec and ``routing_key`` read them;
- **policies** (``Policy``): an event in, commands out, like the ``eventsourcing``
  library's ``ProcessApplication.policy``. The runtimes give each command a deterministic
  id (``policy_command_id``), so a redelivered event yields the same command ids and the
  processor's command-id uniqueness drops the copies;
- **job kinds** (``JobKind``): the heavy step a job event asks for (``JobRequested.kind``),
  the function that runs it in the job's child process and returns the result command,
  and the events that end its work. Both runtimes look kinds up here; running the job
  of a ``JobRequested`` is the job-kind-backed reaction to that event (slow, so it runs
  outside the command loop: see docs/architecture.md).

``core_registry()`` holds the core aggregates; ``runtime/registry.py`` adds the scan job
kind and the extension modules named in ``DATRIX_EXTENSIONS`` (each has
``register(registry)``). An extension brings its own Avro schemas with ``add_schemas``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import UUID

from datrix.aggregates import audit, dataset, fix, outcome, scan, stream
from datrix.aggregates.common import AggregateSpec, Command, Event, avro_names
from datrix.streams.messages import Envelope, TypeTable, command_envelope, decode_event, use_types
from datrix.streams.ports import ObjectStore, ProgressFn
from datrix.streams.settings import Settings

Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


class RegistryError(ValueError):
    """A registration that clashes with one already made, or an unknown name."""


@dataclass(frozen=True)
class Reaction:
    """A command a policy issues, and the aggregate id it is about (its subject)."""

    command: Command
    subject: UUID


@dataclass(frozen=True)
class Policy:
    """Event in, commands out. ``react(event, envelope)`` must be deterministic: it may run
    again for the same event (a redelivery, a restart) and must then return the same
    commands in the same order, which get the same ids."""

    name: str
    follows: tuple[type[Event], ...]
    react: Callable[[Any, Envelope], Sequence[Reaction]]


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    - ``name``: the ``kind`` field of the job event (``"scan"``).
    - ``event``: the event type that requests it; it has ``job_id`` and ``kind`` fields and
      its originator (the ``subject``) is the aggregate that waits for the result.
    - ``run(job, objects, progress, settings) -> command``: runs in the job's child process
      (``runtime/job_process.py``) with the parent's settings; never raises, a failure is a
      result command too.
    - ``failed(job, error_type, message) -> command``: the result when the job is stopped
      from outside (over a budget) or its process dies.
    - ``ended``: event types on the subject's stream after which the job has nothing left
      to do (its result arrived, or it was cancelled).
    - ``requested_by``: commands whose sender runs the job (the embedded runtime holds the
      job of the command's aggregate from the moment it is submitted).
    - ``actor(job)``: who sends the result; ``notice(job, query)``: the line announcing
      that this process takes over an interrupted job (``query`` reads the read models).
    """

    name: str
    event: type[Event]
    run: Callable[[Any, ObjectStore, ProgressFn, Settings], Command]
    failed: Callable[[Any, str, str], Command]
    ended: tuple[type[Event], ...]
    requested_by: tuple[type[Command], ...] = ()
    actor: Callable[[Any], str] | None = None
    notice: Callable[[Any, Query], str] | None = None

    def actor_of(self, job: Any) -> str:
        return self.actor(job) if self.actor else f"worker:{self.name}"

    def interrupted(self, job: Any, query: Query) -> str:
        if self.notice is not None:
            return self.notice(job, query)
        return f"finishing interrupted {self.name} job {str(job.job_id)[:8]}"


def result_command_id(job_id: UUID) -> UUID:
    """A job's result command: re-running the job after a crash resubmits the same id."""
    return uuid.uuid5(job_id, "result")


def policy_command_id(event_id: UUID, policy: str, index: int) -> UUID:
    """The id of the ``index``-th command ``policy`` issues for the event ``event_id``."""
    return uuid.uuid5(event_id, f"policy:{policy}/{index}")


@dataclass
class Registry:
    aggregates: dict[str, AggregateSpec] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    job_kinds: dict[str, JobKind] = field(default_factory=dict)
    schema_dirs: list[Path] = field(default_factory=list)
    _types: dict[str, type] = field(default_factory=dict)
    _by_command: dict[type, AggregateSpec] = field(default_factory=dict)
    extensions: list[str] = field(default_factory=list)
    # read models of the extensions (``projections.read_model.ReadModel``, a layer above:
    # the runtime layer checks them, ``runtime.registry.read_models_of``)
    read_models: list[Any] = field(default_factory=list)

    # -- registration ------------------------------------------------------------------------
    def add_types(self, names: dict[str, type]) -> None:
        for name, cls in names.items():
            known = self._types.get(name)
            if known is not None and known is not cls:
                raise RegistryError(f"type {name} is registered twice")
            self._types[name] = cls
        self._changed()

    def add_aggregate(self, spec: AggregateSpec) -> None:
        if spec.name in self.aggregates:
            raise RegistryError(f"aggregate {spec.name!r} is registered twice")
        for command in spec.commands:
            if command in self._by_command:
                raise RegistryError(f"{command.__name__} already belongs to an aggregate")
        self.add_types(spec.avro_names())
        self.aggregates[spec.name] = spec
        for command in spec.commands:
            self._by_command[command] = spec

    def add_policy(self, policy: Policy) -> None:
        if policy.name in self.policies:
            raise RegistryError(f"policy {policy.name!r} is registered twice")
        self.policies[policy.name] = policy
        self._changed()

    def add_read_model(self, read_model: Any) -> None:
        """A ``projections.read_model.ReadModel`` the projector keeps beside the core's
        (and replay rebuilds), in every process that loads this registry."""
        name = getattr(read_model, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{read_model!r} is not a read model (it has no name)")
        if any(known.name == name for known in self.read_models):
            raise RegistryError(f"read model {name!r} is registered twice")
        self.read_models.append(read_model)

    def add_job_kind(self, kind: JobKind, *, replace: bool = False) -> None:
        """``replace``: swap a registered kind of that name (e.g. the scan on stand-in
        engines in tests) instead of refusing it."""
        if kind.name in self.job_kinds and not replace:
            raise RegistryError(f"job kind {kind.name!r} is registered twice")
        self.job_kinds[kind.name] = kind
        self._changed()

    def add_schemas(self, folder: Path) -> None:
        """Avro schemas of an extension's types (``*.avsc``, ``released/N/*.avsc``)."""
        if not folder.is_dir():
            raise RegistryError(f"no schema folder {folder}")
        if folder not in self.schema_dirs:
            self.schema_dirs.append(folder)
            self._changed()

    # -- lookups -----------------------------------------------------------------------------
    @cached_property
    def table(self) -> TypeTable:
        """The type table (and codec) of everything registered."""
        types = dict(self._types)
        return TypeTable(types, {cls: name for name, cls in types.items()}, tuple(self.schema_dirs))

    def aggregate_of(self, command: type[Command]) -> AggregateSpec | None:
        return self._by_command.get(command)

    def aggregate(self, name: str) -> AggregateSpec:
        try:
            return self.aggregates[name]
        except KeyError:
            raise RegistryError(f"no aggregate named {name!r}") from None

    def routing_key(self, command: Command, subject: UUID) -> str:
        """The Kafka key of a command: the aggregate whose order it depends on (its
        subject, unless its aggregate declares another id for it: a scan request is keyed
        by its dataset, so it never overtakes the registration it needs)."""
        spec = self.aggregate_of(type(command))
        routed = spec.routing_id(command) if spec is not None else None
        return str(routed if routed is not None else subject)

    def requests_job(self, command: Command) -> bool:
        """Whether ``command`` asks for a job (some kind lists it in ``requested_by``)."""
        return any(type(command) in k.requested_by for k in self.job_kinds.values())

    def job_kind(self, name: str) -> JobKind:
        try:
            return self.job_kinds[name]
        except KeyError:
            raise RegistryError(f"no job kind {name!r} is registered in this process") from None

    def type_name(self, cls: type) -> str:
        return self.table.names[cls]

    @cached_property
    def job_event_types(self) -> frozenset[str]:
        """Avro names of the events that request jobs."""
        return frozenset(self.type_name(k.event) for k in self.job_kinds.values())

    @cached_property
    def ended_types(self) -> frozenset[str]:
        """Avro names of the events that end a job's work (any kind)."""
        return frozenset(self.type_name(e) for k in self.job_kinds.values() for e in k.ended)

    @cached_property
    def followed_types(self) -> frozenset[str]:
        return frozenset(self.type_name(e) for p in self.policies.values() for e in p.follows)

    def _changed(self) -> None:
        """Drop the cached lookups: something was registered."""
        for name in ("table", "job_event_types", "ended_types", "followed_types"):
            self.__dict__.pop(name, None)

    # -- this process ------------------------------------------------------------------------
    def install(self) -> None:
        """Make this registry's types the ones this process encodes and decodes with (the
        projector, replay and every ``decode_event`` read the process's table)."""
        use_types(self.table)

    @contextmanager
    def installed(self) -> Iterator[Registry]:
        previous = use_types(self.table)
        try:
            yield self
        finally:
            use_types(previous)


def core_registry() -> Registry:
    """The core aggregates (dataset, scan, fix, audit anchor, stream) and the command outcomes; no
    job kinds or policies (``runtime/registry.py`` adds those)."""
    registry = Registry()
    registry.add_aggregate(dataset.AGGREGATE)
    registry.add_aggregate(scan.AGGREGATE)
    registry.add_aggregate(fix.AGGREGATE)
    registry.add_aggregate(audit.AGGREGATE)
    registry.add_aggregate(stream.AGGREGATE)
    registry.add_types(avro_names(outcome.NAMESPACE, outcome.EVENTS))
    return registry


def reaction_envelopes(
    registry: Registry, policy: Policy, event: Envelope, reactions: Sequence[Reaction]
) -> list[Envelope]:
    """The command envelopes of a policy's reactions to ``event``: deterministic ids,
    the event's tenant, time and correlation, the event as their cause, the policy as
    their actor."""
    return [
        command_envelope(
            r.command,
            subject=r.subject,
            tenant=event.tenant,
            actor=f"policy:{policy.name}",
            time=event.time,
            command_id=policy_command_id(event.id, policy.name, index),
            correlation_id=event.correlation_id,
            causation_id=str(event.id),
            table=registry.table,
        )
        for index, r in enumerate(reactions)
    ]


def policy_reactions(
    registry: Registry, policy: Policy, envelope: Envelope
) -> list[tuple[Envelope, str]]:
    """The commands one policy issues for one event (none for an event it does not
    follow), each with its routing key."""
    if envelope.type not in {registry.type_name(e) for e in policy.follows}:
        return []
    event = decode_event(envelope, table=registry.table)
    reactions = list(policy.react(event, envelope))
    envelopes = reaction_envelopes(registry, policy, envelope, reactions)
    return [
        (env, registry.routing_key(r.command, r.subject))
        for r, env in zip(reactions, envelopes, strict=True)
    ]


def react(registry: Registry, envelope: Envelope) -> list[tuple[Envelope, str]]:
    """Every command the registered policies issue for one event, with its routing key."""
    if envelope.type not in registry.followed_types:
        return []
    out: list[tuple[Envelope, str]] = []
    for policy in registry.policies.values():
        out.extend(policy_reactions(registry, policy, envelope))
    return out
