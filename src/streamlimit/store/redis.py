"""Redis store: one EVALSHA of one Lua script per operation, whatever the topology."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from redis.crc import key_slot

from streamlimit.errors import StoreUnavailable
from streamlimit.models import (
    NO_ACTOR,
    Actor,
    Beat,
    Event,
    Kick,
    LimitInfo,
    Limits,
    Renewal,
    Start,
    StartResult,
    StoppedAll,
    StopResult,
    UserStreams,
)
from streamlimit.store import argv, replies, scripts
from streamlimit.store.cluster import ClusterClient
from streamlimit.store.feed import RedisFeed, subscriber_for
from streamlimit.store.keys import PATTERN, live_channel, renewal_keys, script_keys
from streamlimit.store.resp import ReplyError

if TYPE_CHECKING:
    from streamlimit.metrics import Metrics


class Client(Protocol):
    """A server, a Sentinel-watched primary or a whole cluster: ``execute`` routes by key."""

    async def execute(self, *args: str | int) -> Any: ...

    async def broadcast(self, *args: str | int) -> None: ...

    async def aclose(self) -> None: ...


RENEW_BATCH = 100  # leases per lua/renew.lua call: ~300 keys, a call of well under a millisecond
# the scripts that may queue a webhook event (see store/hooks.py), and how many users' calls to
# them are remembered for the webhook loop at most (streamlimit.webhooks.redis_queue's hints)
_MAY_QUEUE = frozenset({"start", "stop", "stop_all", "limit"})
_HINTS_MAX = 10_000


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class RedisStore:
    """Server error replies become ``StoreUnavailable`` here; the client already raises it for
    timeouts and lost connections."""

    def __init__(
        self,
        client: Client,
        on_close: Callable[[], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
        *,
        hooks_max_len: int = 0,
        hooks_per_slot: bool | None = None,
        kicks: bool = True,
    ) -> None:
        self._client = client
        self._on_close = on_close
        self._metrics = metrics
        self._hooks_max_len = hooks_max_len  # webhook events queued, at most this many; 0: none
        if hooks_per_slot is None:  # a Cluster: one queue per slot (a script's keys share one)
            hooks_per_slot = isinstance(client, ClusterClient)
        self._hooks_per_slot = hooks_per_slot  # (keys.hooks_key)
        # on a Cluster, the users of calls that may have queued an event: where to look first
        self.hook_hints: set[str] = set()
        self._kicks = kicks  # the scripts publish kicks to the users' live channels
        self._cluster = isinstance(client, ClusterClient)
        self._cursor = 0  # of the active-streams sample
        self._shas = {name: _sha1(scripts.source(name)) for name in scripts.NAMES}

    async def _eval(self, name: str, user_id: str, *args: str | int) -> Any:
        keys = script_keys(user_id, self._hooks_per_slot, self._hooks_max_len > 0)
        args = (*args, *argv.common(user_id, self._hooks_max_len, self._live(user_id)))
        hinted = self._hooks_max_len and self._hooks_per_slot and name in _MAY_QUEUE
        if hinted and len(self.hook_hints) < _HINTS_MAX:
            self.hook_hints.add(user_id)
        return await self._call(name, keys, args)

    def _live(self, user_id: str) -> str:
        return live_channel(user_id) if self._kicks else ""

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        started = time.perf_counter()
        try:
            try:
                return await self._client.execute("EVALSHA", self._shas[name], len(keys), *keys, *args)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                # a restarted or failed-over store forgot its scripts: EVAL sends and caches it
                return await self._client.execute("EVAL", scripts.source(name), len(keys), *keys, *args)
        except ReplyError as exc:
            self._failed("refused")
            raise StoreUnavailable(f"store refused the call: {exc}", "refused") from exc
        except StoreUnavailable as exc:
            self._failed(exc.kind)
            raise
        finally:
            if self._metrics is not None:
                self._metrics.store_call(name, time.perf_counter() - started)

    def _failed(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.store_errors.labels(kind).inc()

    @property
    def client(self) -> Client:
        return self._client

    @property
    def hooks_on(self) -> bool:
        return self._hooks_max_len > 0

    @property
    def hooks_per_slot(self) -> bool:
        return self._hooks_per_slot

    async def load_scripts(self) -> None:
        """Register every script on every primary, so the first requests need no EVAL."""
        for name in scripts.NAMES:
            try:
                await self._client.broadcast("SCRIPT", "LOAD", scripts.source(name))
            except ReplyError as exc:
                raise StoreUnavailable(f"store refused SCRIPT LOAD: {exc}") from exc

    async def start(
        self, user_id: str, stream_id: str, device: str | None, ttl_ms: int, limits: Limits, how: Start
    ) -> StartResult:
        r = await self._eval("start", user_id, *argv.start(stream_id, device, ttl_ms, limits, how))
        return replies.start(user_id, stream_id, r)

    async def heartbeat(self, user_id: str, stream_id: str, ttl_ms: int, limits: Limits) -> Beat:
        r = await self._eval("heartbeat", user_id, *argv.heartbeat(stream_id, ttl_ms, limits))
        return replies.heartbeat(user_id, stream_id, r)

    async def renew(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> tuple[Renewal, ...]:
        """One lua/renew.lua call per batch of up to RENEW_BATCH leases (on a Cluster, per slot in
        it), every call sent at once: the pipelined client writes them together."""
        groups: dict[int, list[int]] = {}
        for i, (user_id, _) in enumerate(leases):
            slot = key_slot(renewal_keys(user_id)[0].encode()) if self._cluster else 0
            groups.setdefault(slot, []).append(i)
        batches = [g[k : k + RENEW_BATCH] for g in groups.values() for k in range(0, len(g), RENEW_BATCH)]
        replies_ = await asyncio.gather(*(self._renew([leases[i] for i in b], ttl_ms) for b in batches))
        out: list[Renewal | None] = [None] * len(leases)
        for batch, renewed in zip(batches, replies_, strict=True):
            for i, r in zip(batch, renewed, strict=True):
                out[i] = r
        return tuple(r for r in out if r is not None)

    async def _renew(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> tuple[Renewal, ...]:
        keys = [k for user_id, _ in leases for k in renewal_keys(user_id)]
        ids = [sid for _, sid in leases]
        return replies.renew(ids, await self._call("renew", keys, argv.renew(ttl_ms, ids)))

    def feed(self, on_kick: Callable[[Kick], None], on_gap: Callable[[], None]) -> RedisFeed:
        return RedisFeed(lambda on_message: subscriber_for(self._client, on_message, on_gap), on_kick)

    async def stop(
        self, user_id: str, stream_id: str | None, ttl_ms: int, actor: Actor = NO_ACTOR, audit: bool = False
    ) -> StopResult:
        return replies.stop(
            user_id, await self._eval("stop", user_id, *argv.stop(stream_id, ttl_ms, actor, audit))
        )

    async def list(self, user_id: str, limits: Limits) -> UserStreams:
        reply = await self._eval("list", user_id, *argv.listing(limits))
        return replies.list_(user_id, reply, limits.counts)

    async def stop_all(
        self, user_id: str, ttl_ms: int, actor: Actor = NO_ACTOR, per_min: int = 0
    ) -> StoppedAll:
        return replies.stop_all(await self._eval("stop_all", user_id, *argv.stop_all(ttl_ms, actor, per_min)))

    async def _limit(
        self, user_id: str, op: str, value: str | int, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        return replies.limit(
            user_id, await self._eval("limit", user_id, *argv.limit(op, value, limits, actor))
        )

    async def get_limit(self, user_id: str, limits: Limits) -> LimitInfo:
        return await self._limit(user_id, "get", 0, limits)

    async def set_limit(
        self, user_id: str, limit: int | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        if limit is None:
            return await self._limit(user_id, "clear", 0, limits, actor)
        return await self._limit(user_id, "set", limit, limits, actor)

    async def set_plan(
        self, user_id: str, plan: str | None, limits: Limits, actor: Actor = NO_ACTOR
    ) -> LimitInfo:
        return await self._limit(user_id, "unplan" if plan is None else "plan", plan or "", limits, actor)

    async def events(self, user_id: str) -> tuple[Event, ...]:
        return tuple(replies.event(raw) for raw in await self._eval("events", user_id))

    async def estimate_active(self) -> int:
        """Active streams, estimated from one SCAN page (continuing where the last one ended):
        streams per sampled key x keys in the store (x primaries, on a cluster)."""
        cursor, keys = await self._client.execute("SCAN", self._cursor, "COUNT", 1000)
        self._cursor = int(cursor)
        leases = [k for k in keys if k.endswith(":leases") and PATTERN.fullmatch(k)]
        now_ms = int(time.time() * 1000)
        counts = await asyncio.gather(
            *(self._client.execute("ZCOUNT", k, f"({now_ms}", "+inf") for k in leases)
        )
        size = int(await self._client.execute("DBSIZE")) * getattr(self._client, "primary_count", 1)
        return round(sum(counts) / len(keys) * size) if keys else 0

    async def ping(self) -> None:
        """Ready: every primary answers and holds the scripts (loaded again if it lost them)."""
        await self.load_scripts()

    async def close(self) -> None:
        await self._client.aclose()
        if self._on_close is not None:
            await self._on_close()
