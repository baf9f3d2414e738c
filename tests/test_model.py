"""Model-based tests: random operations on a store, every reply checked against ``tests/model.py``.

One Hypothesis state machine drives the Store interface (start, heartbeat, stop, stop-all, list,
limits) over a few users and stream ids (small pools, so retries, collisions, limits and ties
matter), random lease lengths, limit overrides 0-4 and the passing of time, and compares each
reply, field by field (status, counts, limits, ids, devices, started/expires times), with the
model's.

The memory store runs on a ``FakeClock``: the model is asked at exactly the store's "now".

On a real Redis the clock is the server's ``TIME`` and cannot be controlled, but it is the same
system clock the test reads: a call's store time lies between the test's clock read just before
and just after it. So the model is asked at every instant of that bracket where its answer could
differ (the bracket's ends, each lease expiry inside it, and the instants a reply's times imply)
and the reply must equal one of those answers, exactly. Lease lengths are either long (never
expire during an example) or short (100-200 ms), with a rule that sleeps past the first or the last
pending short expiry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from streamlimit.models import Limits, Start, StartResult, StartStatus, StopResult, Stream, UserStreams
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.connect import open_store
from streamlimit.store.keys import user_keys
from streamlimit.store.memory import FakeClock
from tests.model import Model
from tests.servers import RedisServer

R = TypeVar("R")

USERS = ("a", "a:b")  # two users, and "a:b" is not user "a" with stream "b"
STREAMS = ("b", "B", "b.1", "x:y", "z@1")  # more ids than the largest limit; byte order matters on ties
DEVICES = (None, "", "tv", "a|b", "phone ü")  # "" is not None; "|" is the store's own separator
LONG_TTLS = (90_000, 21_600_000)  # the default lease and the legacy one: never expire in an example
SHORT_TTLS = (100, 200)  # ms: long enough to be seen active on a real server, short enough to wait out

users = st.sampled_from(USERS)
streams = st.sampled_from(STREAMS)
devices = st.sampled_from(DEVICES)
ttls = st.integers(*SHORT_TTLS) | st.sampled_from(LONG_TTLS)
limits = st.sampled_from((1, 2, 3, 4, 0))
default_limits = st.sampled_from((3, 1, 2, 4, 0))  # shrinks towards the real default

STORE_TIMEOUT_MS = 5_000  # a slow CI machine must not turn into StoreUnavailable


def streams_in(reply: object) -> list[Stream]:
    if isinstance(reply, Stream):
        return [reply]
    if isinstance(reply, StartResult):
        return [*([reply.stream] if reply.stream else []), *reply.streams]
    if isinstance(reply, StopResult):
        return [reply.removed] if reply.removed else []
    if isinstance(reply, UserStreams):
        return list(reply.streams)
    return []


class StoreMachine(RuleBasedStateMachine):
    """The rules; a subclass opens the store, reads the store's clock and makes time pass."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.default_limit = 3
        self.history: list[str] = []  # this example's calls and replies, for failure reports
        self.epochs: dict[str, int] = {}  # the last admission's epoch per user
        # one event loop for the machine's lifetime, driven call by call (asyncio.Runner.run would
        # also install a SIGINT handler on every call, which costs more than a memory-store call)
        self.loop = asyncio.new_event_loop()
        try:
            self.store: Store = self.run(self.open_store())
        except BaseException:
            self.loop.close()
            raise

    def run(self, call: Coroutine[Any, Any, R]) -> R:
        return self.loop.run_until_complete(call)

    async def open_store(self) -> Store:
        raise NotImplementedError

    async def close(self) -> None:
        await self.store.close()

    def now_ms(self) -> int:
        """The store's clock, or (real server) the same system clock read from the test."""
        raise NotImplementedError

    def teardown(self) -> None:
        try:
            self.run(self.close())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def check(
        self,
        what: str,
        user: str,
        call: Callable[[], Coroutine[Any, Any, R]],
        expect: Callable[[Model, int], R],
        ttl_ms: int | None = None,
    ) -> R:
        """Run ``call`` on the store and ``expect`` on the model; their replies must be equal."""
        before = self.now_ms()
        actual = self.run(call())
        after = self.now_ms()
        when = f"at {before}" if before == after else f"at some instant in [{before}, {after}]"
        self.history.append(f"{what} {when} -> {actual!r}")
        # the instants in [before, after] where the model's answer can change: the ends, each
        # expiry of this user's leases, and the "now"s the reply's own times imply
        instants = {before, after, *(e for e in self.model.expiries(user) if before < e <= after)}
        for s in streams_in(actual):
            instants.add(s.started_at_ms)
            if ttl_ms is not None:
                instants.add(s.expires_at_ms - ttl_ms)
        for now in sorted(t for t in instants if before <= t <= after):
            trial = self.model.copy()
            if expect(trial, now) == actual:
                self.model = trial
                return actual
        expected = expect(self.model.copy(), before)
        self.fail(
            f"{what} {when}:\n  store replied  {actual!r}\n  model expected {expected!r}"
            + ("" if before == after else " (at the first instant)")
            + f"\n  the model's leases of {user!r} then: {self.model.active(user, before)!r}"
        )

    def fail(self, message: str) -> NoReturn:
        """Fail with the example's calls so far: a real server's timing may not replay exactly."""
        calls = "\n  ".join(self.history[-100:])
        raise AssertionError(f"{message}\nthis example's calls so far, oldest first:\n  {calls}")

    async def started(self, user: str, call: Coroutine[Any, Any, StartResult]) -> StartResult:
        """The store's reply without its epoch, once checked: admissions only ever raise it."""
        result = await call
        assert result.epoch is not None
        last = self.epochs.get(user, 0)
        if result.status is StartStatus.ADMITTED:
            assert result.epoch > last, f"epoch {result.epoch} after {last}"
            self.epochs[user] = result.epoch
        return replace(result, epoch=None)

    # -- configuration ---------------------------------------------------------------------------

    @initialize(default_limit=default_limits)
    def choose_default_limit(self, default_limit: int) -> None:
        self.default_limit = default_limit

    # -- the store's operations ------------------------------------------------------------------

    @rule(user=users, stream=streams, device=devices, ttl=ttls)
    def start(self, user: str, stream: str, device: str | None, ttl: int) -> None:
        dl = self.default_limit
        self.check(
            f"start({user!r}, {stream!r}, {device!r}, ttl={ttl}, default_limit={dl})",
            user,
            lambda: self.started(user, self.store.start(user, stream, device, ttl, Limits(dl), Start())),
            lambda m, now: m.start(user, stream, device, ttl, dl, now),
            ttl,
        )

    @rule(user=users, several=st.lists(st.tuples(streams, devices, ttls), min_size=2, max_size=6))
    def start_several(self, user: str, several: list[tuple[str, str | None, int]]) -> None:
        """A burst of starts for one user at one instant: reaches the limit (and retries) often."""
        for stream, device, ttl in several:
            self.start(user, stream, device, ttl)

    @rule(user=users, stream=streams, ttl=ttls)
    def heartbeat(self, user: str, stream: str, ttl: int) -> None:
        self.check(
            f"heartbeat({user!r}, {stream!r}, ttl={ttl})",
            user,
            lambda: self.store.heartbeat(user, stream, ttl),
            lambda m, now: m.heartbeat(user, stream, ttl, now),
            ttl,
        )

    @rule(user=users, stream=streams)
    def stop(self, user: str, stream: str | None) -> None:
        self.check(
            f"stop({user!r}, {stream!r})",
            user,
            lambda: self.store.stop(user, stream),
            lambda m, now: m.stop(user, stream, now),
        )

    @rule(user=users)
    def stop_the_oldest(self, user: str) -> None:
        self.stop(user, None)

    # The same operations aimed at a stream that was started before (active or not), so that
    # retries, heartbeats and stops of real leases are frequent, not a matter of luck.

    def known(self, pick: int) -> tuple[str, str]:
        started = sorted(self.model.leases)
        return started[pick % len(started)] if started else (USERS[0], STREAMS[0])

    @rule(pick=st.integers(0, 15), device=devices, ttl=ttls)
    def start_a_started_stream(self, pick: int, device: str | None, ttl: int) -> None:
        self.start(*self.known(pick), device, ttl)

    @rule(pick=st.integers(0, 15), ttl=ttls)
    def heartbeat_a_started_stream(self, pick: int, ttl: int) -> None:
        self.heartbeat(*self.known(pick), ttl)

    @rule(pick=st.integers(0, 15))
    def stop_a_started_stream(self, pick: int) -> None:
        self.stop(*self.known(pick))

    @rule(user=users)
    def stop_all(self, user: str) -> None:
        self.check(
            f"stop_all({user!r})",
            user,
            lambda: self.store.stop_all(user),
            lambda m, now: m.stop_all(user, now),
        )

    @rule(user=users, limit=st.none() | limits)
    def set_limit(self, user: str, limit: int | None) -> None:
        dl = self.default_limit
        self.check(
            f"set_limit({user!r}, {limit!r}, default_limit={dl})",
            user,
            lambda: self.store.set_limit(user, limit, Limits(dl)),
            lambda m, now: m.set_limit(user, limit, Limits(dl)),
        )

    @rule(user=users)
    def get_limit(self, user: str) -> None:
        dl = self.default_limit
        self.check(
            f"get_limit({user!r}, default_limit={dl})",
            user,
            lambda: self.store.get_limit(user, Limits(dl)),
            lambda m, now: m.limit_info(user, Limits(dl)),
        )

    @rule(user=users)
    def list_streams(self, user: str) -> None:
        dl = self.default_limit
        self.check(
            f"list({user!r}, default_limit={dl})",
            user,
            lambda: self.store.list(user, Limits(dl)),
            lambda m, now: m.list(user, Limits(dl), now),
        )

    @invariant()
    def every_list_matches(self) -> None:
        for user in USERS:
            self.list_streams(user)


class MemoryMachine(StoreMachine):
    """The memory store on a fake clock: the model is asked at exactly the store's now."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        super().__init__()

    async def open_store(self) -> Store:
        return await open_store(Settings(store_url="memory://"), clock=self.clock)

    def now_ms(self) -> int:
        return self.clock.now_ms

    def pending_expiries(self) -> list[int]:
        now = self.clock.now_ms
        return sorted({s.expires_at_ms for s in self.model.leases.values() if s.expires_at_ms > now})

    @rule(ms=st.integers(0, 250) | st.sampled_from(LONG_TTLS))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self.history.append(f"clock advanced by {ms} to {self.clock.now_ms}")

    @precondition(lambda self: bool(self.pending_expiries()))
    @rule(pick=st.integers(0, 4))
    def advance_to_an_expiry(self, pick: int) -> None:
        """Land exactly on a lease's expiry: from that instant on it is not active."""
        pending = self.pending_expiries()
        self.clock.advance(pending[min(pick, len(pending) - 1)] - self.clock.now_ms)
        self.history.append(f"clock advanced to the expiry {self.clock.now_ms}")


class RedisMachine(StoreMachine):
    """The Redis store on a real valkey-server (``server``), emptied for each example."""

    server: RedisServer

    def __init__(self) -> None:
        self.server.command("FLUSHALL")
        super().__init__()
        self.raw: Redis = Redis.from_url(self.server.url, decode_responses=True)

    async def open_store(self) -> Store:
        return await open_store(Settings(store_url=self.server.url, store_timeout_ms=STORE_TIMEOUT_MS))

    async def close(self) -> None:
        try:
            await self.raw.aclose()
        finally:
            await super().close()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def pending_short_expiries(self) -> list[int]:
        now = self.now_ms()
        return sorted(
            {
                s.expires_at_ms
                for s in self.model.leases.values()
                if now < s.expires_at_ms <= now + SHORT_TTLS[1]
            }
        )

    @rule(last=st.booleans())  # no precondition: one on the real clock would make generation flaky
    def wait_past_expiry(self, last: bool) -> None:
        """Sleep just past the first (or the last) pending short lease's expiry, if any."""
        pending = self.pending_short_expiries()
        if pending:
            target = pending[-1] if last else pending[0]
            time.sleep(max(0, target + 1 - self.now_ms()) / 1000)
            self.history.append(f"slept until {self.now_ms()}, past {target}")

    @invariant()
    def keys_expire_with_their_last_lease(self) -> None:
        """Both lease keys expire exactly with their latest lease (the info key, holding only the
        epoch once the last lease is stopped, within a second of that); the override never does."""

        async def snapshot(user: str) -> list[Any]:
            leases, info, limit = user_keys(user)[:3]
            async with self.raw.pipeline(transaction=True) as p:
                p.zrange(leases, 0, -1, withscores=True)
                p.hkeys(info)
                p.pexpiretime(leases)
                p.pexpiretime(info)
                p.hget(limit, "limit")
                p.pttl(limit)
                return list(await p.execute())

        for user in USERS:
            members, fields, leases_at, info_at, limit, limit_ttl = self.run(snapshot(user))
            last = int(max(score for _, score in members)) if members else -2  # -2: no such key
            override = self.model.limits.get(user)
            found = {
                "expiry of the leases key": leases_at,
                "expiry of the info key": info_at,
                "info fields": sorted(f for f in fields if f != "#epoch"),
                "limit key, its ttl": (limit, limit_ttl),
            }
            # with no lease left, the info key may keep the epoch for at most a second more
            epoch_only = not members and 0 < info_at <= self.now_ms() + 1000
            wanted = {
                "expiry of the leases key": last,
                "expiry of the info key": info_at if epoch_only else last,
                "info fields": sorted(m for m, _ in members),
                "limit key, its ttl": (None, -2) if override is None else (str(override), -1),
            }
            if found != wanted:
                self.fail(f"the keys of {user!r} (leases {members}):\n  found  {found}\n  wanted {wanted}")


# no "explain" phase: on a failure it re-runs the steps under a tracer for minutes, and the steps
# and the mismatching replies already say what went wrong
PHASES = tuple(p for p in Phase if p is not Phase.explain)
MEMORY_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
REDIS_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)


# a passing run takes seconds; a failing one may shrink for longer before it reports
@pytest.mark.timeout(300)
def test_memory_store_matches_the_model() -> None:
    run_state_machine_as_test(MemoryMachine, settings=MEMORY_SETTINGS)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_redis_store_matches_the_model(redis_server: RedisServer) -> None:
    class OnTheSessionServer(RedisMachine):
        server = redis_server

    run_state_machine_as_test(OnTheSessionServer, settings=REDIS_SETTINGS)
