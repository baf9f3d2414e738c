"""Request heads of bounded size, on a real `streamlimit serve` process over real sockets: 431 for
a header line over 16 KiB or a head over 64 KiB, 414 for a request target over 16 KiB, and a
worker that keeps answering /healthz while a client sends a multi-megabyte header."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from streamlimit.api.head_limits import MAX_FIELD_BYTES, MAX_HEAD_BYTES
from tests.auth_helpers import HS_SECRET
from tests.servers import Service

KIB = 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("head-limits") / "svc.log"
    svc = Service("memory://", log, auth="jwt", jwt_secret=HS_SECRET).start()
    yield svc
    svc.stop()


def send(port: int, raw: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """Send ``raw`` (stopping if the server closes first) and read the answers until it closes."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        with contextlib.suppress(OSError):  # the server answered early and closed: its answer may be readable
            s.sendall(raw)
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return (int(match.group(1)) if match else 0), answer


def refused(status: int, answer: bytes, want: int, code: str) -> None:
    assert status == want, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    assert json.loads(body)["code"] == code


def get(path: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def test_a_header_line_over_the_limit_is_431(service: Service) -> None:
    name = b"X-Padding: "
    at_limit = name + b"p" * (MAX_FIELD_BYTES - len(name) + 2)  # name + value, without ": "
    assert send(service.port, get(b"/healthz", at_limit))[0] == 200
    status, answer = send(service.port, get(b"/healthz", at_limit + b"p"))
    refused(status, answer, 431, "header_fields_too_large")
    assert b"x-padding" in answer.lower()


def test_a_head_over_the_limit_is_431_though_each_line_is_short(service: Service) -> None:
    line = b"X-Padding: " + b"p" * (4 * KIB)
    n_under = (MAX_HEAD_BYTES - 200) // (len(line) + 2)
    assert send(service.port, get(b"/healthz", *[line] * n_under))[0] == 200
    status, answer = send(service.port, get(b"/healthz", *[line] * (n_under + 2)))
    refused(status, answer, 431, "header_fields_too_large")


def test_a_request_target_over_the_limit_is_414(service: Service) -> None:
    assert send(service.port, get(b"/healthz?" + b"q" * (MAX_FIELD_BYTES - 20)))[0] == 200
    status, answer = send(service.port, get(b"/healthz?" + b"q" * MAX_FIELD_BYTES))
    refused(status, answer, 414, "uri_too_long")


def test_each_request_of_a_connection_has_its_own_head_budget(service: Service) -> None:
    """Three heads of 3/4 of the limit, pipelined on one connection: each is served."""
    big = b"X-Padding: " + b"p" * (MAX_FIELD_BYTES - 20)
    one = b"\r\n".join([b"GET /healthz HTTP/1.1", b"Host: 127.0.0.1", *[big] * 3]) + b"\r\n\r\n"
    status, answer = send(service.port, one * 2 + get(b"/healthz", big, big, big))
    assert status == 200
    assert answer.count(b"HTTP/1.1 200 ") == 3, answer[:500]


def test_healthz_stays_fast_while_a_client_sends_a_16_mb_header(service: Service) -> None:
    """Before the cap, httptools joined the header's pieces read after read (quadratic) and the
    worker was busy for about a second, /healthz waiting behind it."""
    third = b"A" * (16 * 1024 * KIB // 3)
    token = b"Bearer " + third + b"." + third + b"." + third  # dotted, as a JWT: PyJWT would split it
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=service.url, timeout=5) as c:
            while not done.is_set():
                started = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.005)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        status, answer = send(service.port, get(b"/v1/users/u/streams", b"Authorization: " + token))
        time.sleep(0.2)  # and a little after: whatever the worker still did shows here
    finally:
        done.set()
        prober.join()
    refused(status, answer, 431, "header_fields_too_large")
    assert len(latencies) >= 5
    assert max(latencies) < 0.25, f"/healthz took up to {max(latencies):.3f} s"
