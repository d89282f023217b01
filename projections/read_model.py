"""A read model: the tables it owns and the projection handlers that keep them.

The projector knows no event type: it applies each event with the handlers the registered
read models declare for its type (several read models may handle one type; they run in
registration order), then appends the event to the audit trail, which is generic. A read
model is one module that builds a ``ReadModel``; ``projections/read_models/`` holds the
core ones, and ``Projector(store, read_models=[*CORE_READ_MODELS, mine])`` adds another.

Its tables are created either by the core's numbered migrations (the core read models:
``projections/migrations.py``) or by the read model's own ``migrations``, numbered from 1
per read model and recorded in ``read_model_migrations`` under its name, so an extension's
schema never shifts the core's numbering and a database upgrades exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datrix.aggregates.common import Event
from datrix.projections.migrations import Migration
from datrix.projections.store import ReadStore, Tx
from datrix.streams.messages import Envelope

# (transaction, envelope, decoded event) -> the dataset id its audit entry names, or None
Handler = Callable[[Tx, Envelope, Any], str | None]
# the event's payload record -> the record its audit summary shows (may edit it in place)
SummaryHook = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ReadModel:
    """``tables`` maps each table the read model owns to its ordered primary key (replay
    checksums each table in that order); ``handlers`` maps an event class to what applies
    it; ``audit_summaries`` maps an event class to how its audit summary is shaped (e.g. a
    bulky payload reduced to a count); ``migrations`` create and change its own tables
    (empty for the core read models, whose tables the core migrations create)."""

    name: str
    tables: Mapping[str, str]
    handlers: Mapping[type[Event], Handler]
    audit_summaries: Mapping[type[Event], SummaryHook] = field(default_factory=dict)
    migrations: Sequence[Migration] = ()


# Tables of the projector itself (not of any read model), checksummed by replay as well.
GENERIC_TABLES: dict[str, str] = {"organisations": "id", "audit_log": "chain, seq"}
GENERIC_ONLY = frozenset({*GENERIC_TABLES, "projector_position", "schema_migrations"})


class ReadModelError(ValueError):
    """Read models that cannot be registered together."""


@dataclass(frozen=True)
class Dispatch:
    """The registered read models, resolved once: event class -> handlers in registration
    order, event class -> audit summary hook, and the tables replay checksums."""

    read_models: tuple[ReadModel, ...]
    handlers: Mapping[type[Event], tuple[Handler, ...]]
    summaries: Mapping[type[Event], SummaryHook]
    checksum_order: Mapping[str, str]

    @classmethod
    def of(cls, read_models: Iterable[ReadModel]) -> Dispatch:
        models = tuple(read_models)
        names: set[str] = set()
        owners: dict[str, str] = {}
        handlers: dict[type[Event], list[Handler]] = {}
        summaries: dict[type[Event], SummaryHook] = {}
        summary_owner: dict[type[Event], str] = {}
        for model in models:
            if model.name in names:
                raise ReadModelError(f"read model {model.name!r} is registered twice")
            names.add(model.name)
            for table in model.tables:
                if table in GENERIC_ONLY:
                    raise ReadModelError(f"table {table!r} belongs to the projector itself")
                if table in owners:
                    raise ReadModelError(
                        f"table {table!r} is owned by both {owners[table]!r} and {model.name!r}"
                    )
                owners[table] = model.name
            for event_type, handler in model.handlers.items():
                handlers.setdefault(event_type, []).append(handler)
            for event_type, hook in model.audit_summaries.items():
                if event_type in summaries:
                    # one audit entry per event: two shapings would make its hash ambiguous
                    raise ReadModelError(
                        f"{event_type.__name__}'s audit summary is shaped by both "
                        f"{summary_owner[event_type]!r} and {model.name!r}"
                    )
                summaries[event_type] = hook
                summary_owner[event_type] = model.name
        order = {"organisations": GENERIC_TABLES["organisations"]}
        for model in models:
            order.update(model.tables)
        order["audit_log"] = GENERIC_TABLES["audit_log"]
        return cls(models, {t: tuple(h) for t, h in handlers.items()}, summaries, order)


def install(store: ReadStore, read_models: Iterable[ReadModel]) -> None:
    """Apply the read models' own migrations the store lacks (the store remembers what it
    has seen applied, so this costs nothing the second time)."""
    for model in read_models:
        if model.migrations:
            store.install(model.name, model.migrations)


__all__ = [
    "GENERIC_TABLES",
    "Dispatch",
    "Handler",
    "ReadModel",
    "ReadModelError",
    "SummaryHook",
    "install",
]
