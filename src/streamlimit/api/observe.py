"""Every request, seen from outside the routes: a request id (taken from ``X-Request-ID`` or
made, and echoed back), the security headers, the request counter and latency histogram by
route and outcome, and the access log line (off by default, sampled when on)."""

from __future__ import annotations

import logging
import os
import random
import re
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamlimit.api.headers import security_headers
from streamlimit.api.problems import problem_response
from streamlimit.api.routing import OUTCOME, ROUTE_LABEL
from streamlimit.metrics import Metrics

log = logging.getLogger("streamlimit.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+\-]{1,128}")  # anything else is replaced, not echoed


def outcome(route: str, status: int, degraded: bool) -> str:
    """admitted, renewed, limit_reached, too_many_starts, not_active, ended (a heartbeat's 410:
    evicted or stopped earlier, counted then), degraded, store_error, ok or rejected (and, set by
    the route, which knows, through ``routing.count_as``: ``evicted``, an admission that evicted a
    stream; ``replaced``, one that replaced the same device's stream; ``readmitted``, a heartbeat
    that admitted its stream again)."""
    if status == 503:
        return "store_error"
    if degraded:
        return "degraded"
    if route in ("start", "compat_add"):
        if status == 201 or (route == "compat_add" and status == 200):
            return "admitted"
        if status == 200:
            return "renewed"
        if status == 409 or (route == "compat_add" and status == 403):
            return "limit_reached"
        if status == 429:
            return "too_many_starts"
    if route == "heartbeat":  # 410: the heartbeat of a stream evicted or stopped earlier
        return {200: "renewed", 404: "not_active", 410: "ended"}.get(status, "rejected")
    return "ok" if status < 400 else "rejected"


class Observe:
    """The one middleware every request passes: request id, security headers, metrics, access log."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None, access_log: bool, sample: float) -> None:
        self.app, self.metrics = app, metrics
        self.sample = sample if access_log else 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                request_id = given if _REQUEST_ID.fullmatch(given) else ""
                break
        if not request_id:  # 128 random bits, like uuid4's hex but 5x cheaper
            request_id = os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id  # for the audit trail
        extra = [*security_headers(scope["path"]), (b"x-request-id", request_id.encode())]
        status, degraded, answered = 500, False, False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, degraded, answered
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                status, answered = message["status"], True
                degraded = any(k == b"x-streamlimit-degraded" for k, _ in headers)
                message["headers"] = [*headers, *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not answered:  # answer the 500 here, with the request id and security headers;
                # Starlette's outer error middleware then only re-raises, and the server logs it
                internal = problem_response(Request(scope), 500, "internal_error", "internal error")
                await internal(scope, receive, send_with_headers)
            raise
        finally:
            self._record(scope, request_id, status, degraded, started)

    def _record(self, scope: Scope, request_id: str, status: int, degraded: bool, started: float) -> None:
        took = time.perf_counter() - started
        route = scope.get(ROUTE_LABEL, "other")
        result = scope.get(OUTCOME) if status < 300 else None
        result = result or outcome(route, status, degraded)
        if self.metrics is not None:
            self.metrics.request(route, result, took)
        if self.sample and (self.sample >= 1 or random.random() < self.sample):  # noqa: S311
            params = scope.get("path_params", {})
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "outcome": result,
                "user_id": params.get("user_id"),
                "stream_id": params.get("stream_id"),
                "latency_ms": round(took * 1000, 3),
            }
            log.info("request", extra={"fields": fields})
