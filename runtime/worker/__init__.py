"""``datrix worker``: the Kafka-mode processes, one thread per role.

Roles: ``processor`` (commands -> event store, tracking per partition in the same
Postgres transaction), ``relay`` (event store -> ``datrix.events`` in notification order,
one leader at a time via a Postgres advisory lock), ``dispatcher`` (``JobRequested`` ->
``datrix.jobs``), ``jobs`` (run jobs, results back to ``datrix.commands``), ``projector``
(``datrix.events`` -> Postgres read models + audit chain per partition, position in the
same transaction), ``policies`` (the registry's policies: events -> commands with
deterministic ids, back to ``datrix.commands``), ``intake`` (external producers' intake
topics -> ``datrix.commands``, stamped with their principal), ``monitor`` (the stream
quality monitor: each active stream's data topic -> ``CloseStreamWindow`` commands).
Every consumer is at-least-once; every sink drops redelivered copies by a position it
stores transactionally (the monitor: by window ids and its offset rule), so correctness
never depends on Kafka transactions or on faust's exactly-once mode.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence

from datrix.projections.read_model import ReadModel
from datrix.projections.store import PostgresReadStore
from datrix.runtime.worker.common import WorkerContext, _retrying, log
from datrix.runtime.worker.dispatcher import run_dispatcher
from datrix.runtime.worker.intake import run_intake
from datrix.runtime.worker.jobs import run_jobs
from datrix.runtime.worker.monitor import run_monitor
from datrix.runtime.worker.policies import run_policies
from datrix.runtime.worker.processor import run_processor
from datrix.runtime.worker.projector import run_projector
from datrix.runtime.worker.relay import run_relay
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import Topics, ensure_topics
from datrix.streams.ports import ObjectStore
from datrix.streams.private_state import open_home
from datrix.streams.registry import Registry
from datrix.streams.settings import Settings

__all__ = ["ROLES", "RUNNERS", "run_worker"]

ROLES = ("processor", "relay", "dispatcher", "jobs", "projector", "policies", "intake", "monitor")

RUNNERS: dict[str, Callable[[WorkerContext], None]] = {
    "processor": run_processor,
    "relay": run_relay,
    "dispatcher": run_dispatcher,
    "jobs": run_jobs,
    "projector": run_projector,
    "policies": run_policies,
    "intake": run_intake,
    "monitor": run_monitor,
}


def run_worker(
    settings: Settings,
    topics: Topics,
    roles: tuple[str, ...] = ROLES,
    *,
    objects: ObjectStore | None = None,
    registry: Registry | None = None,
    read_models: Sequence[ReadModel] | None = None,
) -> None:
    """Run the roles until SIGTERM/SIGINT; a role that crashes is restarted. Started by
    the composition root (``runtime/bootstrap.py``), which may pass the object store,
    the registry (default: the core and the extensions of ``settings``, installed for
    this process) and the read models the projector keeps (default: the core's and the
    registry's)."""
    from datrix.runtime.registry import load_registry, read_models_of

    exposed = open_home(settings.home)  # scratch folders of jobs: 0700, files 0600
    if exposed:
        log.warning("%s", exposed)
    stop = threading.Event()
    registry = registry or load_registry(settings)
    registry.install()
    models = tuple(read_models) if read_models is not None else read_models_of(registry)
    ctx = WorkerContext(settings, topics, stop, objects, registry, models)
    ensure_topics(ctx.settings, topics)
    # create the tables once, before the roles race to do it
    _retrying(
        ctx, "creating the event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    _retrying(
        ctx, "creating the read models", lambda: PostgresReadStore(ctx.database_url, ctx.schema)
    )

    def guarded(role: str) -> None:
        while not stop.is_set():
            try:
                RUNNERS[role](ctx)
            except InterruptedError:
                return
            except Exception:
                log.exception("role %s crashed; restarting in 1s", role)
                stop.wait(1.0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=guarded, args=(r,), name=r, daemon=True) for r in roles]
    for t in threads:
        t.start()
    log.info("worker running roles: %s", ", ".join(roles))
    while not stop.is_set():
        time.sleep(0.2)
    for t in threads:
        t.join(timeout=10)
