"""The delivery loop against a real Valkey and a real HTTP receiver: retries until 2xx, signed,
each copy with the same id; with several URLs a retry goes only where it failed; timeouts,
refused connections and error statuses count as failures; old or unusable events are given up;
stopping leaves unfinished attempts pending for another instance."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis

from streamlimit.metrics import Metrics
from streamlimit.settings import Settings
from streamlimit.store.keys import HOOKS
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore
from streamlimit.webhooks.delivery import Delivery
from streamlimit.webhooks.setup import start_delivery
from tests.servers import RedisServer, free_port
from tests.test_acl import documented_acl
from tests.webhook_receiver import SECRET, Receiver, event, running, xadd

FAST = {  # short times: an attempt 0.3 s at most, retried after 0.4-0.8 s
    "webhook_timeout_s": 0.3,
    "webhook_retry_base_s": 0.4,
    "webhook_retry_max_s": 0.8,
    "webhook_poll_interval_s": 0.02,
    "webhook_secret": SECRET,
}


def settings(*urls: str, **more: Any) -> Settings:
    return Settings(webhook_url=",".join(urls), **{**FAST, **more})


@asynccontextmanager
async def delivering(url: str, s: Settings, metrics: Metrics | None = None) -> AsyncIterator[Delivery]:
    store = RedisStore(PipelinedClient.from_url(url, 2.0), hooks_max_len=s.webhook_queue_max_len)
    delivery = start_delivery(s, store, metrics)
    assert delivery is not None
    try:
        yield delivery
    finally:
        await delivery.stop(grace_s=0)
        await store.close()


async def until(check: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.02)


def queue(url: str, n: int, action: str = "limit_set") -> list[str]:
    """``n`` events of users u0..u(n-1), queued as the scripts queue them; their entry ids."""
    with redis.Redis.from_url(url, decode_responses=True) as r:
        now = int(time.time() * 1000)
        return [xadd(r.execute_command, HOOKS, f"u{i}", event(now, action, value=str(i))) for i in range(n)]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_every_event_arrives_signed_after_failures_and_each_copy_has_the_same_id(redis_url: str) -> None:
    receiver = Receiver(answer=lambda n, path: 500 if n < 4 else 204)
    metrics = Metrics()
    entries = queue(redis_url, 10)

    async def main() -> None:
        async with delivering(redis_url, settings(receiver.url), metrics):
            await until(lambda: len({a.id for a in receiver.delivered()}) == 10, "all 10 delivered")
            await until(lambda: sample(metrics, "streamlimit_webhook_queue_depth") == 0, "an empty queue")

    with running(receiver):
        asyncio.run(main())
    attempts = receiver.all()
    assert {a.id for a in receiver.delivered()} == {f"evt_{e}" for e in entries}
    bodies: dict[str, bytes] = {}
    for a in attempts:
        body = a.verified()
        assert body["id"] == a.id
        assert bodies.setdefault(a.id, a.body) == a.body  # a retry is the same event, byte for byte
    assert {a.verified()["user_id"] for a in attempts} == {f"u{i}" for i in range(10)}
    assert len(attempts) == 14
    assert sample(metrics, "streamlimit_webhook_sent_total") == 10
    assert sample(metrics, "streamlimit_webhook_failed_total", reason="status") == 4
    assert sample(metrics, "streamlimit_webhook_given_up_total") == 0
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen(HOOKS) == 0
        assert r.xpending(HOOKS, "streamlimit")["pending"] == 0


def test_with_two_urls_a_retry_goes_only_where_it_failed(redis_url: str) -> None:
    failures = {"/b": 3}

    def answer(n: int, path: str) -> int:
        if failures.get(path, 0) > 0:
            failures[path] -= 1
            return 503
        return 200

    receiver = Receiver(answer=answer)
    queue(redis_url, 2)

    async def main() -> None:
        async with delivering(redis_url, settings(receiver.url + "/a", receiver.url + "/b")):
            await until(lambda: len(receiver.delivered("/b")) == 2, "both events at /b")

    with running(receiver):
        asyncio.run(main())
    assert sorted(a.id for a in receiver.all() if a.path == "/a") == sorted(
        a.id for a in receiver.delivered("/b")
    )
    assert len([a for a in receiver.all() if a.path == "/a"]) == 2  # once each: /a had them
    assert len([a for a in receiver.all() if a.path == "/b"]) == 5


def test_timeouts_refused_connections_and_statuses_are_failures_retried(redis_url: str) -> None:
    slow = Receiver(delay_s=0.5)  # past the 0.3 s limit
    closed = f"http://127.0.0.1:{free_port()}/hook"
    metrics = Metrics()
    queue(redis_url, 1)

    async def main() -> None:
        async with delivering(redis_url, settings(slow.url, closed), metrics):
            await until(
                lambda: (
                    sample(metrics, "streamlimit_webhook_failed_total", reason="timeout") >= 2
                    and sample(metrics, "streamlimit_webhook_failed_total", reason="connection") >= 2
                ),
                "two attempts of each",
            )

    with running(slow):
        asyncio.run(main())
    assert sample(metrics, "streamlimit_webhook_sent_total") == 0
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen(HOOKS) == 1  # still queued, pending


def test_events_too_old_or_unusable_are_given_up(redis_url: str) -> None:
    receiver = Receiver()
    metrics = Metrics()
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        old = int(time.time() * 1000) - 3_600_000
        r.execute_command("XADD", HOOKS, f"{old}-0", "u", "old", "e", json.dumps(event(old, "plan_cleared")))
        r.execute_command("XADD", HOOKS, "*", "u", "bad", "e", "{not json")
        fresh = xadd(r.execute_command, HOOKS, "fresh", event(old, "plan_cleared"))

    async def main() -> None:
        async with delivering(redis_url, settings(receiver.url, webhook_max_age_s=1800), metrics):
            await until(lambda: sample(metrics, "streamlimit_webhook_given_up_total") == 2, "two given up")
            await until(lambda: receiver.delivered(), "the fresh one delivered")

    with running(receiver):
        asyncio.run(main())
    assert [a.id for a in receiver.all()] == [f"evt_{fresh}"]
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen(HOOKS) == 0


def test_stopping_leaves_unfinished_attempts_pending_for_another_instance(redis_url: str) -> None:
    receiver = Receiver(delay_s=0.2)
    entries = queue(redis_url, 3)
    s = settings(receiver.url)

    async def main() -> None:
        async with delivering(redis_url, s) as first:
            await until(lambda: first._inflight, "attempts in flight")
            await first.stop(grace_s=0)  # cancelled mid-attempt: nothing acknowledged
            with redis.Redis.from_url(redis_url) as r:
                assert r.xpending(HOOKS, "streamlimit")["pending"] == 3
            async with delivering(redis_url, s):
                await until(lambda: len({a.id for a in receiver.delivered()}) == 3, "all 3 by the second")

    with running(receiver):
        asyncio.run(main())
    assert {a.id for a in receiver.delivered()} == {f"evt_{e}" for e in entries}


def test_a_store_that_lost_its_queue_and_group_gets_them_again(redis_url: str) -> None:
    receiver = Receiver()
    queue(redis_url, 1)

    async def main() -> None:
        async with delivering(redis_url, settings(receiver.url)):
            await until(lambda: len(receiver.delivered()) == 1, "the first")
            with redis.Redis.from_url(redis_url) as r:
                r.flushall()  # a store restarted without persistence
            queue(redis_url, 1)
            await until(lambda: len(receiver.delivered()) == 2, "the one queued after")

    with running(receiver):
        asyncio.run(main())


def test_the_delivery_loop_runs_under_the_documented_acl(redis_server: RedisServer, redis_url: str) -> None:
    receiver = Receiver(answer=lambda n, path: 500 if n < 1 else 204)  # a retry too: XPENDING, XCLAIM
    with redis.Redis.from_url(redis_url) as r:
        r.execute_command(*documented_acl().split())
    login = f"redis://streamlimit:CHANGE-ME@127.0.0.1:{redis_server.port}/0"
    queue(redis_url, 2)

    async def main() -> None:
        async with delivering(login, settings(receiver.url)):
            await until(lambda: len({a.id for a in receiver.delivered()}) == 2, "both, as the ACL user")

    with running(receiver):
        asyncio.run(main())
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen(HOOKS) == 0
        r.execute_command("ACL", "DELUSER", "streamlimit")
