"""The service's rules on their own: id checks, and the outage policy with its warning log."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

import pytest

from streamlimit.errors import InvalidId, InvalidInput, StoreUnavailable
from streamlimit.models import StartStatus
from streamlimit.service import Caller, Policy, StreamService
from streamlimit.store.memory import FakeClock, MemoryStore


class DownStore:
    """A store that is always unreachable (what is tested here is the policy, not a store)."""

    async def _down(self, *args: object) -> NoReturn:
        raise StoreUnavailable("down")

    start = heartbeat = stop = list = stop_all = get_limit = set_limit = set_plan = events = _down
    estimate_active = ping = renew = _down

    def feed(self, on_kick: object, on_gap: object) -> NoReturn:
        raise StoreUnavailable("down")

    async def close(self) -> None:
        return None


def test_allow_answers_starts_heartbeats_and_stops_degraded(caplog: pytest.LogCaptureFixture) -> None:
    service = StreamService(DownStore(), Policy(on_store_error="allow"))

    async def main() -> None:
        start = await service.start("u", "s", "tv")
        assert (start.status, start.degraded, start.active) == (StartStatus.ADMITTED, True, None)
        assert start.stream is not None
        assert start.stream.expires_at_ms - start.stream.started_at_ms == 90_000
        assert (await service.heartbeat("u", "s")).degraded
        assert (await service.stop("u", "s")).degraded
        for call in (service.list("u"), service.stop_all("u"), service.get_limit("u")):
            with pytest.raises(StoreUnavailable):
                await call

    with caplog.at_level(logging.WARNING, "streamlimit.service"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited: one line for the whole burst
    assert "degraded" in warnings[0].getMessage()


def test_deny_refuses_every_store_backed_call() -> None:
    service = StreamService(DownStore(), Policy(on_store_error="deny"))

    async def main() -> None:
        for call in (
            service.start("u", "s"),
            service.heartbeat("u", "s"),
            service.stop("u", "s"),
            service.list("u"),
            service.set_limit("u", 2),
        ):
            with pytest.raises(StoreUnavailable):
                await call

    asyncio.run(main())


def test_ids_device_and_limit_are_checked_before_the_store() -> None:
    service = StreamService(MemoryStore(FakeClock()), Policy())

    async def main() -> None:
        with pytest.raises(InvalidId):
            await service.start("bad id")
        with pytest.raises(InvalidId):
            await service.start("u", "{tag}")
        with pytest.raises(InvalidInput):
            await service.start("u", "s", "d" * 129)
        with pytest.raises(InvalidInput):
            await service.set_limit("u", 1001)
        with pytest.raises(InvalidId):
            await service.heartbeat("u", "{tag}")
        generated = await service.start("u")
        assert generated.stream is not None
        assert len(generated.stream.stream_id) == 36  # a UUID

    asyncio.run(main())


def test_compat_starts_get_the_legacy_lease() -> None:
    clock = FakeClock()
    service = StreamService(MemoryStore(clock), Policy(lease_ttl_ms=1_000, legacy_lease_ttl_ms=60_000))

    async def main() -> None:
        legacy = await service.start("u", "old", legacy=True)
        assert legacy.stream is not None
        assert legacy.stream.expires_at_ms == clock.now_ms + 60_000
        clock.advance(30_000)
        assert (await service.list("u")).active == 1

    asyncio.run(main())


def test_audit_events_are_also_structured_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    service = StreamService(MemoryStore(FakeClock()), Policy(default_limit=1))
    admin = Caller("support", admin=True, credential="support-key", request_id="r-1", client="192.0.2.9")

    async def main() -> None:
        await service.start("u", "a")
        await service.start("u", "b", on_limit="evict_oldest", caller=Caller("u"))
        await service.stop("u", "b", admin)
        await service.stop("u", "gone", admin)  # nothing removed: nothing to record
        await service.set_limit("u", 2, admin)
        await service.start("u", "c")
        await service.stop_all("u", Caller("u"))
        await service.stop_all("u", Caller("u"))  # nothing stopped: nothing to record

    with caplog.at_level(logging.INFO, "streamlimit.audit"):
        asyncio.run(main())
    lines = [r.fields for r in caplog.records if r.name == "streamlimit.audit"]  # type: ignore[attr-defined]
    assert [(e["action"], e["actor"], e["streams"]) for e in lines] == [
        ("evicted", "u", ["a"]),
        ("stopped_by_admin", "support", ["b"]),
        ("limit_set", "support", []),
        ("stopped_all", "u", ["c"]),
    ]
    assert all(e["event"] == "audit" and e["user_id"] == "u" for e in lines)
    # the same members as the stored events, as members of the log line (not JSON in its msg)
    by_admin = lines[1]
    assert (by_admin["role"], by_admin["credential"], by_admin["request_id"], by_admin["client"]) == (
        "admin",
        "support-key",
        "r-1",
        "192.0.2.9",
    )
    assert (lines[2]["value"], lines[0]["role"]) == ("2", "player")
    assert all(r.getMessage() == f"audit {e['action']}" for r, e in zip(caplog.records, lines, strict=True))
