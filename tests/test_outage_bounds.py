"""How long the allow policy's over-admission lasts after an outage, on the service's own rules.

A switch in front of a real memory store makes it unreachable (every call raises
``StoreUnavailable``, as the Redis store does when the server is down) on a fake clock, so the
bounds below are measured exactly, in store time, with no sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from streamlimit.errors import StoreUnavailable, StreamNotActive, StreamStopped
from streamlimit.models import StartStatus
from streamlimit.service import Policy, StreamService
from streamlimit.store.base import Store
from streamlimit.store.memory import FakeClock, MemoryStore

MINUTE = 60_000
HOUR = 60 * MINUTE


class Switch:
    """A real store behind a switch: while ``down``, every call fails as an outage does."""

    def __init__(self, store: MemoryStore) -> None:
        self.store, self.down = store, False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("store is down")
            return await method(*args, **kwargs)

        return call


def service(clock: FakeClock, **policy: Any) -> tuple[StreamService, Switch]:
    switch = Switch(MemoryStore(clock))
    return StreamService(cast(Store, switch), Policy(default_limit=2, **policy)), switch


def test_v1_streams_started_during_an_outage_are_admitted_again_at_their_next_heartbeat() -> None:
    """Over-admission under allow lasts as long as the outage, plus at most one heartbeat
    interval: after it, each degraded stream's heartbeat re-admits it while a slot is free and
    is refused (404: stop playback) once the user is at its limit again."""
    clock = FakeClock()
    svc, switch = service(clock, lease_ttl_ms=90_000)

    async def main() -> None:
        await svc.start("u", "before")
        switch.down = True
        for sid in ("d1", "d2"):  # admitted without a check: 3 playing for a limit of 2
            assert (await svc.start("u", sid)).degraded
        clock.advance(5 * MINUTE)  # an outage longer than the lease: "before" expired too
        switch.down = False
        beats: dict[str, bool | str] = {}
        for sid in ("before", "d1", "d2"):  # each player's next heartbeat, within 30 s
            clock.advance(10_000)
            try:
                beats[sid] = (await svc.heartbeat("u", sid)).readmitted
            except StreamNotActive as exc:
                beats[sid] = type(exc).__name__
        assert beats == {"before": True, "d1": True, "d2": "StreamNotActive"}
        assert [s.stream_id for s in (await svc.list("u")).streams] == ["before", "d1"]

    asyncio.run(main())


def test_a_device_signed_out_keeps_being_refused_and_is_never_readmitted() -> None:
    clock = FakeClock()
    svc, _ = service(clock, lease_ttl_ms=90_000)

    async def main() -> None:
        await svc.start("u", "tv")
        assert await svc.stop_all("u") == 1
        for _ in range(3):  # it keeps heartbeating every 30 s for the lease's length
            with pytest.raises(StreamStopped) as stopped:
                await svc.heartbeat("u", "tv")
            assert stopped.value.reason == "stopped_all"
            clock.advance(29_000)
        assert (await svc.list("u")).active == 0

    asyncio.run(main())


@pytest.mark.parametrize("stops_with_stream_id", [True, False])
def test_compat_over_admission_after_an_outage(stops_with_stream_id: bool) -> None:
    """Compat players never heartbeat, so nothing re-checks a degraded add. Measured here: the
    excess of players over the limit lasts until the degraded player stops when it stops with
    the ``streamId`` it was given; when it stops without one, its DELETE removes the oldest
    legacy record (another player's), and the excess lasts until that player stops, or at most
    one legacy lease (6 h) after that player's add, when its record would have expired anyway."""
    clock = FakeClock()
    svc, switch = service(clock, legacy_lease_ttl_ms=6 * HOUR)
    playing: set[str] = set()

    async def add() -> str:
        result = await svc.start("u", legacy=True)
        assert result.stream is not None
        if result.status is StartStatus.ADMITTED:
            playing.add(result.stream.stream_id)
        return result.stream.stream_id

    async def excess() -> int:
        return max(0, len(playing) - 2)

    async def main() -> None:
        a = await add()
        switch.down = True
        d = await add()  # degraded: nothing recorded
        clock.advance(MINUTE)
        switch.down = False
        b = await add()  # a slot looks free: 3 play for a limit of 2
        assert await excess() == 1
        clock.advance(10 * MINUTE)  # the degraded player stops
        stopped = await svc.stop("u", d if stops_with_stream_id else None)
        playing.discard(d)
        assert await excess() == 0
        if stops_with_stream_id:
            assert stopped.removed is None  # it was never recorded: nothing else is touched
            assert (await svc.list("u")).active == 2
        else:
            assert stopped.removed is not None
            assert stopped.removed.stream_id == a  # another player's record
            assert await add() != ""  # so one more is admitted: 3 play again
            assert await excess() == 1
            clock.advance(6 * HOUR - 11 * MINUTE)  # a's record would have expired by now
            assert {s.stream_id for s in (await svc.list("u")).streams} >= {b}

    asyncio.run(main())
