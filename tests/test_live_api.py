"""Live channels through real ``streamlimit serve`` processes: renewals, each kind of end,
keepalives, capacity, and a closed channel's lease ending within a lease TTL; on memory:// and
on a real Valkey (kicks through pub/sub)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from streamlimit.live.fds import SPARE, raise_fd_limit
from tests.servers import RedisServer, Service
from tests.sse import Channel, open_channel

FAST = {"lease_ttl_s": 1.0, "heartbeat_interval_s": 0.2, "live_keepalive_s": 0.3, "start_rate_per_min": 0}


@pytest.fixture(params=["memory", "valkey"])
def client(
    request: pytest.FixtureRequest, service_factory: Callable[..., Service], redis_server: RedisServer
) -> Iterator[httpx.Client]:
    if request.param == "valkey":
        redis_server.command("FLUSHALL")
    url = "memory://" if request.param == "memory" else redis_server.url
    svc = service_factory(url, **FAST)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        yield c


def start(c: httpx.Client, user: str, stream: str, **params: str) -> httpx.Response:
    r = c.post(f"/v1/users/{user}/streams", json={"stream_id": stream}, params=params)
    assert r.status_code in (200, 201), r.text
    return r


def test_a_channel_renews_its_lease_and_keeps_the_connection_alive(client: httpx.Client) -> None:
    start(client, "alice", "tv")
    with open_channel(client, "alice", "tv") as ch:
        first = ch.frame()
        assert first.retry_ms == 2000
        opened = ch.event()
        assert (opened.event, opened.data["stream_id"], opened.data["degraded"]) == ("renewed", "tv", False)
        expiries, comments = [opened.data["expires_at"]], 0
        while len(expiries) < 4:  # lease 1 s, renewed every 0.2 s: 4 renewals in well under a TTL
            f = ch.frame()
            if f.comment is not None:
                comments += 1
            elif f.event == "renewed":
                expiries.append(f.data["expires_at"])
        assert expiries == sorted(expiries)
        assert len(set(expiries)) == 4
        assert client.get("/v1/users/alice/streams/tv").status_code == 200  # still active, no heartbeat


@pytest.mark.parametrize(
    ("end", "event", "code"),
    [
        ("evict", "evicted", "stream_evicted"),
        ("replace_device", "evicted", "stream_replaced"),
        ("stop", "stopped", "stream_stopped"),
        ("stop_all", "stopped", "stream_stopped"),
    ],
)
def test_an_ended_stream_is_told_at_once_and_its_channel_closes(
    client: httpx.Client, end: str, event: str, code: str
) -> None:
    body = {"stream_id": "tv", "device_id": "tv-1"}
    assert client.post("/v1/users/bob/streams", json=body).status_code == 201
    with open_channel(client, "bob", "tv") as ch:
        assert ch.event().event == "renewed"
        if end == "evict":
            start(client, "bob", "phone", replace="tv")
        elif end == "replace_device":
            r = client.post("/v1/users/bob/streams", json={"stream_id": "tv2", "device_id": "tv-1"})
            assert r.status_code == 201
        elif end == "stop":
            assert client.delete("/v1/users/bob/streams/tv").status_code == 204
        else:
            assert client.delete("/v1/users/bob/streams").status_code == 200
        f = ch.event()
        while f.event == "renewed":
            f = ch.event()
        assert (f.event, f.data["code"], f.data["stream_id"]) == (event, code, "tv")
        heartbeat = client.post("/v1/users/bob/streams/tv/heartbeat")
        assert heartbeat.status_code == f.data["status"] == 410
        problem = heartbeat.json()
        assert {k: v for k, v in f.data.items() if k != "instance"} == {
            k: v for k, v in problem.items() if k != "instance"
        }
        assert f.data["instance"] == "/v1/users/bob/streams/tv/live"
        assert ch.closed()


def test_opening_a_channel_answers_as_a_heartbeat(client: httpx.Client) -> None:
    start(client, "carol", "tv")
    assert client.delete("/v1/users/carol/streams/tv").status_code == 204
    r = client.get("/v1/users/carol/streams/tv/live")
    assert (r.status_code, r.json()["code"]) == (410, "stream_stopped")
    r = client.get("/v1/users/carol/streams/b%7Bad/live")
    assert (r.status_code, r.headers["content-type"]) == (422, "application/problem+json")
    assert r.json()["code"] == "invalid_id"
    assert client.post("/v1/users/carol/streams/tv/live").status_code == 405


def test_a_closed_channel_stops_renewing_and_the_lease_ends_within_a_ttl(client: httpx.Client) -> None:
    start(client, "dave", "tv")
    with open_channel(client, "dave", "tv") as ch:
        assert ch.event().event == "renewed"
        for _ in range(3):
            last = ch.event()
    closed_at = time.monotonic()
    assert last.event == "renewed"
    deadline = closed_at + 1.0 + 0.5  # one lease TTL (1 s), and a margin for the call itself
    while client.get("/v1/users/dave/streams/tv").status_code == 200:
        assert time.monotonic() < deadline, "the lease outlived its channel by more than a TTL"
        time.sleep(0.05)
    # within the lease, a reconnection resumes the same lease
    start(client, "dave", "tv2")
    with open_channel(client, "dave", "tv2") as ch:
        epoch = ch.event().data["epoch"]
    with open_channel(client, "dave", "tv2") as ch:
        again = ch.event()
        assert (again.event, again.data["epoch"], again.data["readmitted"]) == ("renewed", epoch, False)


def test_a_worker_holds_at_most_its_channels(
    service_factory: Callable[..., Service],
) -> None:
    svc = service_factory("memory://", live_max_channels=1, **FAST)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        start(c, "erin", "a")
        start(c, "erin", "b")
        with open_channel(c, "erin", "a") as ch:
            assert ch.event().event == "renewed"
            r = c.get("/v1/users/erin/streams/b/live")
            assert (r.status_code, r.json()["code"], r.headers["retry-after"]) == (
                503,
                "too_many_channels",
                "5",
            )
        deadline = time.monotonic() + 2  # the first channel's slot is free once its response ended
        while True:
            with c.stream("GET", "/v1/users/erin/streams/b/live") as r:
                if r.status_code == 200:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_the_file_descriptor_limit_is_raised_for_the_channels() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        wanted = min(5000, hard - SPARE)
        assert raise_fd_limit(wanted) >= wanted
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted + SPARE
        assert raise_fd_limit(hard) == hard - SPARE  # more than the hard limit: as many as fit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_live_view_of_a_user_shows_each_start_and_end(client: httpx.Client) -> None:
    with client.stream("GET", "/v1/users/frank/live") as r:
        assert r.status_code == 200
        view = Channel(r)
        first = view.event()
        assert (first.event, first.data["streams"], first.data["active"]) == ("streams", [], 0)
        start(client, "frank", "tv")
        shown = view.event()
        assert [s["stream_id"] for s in shown.data["streams"]] == ["tv"]
        assert shown.data == client.get("/v1/users/frank/streams").json()
        start(client, "frank", "phone", replace="tv")  # an eviction and an admission: one list or two
        ids: list[str] = []
        while ids != ["phone"]:
            ids = [s["stream_id"] for s in view.event().data["streams"]]
        assert client.delete("/v1/users/frank/streams").status_code == 200
        while (shown := view.event()).data["streams"]:
            pass
        assert shown.data["active"] == 0
