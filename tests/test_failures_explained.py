"""Failures a newcomer meets first, each said in one line that names the cause and what to
change: a store URL that is no Redis server, a port already taken, a misspelled setting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from streamlimit.cli import main
from streamlimit.errors import StoreUnavailable
from streamlimit.store.pipelined import PipelinedClient
from tests.servers import Service


@contextmanager
def http_server() -> Iterator[int]:
    """A real HTTP server on a free loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def tls_server() -> Iterator[int]:
    """A TLS port: it drops a client that does not say hello in TLS, as Redis's tls-port does."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(ctx)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            # not TLS: the handshake fails and the connection is closed
            with conn, contextlib.suppress(ssl.SSLError, OSError):
                conn.settimeout(2)
                ctx.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


SERVERS = {"http": http_server, "tls": tls_server}
SAID = {
    "http": "127.0.0.1:{port} is not a Redis server: it speaks HTTP",
    "tls": "127.0.0.1:{port} closed the connection without answering: "
    "not a Redis server, or a TLS port (use rediss://)",
}


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_a_store_that_is_not_redis_is_named(kind: str) -> None:
    async def call(port: int) -> None:
        client = PipelinedClient.from_url(f"redis://127.0.0.1:{port}/0", 2.0)
        try:
            await client.execute("PING")
        finally:
            await client.aclose()

    with SERVERS[kind]() as port, pytest.raises(StoreUnavailable) as exc:
        asyncio.run(call(port))
    assert str(exc.value) == SAID[kind].format(port=port)


def test_a_store_that_is_not_redis_logs_one_line_and_no_traceback(
    service_factory: Callable[..., Service],
) -> None:
    with http_server() as port:
        svc = service_factory(f"redis://127.0.0.1:{port}/0", store_startup_wait_s=0.3)
        with httpx.Client(base_url=svc.url, timeout=5) as c:
            for i in range(5):  # served per on_store_error=allow
                assert c.post(f"/v1/users/u{i}/streams").headers["x-streamlimit-degraded"] == "1"
            assert c.get("/readyz").status_code == 503
        svc.stop()
    log = svc.log_path.read_text()
    said = [line for line in log.splitlines() if f"127.0.0.1:{port} is not a Redis server" in line]
    assert len(said) == 1, log  # the start-up line; the requests' within the same interval are counted
    assert "Traceback" not in log
    assert " ERROR " not in log


def _serve(env: dict[str, str], timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIMIT_")}
    return subprocess.run(
        [sys.executable, "-m", "streamlimit.cli", "serve"],
        env=clean | {"STREAMLIMIT_STORE_URL": "memory://"} | env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_a_busy_port_names_the_port_and_the_setting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _serve({"STREAMLIMIT_PORT": str(port)})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"streamlimit: port {port} is already in use (127.0.0.1:{port}): set STREAMLIMIT_PORT "
        "(or --port) to a free port, or stop what listens there"
    ]


def test_a_misspelled_setting_is_reported_at_start_up(service_factory: Callable[..., Service]) -> None:
    svc = service_factory("memory://", defualt_limit=5)  # STREAMLIMIT_DEFUALT_LIMIT
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        assert c.post("/v1/users/u/streams").json()["limit"] == 3  # ignored: the default stays
    warnings = [line for line in svc.log_path.read_text().splitlines() if "DEFUALT" in line]
    assert len(warnings) == 1
    assert warnings[0].endswith(
        "WARNING streamlimit: STREAMLIMIT_DEFUALT_LIMIT is not a streamlimit setting and is ignored; "
        "did you mean STREAMLIMIT_DEFAULT_LIMIT?"
    )


def test_check_warns_of_a_misspelled_setting_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMLIMIT_STORE_URL", "memory://")
    monkeypatch.setenv("STREAMLIMIT_ON_STORE_EROR", "deny")
    assert main(["check"]) == 0
    out, err = capsys.readouterr()
    assert err == (
        "warning: STREAMLIMIT_ON_STORE_EROR is not a streamlimit setting and is ignored; "
        "did you mean STREAMLIMIT_ON_STORE_ERROR?\n"
    )
    assert "ok: store memory://" in out
