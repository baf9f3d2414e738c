"""What ``serve`` and ``check`` tell a person: the start-up line, a port already taken, the
``STREAMLIMIT_*`` variables that are no setting, and the check's report, each in words."""

from __future__ import annotations

import asyncio
import errno
import re
import socket

from streamlimit import __version__
from streamlimit.errors import ConfigurationError, StoreUnavailable
from streamlimit.grants.issuer import GrantIssuer
from streamlimit.settings import ENV_PREFIX, Settings
from streamlimit.store.connect import embedded_path, open_store, scheme_of
from streamlimit.store.embedded import EmbeddedServer, ping_unix

_SECRET_IN_URL = re.compile(r"(//[^:/@]*:)[^@/]*@|((?:^|[?&])(?:sentinel_)?password=)[^&]*")


def shown_url(url: str) -> str:
    """The store URL with any password in it replaced by ***."""
    return _SECRET_IN_URL.sub(lambda m: f"{m[1]}***@" if m[1] else f"{m[2]}***", url)


def base_url(settings: Settings) -> str:
    """Where a person on this machine reaches the service."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def ensure_port_free(settings: Settings) -> None:
    """Fail with the port and the setting to change, not with the server's traceback."""
    if settings.port == 0:
        return
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {settings.port} is already in use ({where}): set {ENV_PREFIX}PORT "
                    f"(or --port) to a free port, or stop what listens there"
                ) from None
            raise ConfigurationError(
                f"cannot listen on {where}: {exc.strerror}; change {ENV_PREFIX}HOST or {ENV_PREFIX}PORT"
            ) from None


async def _embedded_state(settings: Settings) -> str | None:
    """For embedded://: whether a server already runs there (adopted) or will be started."""
    if scheme_of(settings.store_url) != "embedded":
        return None
    server = EmbeddedServer(embedded_path(settings.store_url))
    if await ping_unix(server.socket):
        return f"adopting the server already running in {server.path}"
    return f"starting a server in {server.path}"


def banner(settings: Settings) -> str:
    """The one line ``serve`` logs before its workers start."""
    url = base_url(settings)
    store = shown_url(settings.store_url)
    state = asyncio.run(_embedded_state(settings))
    if state:
        store += f", {state}"
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    return (
        f"streamlimit {__version__} serving {url}{workers}; API docs {url}/docs, console {url}/console; "
        f"store {store}"
    )


def grant_keys(settings: Settings) -> str | None:
    """What the grant keys are, in words, or None without any; ``ConfigurationError`` for a key
    file that cannot serve (checked before any worker starts: one line, not one per worker)."""
    issuer = GrantIssuer.from_settings(settings)
    if issuer is None:
        return None
    others = [k.kid for k in issuer.keys[1:]]
    published = (
        f"; also published, so that grants they signed still verify: {', '.join(others)}" if others else ""
    )
    return f"grants signed with {issuer.signer.alg} key {issuer.signer.kid}{published}"


async def check_report(settings: Settings, given: list[str]) -> tuple[bool, list[str]]:
    """(passed, what was checked, one line each): the settings (``given``: the variables of
    the settings given by flag or environment), the grant keys, then the store."""
    named = ", ".join(given) if given else "none"
    lines = [f"ok: settings valid ({len(Settings.model_fields)} settings; given: {named}; the rest default)"]
    try:
        keys = grant_keys(settings)
    except ConfigurationError as exc:
        lines.append(f"FAILED: {exc}")
        return False, lines
    if keys is not None:
        lines.append(f"ok: {keys}")
    store_url = shown_url(settings.store_url)
    if scheme_of(settings.store_url) == "memory":
        lines.append("ok: store memory:// (in this process: nothing to reach; for tests and demos)")
        return True, lines
    state = await _embedded_state(settings)
    store = await open_store(settings.model_copy(update={"store_startup_wait_s": 0}))
    try:
        await store.ping()
    except StoreUnavailable as exc:
        lines.append(f"FAILED: store {store_url} is not usable: {exc}")
        return False, lines
    finally:
        await store.close()
    done = f" ({state.replace('starting', 'started, and stopped again,')})" if state else ""
    lines.append(f"ok: store {store_url} answers and holds the service's Lua scripts{done}")
    return True, lines
