"""The client's grants (Lease.grant, on_grant) against a real `streamlimit serve` that signs them.

Short leases (1.2 s, heartbeats every 0.15 s), so a lease renews several times within a second."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import jwt
import pytest

from streamlimit.client import AsyncStreamLimitClient, StreamLimitClient
from tests.grant_helpers import write_key
from tests.servers import RedisServer, Service

FAST = {"lease_ttl_s": 1.2, "heartbeat_interval_s": 0.15, "start_rate_per_min": 0}


def uid() -> str:
    return f"cg-{uuid.uuid4().hex[:12]}"


def claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


class Grants:
    """An on_grant callback that keeps the grants, and says when it has ``wanted`` of them."""

    def __init__(self, wanted: int, fail: bool = False) -> None:
        self.seen: list[str] = []
        self.wanted, self.fail = wanted, fail
        self.enough = asyncio.Event()

    def __call__(self, grant: str) -> None:
        self.seen.append(grant)
        if len(self.seen) >= self.wanted:
            self.enough.set()
        if self.fail:
            raise RuntimeError("the media stack is not ready")

    async def wait(self) -> None:
        await asyncio.wait_for(self.enough.wait(), 5)


@pytest.fixture(scope="module")
def granted(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("client-grants")
    key = write_key(folder / "grant.pem")
    svc = Service(redis_server.url, folder / "svc.log", grant_key_file=key, **FAST).start()
    yield svc
    svc.stop()


def test_a_lease_holds_the_newest_grant_and_hands_each_to_on_grant(granted: Service) -> None:
    user = uid()

    async def scenario() -> None:
        grants, awaited = Grants(3), Grants(2)

        async def also_async(grant: str) -> None:
            await asyncio.sleep(0)
            awaited(grant)

        async with AsyncStreamLimitClient(granted.url) as c:
            async with c.stream(user, "tv", on_grant=grants) as lease:
                assert lease.started is not None
                assert lease.grant == lease.started.grant == grants.seen[0]
                await grants.wait()  # two heartbeats: two new grants
                assert lease.grant == grants.seen[-1]
                assert lease.info is not None
                assert lease.info.grant == lease.grant
            async with c.stream(user, "phone", on_grant=also_async) as other:
                await awaited.wait()
                assert other.grant == awaited.seen[-1]
        seen = grants.seen
        assert len({claims(g)["jti"] for g in seen}) == len(seen)
        assert {(claims(g)["sid"], claims(g)["epoch"]) for g in seen} == {("tv", lease.started.epoch)}
        expiries = [int(str(claims(g)["exp"])) for g in seen]
        assert expiries == sorted(expiries)

    asyncio.run(scenario())


def test_a_failing_on_grant_does_not_end_the_lease(granted: Service) -> None:
    async def scenario() -> None:
        broken = Grants(2, fail=True)
        async with AsyncStreamLimitClient(granted.url) as c, c.stream(uid(), on_grant=broken) as lease:
            await broken.wait()
            assert not lease.lost
            assert lease.grant == broken.seen[-1]

    asyncio.run(scenario())


def test_the_sync_client_calls_on_grant_on_its_thread(granted: Service) -> None:
    seen: list[tuple[str, str]] = []
    two = threading.Event()

    def on_grant(grant: str) -> None:
        seen.append((threading.current_thread().name, grant))
        if len(seen) >= 2:
            two.set()

    with StreamLimitClient(granted.url) as c, c.stream(uid(), "tv", on_grant=on_grant) as lease:
        assert lease.grant == seen[0][1]
        assert two.wait(5)
        time.sleep(0.01)
        assert lease.grant == seen[-1][1]
    assert {name for name, _ in seen} == {"streamlimit-client"}


def test_without_grants_a_lease_has_none(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    svc = Service(redis_url, tmp_path_factory.mktemp("client-no-grants") / "svc.log", **FAST).start()
    seen: list[str] = []
    try:
        with StreamLimitClient(svc.url) as c:
            started = c.start(uid(), "tv")
            assert started.grant is None
            with c.stream(uid(), on_grant=seen.append) as lease:
                assert lease.grant is None
    finally:
        svc.stop()
    assert seen == []
