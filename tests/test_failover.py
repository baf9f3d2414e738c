"""Failovers under load: a cluster primary, then a Sentinel-managed primary, killed (SIGKILL)
while two services serve the history-checked storm. The service must keep answering (degraded,
per the default ``allow`` policy, while no primary owns the user; 503 store_unavailable for
what cannot be degraded, such as limit changes), never with another 5xx, serve
normally again once the replica is promoted, and the checker must find no violation.

The killed server is restarted once its replica took over, as an operator would, and rejoins
as a replica. Times are printed (run with ``-s``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.servers import RedisServer, Service
from tests.storm.driver import SERVICE_SETTINGS, Plan
from tests.storm.soak import storm, summary
from tests.topologies import Cluster, SentinelGroup, until

CLIENTS, USERS, SECONDS, KILL_AT_S = 200, 60, 14.0, 4.0
SERVING_AGAIN_S = 12.0  # bound: kill -> normal answers for the victim's users


def _admitted_normally(client: httpx.Client, url: str) -> bool:
    """A start for a fresh user is admitted for real (not degraded). One client for every probe:
    httpx.post alone builds a TLS context each call (~40 ms of CPU, 20 probes a check)."""
    try:
        r = client.post(f"{url}/v1/users/probe-{uuid.uuid4().hex[:8]}/streams", json={})
    except httpx.HTTPError:
        return False
    assert r.status_code < 500, r.text
    return r.status_code == 201 and r.json()["degraded"] is False


@contextmanager
def kill_during_storm(
    victim: Callable[[], RedisServer], healed: Callable[[], bool], probe: Callable[[], bool]
) -> Iterator[dict[str, float]]:
    """After KILL_AT_S, SIGKILL ``victim()``; time until ``healed()`` and until probes pass;
    then restart the victim so the topology has a replica again."""
    times: dict[str, float] = {}

    def run() -> None:
        time.sleep(KILL_AT_S)
        server = victim()
        server.kill()
        t0 = time.monotonic()
        times["promoted_s"] = until(healed, "a promoted replica")
        until(lambda: all(probe() for _ in range(20)), "normal answers again")
        times["serving_s"] = time.monotonic() - t0
        server.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield times
    thread.join(60)


def _run(urls: list[str], victim: Callable[[], RedisServer], healed: Callable[[], bool]) -> None:
    with (
        httpx.Client(timeout=2) as client,
        kill_during_storm(victim, healed, lambda: all(_admitted_normally(client, u) for u in urls)) as times,
    ):
        history, report = storm(urls, Plan(seconds=SECONDS, clients=CLIENTS, users=USERS))
    table = summary(history, report, len(urls), CLIENTS, USERS)
    print(table, f"\nfailover: {times}")
    # while no primary serves a user: degraded 200s (policy allow), and 503 store_unavailable
    # for what cannot be degraded (limit changes, listings); never another 5xx
    statuses = {status for _, status in report.ops}
    assert not {s for s in statuses if s.startswith("5")} - {"503"}, table
    assert all("store_unavailable" in v.detail for v in report.violations if v.kind == "server_error"), table
    assert [v for v in report.violations if v.kind != "server_error"] == [], table
    assert report.degraded > 0, f"the kill was not felt: {table}"
    assert 0 < times["serving_s"] <= SERVING_AGAIN_S, times


def test_cluster_primary_killed_under_load(
    tmp_path_factory: pytest.TempPathFactory, service_factory: Callable[..., Service]
) -> None:
    cluster = Cluster(tmp_path_factory.mktemp("failover-cluster")).start()
    try:
        urls = [service_factory(cluster.url, **SERVICE_SETTINGS).url for _ in range(2)]
        _run(urls, lambda: cluster.primaries()[0], cluster.serving)
    finally:
        cluster.stop()


def test_sentinel_primary_killed_under_load(
    tmp_path_factory: pytest.TempPathFactory, service_factory: Callable[..., Service]
) -> None:
    group = SentinelGroup(tmp_path_factory.mktemp("failover-sentinel")).start()
    try:
        old = group.current_primary()
        urls = [service_factory(group.url, **SERVICE_SETTINGS).url for _ in range(2)]
        _run(urls, lambda: old, lambda: group.current_primary() is not old)
    finally:
        group.stop()
