"""A lease renewed through its live channel (``GET .../live``, Server-Sent Events) instead of
heartbeats: the service renews it and says at once when the stream ends.

The channel is reopened after it closes (a network blip, an instance shutting down: the lease
outlives both by a TTL); when it cannot be opened at all (an older service, a proxy that does
not pass event streams, an instance at its channel limit), the lease is heartbeated for an
interval and the channel tried again (a service without the route: heartbeats only, from then on).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from streamlimit.client.errors import StreamLimitError, error_from, problem_error
from streamlimit.client.types import LeaseInfo

if TYPE_CHECKING:
    from streamlimit.client.lease import Lease

log = logging.getLogger("streamlimit.client")

ENDS = ("evicted", "stopped", "lost")  # the events that end the lease (data: the problem)


class _CannotOpen(Exception):
    """The channel did not open, for a reason that does not end the lease."""

    def __init__(self, why: str, for_good: bool = False) -> None:
        super().__init__(why)
        self.for_good = for_good  # the service has no live channels: heartbeats only


async def renew_by_channel(lease: Lease) -> None:
    """Hold ``lease`` by its channel until it ends: returns never, raises the ``StreamLimitError``
    that ended it."""
    retry_s, channels = 2.0, True
    while True:
        if channels:
            try:
                retry_s = await _follow(lease, retry_s)
                await asyncio.sleep(retry_s)  # closed without an end: reconnect, as EventSource does
                continue
            except _CannotOpen as exc:
                log.info(
                    "live channel of stream %s not opened (%s): heartbeats instead", lease.stream_id, exc
                )
                channels = not exc.for_good
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                log.info("live channel of stream %s lost (%s): reconnecting", lease.stream_id, exc)
                await asyncio.sleep(retry_s)
                continue
        assert lease.info is not None
        await asyncio.sleep(lease.info.heartbeat_interval_s)
        await lease.took(await lease.renew_once(lease.info))


async def _follow(lease: Lease, retry_s: float) -> float:
    """Open the channel and apply its events until it closes; the reconnection delay it set."""
    assert lease.info is not None
    path = f"/v1/users/{quote(lease.user_id, safe='')}/streams/{quote(lease.stream_id, safe='')}/live"
    read_s = max(1.0, lease.info.lease_ttl_s / 2)  # keepalives come every 15 s: a dead peer shows
    timeout = httpx.Timeout(lease.client.timeout, read=read_s)
    headers = {"accept": "text/event-stream"}
    async with lease.client.http.stream("GET", path, headers=headers, timeout=timeout) as r:
        if r.status_code >= 400:
            await r.aread()
            error = error_from(r)
            if error.code in ("stream_not_active", "stream_evicted", "stream_stopped", "stream_replaced"):
                raise error  # the lease is over: as a heartbeat would have said
            if error.code in ("not_found", "method_not_allowed") or r.status_code in (404, 405, 501):
                raise _CannotOpen(f"{r.status_code} {error.code}", for_good=True)
            raise _CannotOpen(f"{r.status_code} {error.code}")
        if not r.headers.get("content-type", "").startswith("text/event-stream"):
            raise _CannotOpen(f"not an event stream: {r.headers.get('content-type')}")
        async for name, data, retry_ms in _events(r.aiter_lines()):
            if retry_ms is not None:
                retry_s = retry_ms / 1000
            if name == "renewed":
                await lease.took(LeaseInfo.parse(data))
            elif name in ENDS:
                raise problem_error(int(data["status"]), data)
            elif name == "degraded":
                log.info("live channel of stream %s: the service's store is out (degraded)", lease.stream_id)
            elif name == "reconnect":
                return retry_s
    return retry_s


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, Any, int | None]]:
    """(event name or None, JSON data or None, retry ms or None) per frame."""
    name: str | None = None
    data: list[str] = []
    retry: int | None = None
    async for line in lines:
        if line:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "retry" and value.isdigit():
                retry = int(value)
            continue
        if name is not None or retry is not None:
            yield name, json.loads("\n".join(data)) if data else None, retry
        name, data, retry = None, [], None


__all__ = ["StreamLimitError", "renew_by_channel"]
