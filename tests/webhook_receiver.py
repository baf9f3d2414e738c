"""A real webhook receiver for tests: an HTTP server on a loopback port, in a thread, that
records every attempt and answers as the test says; and events queued as the stores queue them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3Itd2ViaG9vay10ZXN0cy0zMmI="  # base64 of 32 bytes


@dataclass(frozen=True)
class Attempt:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str = SECRET) -> Any:
        """The JSON body, once its signature verified (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    """``answer(n, path)`` -> the status for the n-th attempt to arrive (from 0; default 204),
    given after ``delay_s``."""

    def __init__(self, answer: Callable[[int, str], int] | None = None, delay_s: float = 0.0) -> None:
        self.answer = answer or (lambda n, path: 204)
        self.delay_s = delay_s
        self.attempts: list[Attempt] = []
        self.arrived = 0  # attempts received, answered or not yet
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    n, receiver.arrived = receiver.arrived, receiver.arrived + 1
                    status = receiver.answer(n, self.path)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.attempts.append(Attempt(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def delivered(self, path: str | None = None) -> list[Attempt]:
        """The attempts answered 2xx (at ``path``, when given)."""
        with self._lock:
            return [a for a in self.attempts if 200 <= a.status < 300 and path in (None, a.path)]

    def all(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(5)


def event(at_ms: int, action: str, streams: list[str] | None = None, **more: Any) -> dict[str, Any]:
    """An audit event as the scripts record it (lua/_prelude.lua's ``record``)."""
    actor = {"name": "ops", "role": "admin"}
    return {"at": at_ms, "action": action, "actor": actor, "streams": streams or {}, **more}


def xadd(
    command: Callable[..., Any], key: str, user_id: str, ev: dict[str, Any], max_len: int = 10**5
) -> str:
    """Queue ``ev`` as the scripts do (``XADD key MAXLEN ~ n * u user e json``), with
    ``command`` a redis-py ``execute_command``; returns the entry id."""
    raw = json.dumps(ev, separators=(",", ":"))
    return str(command("XADD", key, "MAXLEN", "~", max_len, "*", "u", user_id, "e", raw))


def until(check: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``check`` every 20 ms until it is true, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)
