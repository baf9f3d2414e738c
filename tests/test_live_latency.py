"""The issue's bound: an eviction made through one service process reaches the live channel held
by another within 250 ms at the 99th percentile (through the store's pub/sub), on this machine."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import httpx

from tests.servers import Service
from tests.sse import open_channel

SAMPLES = 100
P99_BOUND_S = 0.250


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def test_kick_to_event_p99_across_two_processes(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    evicting = service_factory(redis_url, start_rate_per_min=0)
    holding = service_factory(redis_url, start_rate_per_min=0)
    samples = []
    with (
        httpx.Client(base_url=evicting.url, timeout=5) as a,
        httpx.Client(base_url=holding.url, timeout=5) as b,
    ):
        for i in range(SAMPLES):
            user = f"viewer-{i}"
            assert a.post(f"/v1/users/{user}/streams", json={"stream_id": "tv"}).status_code == 201
            with open_channel(b, user, "tv") as ch:
                assert ch.event().event == "renewed"
                sent = time.monotonic()
                r = a.post(f"/v1/users/{user}/streams", json={"stream_id": "phone"}, params={"replace": "tv"})
                assert r.status_code == 201
                told = ch.event()
                assert (told.event, told.data["replaced_by"]) == ("evicted", "phone")
                samples.append(told.at - sent)
    ms = sorted(round(s * 1000, 1) for s in samples)
    p50, worst = ms[SAMPLES // 2], ms[-1]
    print(f"kick-to-event over {SAMPLES}: p50 {p50} ms, p99 {p99(samples) * 1000:.1f} ms, max {worst} ms")
    assert p99(samples) <= P99_BOUND_S, ms
