"""Redis/Valkey Cluster: each call goes to the primary owning its keys' slot, on that primary's
pipelined connection. All keys of a call share one hash tag, so no call ever spans slots."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.crc import key_slot

from streamlimit.errors import StoreUnavailable
from streamlimit.store.endpoint import Endpoint
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.resp import ReplyError

log = logging.getLogger("streamlimit.store")

SLOTS = 16384
_REDIRECTS = 3  # MOVED/ASK hops followed per call; more means the cluster is reshaping
_REFRESH_GAP_S = 0.1  # at most this often asks the cluster for its slot map
_TRYAGAIN_PAUSE_S = 0.005  # first pause before retrying a slot in mid-migration; doubles
_TRYAGAIN_PAUSE_MAX_S = 0.05


# where the key is in the keyed commands the store sends: its scripts, and the webhook queue's
# stream commands (streamlimit.webhooks.redis_queue)
_KEY_AT = {"XLEN": 1, "XRANGE": 1, "XACK": 1, "XDEL": 1, "XPENDING": 1, "XCLAIM": 1, "XGROUP": 2, "XINFO": 2}


def _first_key(args: tuple[str | int, ...]) -> str | None:
    """The first key of a keyed command (None: any node may answer it)."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        return str(args[3]) if len(args) > 3 and int(args[2]) > 0 else None
    if name == "XREADGROUP":
        return str(args[[str(a).upper() for a in args].index("STREAMS") + 1])
    at = _KEY_AT.get(name)
    return str(args[at]) if at is not None and len(args) > at else None


class ClusterClient:
    """``execute`` like ``PipelinedClient``'s; ``broadcast`` runs a command on every primary."""

    def __init__(
        self,
        seeds: list[Endpoint],
        timeout_s: float,
        connections: int = 1,
        *,
        replica_ack: int = 0,
        ack_timeout_ms: int = 100,
    ) -> None:
        self._seeds = seeds
        self._timeout_s = timeout_s
        self._connections = connections
        self._ack = (replica_ack, ack_timeout_ms)
        self._nodes: dict[str, PipelinedClient] = {}
        self._slots: list[str | None] = [None] * SLOTS
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = -1e9

    def _node(self, addr: str) -> PipelinedClient:
        node = self._nodes.get(addr)
        if node is None:
            host, _, port = addr.rpartition(":")
            node = self._nodes[addr] = PipelinedClient(
                self._seeds[0].at(host, int(port)),
                self._timeout_s,
                self._connections,
                replica_ack=self._ack[0],
                ack_timeout_ms=self._ack[1],
            )
        return node

    async def execute(self, *args: str | int) -> Any:
        """Run on the slot's primary, following MOVED/ASK; a slot in mid-migration (TRYAGAIN)
        is retried until it has moved, all within one store timeout."""
        key = _first_key(args)
        slot = key_slot(key.encode()) if key is not None else 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        pause = _TRYAGAIN_PAUSE_S
        migrating: Exception | None = None
        while True:
            try:
                return await self._redirected(slot, deadline, args)
            except (ReplyError, _Unsettled) as exc:
                if isinstance(exc, ReplyError) and not str(exc).startswith("TRYAGAIN"):
                    raise
                # the slot's keys are split between two primaries while it migrates, which a
                # multi-key script cannot run on, or its owners disagree for a moment at the
                # end of the move; moving one slot takes milliseconds
                migrating = exc
                if loop.time() + pause + min(_TRYAGAIN_PAUSE_MAX_S, self._timeout_s / 4) >= deadline:
                    self._refresh_soon()
                    raise StoreUnavailable(f"cluster slot {slot} still migrating: {exc}", "timeout") from exc
                await asyncio.sleep(pause)
                pause = min(2 * pause, _TRYAGAIN_PAUSE_MAX_S)
            except StoreUnavailable as exc:
                if migrating is None or exc.kind != "timeout":
                    raise
                # the last retry ran out of the budget: say why the call needed retries at all
                msg = f"cluster slot {slot} still migrating: {migrating}"
                raise StoreUnavailable(msg, "timeout") from exc

    async def _redirected(self, slot: int, deadline: float, args: tuple[str | int, ...]) -> Any:
        """One attempt from the slot map's primary, following at most _REDIRECTS MOVED/ASK."""
        loop = asyncio.get_running_loop()
        addr = self._slots[slot] or await self._addr_after_refresh(slot)
        asking = False
        for _ in range(_REDIRECTS + 1):
            left = deadline - loop.time()
            if left <= 0:
                ms = f"{self._timeout_s * 1000:.0f} ms"
                raise StoreUnavailable(f"store call timed out after {ms}", "timeout")
            try:
                return await self._node(addr).execute(*args, asking=asking, timeout_s=left)
            except ReplyError as exc:
                kind, _, rest = str(exc).partition(" ")
                if kind not in ("MOVED", "ASK"):
                    if kind == "CLUSTERDOWN":
                        self._refresh_soon()
                        raise StoreUnavailable(f"cluster not serving slot {slot}: {exc}") from exc
                    raise
                addr = rest.split()[1]
                asking = kind == "ASK"
                if kind == "MOVED":  # this slot for sure, the others probably moved too
                    self._slots[slot] = addr
                    self._refresh_soon()
            except StoreUnavailable:
                self._refresh_soon()  # a failed primary: its replica may be promoted by now
                raise
        raise _Unsettled(f"cluster redirected slot {slot} more than {_REDIRECTS} times")

    async def primary_of(self, slot: int, fresh: bool = False) -> tuple[str, Endpoint]:
        """The address and endpoint of the primary serving ``slot`` (``fresh``: after asking the
        cluster again), for a connection of another kind (the live channels' subscription)."""
        addr = self._slots[slot] if not fresh else None
        addr = addr or await self._addr_after_refresh(slot)
        host, _, port = addr.rpartition(":")
        return addr, self._seeds[0].at(host, int(port))

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @property
    def primary_count(self) -> int:
        return len({a for a in self._slots if a is not None}) or 1

    async def broadcast(self, *args: str | int) -> None:
        await self._addr_after_refresh(0)
        primaries = sorted({a for a in self._slots if a is not None})
        await asyncio.gather(*(self._node(a).execute(*args) for a in primaries))

    async def _addr_after_refresh(self, slot: int) -> str:
        self._refresh_soon(force=True)
        assert self._refresh is not None
        await asyncio.shield(self._refresh)
        addr = self._slots[slot]
        if addr is None:
            raise StoreUnavailable(f"no cluster node serves slot {slot}")
        return addr

    def _refresh_soon(self, force: bool = False) -> None:
        now = asyncio.get_running_loop().time()
        if self._refresh is not None and not self._refresh.done():
            return
        if not force and now - self._refreshed_at < _REFRESH_GAP_S:
            return
        self._refreshed_at = now
        self._refresh = asyncio.ensure_future(self._load_slots())
        self._refresh.add_done_callback(_retrieve)

    async def _load_slots(self) -> None:
        """CLUSTER SLOTS from the first node that answers: known nodes first, then the seeds."""
        candidates = [*self._nodes, *(f"{s.host}:{s.port}" for s in self._seeds)]
        errors = []
        for addr in dict.fromkeys(candidates):
            try:
                ranges = await self._node(addr).execute("CLUSTER", "SLOTS")
            except (StoreUnavailable, ReplyError) as exc:
                errors.append(f"{addr}: {exc}")
                continue
            slots: list[str | None] = [None] * SLOTS
            for start, end, primary, *_ in ranges:
                host = primary[0] or addr.rpartition(":")[0]  # "" means "the node you asked"
                slots[start : end + 1] = [f"{host}:{primary[1]}"] * (end - start + 1)
            self._slots = slots
            return
        raise StoreUnavailable(f"no cluster node answered CLUSTER SLOTS: {'; '.join(errors)}")

    async def aclose(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        for node in self._nodes.values():
            await node.aclose()


class _Unsettled(Exception):
    """MOVED/ASK back and forth: the nodes do not agree yet on who owns the slot."""


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("cluster slot refresh failed: %s", task.exception())
