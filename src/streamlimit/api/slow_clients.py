"""Slow clients: every request must arrive whole within ``request_timeout_s``.

uvicorn 0.54 bounds only the idle time between two requests (``timeout_keep_alive``), and
every byte received cancels even that timer; nothing bounds a connection that never sends
anything, a request head, or a request body. A client that trickles a request one byte at a
time therefore holds its connection, and a handler waiting for the body, forever (Slowloris).

``SlowClientProtocol`` is uvicorn's httptools protocol plus one deadline per request: armed
when the connection opens and when a request's first byte arrives, disarmed as soon as the
request is received whole (head and body), so handling and answering are never limited by it.
When it expires the connection is closed: silently if no request was begun, after a 408
``request_timeout`` problem when a request was cut short and no answer was started (a handler
still waiting for that body is told the client left, so its answer is dropped, not written).

``api.head_limits.HeadLimitProtocol`` builds on it, and is what ``streamlimit serve`` passes to
uvicorn; each worker process reads the timeout from its settings once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from http import HTTPStatus
from typing import Any, Literal

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from streamlimit.settings import Settings

log = logging.getLogger("streamlimit.api")


@functools.cache
def request_timeout_s() -> float:
    """This process's setting; workers rebuild their settings from the environment."""
    return Settings().request_timeout_s


def early_answer(
    status: int, code: str, detail: str, path: str | None, default_headers: list[tuple[bytes, bytes]]
) -> bytes:
    """A whole problem+json answer, written by the protocol itself (no app involved), that
    closes the connection: for a request cut short, or refused before its head was whole."""
    problem: dict[str, Any] = {
        "type": f"urn:streamlimit:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if path is not None:
        problem["instance"] = path
    body = msgspec.json.encode(problem)
    head = [STATUS_LINE[status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head += [
        b"content-type: application/problem+json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class SlowClientProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for receiving each request."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.request_timeout_s = request_timeout_s()
        self._deadline: asyncio.TimerHandle | None = None
        # what is being received: nothing yet (idle), a request head, or its body
        self._receiving: Literal["idle", "head", "body"] = "idle"

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # connection events
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is bounded too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        # uvicorn cancels its keep-alive timer only on a clean close; a reset would leave it
        # holding this protocol until it fires
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:  # pragma: no cover - the app serves no websocket
        self._disarm()
        super().handle_websocket_upgrade()

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = "head"
        if self._deadline is None:  # the first request keeps the deadline armed at connect
            self._arm()

    def on_headers_complete(self) -> None:
        self._receiving = "body"
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving = "idle"
        self._disarm()
        super().on_message_complete()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.pipeline:
            # an earlier pipelined request holds the connection and reading is paused for it:
            # the wait is ours, not the client's
            self._arm()
            return
        cycle = self.cycle
        if self._receiving == "idle":
            log.debug("closing a connection that sent no request within %g s", self.request_timeout_s)
            self.transport.close()
            return
        log.info(
            "closing a connection from %s: request %s not received within %g s",
            f"{self.client[0]}:{self.client[1]}" if self.client else "?",
            self._receiving,
            self.request_timeout_s,
        )
        if self._receiving == "head" and cycle is not None and not cycle.response_complete:
            # the previous request is still being answered: close once its answer is out
            cycle.keep_alive = False
            return
        if self._receiving == "head" or not cycle.response_started:
            if self._receiving == "body":
                # the handler waiting for this body is told the client left; its answer is dropped
                cycle.disconnected = True
                cycle.message_event.set()
            path = self.scope.get("path") if self._receiving == "body" else None
            detail = f"the request was not received whole within {self.request_timeout_s:g} s"
            self.transport.write(
                early_answer(408, "request_timeout", detail, path, self.server_state.default_headers)
            )
        self.transport.close()
