"""The ``dispatcher`` role: job events (``JobRequested``: the event types of the registry's
job kinds) -> ``datrix.jobs``."""

from __future__ import annotations

from datrix.runtime.worker.common import WorkerContext, _commit, _consume, log
from datrix.streams.kafka import producer_config


def run_dispatcher(ctx: WorkerContext) -> None:
    from confluent_kafka import Producer

    producer = Producer(producer_config(ctx.settings))
    consumer = ctx.consumer("dispatcher")
    consumer.subscribe([ctx.topics.events])
    job_types = {name.encode() for name in ctx.registry.job_event_types}
    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 500)
            jobs = 0
            for msg in messages:
                if msg.error():
                    continue
                headers = dict(msg.headers() or [])
                if headers.get("ce_type") in job_types:
                    producer.produce(
                        ctx.topics.jobs, value=msg.value(), key=msg.key(), headers=msg.headers()
                    )
                    jobs += 1
            if jobs and producer.flush(30):
                log.warning("dispatcher: jobs not confirmed; will redeliver")
                continue
            _commit(consumer, messages, asynchronous=False)
    finally:
        consumer.close()
