"""Metrics, request ids, access logs and readiness, seen from outside (real service processes)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from streamlimit.api.app import create_app
from streamlimit.api.observe import outcome
from streamlimit.models import Limits, Start
from streamlimit.settings import Settings
from streamlimit.store.connect import open_store
from streamlimit.store.memory import MemoryStore
from tests.servers import Service, free_port

Factory = Callable[..., Service]


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}(\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)", line)
        if m:
            found[m["labels"] or ""] = float(m["value"])
    return found


def test_outcomes_name_what_happened() -> None:
    assert outcome("start", 201, False) == "admitted"
    assert outcome("start", 200, False) == "renewed"
    assert outcome("start", 409, False) == "limit_reached"
    assert outcome("start", 429, False) == "too_many_starts"
    assert outcome("start", 200, True) == "degraded"
    assert outcome("compat_add", 200, False) == "admitted"
    assert outcome("compat_add", 403, False) == "limit_reached"
    assert outcome("compat_add", 429, False) == "too_many_starts"
    assert outcome("heartbeat", 200, False) == "renewed"
    assert outcome("heartbeat", 404, False) == "not_active"
    assert outcome("heartbeat", 410, False) == "ended"  # the eviction counted at its start
    assert outcome("heartbeat", 503, False) == "store_error"
    assert outcome("list", 200, False) == "ok"
    assert outcome("list", 422, False) == "rejected"


def test_evictions_and_both_refusals_are_counted_at_the_start() -> None:
    app = create_app(Settings(store_url="memory://", default_limit=1, start_rate_per_min=2))

    async def main() -> str:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                assert (await c.post("/v1/users/u/streams", json={"stream_id": "a"})).status_code == 201
                assert (await c.post("/v1/users/u/streams", json={"stream_id": "b"})).status_code == 409
                took = await c.post("/v1/users/u/streams?on_limit=evict_oldest", json={"stream_id": "b"})
                assert (took.status_code, took.json()["evicted"]["stream_id"]) == (201, "a")
                assert (await c.post("/v1/users/u/streams/a/heartbeat")).status_code == 410
                again = await c.post("/v1/users/u/streams?on_limit=evict_oldest", json={"stream_id": "c"})
                assert again.status_code == 429  # the third admission in a minute
                assert (await c.get("/v1/users/u/streams/b")).status_code == 200
                return (await c.get("/metrics")).text

    text = asyncio.run(main())
    assert samples(text, "streamlimit_requests_total") == {
        'outcome="admitted",route="start"': 1,
        'outcome="limit_reached",route="start"': 1,
        'outcome="evicted",route="start"': 1,
        'outcome="ended",route="heartbeat"': 1,
        'outcome="too_many_starts",route="start"': 1,
        'outcome="ok",route="get_stream"': 1,  # the route's own label, from the route table
    }
    assert "_created" not in text
    assert samples(text, "streamlimit_store_errors_total") == {
        'kind="timeout"': 0,
        'kind="connection"': 0,
        'kind="refused"': 0,
    }
    assert samples(text, "process_resident_memory_bytes")[""] > 0
    assert samples(text, "process_open_fds")[""] > 0


@pytest.mark.slow  # two worker processes
def test_two_workers_report_one_set_of_metrics(redis_url: str, service_factory: Factory) -> None:
    svc = service_factory(redis_url, workers=2, default_limit=1, start_rate_per_min=0)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        for i in range(20):  # new connections: the kernel spreads them over both workers
            with httpx.Client(base_url=svc.url, timeout=5) as one:
                assert one.post(f"/v1/users/obs-{i}/streams", json={"stream_id": "a"}).status_code == 201
        assert c.post("/v1/users/obs-0/streams", json={"stream_id": "b"}).status_code == 409
        assert c.post("/v1/users/obs-0/streams/zz/heartbeat").status_code == 404
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    requests = samples(r.text, "streamlimit_requests_total")
    assert requests['outcome="admitted",route="start"'] == 20
    assert requests['outcome="limit_reached",route="start"'] == 1
    assert requests['outcome="not_active",route="heartbeat"'] == 1
    store = samples(r.text, "streamlimit_store_call_duration_seconds_count")
    assert store['script="start"'] == 21
    assert samples(r.text, "streamlimit_build_info") == {'version="0.1.0"': 1.0}
    latency = samples(r.text, "streamlimit_request_duration_seconds_count")
    assert latency['route="start"'] == 21
    # each worker's own process metrics, told apart by pid; none of the parent's
    workers = set(samples(r.text, "process_cpu_seconds_total"))
    assert len(workers) == 2, workers
    assert all(re.fullmatch(r'pid="\d+"', w) for w in workers), workers
    assert len(samples(r.text, "process_resident_memory_bytes")) == 2
    assert set(samples(r.text, "streamlimit_store_errors_total").values()) == {0}
    assert "_created" not in r.text


def test_store_errors_are_counted_by_kind(service_factory: Factory) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    svc = service_factory(down, on_store_error="deny", store_timeout_ms=100, store_startup_wait_s=0)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        assert c.post("/v1/users/u/streams").status_code == 503
        text = c.get("/metrics").text
    assert samples(text, "streamlimit_store_errors_total").get('kind="connection"', 0) >= 1
    assert samples(text, "streamlimit_requests_total")['outcome="store_error",route="start"'] == 1


def test_request_ids_are_echoed_or_made(redis_url: str, service_factory: Factory) -> None:
    svc = service_factory(redis_url)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        assert c.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
        made = c.get("/healthz").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        odd = c.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["x-request-id"]
        assert odd != "<script>"
        assert re.fullmatch(r"[0-9a-f]{32}", odd)


def _json_lines(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_access_log_is_one_json_line_per_request_only_when_on(
    redis_url: str, service_factory: Factory
) -> None:
    quiet = service_factory(redis_url, log_format="json")
    loud = service_factory(redis_url, log_format="json", access_log=True)
    for svc, user in ((quiet, "quiet"), (loud, "logged")):
        with httpx.Client(base_url=svc.url, timeout=5) as c:
            r = c.post(f"/v1/users/{user}/streams", json={"stream_id": "s"}, headers={"X-Request-ID": "r1"})
            assert r.status_code == 201
        svc.stop()  # the line is written after the answer is sent: read the log once it is whole
    assert not [e for e in _json_lines(quiet.log_path) if e.get("logger") == "streamlimit.access"]
    deadline = time.monotonic() + 5  # the line is written just after the answer is sent
    while True:
        access = [e for e in _json_lines(loud.log_path) if e.get("logger") == "streamlimit.access"]
        started = [e for e in access if e.get("route") == "start"]
        if started or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(started) == 1, access
    entry = started[0]
    assert (entry["request_id"], entry["user_id"], entry["status"], entry["outcome"]) == (
        "r1",
        "logged",
        201,
        "admitted",
    )
    assert entry["level"] == "info"
    assert isinstance(entry["latency_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(entry["ts"]))


def test_an_unexpected_error_is_a_500_problem_with_the_request_id_and_security_headers() -> None:
    """A bug (here: the store's ping raising something no handler knows) is still answered like
    every other response: problem+json, X-Request-ID, the security headers."""

    class BrokenStore(MemoryStore):
        async def ping(self) -> None:
            raise RuntimeError("a bug")

    app = create_app(Settings(store_url="memory://"), store=BrokenStore())

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                r = await c.get("/readyz", headers={"X-Request-ID": "bug-1"})
                assert (r.status_code, r.json()["code"]) == (500, "internal_error")
                assert r.headers["content-type"] == "application/problem+json"
                assert r.headers["x-request-id"] == "bug-1"
                assert r.headers["x-content-type-options"] == "nosniff"
                assert "a bug" not in r.text

    asyncio.run(main())


@pytest.mark.parametrize("ready_without_store", [False, True])
def test_readiness_is_503_while_draining(ready_without_store: bool) -> None:
    app = create_app(Settings(store_url="memory://", ready_without_store=ready_without_store))

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                assert (await c.get("/readyz")).status_code == 200
                app.state.draining = True  # what the SIGTERM handler sets
                r = await c.get("/readyz")
                assert (r.status_code, r.json()["code"]) == (503, "draining")

    asyncio.run(main())


@pytest.mark.parametrize("which", ["memory", "redis"])
def test_active_streams_are_estimated_from_the_store(which: str, request: pytest.FixtureRequest) -> None:
    url = "memory://" if which == "memory" else request.getfixturevalue("redis_url")

    async def main() -> int:
        store = await open_store(Settings(store_url=url))
        try:
            for i in range(150):
                for sid in ("a", "b"):
                    await store.start(f"est-{i}", sid, None, 60_000, Limits(3), Start())
            return await store.estimate_active()
        finally:
            await store.close()

    # a small store fits in one SCAN page: the estimate is exact
    assert asyncio.run(main()) == 300
