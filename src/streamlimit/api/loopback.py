"""``STREAMLIMIT_AUTH=none`` serves this machine only, however the app was started.

The settings check at start-up reads ``STREAMLIMIT_HOST``, which ``uvicorn --factory ... --host
0.0.0.0`` never sets; so the app checks each request too (without ``INSECURE_NO_AUTH``):

- the local address the connection arrived on (ASGI ``scope["server"]``, the socket's own
  name, not the bind address) must be a loopback address: else 403 ``auth_none_off_loopback``,
  and one ERROR line per address naming it. A Unix socket (no address) is local by nature;
- the ``Host`` header, when given, must name a loopback host (``localhost``, ``*.localhost``,
  ``127.0.0.0/8``, ``[::1]``): else 421 ``host_not_loopback``. A web page the browser was
  pointed at by DNS rebinding names its own host, so it cannot reach this API.
"""

from __future__ import annotations

import functools
import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from streamlimit.api.problems import problem_response
from streamlimit.settings import is_loopback

log = logging.getLogger("streamlimit.api")


def host_name(host: str) -> str:
    """The host of a ``Host`` header value, without port or IPv6 brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


@functools.lru_cache(maxsize=256)  # per request otherwise: ip_address() costs microseconds
def is_loopback_name(host: str) -> bool:
    name = host_name(host).removesuffix(".")
    return is_loopback(name) or name.endswith(".localhost")


@functools.lru_cache(maxsize=256)
def _is_loopback_address(address: str) -> bool:
    return is_loopback(address)


class LoopbackOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._reported: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        if server is not None and not _is_loopback_address(str(server[0])):
            address = f"{server[0]}:{server[1]}"
            if address not in self._reported:
                self._reported.add(address)
                log.error(
                    "STREAMLIMIT_AUTH=none: refusing requests that reach %s, not a loopback address "
                    "(set STREAMLIMIT_AUTH, listen on 127.0.0.1, or set STREAMLIMIT_INSECURE_NO_AUTH=1)",
                    address,
                )
            detail = "this service runs without authentication (AUTH=none) and serves loopback only"
            response = problem_response(Request(scope), 403, "auth_none_off_loopback", detail)
            await response(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"host":
                if not is_loopback_name(value.decode("latin-1")):
                    detail = "without authentication (AUTH=none) only loopback Host names are served"
                    response = problem_response(Request(scope), 421, "host_not_loopback", detail)
                    await response(scope, receive, send)
                    return
                break
        await self.app(scope, receive, send)
