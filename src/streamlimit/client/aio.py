"""The asyncio client of the v1 API, on ``httpx.AsyncClient``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from streamlimit import __version__
from streamlimit.client.device import check_device_id
from streamlimit.client.errors import StreamLimitError, Unavailable, error_from
from streamlimit.client.lease import Lease, OnGrant, OnLost
from streamlimit.client.types import Event, LeaseInfo, LimitInfo, StartInfo, StreamInfo, StreamList

OnLimit = Literal["reject", "evict_oldest"]
T = TypeVar("T")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _parse(response: httpx.Response, parse: Callable[[Any], T]) -> T:
    """``parse`` of the JSON body, or ``StreamLimitError`` (``invalid_response``) if it does not fit."""
    try:
        return parse(response.json())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = f"unexpected answer to {response.request.method} {response.request.url.path}: {exc!r}"
        raise StreamLimitError(response.status_code, "invalid_response", detail) from exc


class AsyncStreamLimitClient:
    """A client of one streamlimit service.

    ``token`` is sent as ``Authorization: Bearer`` (``AUTH=jwt``), ``api_key`` as ``X-API-Key``
    (``AUTH=api_key``). ``timeout`` bounds each request (seconds). ``transport`` replaces httpx's
    (e.g. ``httpx.AsyncHTTPTransport(retries=1, uds=...)``). Use as ``async with``, or call
    :meth:`aclose`. Every method raises a :class:`~streamlimit.client.StreamLimitError` subclass
    on an error answer, and :class:`~streamlimit.client.Unavailable` when there is no answer.

    ``device_id``: when this client is one player installation, its stable id (keep it with
    :func:`~streamlimit.client.stored_device_id`), sent with every start that does not name
    another; a start from the same device then takes over the device's older stream (a
    restarted player gets its slot back at once). Checked here: an invalid one is a
    ``ValueError``. None (the default) sends none: a backend acting for many devices passes
    ``device_id=`` to each start instead, since one id shared by several players would make
    them replace each other's streams.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        device_id: str | None = None,
    ) -> None:
        #: the device id sent with starts that name none (None: none is sent)
        self.device_id = None if device_id is None else check_device_id(device_id)
        headers = {"user-agent": f"streamlimit-client/{__version__}", "accept": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if api_key is not None:
            headers["x-api-key"] = api_key
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncStreamLimitClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The underlying httpx client (the live channel streams on it)."""
        return self._http

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:  # connect, read, write and pool errors and timeouts
            raise Unavailable(None, type(exc).__name__, str(exc) or "no answer from the service") from exc
        except httpx.RequestError as exc:  # too many redirects, an undecodable body
            raise StreamLimitError(None, type(exc).__name__, str(exc)) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response

    async def _call(self, method: str, path: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        return _parse(await self._request(method, path, **kwargs), parse)

    async def start(
        self,
        user_id: str,
        stream_id: str | None = None,
        device: str | None = None,
        on_limit: OnLimit | None = None,
        *,
        device_id: str | None = None,
        replace: str | None = None,
    ) -> StartInfo:
        """Start (or renew) a stream: its lease. Without ``stream_id`` the service makes one up;
        send your own so that a retry renews rather than starting a second stream. ``device`` is
        a label for people; ``device_id`` (default: the client's) the player installation's id:
        the device's older active stream is replaced (``StartInfo.replaced``; its heartbeats get
        :class:`StreamReplaced`). Raises :class:`LimitReached` at the limit, unless
        ``on_limit="evict_oldest"`` replaces the oldest stream, or ``replace`` names the stream to
        stop in this one's favour ("watch here instead of there": :class:`ReplaceTargetNotActive`
        when it is not active, and nothing is started); :class:`TooManyStarts` over the start
        budget; :class:`InvalidInput` (``field``) for a value the service refuses."""
        if device_id is None:
            device_id = self.device_id
        members = (("stream_id", stream_id), ("device", device), ("device_id", device_id))
        body = {k: v for k, v in members if v is not None}
        params = {k: v for k, v in (("on_limit", on_limit), ("replace", replace)) if v is not None}
        response = await self._request(
            "POST", f"/v1/users/{_seg(user_id)}/streams", json=body, params=params or None
        )
        return _parse(response, lambda b: StartInfo.parse_start(b, admitted=response.status_code == 201))

    async def heartbeat(self, user_id: str, stream_id: str) -> LeaseInfo:
        """Renew a stream's lease. Raises :class:`StreamNotActive` (404) when it expired or was
        stopped, :class:`StreamEvicted` (410) when another device took its place,
        :class:`StreamReplaced` (410) when a newer stream of the same device did: stop playback."""
        path = f"/v1/users/{_seg(user_id)}/streams/{_seg(stream_id)}/heartbeat"
        return await self._call("POST", path, LeaseInfo.parse)

    async def get_stream(self, user_id: str, stream_id: str) -> StreamInfo:
        """One active stream, or :class:`StreamNotActive`."""
        return await self._call(
            "GET", f"/v1/users/{_seg(user_id)}/streams/{_seg(stream_id)}", StreamInfo.parse
        )

    async def stop(self, user_id: str, stream_id: str) -> None:
        """Stop a stream; also fine when it is already gone."""
        path = f"/v1/users/{_seg(user_id)}/streams/{_seg(stream_id)}"
        await self._request("DELETE", path)

    async def list(self, user_id: str) -> StreamList:
        """The user's active streams, oldest first, with the limit."""
        return await self._call("GET", f"/v1/users/{_seg(user_id)}/streams", StreamList.parse)

    async def stop_all(self, user_id: str) -> int:
        """Stop every stream of the user ("sign out everywhere"); returns how many were active."""
        return await self._call("DELETE", f"/v1/users/{_seg(user_id)}/streams", lambda b: int(b["stopped"]))

    async def get_limit(self, user_id: str) -> LimitInfo:
        """The user's limit and where it comes from."""
        return await self._call("GET", f"/v1/users/{_seg(user_id)}/limit", LimitInfo.parse)

    async def set_limit(self, user_id: str, limit: int) -> LimitInfo:
        """Override the user's limit (0-1000; admin)."""
        path = f"/v1/users/{_seg(user_id)}/limit"
        return await self._call("PUT", path, LimitInfo.parse, json={"limit": limit})

    async def clear_limit(self, user_id: str) -> LimitInfo:
        """Remove the user's override (admin): the plan's or the default limit applies again."""
        return await self._call("DELETE", f"/v1/users/{_seg(user_id)}/limit", LimitInfo.parse)

    async def set_plan(self, user_id: str, plan: str) -> LimitInfo:
        """Put the user on one of the service's configured plans (admin)."""
        return await self._call(
            "PUT", f"/v1/users/{_seg(user_id)}/plan", LimitInfo.parse, json={"plan": plan}
        )

    async def clear_plan(self, user_id: str) -> LimitInfo:
        """Take the user off its plan (admin)."""
        return await self._call("DELETE", f"/v1/users/{_seg(user_id)}/plan", LimitInfo.parse)

    async def events(self, user_id: str) -> tuple[Event, ...]:
        """The user's audit trail, newest first."""
        path = f"/v1/users/{_seg(user_id)}/events"
        return await self._call("GET", path, lambda b: tuple(Event.parse(e) for e in b["events"]))

    def stream(
        self,
        user_id: str,
        stream_id: str | None = None,
        device: str | None = None,
        *,
        on_lost: OnLost | None = None,
        on_limit: OnLimit | None = None,
        start_retry_s: float = 10.0,
        device_id: str | None = None,
        replace: str | None = None,
        on_grant: OnGrant | None = None,
        live: bool = False,
    ) -> Lease:
        """A stream held for an ``async with`` block: started on entry (with ``device_id``,
        default the client's, and ``replace`` as in :meth:`start`), heartbeated in the
        background (``live``: renewed by its live channel, which also tells at once when the
        stream ends; heartbeats when it cannot be opened), stopped on exit; ``on_grant``
        receives each new playback grant. See :class:`~streamlimit.client.lease.Lease`."""
        return Lease(
            self, user_id, stream_id, device,
            on_lost=on_lost, on_limit=on_limit, start_retry_s=start_retry_s, device_id=device_id,
            replace=replace, on_grant=on_grant, live=live,
        )  # fmt: skip
