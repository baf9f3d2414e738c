"""Black-box tests of the v1 API on a real `streamlimit serve` process backed by a real valkey-server."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.servers import RedisServer, client_of_new_service

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LEASE_FIELDS = {"user_id", "stream_id", "device", "device_id", "started_at", "expires_at", "epoch", "legacy"}
START_FIELDS = LEASE_FIELDS | {
    "active",
    "limit",
    "limit_source",
    "plan",
    "epoch",
    "evicted",
    "evicted_streams",
    "replaced_streams",
    "counts",
    "heartbeat_interval_s",
    "lease_ttl_s",
    "degraded",
}
V1_PATHS = {
    "/v1/users/{user_id}/streams",
    "/v1/users/{user_id}/streams/{stream_id}",
    "/v1/users/{user_id}/streams/{stream_id}/heartbeat",
    "/v1/users/{user_id}/limit",
    "/v1/users/{user_id}/plan",
    "/v1/users/{user_id}/events",
}


def uid() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def ms(stamp: str) -> int:
    """An RFC 3339 UTC time with milliseconds -> epoch ms (asserting the format)."""
    assert TIME_RE.fullmatch(stamp), stamp
    return round(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() * 1000)


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert (body["status"], body["code"]) == (status, code)
    return body


def poll(check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout_s``."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout_s, f"condition not met within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - t0


def start(c: httpx.Client, user: str, stream: str | None = None, **extra: Any) -> httpx.Response:
    body = {} if stream is None else {"stream_id": stream}
    return c.post(f"/v1/users/{user}/streams", json=body | extra)


def listing(c: httpx.Client, user: str) -> dict[str, Any]:
    r = c.get(f"/v1/users/{user}/streams")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture(scope="module")
def client(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with client_of_new_service(redis_server.url, tmp_path_factory.mktemp("api-v1")) as c:
        yield c


@pytest.fixture(scope="module")
def fast(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A service with short leases, for expiry tests (heartbeats every 0.1 s: 0.9 s of slack
    for a stalled machine before a lease is lost)."""
    with client_of_new_service(
        redis_server.url,
        tmp_path_factory.mktemp("api-v1-fast"),
        lease_ttl_s=1.0,
        heartbeat_interval_s=0.1,
        legacy_lease_ttl_s=1.5,
    ) as c:
        yield c


def test_start_new_stream_is_201_with_location_and_lease(client: httpx.Client) -> None:
    user = uid()
    r = start(client, user, "tv-1", device="living room | TV \U0001f4fa")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == START_FIELDS
    assert body["user_id"] == user
    assert body["stream_id"] == "tv-1"
    assert body["device"] == "living room | TV \U0001f4fa"
    assert (body["active"], body["limit"], body["degraded"]) == (1, 3, False)
    assert (body["heartbeat_interval_s"], body["lease_ttl_s"]) == (30, 90)
    assert ms(body["expires_at"]) - ms(body["started_at"]) == 90_000
    assert abs(ms(body["started_at"]) - time.time() * 1000) < 5_000
    location = r.headers["location"]
    assert location.endswith(f"/v1/users/{user}/streams/tv-1")
    assert client.delete(location).status_code == 204
    assert listing(client, user)["active"] == 0


def test_start_without_stream_id_generates_a_uuid(client: httpx.Client) -> None:
    user = uid()
    empty = client.post(f"/v1/users/{user}/streams", content=b"")
    obj = client.post(f"/v1/users/{user}/streams", json={})
    nulls = client.post(f"/v1/users/{user}/streams", json={"stream_id": None, "device": None})
    ids = []
    for r, active in ((empty, 1), (obj, 2), (nulls, 3)):
        assert r.status_code == 201, r.text
        assert r.json()["active"] == active
        assert r.json()["device"] is None
        ids.append(r.json()["stream_id"])
        assert str(uuid.UUID(ids[-1])) == ids[-1]
    assert len(set(ids)) == 3
    assert {s["stream_id"] for s in listing(client, user)["streams"]} == set(ids)


def test_start_of_an_active_stream_renews_it(client: httpx.Client) -> None:
    user = uid()
    first = start(client, user, "s1", device="phone").json()
    time.sleep(0.01)
    r = start(client, user, "s1", device="phone")
    assert r.status_code == 200, r.text
    again = r.json()
    assert set(again) == START_FIELDS
    assert again["started_at"] == first["started_at"]
    assert ms(again["expires_at"]) > ms(first["expires_at"])
    second = start(client, user, "s2").json()
    assert second["epoch"] > first["epoch"]
    # a renewal answers the lease's own epoch, not the user's latest (the downstream fencing rule
    # refuses epochs below the limit-th highest: s1 must keep its own)
    assert again["epoch"] == first["epoch"]
    assert start(client, user, "s1").json()["epoch"] == first["epoch"]
    heartbeat = client.post(f"/v1/users/{user}/streams/s1/heartbeat").json()
    assert heartbeat["epoch"] == first["epoch"]
    assert (again["active"], again["stream_id"], again["degraded"]) == (1, "s1", False)
    assert listing(client, user)["active"] == 2  # s1 (renewed, counted once) and s2


def test_start_over_the_limit_is_409_with_the_active_streams(client: httpx.Client) -> None:
    user = uid()
    for sid in ("c", "b", "a"):
        assert start(client, user, sid).status_code == 201
        time.sleep(0.005)
    body = problem(start(client, user, "d"), 409, "stream_limit_reached")
    assert (body["active"], body["limit"]) == (3, 3)
    assert [s["stream_id"] for s in body["streams"]] == ["c", "b", "a"]
    for s in body["streams"]:
        assert set(s) >= LEASE_FIELDS
        assert s["user_id"] == user
        assert ms(s["started_at"]) < ms(s["expires_at"])
    # a retry of an active stream is a renewal, not a new stream: still admitted at the limit
    assert start(client, user, "b").status_code == 200
    assert listing(client, user)["active"] == 3


def test_every_id_character_is_accepted_and_users_are_separate(client: httpx.Client) -> None:
    user, other = f"{uid()}.A_z:0@x+y-", uid()
    r = start(client, user, "Sid.9_:@+-")
    assert r.status_code == 201, r.text
    assert (r.json()["user_id"], r.json()["stream_id"]) == (user, "Sid.9_:@+-")
    assert start(client, other, "Sid.9_:@+-").status_code == 201  # same stream_id, another user
    assert client.delete(f"/v1/users/{other}/streams/Sid.9_:@+-").status_code == 204
    assert [s["stream_id"] for s in listing(client, user)["streams"]] == ["Sid.9_:@+-"]
    assert client.delete(r.headers["location"]).status_code == 204
    assert listing(client, user)["active"] == 0


def test_heartbeat_extends_the_lease(client: httpx.Client) -> None:
    user = uid()
    first = start(client, user, "hb", device="tv").json()
    time.sleep(0.02)
    r = client.post(f"/v1/users/{user}/streams/hb/heartbeat")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= LEASE_FIELDS | {"heartbeat_interval_s", "lease_ttl_s", "degraded"}
    assert (body["user_id"], body["stream_id"], body["device"]) == (user, "hb", "tv")
    assert body["started_at"] == first["started_at"]
    assert ms(body["expires_at"]) > ms(first["expires_at"])
    assert body["degraded"] is False


def test_heartbeat_of_a_stream_not_held_readmits_it_into_a_free_slot_else_404(client: httpx.Client) -> None:
    """A heartbeat of a stream the store does not hold (after an outage, a long sleep) that nobody
    evicted or stopped takes a free slot again, with a new epoch; at the limit it is 404."""
    user = uid()
    r = client.post(f"/v1/users/{user}/streams/lost/heartbeat")
    assert r.status_code == 200, r.text
    back = r.json()
    assert (back["readmitted"], back["stream_id"], back["device"], back["degraded"]) == (
        True,
        "lost",
        None,
        False,
    )
    listed = listing(client, user)["streams"]
    assert [(s["stream_id"], s["epoch"]) for s in listed] == [("lost", back["epoch"])]
    again = client.post(f"/v1/users/{user}/streams/lost/heartbeat").json()
    assert (again["readmitted"], again["epoch"]) == (False, back["epoch"])
    for sid in ("b", "c"):
        assert start(client, user, sid).status_code == 201
    body = problem(client.post(f"/v1/users/{user}/streams/nope/heartbeat"), 404, "stream_not_active")
    assert "detail" in body


def test_heartbeat_of_a_stopped_stream_is_410_stream_stopped_and_never_readmits(client: httpx.Client) -> None:
    user = uid()
    assert start(client, user, "s").status_code == 201
    assert client.delete(f"/v1/users/{user}/streams/s").status_code == 204
    body = problem(client.post(f"/v1/users/{user}/streams/s/heartbeat"), 410, "stream_stopped")
    assert (body["reason"], body["stream_id"]) == ("stopped", "s")
    ms(body["stopped_at"])
    assert listing(client, user)["active"] == 0
    assert start(client, user, "t").status_code == 201
    assert client.delete(f"/v1/users/{user}/streams").json() == {"stopped": 1}  # sign out everywhere
    body = problem(client.post(f"/v1/users/{user}/streams/t/heartbeat"), 410, "stream_stopped")
    assert body["reason"] == "stopped_all"
    assert listing(client, user)["active"] == 0


def test_stop_is_204_also_when_already_gone(client: httpx.Client) -> None:
    user = uid()
    assert start(client, user, "s").status_code == 201
    for _ in range(2):
        r = client.delete(f"/v1/users/{user}/streams/s")
        assert r.status_code == 204
        assert r.content == b""
    assert client.delete(f"/v1/users/{uid()}/streams/never").status_code == 204


def test_get_one_stream_follows_its_location(client: httpx.Client) -> None:
    user = uid()
    r = client.post(f"/v1/users/{user}/streams", json={"stream_id": "s", "device": "tv"})
    assert r.status_code == 201
    got = client.get(r.headers["location"])
    assert got.status_code == 200, got.text
    assert got.json() == {k: r.json()[k] for k in sorted(LEASE_FIELDS)}
    client.delete(r.headers["location"])
    gone = client.get(r.headers["location"])
    assert gone.status_code == 404
    assert gone.json()["code"] == "stream_not_active"


def test_list_unknown_user_and_oldest_first(client: httpx.Client) -> None:
    user = uid()
    assert listing(client, user) == {
        "user_id": user,
        "active": 0,
        "limit": 3,
        "limit_source": "default",
        "plan": None,
        "counts": "streams",
        "remaining": 3,
        "quota_exhausted": False,
        "streams": [],
    }
    for sid in ("z-first", "m-second"):
        assert start(client, user, sid, device=sid).status_code == 201
        time.sleep(0.005)
    start(client, user, "z-first")  # a renewal keeps started_at: still the oldest
    body = listing(client, user)
    assert (body["active"], body["limit"], body["remaining"], body["quota_exhausted"]) == (2, 3, 1, False)
    assert [s["stream_id"] for s in body["streams"]] == ["z-first", "m-second"]
    assert all(set(s) == LEASE_FIELDS and s["device"] == s["stream_id"] for s in body["streams"])
    assert ms(body["streams"][0]["started_at"]) < ms(body["streams"][1]["started_at"])
    assert start(client, user, "a-third").status_code == 201
    full = listing(client, user)
    assert (full["active"], full["remaining"], full["quota_exhausted"]) == (3, 0, True)
    assert [s["stream_id"] for s in full["streams"]] == ["z-first", "m-second", "a-third"]


def test_stop_all(client: httpx.Client) -> None:
    user = uid()
    for sid in ("a", "b"):
        assert start(client, user, sid).status_code == 201
    r = client.delete(f"/v1/users/{user}/streams")
    assert (r.status_code, r.json()) == (200, {"stopped": 2})
    assert listing(client, user)["active"] == 0
    assert client.delete(f"/v1/users/{user}/streams").json() == {"stopped": 0}
    assert start(client, user, "a").status_code == 201


def default_limit(user: str) -> dict[str, Any]:
    return {"user_id": user, "limit": 3, "default": True, "limit_source": "default", "plan": None}


def override(user: str, n: int) -> dict[str, Any]:
    return {"user_id": user, "limit": n, "default": False, "limit_source": "user", "plan": None}


def test_limit_get_put_delete(client: httpx.Client) -> None:
    user = uid()
    url = f"/v1/users/{user}/limit"
    assert client.get(url).json() == {
        "user_id": user,
        "limit": 3,
        "default": True,
        "limit_source": "default",
        "plan": None,
    }
    for n in (5, 1000, 0):
        r = client.put(url, json={"limit": n})
        assert (r.status_code, r.json()) == (
            200,
            override(user, n),
        )
        assert client.get(url).json() == {
            "user_id": user,
            "limit": n,
            "default": False,
            "limit_source": "user",
            "plan": None,
        }
    assert listing(client, user)["limit"] == 0
    body = problem(start(client, user, "s"), 409, "stream_limit_reached")
    assert (body["active"], body["limit"], body["streams"]) == (0, 0, [])
    for bad in (-1, 1001):
        problem(client.put(url, json={"limit": bad}), 422, "invalid_body")
    r = client.delete(url)
    assert (r.status_code, r.json()) == (
        200,
        default_limit(user),
    )
    assert start(client, user, "s").status_code == 201


def test_lowering_the_limit_stops_nothing_but_refuses_new_starts(client: httpx.Client) -> None:
    user = uid()
    for sid in ("a", "b", "c"):
        assert start(client, user, sid).status_code == 201
    assert client.put(f"/v1/users/{user}/limit", json={"limit": 1}).status_code == 200
    body = listing(client, user)
    assert (body["active"], body["limit"], body["remaining"], body["quota_exhausted"]) == (3, 1, 0, True)
    assert problem(start(client, user, "d"), 409, "stream_limit_reached")["active"] == 3
    assert client.post(f"/v1/users/{user}/streams/a/heartbeat").status_code == 200
    assert client.delete(f"/v1/users/{user}/streams/a").status_code == 204
    problem(start(client, user, "d"), 409, "stream_limit_reached")
    assert client.delete(f"/v1/users/{user}/streams/b").status_code == 204
    problem(start(client, user, "d"), 409, "stream_limit_reached")
    assert client.delete(f"/v1/users/{user}/streams/c").status_code == 204
    assert start(client, user, "d").status_code == 201


def test_healthz_and_readyz(client: httpx.Client) -> None:
    for path in ("/healthz", "/readyz"):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")


def test_openapi_describes_the_v1_paths(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) >= V1_PATHS
    assert {"post", "get", "delete"} <= set(spec["paths"]["/v1/users/{user_id}/streams"])


def test_docs_page_uses_only_local_assets(client: httpx.Client) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://", html), "the docs page must not load anything from the internet"
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset
        got = client.get(asset)
        assert (got.status_code, bool(got.content)) == (200, True), asset
    for spec_url in re.findall(r"""url\s*:\s*["']([^"']+)["']""", html):
        assert client.get(spec_url).status_code == 200, spec_url


def test_expired_lease_frees_its_slot(fast: httpx.Client) -> None:
    user = uid()
    assert fast.put(f"/v1/users/{user}/limit", json={"limit": 1}).status_code == 200
    t0 = time.monotonic()
    r = start(fast, user, "crashed")
    assert (r.status_code, r.json()["lease_ttl_s"]) == (201, 1.0)
    assert ms(r.json()["expires_at"]) - ms(r.json()["started_at"]) == 1000
    problem(start(fast, user, "next"), 409, "stream_limit_reached")
    poll(lambda: start(fast, user, "next").status_code == 201, 1.0 + 1.0 - (time.monotonic() - t0))
    assert [s["stream_id"] for s in listing(fast, user)["streams"]] == ["next"]
    problem(fast.post(f"/v1/users/{user}/streams/crashed/heartbeat"), 404, "stream_not_active")


@pytest.mark.slow  # waits out several leases in real time
def test_heartbeats_keep_a_lease_alive_past_its_ttl(fast: httpx.Client) -> None:
    user = uid()
    assert start(fast, user, "live").status_code == 201
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:  # one and a half TTLs
        r = fast.post(f"/v1/users/{user}/streams/live/heartbeat")
        assert r.status_code == 200, r.text
        assert r.json()["heartbeat_interval_s"] == 0.1
        time.sleep(0.1)
    assert listing(fast, user)["active"] == 1
    t1 = time.monotonic()
    poll(lambda: listing(fast, user)["active"] == 0, 1.0 + 1.0 - (time.monotonic() - t1))


def test_compat_streams_use_the_legacy_ttl(fast: httpx.Client) -> None:
    user = uid()
    t0 = time.monotonic()
    r = fast.post("/user/stream", json={"userId": user})
    assert r.status_code == 200, r.text
    legacy_id = r.json()["streamId"]
    assert start(fast, user, "v1").status_code == 201
    leases = {s["stream_id"]: s for s in listing(fast, user)["streams"]}
    legacy = leases[legacy_id]
    assert ms(legacy["expires_at"]) - ms(legacy["started_at"]) == 1500
    assert ms(leases["v1"]["expires_at"]) - ms(leases["v1"]["started_at"]) == 1000
    gone = poll(
        lambda: legacy_id not in {s["stream_id"] for s in listing(fast, user)["streams"]},
        1.5 + 1.0 - (time.monotonic() - t0),
    )
    assert time.monotonic() - t0 >= 1.45, f"legacy lease gone after {gone:.2f} s, before its 1.5 s TTL"
