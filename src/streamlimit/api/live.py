"""GET /v1/users/{user_id}/streams/{stream_id}/live: a stream's live channel (Server-Sent Events).

Opening it is a heartbeat (its 404/410/503 answers too); then the worker renews the lease and
sends ``renewed``, and ``evicted``/``stopped``/``lost`` (the heartbeat's problem as data) when the
stream ends, then closes. Closed by the player, the lease is no longer renewed and ends within a
lease TTL; a reconnection within it resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from streamlimit.api.guard import for_user
from streamlimit.api.routing import resource
from streamlimit.live.hub import Hub
from streamlimit.live.outbox import Outbox

HEADERS = [  # (Cache-Control: no-store comes with every answer: api/headers.py)
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.live
    return hub


class EventStream(Response):
    """An outbox's frames, written as they come, until it is done or the client hangs up; then
    ``closed``."""

    def __init__(self, channel: Outbox, closed: Callable[[], None]) -> None:
        self.channel, self.closed = channel, closed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = self.channel
        watcher = asyncio.ensure_future(_disconnect(receive))
        watcher.add_done_callback(lambda _: channel.hang_up())
        try:
            await send({"type": "http.response.start", "headers": HEADERS, "status": 200})
            while True:
                body = await channel.next()
                if channel.hung_up:
                    break
                await send({"type": "http.response.body", "body": body, "more_body": not channel.done})
                if channel.done:
                    break
        finally:
            watcher.cancel()
            self.closed()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def live(request: Request) -> Response:
    p = request.path_params
    who = for_user(request, p["user_id"])
    if request.method == "HEAD":
        return Response(headers={"content-type": "text/event-stream; charset=utf-8"})
    hub = hub_of(request)
    channel = await hub.open(p["user_id"], p["stream_id"], who, request.url.path)
    return EventStream(channel, lambda: hub.close(channel))


async def live_view(request: Request) -> Response:
    """GET /v1/users/{user_id}/live: the user's list (as GET .../streams) as ``event: streams``,
    again whenever a stream of theirs starts or ends (the console's user view). Renews nothing."""
    user_id = request.path_params["user_id"]
    who = for_user(request, user_id)
    if request.method == "HEAD":
        return Response(headers={"content-type": "text/event-stream; charset=utf-8"})
    hub = hub_of(request)
    view = await hub.open_view(user_id, who)
    return EventStream(view, lambda: hub.close_view(view))


ROUTES = [
    resource("/v1/users/{user_id}/streams/{stream_id}/live", get=("live", live)),
    resource("/v1/users/{user_id}/live", get=("live_view", live_view)),
]
