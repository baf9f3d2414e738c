"""Black-box tests of STREAMLIMIT_AUTH=api_key and auth=none on real `streamlimit serve` processes,
secrets kept out of answers and logs, security headers and CORS."""

from __future__ import annotations

import hashlib
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth_helpers import (
    API_KEY_CHALLENGE,
    CSP,
    HS_SECRET,
    OTHER_SECRET,
    SECURITY_HEADERS,
    bearer,
    claims,
    clean_env,
    hs256,
    key,
    new_api_key,
    problem,
    running,
    start,
    uid,
    unsigned,
)
from tests.servers import RedisServer, Service, free_port

PLAYER = "https://player.example"
KEYS = ("backend-2025", "backend-2026", "ops")  # two service keys of a rotation, one admin key
ApiService = tuple[httpx.Client, dict[str, str]]  # a client of the api_key service, its keys by name


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiService]:
    """An auth=api_key service (CORS for the player's origin too), and its keys by name."""
    d = tmp_path_factory.mktemp("auth-api-key")
    made = {name: new_api_key(name, admin=name == "ops") for name in KEYS}
    lines = [
        "# streamlimit API keys: NAME ROLE SHA256",
        made["backend-2025"][1] + "  # rotating out",
        "",
        made["backend-2026"][1],
        made["ops"][1],
    ]
    (d / "keys").write_text("\n".join(lines) + "\n")
    settings = {"api_keys_file": d / "keys", "cors_origins": f"{PLAYER}, https://admin.example"}
    with running(redis_server.url, d / "svc.log", auth="api_key", **settings) as (_, c):
        yield c, {name: key for name, (key, _) in made.items()}


# --- auth=api_key ------------------------------------------------------------------------------


def test_both_keys_of_a_rotation_act_on_any_user(api: ApiService) -> None:
    c, keys = api
    for name in ("backend-2025", "backend-2026"):
        user = uid()
        assert start(c, user, key(keys[name])).status_code == 201
        assert c.post(f"/v1/users/{user}/streams/s1/heartbeat", headers=key(keys[name])).status_code == 200
        assert c.get(f"/v1/users/{user}/streams", headers=key(keys[name])).json()["active"] == 1
        assert c.delete(f"/v1/users/{user}/streams/s1", headers=key(keys[name])).status_code == 204


def test_a_service_key_may_not_change_limits(api: ApiService) -> None:
    c, keys = api
    user = uid()
    h = key(keys["backend-2026"])
    problem(c.put(f"/v1/users/{user}/limit", json={"limit": 9}, headers=h), 403, "forbidden")
    problem(c.delete(f"/v1/users/{user}/limit", headers=h), 403, "forbidden")
    assert c.get(f"/v1/users/{user}/limit", headers=h).json()["default"] is True


def test_the_admin_key_changes_limits(api: ApiService) -> None:
    c, keys = api
    user = uid()
    h = key(keys["ops"])
    r = c.put(f"/v1/users/{user}/limit", json={"limit": 1}, headers=h)
    assert (r.status_code, r.json()["limit"], r.json()["default"]) == (200, 1, False)
    assert start(c, user, h).status_code == 201
    problem(start(c, user, key(keys["backend-2025"]), "s2"), 409, "stream_limit_reached")
    r = c.delete(f"/v1/users/{user}/limit", headers=h)
    assert (r.status_code, r.json()["default"]) == (200, True)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "slk_" + "A" * 43},  # unknown
        {"x-api-key": ""},
        {"authorization": "Bearer slk_whatever"},  # the wrong header
    ],
    ids=["none", "unknown", "empty", "bearer"],
)
def test_missing_or_unknown_key_is_401_with_an_apikey_challenge(
    api: ApiService, headers: dict[str, str]
) -> None:
    c, _ = api
    r = start(c, uid(), headers)
    problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith(API_KEY_CHALLENGE)


def test_the_hash_in_the_keys_file_is_not_a_key(api: ApiService) -> None:
    c, keys = api
    ops_hash = hashlib.sha256(keys["ops"].encode()).hexdigest()
    problem(start(c, uid(), key(ops_hash)), 401, "unauthenticated")
    problem(start(c, uid(), key(keys["ops"].upper())), 401, "unauthenticated")  # keys are case-sensitive


# --- secrets never leak into answers or logs -----------------------------------------------------


def _leak_probes(c: httpx.Client, user: str, valid_key: str | None) -> tuple[list[str], list[str]]:
    """Rejected requests carrying secret-looking credentials -> (the secrets, the answers)."""
    forged = hs256(claims(user), OTHER_SECRET)
    expired = hs256(claims(user, exp=1_600_000_000, iat=1_500_000_000, nbf=1_500_000_000))
    other_users = hs256(claims(uid()))  # valid, for another user: 403
    api_key = "slk_" + secrets.token_urlsafe(32)
    sent = [forged, expired, other_users, unsigned(claims(user)), api_key, HS_SECRET]
    answers = []
    for h in [bearer(t) for t in sent[:4]] + [key(api_key), bearer(HS_SECRET), key(HS_SECRET)]:
        r = start(c, user, h)
        assert r.status_code in (401, 403), r.text
        answers.append(r.text + str(r.headers))
        answers.append(c.get("/user/stream", params={"userId": user}, headers=h).text)
    if valid_key is not None:  # a valid service key where an admin one is needed: 403
        r = c.put(f"/v1/users/{user}/limit", json={"limit": 5}, headers=key(valid_key))
        problem(r, 403, "forbidden")
        answers.append(r.text + str(r.headers))
        sent.append(valid_key)
    return sent, answers


def test_secrets_never_leak(service_factory: Callable[..., Service], redis_url: str, tmp_path: Path) -> None:
    service_key, line = new_api_key("backend")
    (tmp_path / "keys").write_text(line + "\n")
    debug = {"log_level": "debug", "request_timeout_s": 0.5}
    jwt_svc = service_factory(redis_url, auth="jwt", jwt_secret=HS_SECRET, **debug)
    key_svc = service_factory(redis_url, auth="api_key", api_keys_file=tmp_path / "keys", **debug)
    # an idle connection, closed after 0.5 s with a DEBUG line: proof that debug logging is on
    idle = [socket.create_connection(("127.0.0.1", svc.port), timeout=5) for svc in (jwt_svc, key_svc)]
    sent, answers = [], []
    for svc, valid_key in ((jwt_svc, None), (key_svc, service_key)):
        with httpx.Client(base_url=svc.url, timeout=5) as c:
            s, a = _leak_probes(c, uid(), valid_key)
        sent += s
        answers += a
    for conn in idle:
        with conn:
            assert conn.recv(1) == b""
    for svc in (jwt_svc, key_svc):
        svc.stop()  # every log line written
    logs = [svc.log_path.read_text() for svc in (jwt_svc, key_svc)]
    assert all(" DEBUG " in log for log in logs), logs
    for secret in sent:
        assert len(secret) >= 32
        for text in answers + logs:
            assert secret not in text


# --- auth=none -----------------------------------------------------------------------------------


def test_auth_none_off_loopback_is_refused_at_start_up() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamlimit.cli", "serve"],
        env=clean_env(
            STREAMLIMIT_HOST="0.0.0.0", STREAMLIMIT_STORE_URL="memory://", STREAMLIMIT_PORT=str(free_port())
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("streamlimit: invalid settings: STREAMLIMIT_AUTH=none on 0.0.0.0"), lines
    assert "STREAMLIMIT_INSECURE_NO_AUTH=1" in lines[0]


@pytest.mark.parametrize(
    "settings", [{"host": "0.0.0.0", "insecure_no_auth": 1}, {}], ids=["insecure off loopback", "loopback"]
)
def test_auth_none_starts_with_a_warning(
    service_factory: Callable[..., Service], settings: dict[str, object]
) -> None:
    svc = service_factory("memory://", **settings)
    user = uid()
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        assert start(c, user, {}).status_code == 201  # nobody is asked who they are
        assert c.put(f"/v1/users/{user}/limit", json={"limit": 2}).status_code == 200
    warnings = [line for line in svc.log_path.read_text().splitlines() if " WARNING " in line]
    assert any("STREAMLIMIT_AUTH=none" in line for line in warnings), warnings


# --- security headers and CORS ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"), [("/healthz", 200), ("/v1/users/u1/streams", 401), ("/nowhere", 404)]
)
def test_security_headers_on_every_answer(api: ApiService, path: str, status: int) -> None:
    c, _ = api
    r = c.get(path)
    assert r.status_code == status, r.text
    for name, value in (SECURITY_HEADERS | {"content-security-policy": CSP}).items():
        assert r.headers.get(name) == value, name


def test_docs_and_health_need_no_credentials(api: ApiService) -> None:
    c, _ = api
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        r = c.get(path)
        assert r.status_code == 200, path
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (path, name)
    assert "content-security-policy" not in c.get("/docs").headers  # the Swagger UI needs its scripts


def _preflight(c: httpx.Client, origin: str) -> httpx.Response:
    return c.options(
        "/v1/users/u1/streams",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        },
    )


def test_cors_preflight_from_an_allowed_origin(api: ApiService) -> None:
    c, _ = api
    r = _preflight(c, PLAYER)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == PLAYER
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    # the answer itself: the browser may read it, and the challenge of a 401
    r = c.get("/v1/users/u1/streams", headers={"origin": PLAYER})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == PLAYER
    assert "www-authenticate" in r.headers["access-control-expose-headers"].lower()


def test_cors_refuses_other_origins(api: ApiService) -> None:
    c, _ = api
    r = _preflight(c, "https://evil.example")
    assert r.status_code == 400, r.text  # Starlette's answer to a preflight it refuses
    assert "access-control-allow-origin" not in r.headers
    r = c.get("/healthz", headers={"origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
