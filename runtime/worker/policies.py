"""The ``policies`` role: the registry's policies react to ``datrix.events``; their commands
go to ``datrix.commands`` with their routing key.

At-least-once: a batch's offsets are committed only after its commands are confirmed, so
a crash redelivers events, and the policies issue the same commands with the same ids
(``policy_command_id``); the processor's command-id uniqueness (the outcome stream) drops
the copies. With no policy registered the role has nothing to follow and waits.
"""

from __future__ import annotations

from datrix.runtime.worker.common import WorkerContext, _commit, _consume, _dead_letter, _retrying
from datrix.streams.dead_letters import DeadLetters
from datrix.streams.kafka import KafkaCommandLog, from_message
from datrix.streams.registry import react


def run_policies(ctx: WorkerContext) -> None:
    registry = ctx.registry
    if not registry.policies:
        ctx.stop.wait()
        return
    followed = {name.encode() for name in registry.followed_types}
    commands = KafkaCommandLog(ctx.settings, ctx.topics)
    consumer = ctx.consumer("policies")
    dead = DeadLetters(ctx.settings, "policies")
    consumer.subscribe([ctx.topics.events])
    try:
        while not ctx.stop.is_set():
            messages = _consume(consumer, 500)
            issued = 0
            for msg in messages:
                if msg.error():
                    continue
                if dict(msg.headers() or []).get("ce_type") not in followed:
                    continue
                try:
                    env, _ = from_message(msg.headers(), msg.value())
                    reactions = react(registry, env)
                except Exception as exc:  # a broken record or a policy that raises
                    error = f"{type(exc).__name__}: {exc}"
                    _dead_letter(ctx, dead, msg, error)
                    continue
                for command, key in reactions:
                    commands.append(command, key=key)
                    issued += 1
            if issued:
                _retrying(ctx, "sending policy commands", commands.flush)
            _commit(consumer, messages, asynchronous=False)
    finally:
        consumer.close()
