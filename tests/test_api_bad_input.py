"""Hostile input never yields a 5xx: every refusal is a problem+json with a stable code."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import RedisServer, Service, client_of_new_service

MAX_BODY = 16 * 1024
FORM = {"content-type": "application/x-www-form-urlencoded"}
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD_IDS = ["%7B", "a%20b", "%7Bx%7D", "a%2Ab", "%22", "%C3%A9", "%FF", "a%0A", "x" * 129]
ID_ROUTES = [
    ("POST", "/v1/users/{id}/streams"),
    ("GET", "/v1/users/{id}/streams"),
    ("DELETE", "/v1/users/{id}/streams"),
    ("POST", "/v1/users/{id}/streams/ok/heartbeat"),
    ("POST", "/v1/users/ok/streams/{id}/heartbeat"),
    ("DELETE", "/v1/users/{id}/streams/ok"),
    ("DELETE", "/v1/users/ok/streams/{id}"),
    ("GET", "/v1/users/{id}/limit"),
    ("PUT", "/v1/users/{id}/limit"),
    ("DELETE", "/v1/users/{id}/limit"),
]


def uid() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert body["status"] == status
    assert code is None or body["code"] == code, body
    return body


def sane(r: httpx.Response) -> None:
    """No 5xx; a v1 refusal is a well-formed problem."""
    assert r.status_code < 500, r.text
    if r.status_code >= 400 and not r.request.url.path.startswith("/user/"):
        problem(r, r.status_code)


@pytest.fixture(scope="module")
def client(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with client_of_new_service(redis_server.url, tmp_path_factory.mktemp("api-bad")) as c:
        yield c


JSON_TYPE = {"content-type": "application/json"}  # v1 bodies must say they are JSON (else 415)


def start(c: httpx.Client, raw: bytes, user: str | None = None) -> httpx.Response:
    return c.post(f"/v1/users/{user or uid()}/streams", content=raw, headers=JSON_TYPE)


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
def test_invalid_id_in_path_is_422(client: httpx.Client, method: str, route: str, bad: str) -> None:
    body = {"limit": 1} if method == "PUT" else None
    problem(client.request(method, route.format(id=bad), json=body), 422, "invalid_id")


@pytest.mark.parametrize("stream_id", ["", "a b", "{x}", "a/b", "é", "x" * 129])
def test_invalid_stream_id_in_body_is_422(client: httpx.Client, stream_id: str) -> None:
    problem(client.post(f"/v1/users/{uid()}/streams", json={"stream_id": stream_id}), 422, "invalid_id")


@pytest.mark.parametrize(
    "raw", [b"{", b"{'a': 1}", b"nul", b'{"stream_id": }', b"\xff\xfe{}", b"{}x", b'{"device": "\xff\xfe"}']
)
def test_malformed_json_is_400(client: httpx.Client, raw: bytes) -> None:
    problem(start(client, raw), 400, "malformed_json")
    problem(client.put(f"/v1/users/{uid()}/limit", content=raw, headers=JSON_TYPE), 400, "malformed_json")


@pytest.mark.parametrize("raw", [b"[]", b'"s"', b"5", b"null", b"true", b'[{"stream_id": "a"}]'])
def test_json_that_is_not_an_object_is_422(client: httpx.Client, raw: bytes) -> None:
    problem(start(client, raw), 422, "invalid_body")
    problem(client.put(f"/v1/users/{uid()}/limit", content=raw, headers=JSON_TYPE), 422, "invalid_body")


@pytest.mark.parametrize(
    "body",
    [
        {"stream_id": 5},
        {"stream_id": True},
        {"stream_id": ["a"]},
        {"device": "x" * 129},
        {"device": []},
        {"device": 5},
        {"device": {"name": "tv"}},
        {"unknown": 1},
        {"stream_id": "a", "extra": None},
    ],
    ids=repr,
)
def test_wrong_member_types_or_lengths_are_422(client: httpx.Client, body: dict[str, Any]) -> None:
    user = uid()
    problem(client.post(f"/v1/users/{user}/streams", json=body), 422, "invalid_body")
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 0


def test_device_of_128_characters_is_accepted(client: httpx.Client) -> None:
    r = client.post(f"/v1/users/{uid()}/streams", json={"device": "d" * 128})
    assert r.status_code == 201
    assert r.json()["device"] == "d" * 128


BAD_LIMITS: list[Any] = [{"limit": n} for n in (-1, 1001, "3", 2.5, True, None, [3])] + [
    {},
    {"limit": 3, "x": 1},
]


@pytest.mark.parametrize("body", BAD_LIMITS, ids=repr)
def test_bad_limit_is_422(client: httpx.Client, body: dict[str, Any]) -> None:
    user = uid()
    problem(client.put(f"/v1/users/{user}/limit", json=body), 422, "invalid_body")
    assert client.get(f"/v1/users/{user}/limit").json()["default"] is True


def test_empty_limit_body_is_422(client: httpx.Client) -> None:
    problem(client.put(f"/v1/users/{uid()}/limit", content=b""), 422, "invalid_body")


@pytest.mark.parametrize("path", ["/v1/users/u/streams", "/user/stream", "/v1/users/u/limit"])
def test_body_over_16_kib_is_413_with_content_length(client: httpx.Client, path: str) -> None:
    raw = b'{"device": "' + b"x" * MAX_BODY + b'"}'
    r = client.request("PUT" if path.endswith("limit") else "POST", path, content=raw, headers=JSON_TYPE)
    assert r.request.headers["content-length"] == str(len(raw))
    problem(r, 413, "body_too_large")


@pytest.mark.parametrize("path", ["/v1/users/u/streams", "/user/stream"])
def test_chunked_body_over_16_kib_is_413(client: httpx.Client, path: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"device": "'
        for _ in range(20):
            yield b"x" * 1024
        yield b'"}'

    r = client.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.request.headers["transfer-encoding"] == "chunked"
    problem(r, 413, "body_too_large")


def test_body_of_exactly_16_kib_is_accepted(client: httpx.Client) -> None:
    raw = b'{"device": "tv"}'
    r = start(client, raw + b" " * (MAX_BODY - len(raw)))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("depth", [100, 1000, 2500])
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/users/u/streams"), ("PUT", "/v1/users/u/limit")])
def test_deeply_nested_json_is_refused_not_crashed(
    client: httpx.Client, method: str, path: str, depth: int
) -> None:
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        assert len(raw) <= MAX_BODY
        r = client.request(method, path, content=raw, headers=JSON_TYPE)
        assert r.status_code in (400, 422), r.text
        problem(r, r.status_code)


@pytest.mark.parametrize("depth", [100, 1000, 2500])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_deeply_nested_json_is_400_on_compat(client: httpx.Client, method: str, depth: int) -> None:
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        r = client.request(method, "/user/stream", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert isinstance(r.json()["message"], str)


@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/users/u", "/v1/users/u/streams/s/extra", "/user"])
def test_unknown_route_is_404_problem(client: httpx.Client, path: str) -> None:
    problem(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v1/users/u/streams"),
        ("PUT", "/v1/users/u/streams/s"),
        ("GET", "/v1/users/u/streams/s/heartbeat"),
        ("POST", "/v1/users/u/limit"),
        ("POST", "/healthz"),
        ("PUT", "/user/stream"),
    ],
)
def test_wrong_method_is_405_problem(client: httpx.Client, method: str, path: str) -> None:
    problem(client.request(method, path), 405, "method_not_allowed")


ALLOWED = {
    "/v1/users/u/streams": {"GET", "POST", "DELETE"},
    "/v1/users/u/limit": {"GET", "PUT", "DELETE"},
    "/user/stream": {"GET", "POST", "DELETE"},
}


@pytest.mark.parametrize("path", sorted(ALLOWED))
def test_405_allow_header_lists_every_method_of_the_path(client: httpx.Client, path: str) -> None:
    r = client.request("PATCH", path)
    problem(r, 405, "method_not_allowed")
    allowed = {m.strip() for m in r.headers.get("allow", "").split(",")} - {"HEAD"}
    assert allowed == ALLOWED[path], f"RFC 9110: Allow must list all methods, got {r.headers.get('allow')}"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["stream_id", "device", "userId", "streamId", "limit"]) | st.text(), inner
        )
    ),
    max_leaves=12,
)
OBJECTS = st.dictionaries(
    st.sampled_from(["stream_id", "device", "userId", "streamId"]),
    st.none()
    | st.integers()
    | st.text(max_size=140)
    | st.from_regex(r"[A-Za-z0-9._:@+-]{1,130}", fullmatch=True),
)


@pytest.mark.slow
def test_fuzz_arbitrary_bytes(client: httpx.Client) -> None:
    @FUZZ
    @given(raw=st.binary(max_size=512), form=st.booleans())
    def run(raw: bytes, form: bool) -> None:
        headers = FORM if form else {"content-type": "application/json"}
        sane(client.post(f"/v1/users/{uid()}/streams", content=raw, headers=headers))
        sane(client.post("/user/stream", content=raw, headers=headers))
        sane(client.request("DELETE", "/user/stream", content=raw, headers=headers))
        sane(client.put(f"/v1/users/{uid()}/limit", content=raw, headers=headers))

    run()
    assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_fuzz_arbitrary_json(client: httpx.Client) -> None:
    @FUZZ
    @given(body=JSON | OBJECTS)
    def run(body: Any) -> None:
        raw = json.dumps(body).encode()
        user = uid()
        sane(start(client, raw, user))
        sane(client.post("/user/stream", content=raw, headers={"content-type": "application/json"}))
        sane(client.request("DELETE", "/user/stream", content=raw))
        sane(client.put(f"/v1/users/{user}/limit", content=raw, headers=JSON_TYPE))

    run()
    assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_fuzz_arbitrary_path_segments(client: httpx.Client) -> None:
    @FUZZ
    @given(segment=st.text(min_size=1, max_size=200))
    def run(segment: str) -> None:
        seg = quote(segment, safe="")
        sane(client.get(f"/v1/users/{seg}/streams"))
        sane(client.post(f"/v1/users/{seg}/streams"))
        sane(client.post(f"/v1/users/{uid()}/streams/{seg}/heartbeat"))
        sane(client.delete(f"/v1/users/{uid()}/streams/{seg}"))
        sane(client.get(f"/v1/users/{seg}/limit"))
        sane(client.get("/user/stream", params={"userId": segment}))

    run()
    assert client.get("/healthz").status_code == 200


def test_a_client_that_disconnects_mid_body_leaves_no_traceback(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    svc = Service(redis_server.url, tmp_path / "svc.log").start()
    try:
        with socket.create_connection(("127.0.0.1", svc.port)) as s:
            s.sendall(b"POST /v1/users/u/streams HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        assert httpx.get(f"{svc.url}/healthz").status_code == 200
    finally:
        svc.stop()
    assert "Traceback" not in (tmp_path / "svc.log").read_text()
