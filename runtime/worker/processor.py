"""The ``processor`` role: commands from ``datrix.commands`` -> the event store, tracking per
partition in the same Postgres transaction.

One bad record never stops a partition: a broken envelope, a payload that is no command,
a handler that raises or a conflict that never clears is refused (recorded under the
command's id when it can be read), copied to ``<prefix>commands.dlq`` and passed; only
outages (database, broker) are retried. A command an external producer sent for a tenant
it is not bound to is refused the same way (``unauthorized``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from datrix.runtime.worker.common import (
    WorkerContext,
    _commit,
    _consume,
    _dead_letter,
    _retrying,
    _stand_in,
    log,
)
from datrix.streams.dead_letters import DeadLetters
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import PRINCIPAL_HEADER, BadMessage, from_message
from datrix.streams.messages import Envelope
from datrix.streams.processor import CommandProcessor, Result
from datrix.streams.settings import Settings

# The results of jobs and the commands of the workers' own roles: only a trusted principal
# sends them. Their ids are derivable (a scan's job id is uuid5(scan id, "job-1")), so a
# producer bound to a tenant could otherwise complete that tenant's pending scan with a
# result of its own making before the job does.
TRUSTED_ONLY = frozenset(
    {
        "datrix.scan.CompleteScan",
        "datrix.scan.FailScan",
        "datrix.fix.CompleteFix",
        "datrix.fix.FailFix",
        "datrix.dataset.AddFixedVersion",
        "datrix.audit.RecordAuditCheckpoint",
        "datrix.stream.CloseStreamWindow",
        "datrix.stream.AddStreamSnapshot",
        "datrix.stream.FailStreamSnapshot",
        "datrix.stream.MarkStreamPartitionQuiet",
    }
)
# Causes of AddDatasetVersion only a worker gives: ``stream`` is the stream-snapshot job's
# result, and the policy stream-snapshots records it on the stream as that period's snapshot.
TRUSTED_CAUSES = frozenset({"stream"})


def _trusted_cause(env: Envelope) -> str | None:
    """The cause of an ``AddDatasetVersion`` that only a worker may give, else None."""
    if env.type != "datrix.dataset.AddDatasetVersion":
        return None
    from datrix.streams.messages import decode_command

    try:
        cause = getattr(decode_command(env.data), "cause", None)
    except Exception:  # undecodable: refused by the processor as any bad command
        return None
    return cause if cause in TRUSTED_CAUSES else None


def unauthorized(settings: Settings, headers: Any, env: Envelope) -> str | None:
    """Why the producer of a command may not produce it, or None when it may: a command
    forwarded by the intake role names its external producer (``datrix_principal``, a
    header only the trusted principals can have written), which must be bound to the
    envelope's tenant (``DATRIX_KAFKA_PRODUCERS``) and may not send a job's result or a
    worker's own command (``TRUSTED_ONLY``); one without the header was written by a
    trusted principal (docs/security.md "Who can produce")."""
    principal = next(
        (v for k, v in headers or [] if k == PRINCIPAL_HEADER and isinstance(v, bytes)), None
    )
    if principal is None:
        return None
    name = principal.decode("utf-8", "replace")
    if env.tenant not in settings.producer_tenants(name):
        return f"producer {name!r} may not produce for tenant {env.tenant!r}"
    if env.type in TRUSTED_ONLY:
        return f"producer {name!r} may not send {env.type} (the workers' own command)"
    cause = _trusted_cause(env)
    if cause is not None:
        return (
            f"producer {name!r} may not add a dataset version with cause {cause!r} "
            "(a stream snapshot job's own)"
        )
    return None


def run_processor(ctx: WorkerContext) -> None:
    store = _retrying(
        ctx, "event store", lambda: postgres_event_store(ctx.database_url, ctx.schema)
    )
    processor = CommandProcessor(store, ctx.registry)
    consumer = ctx.consumer("processor")
    dead = DeadLetters(ctx.settings, "processor")

    def tracking_name(partition: int) -> str:
        return f"command-processor:{ctx.topics.commands}:{partition}"

    def on_assign(c: Any, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        for tp in partitions:
            name = tracking_name(tp.partition)

            def read(n: str = name) -> int:
                return int(store.position(n))

            position = _retrying(ctx, "reading tracking", read)
            # position = last processed offset + 1; the tracking record, not the group's
            # committed offset, says where this partition's processing stands
            tp.offset = position if position else OFFSET_BEGINNING
        c.assign(partitions)

    def dead_letter(msg: Any, error: str) -> None:
        _dead_letter(ctx, dead, msg, error)

    def refuse(name: str, msg: Any, error: str) -> None:
        """Dead-letter first (the copy is durable before the position moves past it),
        then record the refusal and the position."""
        dead_letter(msg, error)
        envelope = _stand_in(msg)
        _retrying(
            ctx,
            "recording a refusal",
            lambda: processor.refuse(name, msg.offset() + 1, error, envelope),
        )

    def run(name: str, good: list[tuple[Any, Envelope]]) -> None:
        """Process a run of well-formed commands (one transaction); dead-letter those
        refused as unhandleable. A non-transient error takes them one by one."""
        if not good:
            return
        batch = [(msg.offset() + 1, env) for msg, env in good]
        try:
            results: list[Result] = _retrying(
                ctx, "processing commands", lambda: processor.process_batch(name, batch)
            )
        except InterruptedError:
            raise
        except Exception as exc:  # a bug below the aggregates: isolate the record
            log.error("processor: batch failed (%s); taking its records one by one", exc)
            for msg, env in good:

                def one_command(m: Any = msg, e: Envelope = env) -> Result:
                    return processor.process(name, m.offset() + 1, e)

                try:
                    result = _retrying(ctx, "processing a command", one_command)
                except InterruptedError:
                    raise
                except Exception as one:
                    refuse(name, msg, f"{type(one).__name__}: {one}")
                    continue
                if result.dead_letter:
                    dead_letter(msg, result.dead_letter)
            return
        # the refusal is recorded with the batch; its copy follows (a crash in between
        # leaves the recorded refusal without its dead letter)
        for (msg, _env), result in zip(good, results, strict=True):
            if result.dead_letter:
                dead_letter(msg, result.dead_letter)

    consumer.subscribe([ctx.topics.commands], on_assign=on_assign)
    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 500)
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for msg in messages:
                if not msg.error():
                    by_partition[msg.partition()].append(msg)
            for partition, records in by_partition.items():
                name = tracking_name(partition)
                good: list[tuple[Any, Envelope]] = []
                for msg in records:
                    try:
                        env, _ = from_message(msg.headers(), msg.value())
                    except BadMessage as exc:
                        run(name, good)
                        good = []
                        refuse(name, msg, f"BadMessage: {exc}")
                        continue
                    unbound = unauthorized(ctx.settings, msg.headers(), env)
                    if unbound is not None:
                        run(name, good)
                        good = []
                        refuse(name, msg, f"Unauthorized: {unbound}")
                        continue
                    good.append((msg, env))
                run(name, good)
            _commit(consumer, messages)
    finally:
        consumer.close()
