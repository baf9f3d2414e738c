"""Where a store server is and how to log in: parsed from store URLs, shared by every topology."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.connection import parse_url

from streamlimit.errors import ConfigurationError

_URL_KEYS = {"host", "port", "db", "path", "username", "password", "connection_class"}
_TLS_KEYS = {"ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


@dataclass(frozen=True)
class Endpoint:
    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host:port
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: ssl.SSLContext | None = None

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"

    def at(self, host: str, port: int) -> Endpoint:
        """The same credentials and TLS settings, another server (a cluster node, a new primary)."""
        return replace(self, host=host, port=port, path=None)

    def with_login(self, username: str | None, password: str | None) -> Endpoint:
        """Sentinels have credentials of their own (and no database)."""
        return replace(self, username=username, password=password, db=0)


def _tls_context(params: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    if params.get("ssl_certfile"):
        ctx.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"))
    reqs = str(params.get("ssl_cert_reqs", "required")).lower()
    if reqs not in _CERT_REQS:
        raise ConfigurationError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {reqs!r}")
    ctx.check_hostname = reqs != "none" and params.get("ssl_check_hostname", True) not in (False, "false")
    ctx.verify_mode = _CERT_REQS[reqs]
    return ctx


def endpoint(url: str, extra: frozenset[str] = frozenset()) -> tuple[Endpoint, dict[str, Any]]:
    """``redis://``, ``rediss://`` or ``unix://`` URL -> (endpoint, the options named in ``extra``)."""
    params: dict[str, Any] = dict(parse_url(url))
    unknown = set(params) - _URL_KEYS - _TLS_KEYS - extra
    if unknown:
        raise ConfigurationError(f"unsupported store URL option(s): {', '.join(sorted(unknown))}")
    found = Endpoint(
        host=params.get("host") or "localhost",
        port=int(params.get("port") or 6379),
        path=params.get("path"),
        username=params.get("username"),
        password=params.get("password"),
        db=int(params.get("db") or 0),
        tls=_tls_context(params) if url.startswith("rediss://") else None,
    )
    return found, {k: v for k, v in params.items() if k in extra}


def endpoints(url: str, extra: frozenset[str] = frozenset()) -> tuple[list[Endpoint], str, dict[str, Any]]:
    """``redis+cluster://[user:pass@]h1:p1,h2:p2[/path][?opts]`` (or ``rediss+...``) ->
    (one endpoint per host, the path without its slash, the options named in ``extra``)."""
    parts = urlsplit(url)
    base = "rediss" if parts.scheme.startswith("rediss+") else "redis"
    auth, _, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise ConfigurationError(f"no host in store URL {url!r}")
    found: list[Endpoint] = []
    options: dict[str, Any] = {}
    for host in hosts.split(","):
        query = f"?{parts.query}" if parts.query else ""
        one, options = endpoint(f"{base}://{auth + '@' if auth else ''}{host}{query}", extra)
        found.append(one)
    return found, unquote(parts.path.lstrip("/")), options
