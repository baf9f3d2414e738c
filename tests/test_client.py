"""The Python client (streamlimit.client) against real `streamlimit serve` processes and valkey-servers.

Most tests share one service with short leases (1.2 s, heartbeats every 0.15 s: a second of
slack for a stalled machine), so a lease that is not heartbeated is gone within two seconds;
outage and auth tests run their own.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from streamlimit.auth.mint import mint_token
from streamlimit.client import (
    AsyncStreamLimitClient,
    Event,
    Forbidden,
    Lease,
    LeaseInfo,
    LeaseLost,
    LimitInfo,
    LimitReached,
    StartInfo,
    StreamEvicted,
    StreamInfo,
    StreamLimitClient,
    StreamLimitError,
    StreamList,
    StreamNotActive,
    StreamStopped,
    TooManyStarts,
    Unauthenticated,
    Unavailable,
)
from tests.auth_helpers import HS_SECRET, OTHER_SECRET, new_api_key
from tests.servers import RedisServer, Service, free_port

FAST = {"lease_ttl_s": 1.2, "heartbeat_interval_s": 0.15, "start_rate_per_min": 0}
INTERVAL_S = 0.15


def uid() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def is_utc(at: object) -> bool:
    return isinstance(at, datetime) and at.utcoffset() == timedelta(0)


class Recording(httpx.AsyncHTTPTransport):
    """The real transport, noting (method, path, status) of every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.seen.append((request.method, request.url.path, response.status_code))
        return response


@pytest.fixture(scope="module")
def fast(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(redis_server.url, tmp_path_factory.mktemp("client") / "svc.log", **FAST).start()
    yield svc
    svc.stop()


# --- the methods ------------------------------------------------------------------------------


def test_start_heartbeat_list_stop_round_trip_with_typed_results(fast: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(fast.url) as c:
            started = await c.start(user, "tv", device="living room")
            assert isinstance(started, StartInfo)
            assert (started.user_id, started.stream_id, started.device) == (user, "tv", "living room")
            assert (started.admitted, started.degraded, started.evicted) == (True, False, ())
            assert (started.active, started.limit, started.limit_source, started.plan) == (
                1,
                3,
                "default",
                None,
            )
            assert (started.heartbeat_interval_s, started.lease_ttl_s) == (0.15, 1.2)
            assert isinstance(started.epoch, int)
            assert started.epoch > 0
            assert is_utc(started.started_at)
            assert is_utc(started.expires_at)
            assert started.expires_at - started.started_at == timedelta(seconds=1.2)

            renewed = await c.start(user, "tv", device="living room")  # same id: a renewal (200)
            assert (renewed.admitted, renewed.active) == (False, 1)

            await asyncio.sleep(0.05)
            beat = await c.heartbeat(user, "tv")
            assert type(beat) is LeaseInfo
            assert beat.expires_at > started.expires_at
            assert beat.started_at == started.started_at

            one = await c.get_stream(user, "tv")
            assert type(one) is StreamInfo
            assert one.expires_at == beat.expires_at

            listed = await c.list(user)
            assert isinstance(listed, StreamList)
            assert (listed.active, listed.limit, listed.remaining, listed.quota_exhausted) == (1, 3, 2, False)
            assert [s.stream_id for s in listed.streams] == ["tv"]

            generated = await c.start(user)  # no stream_id: the service makes one up
            assert str(uuid.UUID(generated.stream_id)) == generated.stream_id

            await c.stop(user, "tv")
            await c.stop(user, "tv")  # already gone: still fine
            assert [s.stream_id for s in (await c.list(user)).streams] == [generated.stream_id]
            assert await c.stop_all(user) == 1
            assert (await c.list(user)).active == 0

            limit = await c.get_limit(user)
            assert limit == LimitInfo(user, 3, True, "default", None)
            (event,) = await c.events(user)
            assert (event.action, event.actor, event.streams) == (
                "stopped_all",
                "anonymous",
                (generated.stream_id,),
            )
            assert is_utc(event.at)

    asyncio.run(scenario())


def test_limit_reached_eviction_and_not_active_errors(fast: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(fast.url) as c:
            assert await c.set_limit(user, 1) == LimitInfo(user, 1, False, "user", None)
            await c.start(user, "a", device="phone")
            with pytest.raises(LimitReached) as refused:
                await c.start(user, "b")
            e = refused.value
            assert (e.status, e.code, e.active, e.limit) == (409, "stream_limit_reached", 1, 1)
            assert [(s.stream_id, s.device) for s in e.streams] == [("a", "phone")]
            assert (e.body["code"], e.transient) == ("stream_limit_reached", False)

            took = await c.start(user, "b", on_limit="evict_oldest")
            assert took.admitted
            assert [s.stream_id for s in took.evicted] == ["a"]
            with pytest.raises(StreamEvicted) as gone:
                await c.heartbeat(user, "a")
            assert (gone.value.status, gone.value.replaced_by) == (410, "b")
            assert is_utc(gone.value.evicted_at)
            assert isinstance(gone.value, StreamNotActive)  # catching StreamNotActive catches both

            with pytest.raises(StreamNotActive) as unknown:
                await c.heartbeat(user, "never-started")
            assert type(unknown.value) is StreamNotActive
            assert (unknown.value.status, unknown.value.code) == (404, "stream_not_active")

            events = await c.events(user)
            assert (events[0].action, events[0].streams) == ("evicted", ("a",))
            assert all(isinstance(ev, Event) and is_utc(ev.at) for ev in events)
            assert (await c.clear_limit(user)).limit_source == "default"
            await c.stop_all(user)

    asyncio.run(scenario())


def test_no_answer_is_unavailable() -> None:
    async def scenario() -> None:
        async with AsyncStreamLimitClient(f"http://127.0.0.1:{free_port()}", timeout=1) as c:
            with pytest.raises(Unavailable) as out:
                await c.list("anyone")
            assert (out.value.status, out.value.transient) == (None, True)

    asyncio.run(scenario())


# --- client.stream(): the lease ---------------------------------------------------------------


@pytest.mark.slow  # waits out several leases in real time
def test_stream_heartbeats_keep_the_lease_past_several_ttls_and_exit_stops_it(fast: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(fast.url) as c:
            async with c.stream(user, device="tv") as lease:
                first = lease.expires_at
                assert lease.epoch is not None
                assert lease.epoch > 0
                assert not lease.lost
                assert str(uuid.UUID(lease.stream_id)) == lease.stream_id  # generated by the client
                await asyncio.sleep(1.5)  # more than a whole lease
                listed = await c.list(user)
                assert [s.stream_id for s in listed.streams] == [lease.stream_id]
                assert listed.streams[0].expires_at > first + timedelta(seconds=1)
                assert lease.expires_at > first + timedelta(seconds=1)
                assert not lease.lost
            assert (await c.list(user)).active == 0  # stopped on exit, not left to expire

    asyncio.run(scenario())


def test_an_evicted_lease_calls_on_lost_cancels_the_block_and_raises_lease_lost(fast: Service) -> None:
    user = uid()
    reasons: list[StreamLimitError] = []
    seen: dict[str, float] = {}

    async def on_lost(reason: StreamLimitError) -> None:  # an async callback is awaited
        reasons.append(reason)
        seen["on_lost"] = time.monotonic()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(fast.url) as c, AsyncStreamLimitClient(fast.url) as other:
            await c.set_limit(user, 1)
            held: list[Lease] = []

            async def watch() -> None:
                async with c.stream(user, "old", on_lost=on_lost) as lease:
                    held.append(lease)
                    await asyncio.sleep(0.2)
                    await other.start(user, "new", on_limit="evict_oldest")
                    seen["evicted"] = time.monotonic()
                    try:
                        await asyncio.sleep(10)
                    except asyncio.CancelledError:
                        seen["cancelled"] = time.monotonic()
                        raise

            with pytest.raises(LeaseLost) as lost:
                await watch()
            seen["raised"] = time.monotonic()
            assert held[0].lost
            assert held[0].lost_reason is lost.value.reason
            assert isinstance(lost.value.reason, StreamEvicted)
            assert lost.value.__cause__ is lost.value.reason
            assert (lost.value.reason.replaced_by, lost.value.status) == ("new", 410)
            assert reasons == [lost.value.reason]
            assert seen["evicted"] < seen["on_lost"] <= seen["cancelled"] <= seen["raised"]
            assert seen["raised"] - seen["evicted"] < 2 * INTERVAL_S + 1.0, seen
            assert [s.stream_id for s in (await c.list(user)).streams] == ["new"]
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
            await c.stop_all(user)

    asyncio.run(scenario())


def test_a_lease_stopped_elsewhere_calls_on_lost_with_stream_stopped(fast: Service) -> None:
    user = uid()
    reasons: list[StreamLimitError] = []

    async def scenario() -> None:
        async with AsyncStreamLimitClient(fast.url) as c:

            async def watch() -> None:
                async with c.stream(user, on_lost=reasons.append) as lease:  # a sync callback
                    await c.stop(user, lease.stream_id)  # e.g. an admin, or the same user elsewhere
                    await asyncio.sleep(10)

            with pytest.raises(LeaseLost) as lost:
                await watch()
            assert type(lost.value.reason) is StreamStopped
            assert isinstance(lost.value.reason, StreamNotActive)
            assert (lost.value.status, lost.value.reason.reason) == (410, "stopped")
            assert reasons == [lost.value.reason]

    asyncio.run(scenario())


def test_cancelling_the_block_from_elsewhere_stays_a_cancellation_and_stops_the_stream(fast: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(fast.url) as c:
            entered = asyncio.Event()

            async def hold() -> None:
                async with c.stream(user, "s"):
                    entered.set()
                    await asyncio.sleep(10)

            task = asyncio.create_task(hold())
            await asyncio.wait_for(entered.wait(), 5)  # cancelled inside the block, not in its start
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await c.list(user)).active == 0

            async def timed_out() -> None:  # asyncio.timeout around a lease works as usual
                async with asyncio.timeout(None) as deadline, c.stream(user, "t"):
                    deadline.reschedule(asyncio.get_running_loop().time() + 0.3)  # once inside
                    await asyncio.sleep(10)

            with pytest.raises(TimeoutError):
                await timed_out()
            assert (await c.list(user)).active == 0

    asyncio.run(scenario())


@pytest.mark.slow
def test_heartbeats_ride_out_a_store_outage(
    private_store: RedisServer, service_factory: Callable[..., Service]
) -> None:
    # FAST's 1.2 s leases leave room for the pause (ended once a call was refused), a retry, a margin
    svc = service_factory(private_store.url, on_store_error="deny", store_timeout_ms=100, **FAST)
    user = uid()
    reasons: list[StreamLimitError] = []
    recorded = Recording()

    async def resume_once_refused(request: Callable[[str, str], bool], deadline_s: float = 0.8) -> None:
        """Resume the paused store once a matching request was answered 503 (or at the deadline:
        then the assertions below fail)."""
        deadline = time.monotonic() + deadline_s
        try:
            while time.monotonic() < deadline:
                if any(request(m, p) and status == 503 for m, p, status in recorded.seen):
                    return
                await asyncio.sleep(0.01)
        finally:
            private_store.resume()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(svc.url, transport=recorded) as c:
            async with c.stream(user, "s", on_lost=reasons.append) as lease:
                await asyncio.sleep(0.3)
                private_store.pause()  # until a heartbeat was refused (or 0.8 s, inside the lease)
                await resume_once_refused(lambda method, path: path.endswith("/s/heartbeat"))
                await asyncio.sleep(0.5)
                assert not lease.lost
                assert [s.stream_id for s in (await c.list(user)).streams] == ["s"]

            # a start while the store is out is retried until it succeeds
            private_store.pause()
            resumer = asyncio.create_task(
                resume_once_refused(lambda method, path: method == "POST" and path.endswith("/streams"))
            )
            async with c.stream(user, "later") as later:
                assert later.epoch is not None
                assert later.epoch > 0
                assert [s.stream_id for s in (await c.list(user)).streams] == ["later"]  # one slot only
            await resumer
        beats = [status for method, path, status in recorded.seen if path.endswith("/s/heartbeat")]
        assert 503 in beats, beats  # refused while the store was paused, and retried
        assert (beats[-1], reasons) == (200, [])
        starts = [
            status for method, path, status in recorded.seen if method == "POST" and path.endswith("/streams")
        ]
        # the refused start may still have been applied once the store woke up (it had the command):
        # the retry, with the same stream id, then renews it (200) instead of taking a second slot
        assert (starts[0], 503 in starts[1:], starts[-1] in (200, 201)) == (201, True, True), starts

    asyncio.run(scenario())


# --- credentials ------------------------------------------------------------------------------


def test_a_token_is_sent_and_a_wrong_one_is_unauthenticated(
    redis_server: RedisServer, service_factory: Callable[..., Service]
) -> None:
    svc = service_factory(redis_server.url, auth="jwt", jwt_secret=HS_SECRET, start_rate_per_min=2)
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(svc.url, token=mint_token(HS_SECRET, user)) as c:
            assert (await c.start(user, "a")).admitted
            assert (await c.list(user)).active == 1
            with pytest.raises(Forbidden) as other_user:
                await c.list(uid())
            assert (other_user.value.status, other_user.value.code) == (403, "forbidden")
            with pytest.raises(Forbidden):
                await c.set_limit(user, 5)  # scope "streams" is no admin
            await c.start(user, "b")
            with pytest.raises(TooManyStarts) as budget:  # 2 admissions a minute
                await c.start(user, "c")
            assert (budget.value.status, budget.value.transient) == (429, True)
            assert budget.value.retry_after_s >= 1
            with pytest.raises(TooManyStarts):  # Retry-After beyond the start's retry budget: raised
                async with c.stream(user, "d", start_retry_s=0.5):
                    pass
            await c.stop_all(user)
        for token in (mint_token(OTHER_SECRET, user), None):
            async with AsyncStreamLimitClient(svc.url, token=token) as wrong:
                with pytest.raises(Unauthenticated) as refused:
                    await wrong.list(user)
                assert (refused.value.status, refused.value.code) == (401, "unauthenticated")

    asyncio.run(scenario())


def test_an_api_key_is_sent(
    redis_server: RedisServer, service_factory: Callable[..., Service], tmp_path: Path
) -> None:
    key, line = new_api_key("backend")
    (tmp_path / "keys").write_text(line + "\n")
    svc = service_factory(redis_server.url, auth="api_key", api_keys_file=tmp_path / "keys")
    user = uid()
    with StreamLimitClient(svc.url, api_key=key) as c:
        assert c.list(user).active == 0
    with StreamLimitClient(svc.url, api_key=key + "x") as wrong, pytest.raises(Unauthenticated):
        wrong.list(user)


# --- the blocking client ----------------------------------------------------------------------


def test_sync_client_round_trip(fast: Service) -> None:
    user = uid()
    with StreamLimitClient(fast.url) as c:
        started = c.start(user, "tv", device="tv")
        assert isinstance(started, StartInfo)
        assert started.admitted
        assert isinstance(c.heartbeat(user, "tv"), LeaseInfo)
        assert [s.stream_id for s in c.list(user).streams] == ["tv"]
        typed: StreamList = c.run(c.aio.list(user))
        assert typed.active == 1
        c.set_limit(user, 1)
        with pytest.raises(LimitReached) as refused:  # raised in the calling thread
            c.start(user, "phone")
        assert [s.stream_id for s in refused.value.streams] == ["tv"]
        c.stop(user, "tv")
        assert c.list(user).active == 0
        c.clear_limit(user)
        with pytest.raises(AttributeError):
            c.no_such_method  # noqa: B018
        assert "stop_all" in dir(c)
    c.close()  # idempotent
    with pytest.raises(RuntimeError):
        c.list(user)


@pytest.mark.slow  # waits out several leases in real time
def test_sync_stream_keeps_the_lease_while_the_thread_sleeps_and_reports_loss(fast: Service) -> None:
    user = uid()
    with StreamLimitClient(fast.url) as c:
        with c.stream(user, "tv") as lease:
            first = lease.expires_at
            time.sleep(1.5)  # more than a whole lease
            listed = c.list(user)
            assert [s.stream_id for s in listed.streams] == ["tv"]
            assert not lease.lost
            assert listed.streams[0].expires_at > first + timedelta(seconds=0.5)
        assert c.list(user).active == 0

        gone = threading.Event()

        def watch() -> None:
            with c.stream(user, "old", on_lost=lambda e: gone.set()) as lease:
                c.stop_all(user)  # stopped by someone else
                assert gone.wait(2 * INTERVAL_S + 1.5)
                assert lease.lost  # the thread is not interrupted: it sees the flag

        with pytest.raises(LeaseLost) as lost:
            watch()
        assert isinstance(lost.value.reason, StreamStopped)
        assert lost.value.reason.reason == "stopped_all"

        c.start(user, "a")
        c.set_limit(user, 1)
        with pytest.raises(LimitReached), c.stream(user, "b"):
            pytest.fail("the block must not run")
        c.clear_limit(user)
        c.stop_all(user)


def test_under_the_allow_policy_a_lease_rides_out_an_outage_and_is_admitted_again_after(
    private_store: RedisServer, service_factory: Callable[..., Service]
) -> None:
    """The default policy: while the store is out, starts and heartbeats are answered degraded
    (``active`` and ``epoch`` null) and the client keeps playing; once the store is back, the next
    heartbeat finds no lease, no tombstone and a free slot, and admits the stream again."""
    svc = service_factory(private_store.url, on_store_error="allow", store_timeout_ms=100, **FAST)
    user = uid()
    reasons: list[StreamLimitError] = []

    async def scenario() -> None:
        async with AsyncStreamLimitClient(svc.url) as c:
            private_store.pause()
            try:
                degraded = await c.start(user, "d")
                assert (degraded.degraded, degraded.active, degraded.epoch) == (True, None, None)
                async with c.stream(user, "s", on_lost=reasons.append) as lease:
                    assert lease.info is not None
                    assert lease.info.degraded
                    assert lease.epoch is None
                    await asyncio.sleep(3 * INTERVAL_S)  # degraded heartbeats
                    assert not lease.lost
                    private_store.resume()
                    deadline = time.monotonic() + 3
                    while lease.info.degraded or lease.epoch is None:
                        assert time.monotonic() < deadline, lease.info
                        await asyncio.sleep(0.02)
                    # the paused server still runs the commands it had ("d" may be recorded late)
                    listed = {s.stream_id: s for s in (await c.list(user)).streams}
                    assert listed["s"].epoch == lease.epoch
                    again = await c.heartbeat(user, "s")
                    assert (again.readmitted, again.epoch) == (False, lease.epoch)  # renewed now
            finally:
                private_store.resume()
        assert reasons == []

    asyncio.run(scenario())
