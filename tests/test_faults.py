"""Faults under load, against real processes: the store killed or out of memory, a service
process killed, a service process terminated with requests in flight.

Every request of a load is recorded (send time, answer time, status, degraded flag, problem
code) and the checks are made on that record afterwards. ``test_outage.py`` covers an idle
service whose store is stopped or paused; here the faults strike while a load is running.
The store restarts from its AOF are in ``test_faults_store.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from tests.servers import RedisServer, Service, free_port

Factory = Callable[..., Service]

LIMIT = 3  # the default limit
TIMEOUT_MS = 300
MARGIN_S = 1.5  # HTTP and scheduling under load (a stalled VM), on top of the store timeout (at least)
RECOVERY_S = 5.0
EXPECTED = {"start": {201}, "heartbeat": {200, 404}, "stop": {204}, "list": {200}}
DEGRADED = {"start": {200}, "heartbeat": {200}, "stop": {204}}
# for services whose players start a new stream every few ms: the per-user start budget
# (STREAMLIMIT_START_RATE_PER_MIN, 30 by default) would answer them 429; it has its own tests
NO_BUDGET: dict[str, Any] = {"start_rate_per_min": 0}


@dataclass(frozen=True)
class Call:
    """One request and its answer; ``status`` None means no HTTP answer came back."""

    who: str
    op: str
    user: str
    stream: str
    sent: float  # monotonic
    got: float  # monotonic
    status: int | None
    degraded: bool = False
    code: str | None = None
    error: str | None = None
    body: Any = field(default=None, compare=False)
    wall: float = 0.0  # epoch s at sending, to compare with the times the service reports

    @property
    def took(self) -> float:
        return self.got - self.sent

    @property
    def got_wall(self) -> float:
        return self.wall + self.took

    def __str__(self) -> str:
        what = self.error or f"{self.status} degraded={self.degraded} code={self.code}"
        return f"{self.who} {self.op} {self.user}/{self.stream} at {self.sent:.3f} +{self.took:.3f}s: {what}"


def fresh(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}"


def load_client(connections: int = 100, keepalive: bool = True) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections if keepalive else 0
    )
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10.0))


def request_of(op: str, base: str, user: str, stream: str) -> tuple[str, str, Any]:
    v1 = f"{base}/v1/users/{user}/streams"
    return {
        "start": ("POST", v1, {"stream_id": stream}),
        "heartbeat": ("POST", f"{v1}/{stream}/heartbeat", None),
        "stop": ("DELETE", f"{v1}/{stream}", None),
        "list": ("GET", v1, None),
    }[op]


async def call(c: httpx.AsyncClient, who: str, base: str, op: str, user: str, stream: str = "") -> Call:
    method, url, payload = request_of(op, base, user, stream)
    wall, sent = time.time(), time.monotonic()
    try:
        r = await c.request(method, url, json=payload)
    except httpx.HTTPError as exc:
        failed = f"{type(exc).__name__}: {exc}"
        return Call(who, op, user, stream, sent, time.monotonic(), None, error=failed, wall=wall)
    got = time.monotonic()
    degraded = r.headers.get("x-streamlimit-degraded") == "1"
    code: str | None = None
    body: Any = None
    error: str | None = None
    if r.content:
        body = r.json()
        if r.headers["content-type"] == "application/problem+json":
            code = body["code"]
        elif isinstance(body, dict) and "degraded" in body and body["degraded"] is not degraded:
            error = f"degraded header {degraded} but body {body['degraded']}"
    return Call(who, op, user, stream, sent, got, r.status_code, degraded, code, error, body, wall)


def normal(c: Call) -> bool:
    """A real answer from the store: no outage, nothing degraded."""
    return c.error is None and not c.degraded and c.status in EXPECTED[c.op]


def unavailable(c: Call) -> bool:
    return c.error is None and c.status == 503 and c.code == "store_unavailable" and not c.degraded


def degraded(c: Call) -> bool:
    return c.error is None and c.degraded and c.status in DEGRADED[c.op]


def lines(calls: Iterable[Call], n: int = 8) -> str:
    shown = list(calls)
    return "\n".join(str(c) for c in shown[:n]) + (f"\n... {len(shown) - n} more" if len(shown) > n else "")


def check_none(what: str, bad: list[Call]) -> None:
    assert not bad, f"{len(bad)} {what}:\n{lines(bad)}"


async def cycler(
    c: httpx.AsyncClient, who: str, base: str, user: str, done: asyncio.Event, calls: list[Call]
) -> None:
    """A player: start a new stream, heartbeat it twice, stop it; over and over until ``done``."""
    n = 0
    while not done.is_set():
        n += 1
        stream = f"s{n}"
        calls.append(r := await call(c, who, base, "start", user, stream))
        if r.status in (200, 201):
            for op in ("heartbeat", "heartbeat", "stop"):
                calls.append(await call(c, who, base, op, user, stream))
        await asyncio.sleep(0.01)


def pid_of(svc: Service) -> int:
    assert svc.proc is not None
    return svc.proc.pid


def assert_running(svc: Service, pid: int) -> None:
    assert svc.proc is not None
    assert (svc.proc.pid, svc.proc.poll()) == (pid, None), svc.log_path.read_text()[-3000:]


async def exactly_the_limit(services: list[Service], when: str, starts: int = 32) -> None:
    """A fresh user, ``starts`` simultaneous starts spread over ``services``: exactly LIMIT
    admitted, none degraded, every other one refused (409)."""
    user = fresh("limit")
    async with load_client() as c:
        replies = await asyncio.gather(
            *(
                call(c, "check", services[i % len(services)].url, "start", user, f"x{i}")
                for i in range(starts)
            )
        )
        wrong = [r for r in replies if r.degraded or r.status not in (201, 409)]
        check_none(f"answers neither 201 nor 409 to a burst of {starts} starts {when}", wrong)
        expected = [201] * LIMIT + [409] * (starts - LIMIT)
        assert sorted(r.status or 0 for r in replies) == expected, lines(replies)
        listing = await call(c, "check", services[0].url, "list", user)
        assert listing.body["active"] == LIMIT, listing.body


async def serves_normally(svcs: list[Service]) -> None:
    """A new stream through each service: admitted for real, and listed."""
    async with load_client() as c:
        for svc in svcs:
            user = fresh("normal")
            r = await call(c, "check", svc.url, "start", user, "s")
            assert (r.status, r.degraded) == (201, False), str(r)
            listing = await call(c, "check", svc.url, "list", user)
            assert [s["stream_id"] for s in listing.body["streams"]] == ["s"], listing.body


@pytest.fixture
def store(private_store: RedisServer) -> RedisServer:
    return private_store


# -- the store killed mid-load --------------------------------------------------------------


@dataclass
class KillTimes:
    kill: float = 0.0  # SIGKILL sent
    dead: float = 0.0  # the store process reaped
    restart: float = 0.0  # a new store launched on the same port
    up: float = 0.0  # it answers PING


async def load_through_a_store_kill(
    store: RedisServer, svcs: dict[str, Service]
) -> tuple[list[Call], KillTimes]:
    calls: list[Call] = []
    times = KillTimes()
    done = asyncio.Event()
    async with load_client(200) as c:
        players = [
            asyncio.create_task(cycler(c, who, svc.url, fresh(who), done, calls))
            for who, svc in svcs.items()
            for _ in range(6)
        ]
        try:
            await asyncio.sleep(0.8)
            assert calls, "no load before the kill"
            times.kill = time.monotonic()
            await asyncio.to_thread(store.kill)
            times.dead = time.monotonic()
            await asyncio.sleep(1.5)  # the outage, under load
        finally:
            times.restart = time.monotonic()
            await asyncio.to_thread(store.start)
            times.up = time.monotonic()
        try:
            # go on until 1 s of nothing but normal answers (at most RECOVERY_S + 1 s)
            while time.monotonic() < times.restart + RECOVERY_S + 1:
                await asyncio.sleep(0.1)
                bad = [x.got for x in calls if x.sent >= times.dead and not normal(x)]
                if time.monotonic() - max(bad, default=times.restart) > 1.0:
                    break
        finally:
            done.set()
            await asyncio.gather(*players)
    return calls, times


def test_store_killed_mid_load_deny_503s_allow_degrades_and_the_same_processes_recover(
    store: RedisServer, service_factory: Factory
) -> None:
    """Players (start, heartbeat x2, stop) on a deny and an allow process; SIGKILL the store
    under them, relaunch it 1.5 s later on the same port (empty: no persistence here)."""
    svcs = {
        policy: service_factory(store.url, on_store_error=policy, store_timeout_ms=TIMEOUT_MS, **NO_BUDGET)
        for policy in ("deny", "allow")
    }
    pids = {who: pid_of(svc) for who, svc in svcs.items()}
    calls, t = asyncio.run(load_through_a_store_kill(store, svcs))

    check_none("requests without an HTTP answer", [c for c in calls if c.status is None or c.error])
    check_none("requests that took 5 s or more", [c for c in calls if c.took >= 5])
    before = [c for c in calls if c.got < t.kill]
    # the policy's answers come within the store timeout, plus what HTTP itself takes on this
    # machine at the moment (other test suites may be loading it): the slowest normal answer
    margin = max(MARGIN_S, *(c.took for c in before))
    bound = TIMEOUT_MS / 1000 + margin
    policy = [c for c in calls if c.sent > t.kill and not normal(c)]
    check_none(f"outage answers slower than {bound:.2f} s", [c for c in policy if c.took > bound])
    check_none("abnormal answers before the kill", [c for c in before if not normal(c)])
    out = [c for c in calls if t.dead <= c.sent and c.got <= t.restart]
    for who, fine in (("deny", unavailable), ("allow", degraded)):
        mine = [c for c in out if c.who == who]
        assert len(mine) >= 20, f"{who}: only {len(mine)} requests during the outage"
        check_none(
            f"{who} answers during the outage that are not the policy's", [c for c in mine if not fine(c)]
        )
        if who == "allow":
            assert {c.op for c in mine} >= {"start", "heartbeat", "stop"}, lines(mine)
        after = [c for c in calls if c.who == who and c.sent > t.kill]
        wrong = [c for c in after if not (normal(c) or fine(c))]  # across the transitions too
        check_none(f"{who} answers after the kill that are neither normal nor the policy's", wrong)

    bad_after_restart = [c.got for c in calls if c.sent >= t.dead and not normal(c)]
    recovered = max(bad_after_restart) - t.restart
    late = [c for c in calls if c.sent >= t.restart + RECOVERY_S and not normal(c)]
    print(
        f"\nstore SIGKILL mid-load: {len(calls)} requests, {len(out)} during the "
        f"{t.restart - t.dead:.2f} s outage; store answered PING {t.up - t.restart:.2f} s after relaunch; "
        f"last abnormal answer {recovered:.2f} s after relaunch; slowest outage answer "
        f"{max(c.took for c in policy):.2f} s (bound {bound:.2f} s)"
    )
    assert recovered < RECOVERY_S, f"still abnormal {recovered:.2f} s after the store came back"
    check_none(f"abnormal answers {RECOVERY_S} s after the restart", late)
    assert [c for c in calls if c.sent > t.restart + recovered], "no load after recovery"
    for who, svc in svcs.items():
        assert_running(svc, pids[who])  # the same processes, never restarted
    asyncio.run(exactly_the_limit(list(svcs.values()), "once the load had recovered"))


# -- a service process killed mid-load ------------------------------------------------------

TTL_S = 2.0
BEAT_S = 0.5  # 1.5 s of slack before a late heartbeat loses its lease on a busy machine
CLOCK_S = 0.1  # the store's clock is this machine's; this covers rounding to milliseconds
LATE_S = 0.5  # a dead service's last writes, run by a briefly stalled store


async def holder(
    c: httpx.AsyncClient, who: str, base: str, user: str, done: asyncio.Event, calls: list[Call]
) -> None:
    """A household at its limit: LIMIT streams heartbeated every BEAT_S; vanishes with its server."""
    streams = [f"h{i}" for i in range(LIMIT)]
    for stream in streams:
        calls.append(r := await call(c, who, base, "start", user, stream))
        if r.status is None:
            return
    while not done.is_set():
        t0 = time.monotonic()
        beats = await asyncio.gather(*(call(c, who, base, "heartbeat", user, s) for s in streams))
        calls.extend(beats)
        if any(r.status is None for r in beats):  # its server is gone: the player stops, no goodbye
            return
        await asyncio.sleep(max(0.0, BEAT_S - (time.monotonic() - t0)))


async def poll_until_free(c: httpx.AsyncClient, base: str, user: str, deadline: float) -> list[Call]:
    """List ``user`` every 20 ms until no stream is active (or the wall clock passes ``deadline``)."""
    polls: list[Call] = []
    while time.time() < deadline:
        polls.append(r := await call(c, "poll", base, "list", user))
        if r.status == 200 and r.body["active"] == 0:
            break
        await asyncio.sleep(0.02)
    return polls


@dataclass
class ServiceKill:
    calls: list[Call]  # the load
    polls: dict[str, list[Call]]  # user of the killed process -> its lists through the other one
    killed: float  # monotonic
    killed_wall: float  # epoch s


async def kill_one_service_mid_load(a: Service, b: Service) -> ServiceKill:
    calls: list[Call] = []
    done = asyncio.Event()
    users = {who: [fresh(f"hold-{who}") for _ in range(4)] for who in ("a", "b")}
    async with load_client(200) as c:
        tasks = [
            asyncio.create_task(player(c, who, svc.url, user, done, calls))
            for who, svc in (("a", a), ("b", b))
            for player, user in [
                *((holder, u) for u in users[who]),
                *((cycler, fresh(who)) for _ in range(4)),
            ]
        ]
        try:
            await asyncio.sleep(1.2)
            assert a.proc is not None
            killed, killed_wall = time.monotonic(), time.time()
            a.proc.kill()
            await asyncio.to_thread(a.proc.wait, 5)
            deadline = killed_wall + TTL_S + 3
            polls = await asyncio.gather(*(poll_until_free(c, b.url, u, deadline) for u in users["a"]))
            # b's load goes on past a full lease TTL after the kill (a's leases may end up to one
            # beat earlier than that) and a little after a's slots were seen free
            await asyncio.sleep(max(0.3, killed + TTL_S + 0.3 - time.monotonic()))
        finally:
            done.set()
            await asyncio.gather(*tasks)
        for user in users["b"]:  # b's households still hold every slot
            calls.append(await call(c, "b-end", b.url, "list", user))
        for user in users["a"]:  # a's households get their slots back through b
            starts = [await call(c, "b", b.url, "start", user, f"new{i}") for i in range(LIMIT)]
            assert [s.status for s in starts] == [201] * LIMIT, lines(starts)
    return ServiceKill(calls, dict(zip(users["a"], polls, strict=True)), killed, killed_wall)


def acked_expiry(calls: list[Call], user: str) -> dict[str, float]:
    """stream -> the latest expires_at (epoch s) acknowledged to ``user`` by a start or heartbeat."""
    out: dict[str, float] = {}
    for c in calls:
        if c.user == user and c.op in ("start", "heartbeat") and c.status in (200, 201):
            out[c.stream] = max(out.get(c.stream, 0.0), epoch(c.body["expires_at"]))
    return out


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def test_a_service_killed_mid_load_leaves_the_others_serving_and_its_leases_expire(
    redis_url: str, service_factory: Factory
) -> None:
    """Two processes on one store, each with households at their limit (heartbeating) and
    players; SIGKILL one process. Its households vanish with it (their heartbeats fail)."""
    a, b = (
        service_factory(redis_url, lease_ttl_s=TTL_S, heartbeat_interval_s=BEAT_S, **NO_BUDGET)
        for _ in range(2)
    )
    b_pid = pid_of(b)
    k = asyncio.run(kill_one_service_mid_load(a, b))

    assert a.proc is not None
    assert a.proc.returncode == -signal.SIGKILL
    assert_running(b, b_pid)
    b_calls = [c for c in k.calls if c.who == "b"]
    check_none("abnormal answers from the surviving process", [c for c in b_calls if not normal(c)])
    assert [c for c in b_calls if c.sent > k.killed + TTL_S], "b's load stopped too early"
    b_beats = [c for c in b_calls if c.op == "heartbeat" and c.user.startswith("hold")]
    check_none("lost leases of the surviving process's households", [c for c in b_beats if c.status != 200])
    ends = [c for c in k.calls if c.who == "b-end"]
    check_none("surviving households without every slot", [c for c in ends if c.body["active"] != LIMIT])
    a_calls = [c for c in k.calls if c.who == "a"]
    check_none(
        "abnormal answers from a before the kill", [c for c in a_calls if c.got < k.killed and not normal(c)]
    )
    check_none("answers from a after the kill", [c for c in a_calls if c.sent > k.killed and c.status])
    freed_after = []
    for user, polls in k.polls.items():
        check_none(f"{user}: failed lists", [p for p in polls if not normal(p)])
        held = acked_expiry(k.calls, user)
        for p in polls:  # a slot is held until its lease ends: never freed early
            listed = {s["stream_id"] for s in p.body["streams"]}
            early = [s for s, until in held.items() if until > p.got_wall + CLOCK_S and s not in listed]
            assert not early, f"{user}: {early} gone before their lease end at {p}"
        # ... and freed within the lease TTL of the kill: a list made later finds nothing
        # (a heartbeat a wrote just before it died may still run in the store a little later)
        late = [p for p in polls if p.wall > k.killed_wall + TTL_S + LATE_S and p.body["active"]]
        check_none(f"{user}: lists more than {TTL_S} s after the kill with a stream still active", late)
        assert polls[-1].body["active"] == 0, f"{user}: still active {TTL_S + 3} s after the kill"
        freed_after.append(polls[-1].wall - k.killed_wall)
    print(
        f"\nservice SIGKILL: its {len(k.polls)} households' slots seen free "
        f"{min(freed_after):.2f}-{max(freed_after):.2f} s after the kill (lease TTL {TTL_S} s)"
    )


# -- SIGTERM with requests in flight --------------------------------------------------------


async def in_flight_through_sigterm(store: RedisServer, svc: Service) -> tuple[list[Call], float, float]:
    assert svc.proc is not None
    proc = svc.proc
    async with load_client(100, keepalive=False) as c:
        users = [fresh("inflight") for _ in range(30)]
        warm = await call(c, "svc", svc.url, "start", users[0], "warm")
        assert normal(warm), str(warm)
        ops = [("start", u, "s") if i % 3 else ("list", u, "") for i, u in enumerate(users)]
        store.pause()  # every request now waits on the store
        try:
            tasks = [asyncio.create_task(call(c, "svc", svc.url, op, u, s)) for op, u, s in ops]
            await asyncio.sleep(1.0)  # all sent, accepted and waiting, well inside the 3 s store timeout
            assert not [t for t in tasks if t.done()], "requests answered while the store was paused"
            terminated = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
        finally:
            resumed = time.monotonic()
            store.resume()
        return list(await asyncio.gather(*tasks)), terminated, resumed


def test_sigterm_lets_in_flight_requests_finish_before_the_process_exits(
    store: RedisServer, service_factory: Factory
) -> None:
    """30 requests held in flight by a paused store (SIGSTOP), SIGTERM to the service, the
    store resumed 0.3 s later: every request gets its real answer, then the process exits."""
    svc = service_factory(store.url, store_timeout_ms=3000, on_store_error="deny")
    calls, terminated, resumed = asyncio.run(in_flight_through_sigterm(store, svc))
    assert svc.proc is not None
    proc = svc.proc

    check_none(
        "in-flight requests without a complete answer", [c for c in calls if c.status is None or c.error]
    )
    check_none("in-flight requests not answered by the store", [c for c in calls if not normal(c)])
    check_none("requests answered before the store resumed", [c for c in calls if c.got < resumed])
    t0 = time.monotonic()
    proc.wait(10)
    exited = time.monotonic() - terminated
    print(
        f"\nSIGTERM with {len(calls)} requests in flight: all answered, "
        f"exit {proc.returncode} {exited:.2f} s after SIGTERM (waited {time.monotonic() - t0:.2f} s)"
    )
    assert exited < 5, f"exited {exited:.2f} s after SIGTERM"
    log = svc.log_path.read_text()
    assert "Application shutdown complete" in log, log[-3000:]


def test_sigterm_exits_with_status_zero(redis_url: str, service_factory: Factory) -> None:
    """A graceful stop is a success: supervisors and CI read the exit status.

    uvicorn (0.29+) re-raises the SIGTERM it handled once it has shut down, so unless
    ``streamlimit serve`` handles that signal itself the process dies of it (-15, shell 143).
    """
    svc = service_factory(redis_url)
    assert svc.proc is not None
    os.kill(svc.proc.pid, signal.SIGTERM)
    code = svc.proc.wait(10)
    assert code == 0, (
        f"`streamlimit serve` exited with {code} after SIGTERM; log:\n{svc.log_path.read_text()}"
    )


# -- the store's memory limit ---------------------------------------------------------------


MAXMEMORY = 2 * 1024 * 1024
CHUNK = 10_000  # filler values: 10 000 bytes, a 10 240-byte allocation


def fill_memory(store: RedisServer, headroom: int = 500_000) -> None:
    """Fill the store up to ``headroom`` below its maxmemory: room for the clients and some leases."""
    with redis.Redis(port=store.port) as r:
        n = max(0, (MAXMEMORY - int(r.info("memory")["used_memory"]) - headroom) // 10_240)
        with r.pipeline(transaction=False) as p:
            for i in range(n):
                p.setrange(f"filler:{i}", CHUNK - 1, "x")
            p.execute()


async def squeeze(store: RedisServer, done: asyncio.Event) -> int:
    """Add a chunk every 0.05 s until ``done``; return how many the store refused for memory.

    Client buffers make the store's usage wander by hundreds of kB as the load starts, so a
    fixed filler may leave it far from full or full already; squeezing reaches the limit
    within a second or two, with leases admitted first, and keeps it there.
    """
    r = aioredis.Redis(port=store.port)
    n = refused = 0
    try:
        while not done.is_set():
            try:
                await r.setrange(f"squeeze:{n}", CHUNK - 1, "x")
            except redis.OutOfMemoryError:
                refused += 1
            n += 1
            await asyncio.sleep(0.05)
    finally:
        await r.aclose()
    return refused


def free_memory(store: RedisServer) -> int:
    """Lift the limit and drop the filler; return how many writes the store refused for memory."""
    with redis.Redis(port=store.port) as r:
        oom = r.info("errorstats").get("errorstat_OOM", {"count": 0})
        r.config_set("maxmemory", 0)
        r.delete(*r.keys("filler:*"), *r.keys("squeeze:*"))
    return int(oom["count"])


async def bounded(coros: Iterable[Coroutine[Any, Any, Call]], n: int = 16) -> list[Call]:
    """Run ``coros`` at most ``n`` at a time: one httpx pool with hundreds queued crawls."""
    gate = asyncio.Semaphore(n)

    async def one(coro: Coroutine[Any, Any, Call]) -> Call:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def fill_until_oom(store: RedisServer, svcs: dict[str, Service]) -> tuple[list[Call], int]:
    """Starts of new streams (and some heartbeats) through both services, the store's free
    memory squeezed meanwhile, until each service has had 30 starts refused (at most 20 s)."""
    calls: list[Call] = []
    done, full = asyncio.Event(), asyncio.Event()
    refused = dict.fromkeys(svcs, 0)

    async def admitter(c: httpx.AsyncClient, who: str, base: str) -> None:
        user, n = fresh(f"oom-{who}"), 0
        while not done.is_set():
            n += 1
            calls.append(r := await call(c, who, base, "start", user, f"s{n}"))
            if n % 4 == 0:
                calls.append(await call(c, who, base, "heartbeat", user, f"s{n // 2}"))
            refused[who] += r.status != 201
            if min(refused.values()) >= 30:
                full.set()

    async with load_client(100) as c:
        tasks = [asyncio.create_task(admitter(c, w, s.url)) for w, s in svcs.items() for _ in range(6)]
        squeezer = asyncio.create_task(squeeze(store, done))
        try:
            await asyncio.wait_for(full.wait(), 20)
        finally:
            done.set()
            await asyncio.gather(*tasks)
    return calls, await squeezer


async def listings(svc: Service, users: list[str]) -> dict[str, set[str]]:
    async with load_client(50) as c:
        replies = await bounded(call(c, "list", svc.url, "list", u) for u in users)
    check_none("failed lists", [r for r in replies if not normal(r)])
    return {r.user: {s["stream_id"] for s in r.body["streams"]} for r in replies}


# valkey refuses a script's write for memory only while the script has written nothing yet, so
# start.lua's first write must be one that grows memory: with the budget on it is the SET of the
# "rate" key, with it off the new lease's ZADD (an HDEL or ZREM first would let the rest through)
@pytest.mark.parametrize(
    "starts_per_min",
    [
        # on, at a rate this load never reaches: every admission writes the "rate" key first
        pytest.param(100_000, id="budget-on"),
        pytest.param(0, id="budget-off"),
    ],
)
def test_store_out_of_memory_is_unavailable_or_degraded_never_a_500_or_a_wrong_admission(
    tmp_path: Path, service_factory: Factory, starts_per_min: int
) -> None:
    """A deny and an allow process admit new streams until the store (maxmemory 2 MB,
    noeviction) refuses writes; then memory is freed and every answer is checked against
    what the store really holds. The per-user start budget would answer this load 429 at its
    default rate (it has its own tests): it is off, or on at a rate the load never reaches."""
    limits = ("--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction")
    store = RedisServer(tmp_path / "oom-store", free_port(), *limits)
    store.start()
    try:
        svcs = {
            p: service_factory(
                store.url,
                on_store_error=p,
                lease_ttl_s=600,
                default_limit=1000,
                start_rate_per_min=starts_per_min,
            )
            for p in ("deny", "allow")
        }
        fill_memory(store)
        calls, squeezes_refused = asyncio.run(fill_until_oom(store, svcs))
        ooms = free_memory(store) - squeezes_refused  # the services' writes refused for memory

        check_none("requests without an HTTP answer", [c for c in calls if c.status is None or c.error])
        check_none(
            "5xx other than 503 store_unavailable",
            [c for c in calls if (c.status or 0) >= 500 and not unavailable(c)],
        )
        assert ooms > 0, "the store never refused a write for lack of memory"
        admitted = [c for c in calls if c.op == "start" and normal(c)]
        assert len(admitted) >= 20, f"only {len(admitted)} leases admitted before the store was full"
        for who, fine in (("deny", unavailable), ("allow", degraded)):
            mine = [c for c in calls if c.who == who]
            odd = [c for c in mine if not (normal(c) or fine(c))]
            check_none(f"{who}: answers neither normal nor the policy's", odd)
            assert len([c for c in mine if fine(c)]) >= 30, f"{who}: the store never filled up"
        stored = asyncio.run(listings(svcs["deny"], sorted({c.user for c in calls})))
        lost = [c for c in admitted if c.stream not in stored[c.user]]
        check_none("201s (not degraded) whose lease is not in the store", lost)
        phantom = [c for c in calls if c.op == "start" and not normal(c) and c.stream in stored[c.user]]
        check_none("refused starts whose lease is in the store anyway", phantom)
        print(
            f"\nstore OOM: {len(admitted)} admitted, "
            f"{sum(1 for c in calls if c.op == 'start' and not normal(c))} starts refused (503 or degraded); "
            f"{ooms} writes refused by the store for memory"
        )
        asyncio.run(serves_normally(list(svcs.values())))  # once memory is back
    finally:
        store.stop()
