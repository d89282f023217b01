"""Deployments that share one Redis keep apart (issue 12, item 8): every key and channel
is namespaced by the deployment's topic prefix and Postgres schema, on the real Redis of
deploy/local."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from datrix.streams.progress import (
    ProgressPublisher,
    ProgressSubscriber,
    RedisKeys,
    SummaryCache,
    TenantCounters,
)
from datrix.streams.settings import Settings

pytestmark = pytest.mark.integration


def deployment(services: dict[str, str], prefix: str, schema: str = "public") -> Settings:
    return Settings(
        redis_url=services["DATRIX_REDIS_URL"], topic_prefix=prefix, database_schema=schema
    )


@pytest.fixture
def pair(services: dict[str, str]) -> Iterator[tuple[Settings, Settings]]:
    tag = uuid.uuid4().hex[:8]
    yield deployment(services, f"a{tag}."), deployment(services, f"b{tag}.")
    raw = redis.Redis.from_url(services["DATRIX_REDIS_URL"])
    for name in (f"a{tag}.", f"b{tag}."):
        for key in raw.scan_iter(match=f"datrix:{name}:*"):
            raw.delete(key)


def test_counters_are_per_deployment(pair: tuple[Settings, Settings]) -> None:
    a, b = pair
    tenant = "acme"  # the same tenant name in both deployments
    TenantCounters(a).incr(tenant, "commands_submitted", 3)
    TenantCounters(b).incr(tenant, "commands_submitted", 5)
    TenantCounters(b).incr(tenant, "commands_submitted")
    assert TenantCounters(a).read(tenant) == {"commands_submitted": 3}
    assert TenantCounters(b).read(tenant) == {"commands_submitted": 6}


def test_schema_alone_separates_deployments(services: dict[str, str]) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}."
    a, b = deployment(services, prefix, "one"), deployment(services, prefix, "two")
    TenantCounters(a).incr("acme", "events_projected", 2)
    assert TenantCounters(b).read("acme") == {}
    assert TenantCounters(a).read("acme") == {"events_projected": 2}
    redis.Redis.from_url(services["DATRIX_REDIS_URL"]).delete(RedisKeys.of(a).counters("acme"))


def test_summary_cache_is_per_deployment(pair: tuple[Settings, Settings]) -> None:
    a, b = pair
    scan = str(uuid.uuid4())
    SummaryCache(a).put("acme", scan, {"rows": 1})
    assert SummaryCache(b).get("acme", scan) is None
    SummaryCache(b).put("acme", scan, {"rows": 2})
    assert SummaryCache(a).get("acme", scan) == {"rows": 1}
    assert SummaryCache(b).get("acme", scan) == {"rows": 2}


def test_progress_reaches_only_its_own_deployment(
    pair: tuple[Settings, Settings], services: dict[str, str]
) -> None:
    a, b = pair
    scan = str(uuid.uuid4())
    # kept: a client that is garbage-collected closes its connections
    subscribers = ProgressSubscriber(a), ProgressSubscriber(b)
    heard_a, heard_b = (sub.listen("acme", scan) for sub in subscribers)
    assert heard_a is not None and heard_b is not None
    raw = redis.Redis.from_url(services["DATRIX_REDIS_URL"])
    channels = [RedisKeys.of(s).progress_channel("acme", scan) for s in (a, b)]
    deadline = time.monotonic() + 10
    while any(n < 1 for _, n in raw.pubsub_numsub(*channels)):  # both subscribed
        assert time.monotonic() < deadline, "the subscriptions never reached Redis"
        time.sleep(0.01)
    # b first: were the channels shared, a would hear b's update before its own
    ProgressPublisher(b).for_scan("acme", scan)("rows", 7, 7)  # done == total: not throttled
    ProgressPublisher(a).for_scan("acme", scan)("rows", 4, 4)

    def first_update(updates: Iterator[tuple[str, int, int]]) -> tuple[str, int, int]:
        for _ in range(200):  # polls of 50 ms: 10 s at most
            update = next(updates)
            if update[1] >= 0:
                return update
        raise AssertionError("no progress update arrived")

    assert first_update(heard_a) == ("rows", 4, 4)
    assert first_update(heard_b) == ("rows", 7, 7)


def test_keys_live_under_the_deployment_namespace(
    pair: tuple[Settings, Settings], services: dict[str, str]
) -> None:
    a, _ = pair
    TenantCounters(a).incr("acme", "commands_submitted")
    raw = redis.Redis.from_url(services["DATRIX_REDIS_URL"])
    found = {k.decode() for k in raw.scan_iter(match=f"datrix:{a.topic_prefix}:*")}
    assert found == {f"datrix:{a.topic_prefix}:public:acme:counters"}
    assert RedisKeys.of(a).counters("acme") in found
