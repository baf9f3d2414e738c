"""Device ids and ``replace=`` in the Python client (streamlimit.client), against a real
`streamlimit serve` process: a restarted player reclaims its slot (the old lease ends as
``StreamReplaced``), "watch here instead of there", the stored device id, and bad ids.

The service has short leases, as tests/test_client.py's, so a lost lease is seen within a
heartbeat or two.
"""

from __future__ import annotations

import asyncio
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamlimit.client import (
    AsyncStreamLimitClient,
    InvalidInput,
    LeaseLost,
    LimitReached,
    ReplaceTargetNotActive,
    StreamEvicted,
    StreamLimitClient,
    StreamLimitError,
    StreamNotActive,
    StreamReplaced,
    default_device_id_path,
    new_device_id,
    stored_device_id,
)
from streamlimit.client.types import StreamList
from streamlimit.ids import is_valid_id
from tests.servers import RedisServer, Service
from tests.test_client import FAST, INTERVAL_S, is_utc, uid


@pytest.fixture(scope="module")
def svc(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(redis_server.url, tmp_path_factory.mktemp("client-devices") / "svc.log", **FAST).start()
    yield s
    s.stop()


# --- a player restarted: the same device id takes its old stream's slot --------------------


def test_a_restarted_player_reclaims_its_slot_and_the_old_lease_ends_as_replaced(
    svc: Service, tmp_path: Path
) -> None:
    user = uid()
    id_file = tmp_path / "state" / "device_id"
    reasons: list[StreamLimitError] = []

    async def scenario() -> None:
        first = AsyncStreamLimitClient(svc.url, device_id=stored_device_id(id_file))
        async with first, AsyncStreamLimitClient(svc.url) as admin:
            await admin.set_limit(user, 1)
            entered = asyncio.Event()

            async def play_until_lost() -> None:
                async with first.stream(user, "before", device="tv", on_lost=reasons.append) as lease:
                    assert lease.device_id == first.device_id
                    assert lease.started is not None
                    assert lease.started.device_id == first.device_id
                    entered.set()
                    await asyncio.sleep(10)

            old = asyncio.create_task(play_until_lost())
            await asyncio.wait_for(entered.wait(), 5)
            # another device at the limit of 1 is refused, and sees which device holds the slot
            with pytest.raises(LimitReached) as refused:
                await admin.start(user, "elsewhere", device_id=new_device_id())
            assert [(s.stream_id, s.device, s.device_id) for s in refused.value.streams] == [
                ("before", "tv", first.device_id)
            ]
            assert refused.value.counts == "streams"

            # "the player crashed": a new client instance reads the same id from the same file
            second = AsyncStreamLimitClient(svc.url, device_id=stored_device_id(id_file))
            assert second.device_id == first.device_id
            async with second:
                started = await second.start(user, "after", device="tv")
            assert (started.admitted, started.active, started.evicted) == (True, 1, ())
            assert [(s.stream_id, s.device_id) for s in started.replaced] == [("before", first.device_id)]
            assert started.device_id == first.device_id

            with pytest.raises(LeaseLost) as lost:
                await asyncio.wait_for(old, 2 * INTERVAL_S + 2)
            reason = lost.value.reason
            assert isinstance(reason, StreamReplaced)
            assert isinstance(reason, StreamNotActive)  # catching StreamNotActive still catches it
            assert (reason.status, reason.code, reason.replaced_by) == (410, "stream_replaced", "after")
            assert is_utc(reason.replaced_at)
            assert reasons == [reason]  # on_lost was called with it, once

            listed = await admin.list(user)
            assert [(s.stream_id, s.device_id) for s in listed.streams] == [("after", first.device_id)]
            event = (await admin.events(user))[0]
            assert (event.action, event.streams, event.value, event.device_id) == (
                "replaced",
                ("before",),
                "after",
                first.device_id,
            )
            await admin.stop_all(user)

    asyncio.run(scenario())


def test_the_sync_client_sends_its_device_id_and_reports_a_replaced_lease(svc: Service) -> None:
    user = uid()
    device = new_device_id()
    gone = threading.Event()
    with StreamLimitClient(svc.url, device_id=device) as c, StreamLimitClient(svc.url) as other:
        assert c.device_id == device

        def watch() -> None:
            with c.stream(user, "one", on_lost=lambda e: gone.set()) as lease:
                assert lease.device_id == device
                assert c.get_stream(user, "one").device_id == device
                # the same device starts again (another process of the same installation)
                assert [s.stream_id for s in other.start(user, "two", device_id=device).replaced] == ["one"]
                assert gone.wait(2 * INTERVAL_S + 2)
                assert lease.lost  # the thread is not interrupted: it sees the flag

        with pytest.raises(LeaseLost) as lost:
            watch()
        assert isinstance(lost.value.reason, StreamReplaced)
        assert lost.value.reason.replaced_by == "two"
        other.stop_all(user)


def test_a_per_call_device_id_wins_over_the_clients_and_none_is_sent_by_default(svc: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with (
            AsyncStreamLimitClient(svc.url) as backend,
            AsyncStreamLimitClient(svc.url, device_id="tv-install") as player,
        ):
            assert backend.device_id is None
            await backend.set_limit(user, 4)
            assert (await backend.start(user, "a")).device_id is None
            assert (await backend.start(user, "b")).replaced == ()  # no id: no stream replaces another
            assert (await player.start(user, "c", device_id="phone-install")).device_id == "phone-install"
            async with player.stream(user, "d", device_id="laptop-install") as lease:
                assert lease.device_id == "laptop-install"
                assert lease.started is not None
                assert lease.started.device_id == "laptop-install"
            listed = await backend.list(user)
            assert [(s.stream_id, s.device_id) for s in listed.streams] == [
                ("a", None),
                ("b", None),
                ("c", "phone-install"),
            ]
            await backend.stop_all(user)

    asyncio.run(scenario())


# --- "watch here instead of there" --------------------------------------------------------


def test_replace_stops_the_named_stream_in_the_new_ones_favour(svc: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(svc.url) as c:
            await c.set_limit(user, 2)
            await c.start(user, "tv", device="TV", device_id="tv-1")
            await c.start(user, "phone", device="Phone", device_id="phone-1")
            with pytest.raises(LimitReached) as refused:
                await c.start(user, "laptop", device_id="laptop-1")
            # the viewer picks the phone from the 409's list
            chosen = next(s for s in refused.value.streams if s.device == "Phone")
            took = await c.start(user, "laptop", device_id="laptop-1", replace=chosen.stream_id)
            assert (took.admitted, took.active, took.replaced) == (True, 2, ())
            assert [(s.stream_id, s.device_id) for s in took.evicted] == [("phone", "phone-1")]
            with pytest.raises(StreamEvicted) as evicted:
                await c.heartbeat(user, "phone")
            assert evicted.value.replaced_by == "laptop"
            event = (await c.events(user))[0]
            assert (event.action, event.streams, event.value) == ("evicted", ("phone",), "laptop")

            # the stream to replace went meanwhile: 404, nothing started
            with pytest.raises(ReplaceTargetNotActive) as missing:
                await c.start(user, "tablet", replace="phone")
            e = missing.value
            assert isinstance(e, StreamNotActive)
            assert (e.status, e.code, e.stream_id, e.body["field"]) == (
                404,
                "stream_not_active",
                "phone",
                "replace",
            )
            assert [s.stream_id for s in (await c.list(user)).streams] == ["tv", "laptop"]

            # through a held lease
            async with c.stream(user, "tablet", replace="tv") as lease:
                assert lease.started is not None
                assert [s.stream_id for s in lease.started.evicted] == ["tv"]
                assert [s.stream_id for s in (await c.list(user)).streams] == ["laptop", "tablet"]
            with pytest.raises(ReplaceTargetNotActive):
                async with c.stream(user, "again", replace="tv"):
                    pytest.fail("the block must not run")
            await c.stop_all(user)

    asyncio.run(scenario())


def test_limits_counting_devices_are_typed(
    redis_server: RedisServer, service_factory: Callable[..., Service]
) -> None:
    devices = service_factory(
        redis_server.url, default_limit=1, limit_counts="devices", streams_per_device=2, start_rate_per_min=0
    )
    user = uid()
    with StreamLimitClient(devices.url, device_id="tv-1") as c:
        assert c.start(user, "main").counts == "devices"
        pip = c.start(user, "picture-in-picture")
        assert (pip.active, pip.replaced) == (1, ())  # two streams, one device
        listed: StreamList = c.list(user)
        assert (listed.counts, listed.active, len(listed.streams), listed.remaining) == ("devices", 1, 2, 0)
        with pytest.raises(LimitReached) as refused:
            c.start(user, "phone", device_id="phone-1")
        assert (refused.value.counts, refused.value.active, len(refused.value.streams)) == ("devices", 1, 2)
        c.stop_all(user)


# --- bad ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "has space", "x" * 129, "a/b", "{tag}", ".."])
def test_a_client_with_an_invalid_device_id_is_refused_at_once(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid device id"):
        AsyncStreamLimitClient("http://127.0.0.1:1", device_id=bad)
    with pytest.raises(ValueError, match="invalid device id"):
        StreamLimitClient("http://127.0.0.1:1", device_id=bad)


def test_an_invalid_device_id_or_replace_per_call_is_named_by_the_service(svc: Service) -> None:
    user = uid()

    async def scenario() -> None:
        async with AsyncStreamLimitClient(svc.url) as c:
            for device_id, replace, field in (
                ("has space", None, "device_id"),
                ("x" * 129, None, "device_id"),
                (None, "a/b", "replace"),
            ):
                with pytest.raises(InvalidInput) as refused:
                    await c.start(user, "s", device_id=device_id, replace=replace)
                e = refused.value
                assert (e.status, e.code, e.field, e.transient) == (422, "invalid_id", field, False)
            assert (await c.list(user)).streams == ()

    asyncio.run(scenario())


# --- the stored device id -----------------------------------------------------------------


def test_a_stored_device_id_is_created_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "device_id"
    first = stored_device_id(path)
    assert is_valid_id(first)
    assert stored_device_id(path) == first
    assert stored_device_id(str(path)) == first  # a str works as a Path does
    assert path.read_text() == first + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["device_id"]  # no temporary file left
    assert new_device_id() != new_device_id()


def test_a_stored_device_id_file_without_a_valid_id_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "device_id"
    for junk in (b"", b"not an id\n", b"\xff\xfe"):
        path.write_bytes(junk)
        fresh = stored_device_id(path)
        assert is_valid_id(fresh)
        assert stored_device_id(path) == fresh
    path.write_text("  hand-written-id  \n")  # surrounding whitespace is not part of it
    assert stored_device_id(path) == "hand-written-id"


def test_callers_creating_the_stored_device_id_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "device_id"
    barrier = threading.Barrier(8)
    got: list[str] = []

    def create() -> None:
        barrier.wait()
        got.append(stored_device_id(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8
    assert set(got) == {path.read_text().strip()}


def test_the_default_place_follows_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_device_id_path() == tmp_path / "state" / "streamlimit" / "device_id"
    created = stored_device_id()
    assert (tmp_path / "state" / "streamlimit" / "device_id").read_text().strip() == created
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # invalid per the spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_device_id_path() == tmp_path / "home" / ".local" / "state" / "streamlimit" / "device_id"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_device_id_path() == tmp_path / "home" / ".local" / "state" / "streamlimit" / "device_id"
