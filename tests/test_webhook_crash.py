"""Webhooks end to end, with real service processes on a real Valkey and a real receiver: an
instance killed (SIGKILL) in the middle of delivering loses no event, every copy is signed and
carries its event's id; and (once the scripts queue events) the API's actions arrive as their
webhook types."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from streamlimit.store.keys import HOOKS
from tests.servers import Service
from tests.webhook_receiver import SECRET, Receiver, event, running, until, xadd

# the producer side: lua/_prelude.lua's notify, which queues each event in the script that records it
FAST = {
    "webhook_secret": SECRET,
    "webhook_timeout_s": 0.5,
    "webhook_retry_base_s": 0.6,
    "webhook_retry_max_s": 1.2,
    "webhook_poll_interval_s": 0.05,
    "webhook_concurrency": 4,
}
EVENTS = 40


def metrics(svc: Service) -> str:
    return httpx.get(f"{svc.url}/metrics", timeout=5).text


def test_an_instance_killed_mid_delivery_loses_no_event(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    # the first attempts fail; then each answer takes 30 ms, so the kill finds attempts in flight
    receiver = Receiver(answer=lambda n, path: 500 if n < 5 else 204, delay_s=0.03)
    with running(receiver), redis.Redis.from_url(redis_url, decode_responses=True) as r:
        first = service_factory(redis_url, webhook_url=receiver.url, **FAST)
        now = int(time.time() * 1000)
        ids = [
            xadd(r.execute_command, HOOKS, f"u{i}", event(now, "limit_set", value="2")) for i in range(EVENTS)
        ]
        until(lambda: len({a.id for a in receiver.delivered()}) >= 10, "10 delivered by the first instance")
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(5)
        delivered_by_first = {a.id for a in receiver.delivered()}
        assert len(delivered_by_first) < EVENTS, "killed too late: the first instance delivered everything"
        assert r.xpending(HOOKS, "streamlimit")["pending"] > 0, "killed with nothing in flight"
        second = service_factory(redis_url, webhook_url=receiver.url, workers=2, **FAST)  # 2 consumers
        until(lambda: len({a.id for a in receiver.delivered()}) == EVENTS, "every event delivered", 20)
        until(lambda: r.xlen(HOOKS) == 0, "an empty queue")
        until(lambda: "streamlimit_webhook_queue_depth 0.0" in metrics(second), "the depth gauge at 0")
        sent = re.search(r"^streamlimit_webhook_sent_total (\S+)$", metrics(second), re.M)
        assert sent is not None
        assert float(sent[1]) >= EVENTS - len(delivered_by_first)
    attempts = receiver.all()
    assert {a.id for a in receiver.delivered()} == {f"evt_{i}" for i in ids}
    copies: dict[str, bytes] = {}
    for a in attempts:
        assert a.verified()["id"] == a.id  # every copy signed, and named by its event's id
        assert copies.setdefault(a.id, a.body) == a.body  # a copy is the same event
    failed = [a for a in attempts if a.status >= 300]
    assert len(failed) == 5
    assert len(attempts) > EVENTS  # the failed ones, and those in flight at the kill, came again


@pytest.mark.parametrize("store", ["redis", "memory"])
def test_the_apis_actions_arrive_as_webhooks(
    store: str, redis_url: str, service_factory: Callable[..., Service]
) -> None:
    receiver = Receiver()
    url = redis_url if store == "redis" else "memory://"
    with running(receiver):
        svc = service_factory(url, webhook_url=receiver.url, plans="premium=4", **FAST)
        with httpx.Client(base_url=svc.url, timeout=5) as c:
            assert c.put("/v1/users/alice/limit", json={"limit": 1}).status_code == 200
            assert c.post("/v1/users/alice/streams", json={"stream_id": "tv"}).status_code == 201
            for _ in range(2):  # the second refusal within a minute sends nothing
                assert c.post("/v1/users/alice/streams", json={"stream_id": "tablet"}).status_code == 409
            evict = c.post("/v1/users/alice/streams?on_limit=evict_oldest", json={"stream_id": "tablet"})
            assert evict.status_code == 201
            assert c.put("/v1/users/alice/plan", json={"plan": "premium"}).status_code == 200
            assert c.delete("/v1/users/alice/plan").status_code == 200
            assert c.delete("/v1/users/alice/limit").status_code == 200
            assert c.delete("/v1/users/alice/streams").status_code == 200
        until(lambda: len(receiver.delivered()) == 7, "7 webhooks")
    got = [a.verified() for a in receiver.delivered()]
    by_type: dict[str, list[dict[str, object]]] = {}
    for body in sorted(got, key=lambda b: (b["time"], b["id"])):
        assert body["user_id"] == "alice"
        assert isinstance(body["actor"], dict)
        by_type.setdefault(body["type"], []).append(
            {k: v for k, v in body.items() if k not in ("id", "time", "user_id", "actor", "type")}
        )
    assert by_type == {
        "limit.changed": [{"limit": 1}, {"limit": None}],
        "limit.reached": [{"stream_id": "tablet", "limit": 1, "active": 1}],
        "stream.evicted": [{"stream_id": "tv", "replaced_by": "tablet"}],
        "plan.changed": [{"plan": "premium"}, {"plan": None}],
        "streams.stopped_all": [{"stream_ids": ["tablet"]}],
    }
    assert len({b["id"] for b in got}) == 7
