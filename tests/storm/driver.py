"""The storm's load driver: simulated players and admins against real service processes.

Every request is recorded as an `Op` with its send and receive times (``time.time()``), status
and parsed body, and nothing is retried: a failed request stays in the history as an unknown
outcome. Requests are spread over several httpx clients (one pool serialises its own
bookkeeping) and over every service URL, loopback only. The run is bounded in time and in
request count and ends by itself: after the deadline no request is sent, and the in-flight
ones finish (or time out) before `run_storm` returns.

Players pick a user, start a stream with their own stream id, heartbeat at the interval the
service asks for (now and then re-sending the start, a renewal, or sleeping past the lease, so
that the heartbeat admits the stream again), and then stop it or vanish without stopping (its
lease must expire by itself). A heartbeat 404 or 410, or a lost renewal, ends playback. Some
players use the compat API (server-chosen ids, no heartbeats; they stop their own stream, the
oldest one, or vanish). Admin actions: stop-all, limit set (0-4) or cleared,
listings and compat counts. Small limits and more players than slots make refusals common.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from tests.storm import Config, History, Kind, Op

# httpcore tries `import sniffio` on every lock it sets up; without sniffio installed each
# failed import searches the whole path again (about 0.5 ms, several per request). A None entry
# makes that import fail at once, exactly as it would anyway.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

# Short leases, so that vanished players' leases expire during the run. The store timeout is
# raised from 500 ms because a small shared machine under this load can starve a service
# process for longer than that: the answer would then be degraded (an outage answer, tested
# in test_outage/test_faults), while this storm is about contention and must see none.
SERVICE_SETTINGS: dict[str, object] = {
    "default_limit": 2,
    "lease_ttl_s": 4.0,
    "heartbeat_interval_s": 1.5,
    "legacy_lease_ttl_s": 4.0,
    "store_timeout_ms": 2000,
    "log_level": "warning",
}


def config_of(settings: dict[str, object]) -> Config:
    def num(name: str) -> float:
        value = settings[name]
        assert isinstance(value, int | float)
        return float(value)

    return Config(
        default_limit=int(num("default_limit")),
        lease_ttl_s=num("lease_ttl_s"),
        heartbeat_interval_s=num("heartbeat_interval_s"),
        legacy_lease_ttl_s=num("legacy_lease_ttl_s"),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    seconds: float
    clients: int = 500  # simulated players, all running at once
    users: int = 100
    pools: int = 16  # httpx clients per service URL (one pool serialises its bookkeeping)
    seed: int = 1
    max_ops: int = 3_000_000
    request_timeout_s: float = 30.0
    admin_share: float = 0.03  # of player turns: stop-all, limit change, listing
    compat_share: float = 0.12  # of player turns: a compat-API session
    vanish_share: float = 0.25  # of sessions: never stopped, left to expire
    crash_share: float = 0.1  # of sessions: the player restarts at once (a reclaim by its device)
    replace_share: float = 0.2  # of refusals: the viewer picks a stream to stop ("replace=")
    hold_s: float = 5.0  # mean session length
    retry_s: tuple[float, float] = (2.0, 5.0)  # a refused player tries again after this long
    idle_s: tuple[float, float] = (0.5, 3.0)  # between two sessions


class Driver:
    def __init__(
        self, urls: list[str], plan: Plan, config: Config, pools: list[list[httpx.AsyncClient]]
    ) -> None:
        self.urls, self.plan, self.config, self.pools = urls, plan, config, pools
        run = uuid.uuid4().hex[:8]  # fresh users: no limit override left from another run
        self.users = [f"storm-{run}-u{i}" for i in range(plan.users)]
        self.history = History(config)
        self.notes: Counter[str] = Counter()
        self.deadline = time.monotonic() + plan.seconds

    def running(self) -> bool:
        return time.monotonic() < self.deadline and len(self.history.ops) < self.plan.max_ops

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())))

    async def call(
        self,
        rng: random.Random,
        client: int,
        user: str,
        kind: Kind,
        method: str,
        path: str,
        stream_id: str | None = None,
        **kwargs: Any,
    ) -> Op:
        """Send one request through this player's pool to a random service; record it."""
        op = Op(len(self.history.ops), client, user, kind, stream_id, 0.0, arg=kwargs.pop("arg", None))
        self.history.ops.append(op)
        which = rng.randrange(len(self.urls))
        url, pools = self.urls[which] + path, self.pools[which]
        pool = pools[client % len(pools)]
        op.send = time.time()
        try:
            response = await pool.request(method, url, **kwargs)
            op.recv = time.time()
        except httpx.HTTPError as exc:
            op.error = f"{type(exc).__name__}: {exc}"
            return op
        op.status = response.status_code
        op.degraded = "x-streamlimit-degraded" in response.headers
        if response.content:
            try:
                body = response.json()
            except ValueError:
                op.error = f"not JSON: {response.text[:200]!r}"
                return op
            if isinstance(body, dict):
                op.body = body
                op.degraded = op.degraded or body.get("degraded") is True
        return op

    async def player(self, cid: int) -> None:
        rng = random.Random(f"{self.plan.seed}-{cid}")
        await self.pause(rng.uniform(0, 0.2))  # the first starts arrive together
        while self.running():
            user, turn = rng.choice(self.users), rng.random()
            if turn < self.plan.admin_share:
                await self.admin(rng, cid, user)
            elif turn < self.plan.admin_share + self.plan.compat_share:
                await self.compat_session(rng, cid, user)
            else:
                await self.session(rng, cid, user)

    async def session(self, rng: random.Random, cid: int, user: str, replace: str | None = None) -> None:
        """A player's session: start (its device id: each player is one device), heartbeats,
        then a stop, a vanishing, or a crash and an immediate restart on the same device; a
        refused start may pick a stream of the 409 to replace."""
        self.notes["sessions"] += 1
        sid, device = f"c{cid}-{self.notes['sessions']}", f"dev-{cid}"
        path = f"/v1/users/{user}/streams"
        body = {"stream_id": sid, "device_id": device}
        params = {"replace": replace} if replace else None
        op = await self.call(rng, cid, user, "start", "POST", path, sid, json=body, params=params)
        op.device_id, op.replace = device, replace
        if op.status == 409 and op.body and replace is None and rng.random() < self.plan.replace_share:
            others = [e["stream_id"] for e in op.body.get("streams", []) if e.get("device_id") != device]
            if others:  # "watch here instead of there"
                await self.session(rng, cid, user, rng.choice(others))
                return
        if op.status not in (200, 201):
            await self.pause(rng.uniform(*self.plan.retry_s))  # refused: try again later
            return
        hold_until = time.monotonic() + min(12.0, rng.expovariate(1 / self.plan.hold_s))
        while time.monotonic() < hold_until and self.running():
            if rng.random() < 0.02:  # a player that slept (a closed laptop) past its lease
                await self.pause(self.config.lease_ttl_s + rng.uniform(0.1, 0.5))
            else:
                await self.pause(self.config.heartbeat_interval_s * rng.uniform(0.7, 1.0))
            if not self.running():
                return
            if rng.random() < 0.1:  # a player re-sending its start: a renewal, not a new admission
                op = await self.call(rng, cid, user, "start", "POST", path, sid, json=body)
                op.device_id = device
            else:
                op = await self.call(rng, cid, user, "heartbeat", "POST", f"{path}/{sid}/heartbeat", sid)
            # a heartbeat after its lease ran out admits it again (200, readmitted) when a slot is
            # free; stopped or evicted by someone else (410), or no slot free (404): playback ends
            if op.status not in (200, 201):
                self.notes["lost"] += 1
                return
        if self.running() and rng.random() < self.plan.crash_share:
            self.notes["crashed"] += 1  # restarted at once: its new start replaces the old lease
            await self.session(rng, cid, user)
            return
        if rng.random() < self.plan.vanish_share:
            self.notes["vanished"] += 1  # no stop: its lease must expire by itself
        elif self.running():
            await self.call(rng, cid, user, "stop", "DELETE", f"{path}/{sid}", sid)
        await self.pause(rng.uniform(*self.plan.idle_s))

    async def compat_session(self, rng: random.Random, cid: int, user: str) -> None:
        op = await self.call(rng, cid, user, "compat_start", "POST", "/user/stream", json={"userId": user})
        if op.status != 200 or op.body is None:
            await self.pause(rng.uniform(*self.plan.retry_s))
            return
        await self.pause(rng.uniform(0.2, self.config.legacy_lease_ttl_s - 0.5))
        if not self.running():
            return
        how = rng.random()
        if how < 0.4:  # its own stream
            sid = str(op.body["streamId"])
            body = {"userId": user, "streamId": sid}
            await self.call(rng, cid, user, "compat_stop", "DELETE", "/user/stream", sid, json=body)
        elif how < 0.7:  # the oldest of the user's streams, perhaps another player's
            await self.call(rng, cid, user, "compat_stop", "DELETE", "/user/stream", json={"userId": user})
        else:
            self.notes["vanished_compat"] += 1

    async def admin(self, rng: random.Random, cid: int, user: str) -> None:
        what, path = rng.random(), f"/v1/users/{user}"
        if what < 0.25:
            await self.call(rng, cid, user, "stop_all", "DELETE", f"{path}/streams")
        elif what < 0.5:
            limit = rng.randint(0, 4)
            await self.call(
                rng, cid, user, "set_limit", "PUT", f"{path}/limit", json={"limit": limit}, arg=limit
            )
        elif what < 0.65:
            await self.call(rng, cid, user, "clear_limit", "DELETE", f"{path}/limit")
        elif what < 0.85:
            await self.call(rng, cid, user, "list", "GET", f"{path}/streams")
        else:
            await self.call(rng, cid, user, "compat_count", "GET", "/user/stream", params={"userId": user})
        await self.pause(rng.uniform(0.1, 0.5))


async def run_storm(urls: list[str], plan: Plan, config: Config) -> History:
    """Run ``plan.clients`` players against ``urls`` for ``plan.seconds``; return the history."""
    per_pool = -(-plan.clients // plan.pools) + 8  # at most one request in flight per player
    # idle connections are dropped before the server's 5 s keep-alive timeout could close one
    # just as it is reused (which would be a transport error, an unknown outcome)
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool, keepalive_expiry=2)
    timeout = httpx.Timeout(plan.request_timeout_s)
    async with AsyncExitStack() as stack:
        # plain http on loopback: no proxies from the environment, no CA bundle to load
        new = [
            httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False, verify=False)  # noqa: S501
            for _ in range(plan.pools * len(urls))
        ]
        for client in new:
            await stack.enter_async_context(client)
        pools = [new[i :: len(urls)] for i in range(len(urls))]
        driver = Driver(urls, plan, config, pools)
        driver.history.started = time.time()
        await asyncio.gather(*(driver.player(cid) for cid in range(plan.clients)))
        driver.history.ended = time.time()
    driver.history.notes = dict(driver.notes)
    return driver.history
