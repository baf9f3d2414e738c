"""Standard security headers on every response, and CORS for browser players when configured."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

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
_API = [*_SECURITY, _CSP]
_CONSOLE = [*_SECURITY, CONSOLE_CSP]
# public keys, cacheable by verifiers: the route sets its own Cache-Control (api/jwks.py)
JWKS_PATH = "/.well-known/jwks.json"
_PUBLIC = [h for h in _API if h[0] != b"cache-control"]


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer to ``path`` carries (added by ``api.observe.Observe``, the one
    middleware every request passes, so this costs no ASGI layer of its own)."""
    if path.startswith("/docs"):
        return _SECURITY
    if path == JWKS_PATH:
        return _PUBLIC
    if path == "/console" or path.startswith("/console/"):
        return _CONSOLE
    return _API


def middleware(settings: Settings) -> list[Middleware]:
    """CORS for browser players, when ``STREAMLIMIT_CORS_ORIGINS`` names any origin."""
    out = []
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
