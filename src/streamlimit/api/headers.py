"""Standard security headers on every response, and CORS for browser players when configured."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamlimit.settings import Settings

_SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
# the API serves JSON only; the Swagger UI page (/docs) needs its own scripts and styles
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# the operator console (/console): its own script, style and API calls, all from this origin
CONSOLE_CSP = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/docs"):
            extra = _SECURITY
        elif path == "/console" or path.startswith("/console/"):
            extra = [*_SECURITY, CONSOLE_CSP]
        else:
            extra = [*_SECURITY, _CSP]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def middleware(settings: Settings) -> list[Middleware]:
    out = [Middleware(SecurityHeaders)]
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        out.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
                expose_headers=["Location", "Retry-After", "X-StreamLimit-Degraded", "WWW-Authenticate"],
                max_age=600,
            )
        )
    return out
