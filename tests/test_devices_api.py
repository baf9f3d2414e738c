"""Devices through the v1 API on a real `streamlimit serve` process: device ids in every body, a
restarted player's reclaim (410 stream_replaced), "watch here instead of there" (?replace=),
counting devices, and who may name a stream to replace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from streamlimit.errors import Forbidden, ReplaceTargetNotActive
from streamlimit.models import StartStatus
from streamlimit.service import Caller, Policy, StreamService
from streamlimit.store.memory import FakeClock, MemoryStore
from tests.auth_helpers import problem, running, uid
from tests.servers import RedisServer, Service
from tests.test_accounts_api import events, ok


def start(c: httpx.Client, user: str, stream: str, **body: Any) -> httpx.Response:
    params: dict[str, str] = {k: body.pop(k) for k in ("replace", "on_limit") if k in body}
    return c.post(f"/v1/users/{user}/streams", json={"stream_id": stream, **body}, params=params)


def admitted(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def heartbeat(c: httpx.Client, user: str, stream: str) -> httpx.Response:
    return c.post(f"/v1/users/{user}/streams/{stream}/heartbeat")


def listing(c: httpx.Client, user: str) -> dict[str, Any]:
    return ok(c.get(f"/v1/users/{user}/streams"))


@pytest.fixture(scope="module")
def client(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("devices") / "svc.log"
    with running(redis_server.url, log, default_limit=2, start_rate_per_min=0) as (_, c):
        yield c


def test_a_restarted_player_takes_its_old_streams_place(client: httpx.Client) -> None:
    user = uid()
    admitted(start(client, user, "phone", device="Phone", device_id="phone-install-1"))
    old = admitted(start(client, user, "tv-before", device="Living room", device_id="tv-install-1"))
    assert old["device_id"] == "tv-install-1"
    new = admitted(start(client, user, "tv-after", device="Living room", device_id="tv-install-1"))
    assert (new["active"], new["evicted"], new["counts"]) == (2, None, "streams")
    assert [s["stream_id"] for s in new["replaced_streams"]] == ["tv-before"]
    gone = problem(heartbeat(client, user, "tv-before"), 410, "stream_replaced")
    assert (gone["replaced_by"], gone["stream_id"]) == ("tv-after", "tv-before")
    assert "replaced_at" in gone
    listed = listing(client, user)
    assert [(s["stream_id"], s["device_id"]) for s in listed["streams"]] == [
        ("phone", "phone-install-1"),
        ("tv-after", "tv-install-1"),
    ]
    first = events(client, user)[0]
    assert (first["action"], first["streams"], first["value"], first["device_id"]) == (
        "replaced",
        ["tv-before"],
        "tv-after",
        "tv-install-1",
    )


def test_the_viewer_chooses_which_device_to_stop(client: httpx.Client) -> None:
    user = uid()
    admitted(start(client, user, "tv", device_id="tv-1"))
    admitted(start(client, user, "phone", device_id="phone-1"))
    refused = problem(start(client, user, "laptop", device_id="laptop-1"), 409, "stream_limit_reached")
    # the 409 lists each device, so the player can ask which one to stop
    assert [(s["stream_id"], s["device_id"]) for s in refused["streams"]] == [
        ("tv", "tv-1"),
        ("phone", "phone-1"),
    ]
    assert refused["counts"] == "streams"
    laptop = admitted(start(client, user, "laptop", device_id="laptop-1", replace="phone"))
    assert [s["stream_id"] for s in laptop["evicted_streams"]] == ["phone"]
    assert problem(heartbeat(client, user, "phone"), 410, "stream_evicted")["replaced_by"] == "laptop"
    assert [s["stream_id"] for s in listing(client, user)["streams"]] == ["tv", "laptop"]
    first = events(client, user)[0]
    assert (first["action"], first["streams"], first["value"]) == ("evicted", ["phone"], "laptop")


def test_replacing_a_stream_that_is_not_active_starts_nothing(client: httpx.Client) -> None:
    user = uid()
    admitted(start(client, user, "tv"))
    body = problem(start(client, user, "laptop", replace="long-gone"), 404, "stream_not_active")
    assert (body["stream_id"], body["field"]) == ("long-gone", "replace")
    assert "nothing was started" in body["detail"]
    assert [s["stream_id"] for s in listing(client, user)["streams"]] == ["tv"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_id": "has space"}, "device_id"),
        ({"device_id": ""}, "device_id"),
        ({"device_id": "x" * 129}, "device_id"),
        ({"device_id": 7}, "device_id"),
        ({"replace": "a/b"}, "replace"),
        ({"replace": "{tag}"}, "replace"),
    ],
)
def test_a_bad_device_id_or_replace_is_named(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    user = uid()
    r = start(client, user, "s", **body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert listing(client, user)["streams"] == []


def test_replace_may_be_given_once(client: httpx.Client) -> None:
    r = client.post(f"/v1/users/{uid()}/streams?replace=a&replace=b", json={"stream_id": "s"})
    assert problem(r, 422, "invalid_query")["field"] == "replace"


def test_counting_devices(redis_server: RedisServer, service_factory: Callable[..., Service]) -> None:
    svc = service_factory(
        redis_server.url, default_limit=1, limit_counts="devices", streams_per_device=2, start_rate_per_min=0
    )
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        user = uid()
        admitted(start(c, user, "main", device_id="tv-1"))
        pip = admitted(start(c, user, "picture-in-picture", device_id="tv-1"))
        assert (pip["active"], pip["counts"], pip["replaced_streams"]) == (1, "devices", [])
        listed = listing(c, user)
        assert (listed["active"], len(listed["streams"]), listed["counts"], listed["remaining"]) == (
            1,
            2,
            "devices",
            0,
        )
        refused = problem(start(c, user, "phone", device_id="phone-1"), 409, "stream_limit_reached")
        assert "1 of 1 devices" in refused["detail"]


def test_players_may_not_name_a_stream_to_replace_when_evictions_are_not_theirs(
    redis_server: RedisServer, service_factory: Callable[..., Service]
) -> None:
    svc = service_factory(redis_server.url, default_limit=2, allow_client_evict="false")
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        user = uid()
        admitted(start(c, user, "tv"))
        problem(start(c, user, "laptop", replace="tv"), 403, "forbidden")
        assert [s["stream_id"] for s in listing(c, user)["streams"]] == ["tv"]
        # reclaiming its own device's slot is not an eviction: always allowed
        other = uid()
        admitted(start(c, other, "a", device_id="d-1"))
        assert admitted(start(c, other, "b", device_id="d-1"))["replaced_streams"][0]["stream_id"] == "a"
        # ... but another device's id is not shown, so it cannot be copied to take that slot
        admitted(start(c, other, "c", device_id="d-2"))
        refused = problem(start(c, other, "d", device_id="d-3"), 409, "stream_limit_reached")
        shown = [s["device_id"] for s in refused["streams"]]
        assert all(d.startswith("~") for d in shown), shown
        assert [s["device_id"] for s in listing(c, other)["streams"]] == shown
        assert problem(start(c, other, "d", device_id=shown[0]), 422, "invalid_id")["field"] == "device_id"


def test_an_admin_may_always_name_a_stream_to_replace() -> None:
    service = StreamService(MemoryStore(FakeClock()), Policy(default_limit=1, allow_client_evict=False))

    async def main() -> None:
        await service.start("u", "tv")
        with pytest.raises(Forbidden):
            await service.start("u", "laptop", replace="tv", caller=Caller("u"))
        ops = Caller("ops", admin=True)
        with pytest.raises(ReplaceTargetNotActive):
            await service.start("u", "laptop", replace="gone", caller=ops)
        result = await service.start("u", "laptop", replace="tv", caller=ops)
        assert (result.status, [s.stream_id for s in result.evicted]) == (StartStatus.ADMITTED, ["tv"])

    asyncio.run(main())
