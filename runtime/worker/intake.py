"""The ``intake`` role: commands of external producers -> ``datrix.commands``, each stamped
with the principal that produced it (docs/security.md "Who can produce").

Kafka does not tell a consumer who produced a record, so the broker's ACLs carry it: an
external producer principal may write its own intake topic ``<prefix>intake.<name>`` and
nothing else, and only trusted principals (the workers, the gateway/CLI) may write
``<prefix>commands``. This role reads the intake topics of the producers the settings bind
(``DATRIX_KAFKA_PRODUCERS``), drops any ``datrix_principal`` header a producer sent, adds
its own from the topic's name and forwards the record unchanged otherwise (key, value,
headers). The processor checks the header against the binding and refuses a command for a
tenant the principal is not bound to: one place decides, with the refusal machinery every
other unacceptable command goes through (recorded outcome + dead letter).

At least once: a record forwarded twice is taken once by the processor (same command id).
"""

from __future__ import annotations

from datrix.runtime.worker.common import WorkerContext, _commit, _consume, log
from datrix.streams.kafka import PRINCIPAL_HEADER, Headers, producer_config


def run_intake(ctx: WorkerContext) -> None:
    from confluent_kafka import Producer

    topics = [ctx.topics.intake(name) for name, _tenants in ctx.settings.kafka_producers]
    if not topics:
        log.info("intake: no external producers bound (DATRIX_KAFKA_PRODUCERS); idle")
        ctx.stop.wait()
        raise InterruptedError("intake")
    producer = Producer(producer_config(ctx.settings))
    consumer = ctx.consumer("intake")
    consumer.subscribe(topics)
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 500)
            sent = 0
            for msg in messages:
                if msg.error():
                    continue
                principal = ctx.topics.principal_of(msg.topic())
                if principal is None:  # not an intake topic: never subscribed
                    continue
                headers: Headers = [(k, v) for k, v in msg.headers() or [] if k != PRINCIPAL_HEADER]
                headers.append((PRINCIPAL_HEADER, principal.encode()))
                while True:
                    try:
                        producer.produce(
                            ctx.topics.commands,
                            value=msg.value(),
                            key=msg.key(),
                            headers=headers,
                            on_delivery=delivered,
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                sent += 1
            if sent and (producer.flush(30) or failures):
                # nothing committed: the role restarts (run_worker) and reads again from
                # the last committed offsets
                raise RuntimeError(f"intake: forwarding not confirmed ({'; '.join(failures[:3])})")
            _commit(consumer, messages, asynchronous=False)
    finally:
        consumer.close()
