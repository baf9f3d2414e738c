"""Black-box tests of the account API on real `streamlimit serve` processes: plans and their order
against per-user limits (auth=jwt), the admission epoch, and the audit trail (/events).
Eviction ("watch here instead") and the start budget are in test_accounts_evict.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.auth_helpers import HS_SECRET, bearer, claims, hs256, key, new_api_key, problem, running, uid
from tests.servers import RedisServer

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LIMIT_FIELDS = {"user_id", "limit", "default", "limit_source", "plan"}
ADMIN = "ops-admin"  # the subject of the admin token
Headers = dict[str, str]


def ms(stamp: str) -> int:
    """An RFC 3339 UTC time with milliseconds -> epoch ms (asserting the format)."""
    assert TIME_RE.fullmatch(stamp), stamp
    return round(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() * 1000)


def user_token(user: str, plan: object = None) -> Headers:
    return bearer(hs256(claims(user, plan=plan)))


def admin_token() -> Headers:
    return bearer(hs256(claims(ADMIN, "streams:admin")))


def start(
    c: httpx.Client, user: str, stream: str, headers: Headers | None = None, **params: str
) -> httpx.Response:
    return c.post(f"/v1/users/{user}/streams", json={"stream_id": stream}, headers=headers, params=params)


def started(
    c: httpx.Client, user: str, stream: str, headers: Headers | None = None, **params: str
) -> dict[str, Any]:
    """The body of an admitting (201) start."""
    r = start(c, user, stream, headers, **params)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def limit_of(body: dict[str, Any]) -> tuple[int, str, str | None]:
    return body["limit"], body["limit_source"], body["plan"]


def events(c: httpx.Client, user: str, headers: Headers | None = None) -> list[dict[str, Any]]:
    body = ok(c.get(f"/v1/users/{user}/events", headers=headers))
    assert set(body) == {"user_id", "events"}
    assert body["user_id"] == user
    for e in body["events"]:
        assert {"at", "action", "actor", "role", "streams"} <= set(e), e
        assert set(e) <= {
            "at",
            "action",
            "actor",
            "role",
            "credential",
            "request_id",
            "client",
            "streams",
            "value",
            "device_id",
        }, e
    found: list[dict[str, Any]] = body["events"]
    return found


@pytest.fixture(scope="module")
def jwt_svc(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """auth=jwt with two plans; the default limit stays 3."""
    log = tmp_path_factory.mktemp("accounts-jwt") / "svc.log"
    settings = {"auth": "jwt", "jwt_secret": HS_SECRET, "plans": "basic=1,premium=4"}
    with running(redis_server.url, log, **settings) as (_, c):
        yield c


KeyService = tuple[httpx.Client, Headers, Headers]  # the client, the admin key's and the service key's


@pytest.fixture(scope="module")
def key_svc(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyService]:
    """auth=api_key with an admin key "support-console" and a service key "billing"; limit 2."""
    d = tmp_path_factory.mktemp("accounts-api-key")
    admin_key, admin_line = new_api_key("support-console", admin=True)
    service_key, service_line = new_api_key("billing")
    (d / "keys").write_text(f"{admin_line}\n{service_line}\n")
    settings = {"auth": "api_key", "api_keys_file": d / "keys", "default_limit": 2}
    with running(redis_server.url, d / "svc.log", **settings) as (_, c):
        yield c, key(admin_key), key(service_key)


# --- plans --------------------------------------------------------------------------------------


def test_a_token_plan_sets_the_limit_and_unknown_or_missing_plans_get_the_default(
    jwt_svc: httpx.Client,
) -> None:
    c = jwt_svc
    for plan, limit, source, named in (
        ("basic", 1, "plan", "basic"),
        ("premium", 4, "plan", "premium"),
        ("gold", 3, "default", None),  # not a configured plan
        ("no such plan!", 3, "default", None),  # not even a plan name
        (7, 3, "default", None),  # not a string
        (None, 3, "default", None),  # no plan claim
    ):
        user = uid()
        h = user_token(user, plan)
        first = started(c, user, "s0", h)
        assert limit_of(first) == (limit, source, named), (plan, first)
        assert first["active"] == 1
        for n in range(1, limit):
            assert started(c, user, f"s{n}", h)["active"] == n + 1
        refused = problem(start(c, user, "one-too-many", h), 409, "stream_limit_reached")
        assert (refused["active"], *limit_of(refused)) == (limit, limit, source, named)
        listed = ok(c.get(f"/v1/users/{user}/streams", headers=h))
        assert limit_of(listed) == (limit, source, named)
        assert (listed["active"], listed["remaining"], listed["quota_exhausted"]) == (limit, 0, True)
        got = ok(c.get(f"/v1/users/{user}/limit", headers=h))
        assert got == {
            "user_id": user,
            "limit": limit,
            "default": True,
            "limit_source": source,
            "plan": named,
        }


def test_admin_plan_beats_the_claim_and_a_user_limit_beats_both(jwt_svc: httpx.Client) -> None:
    c, user, admin = jwt_svc, uid(), admin_token()
    h = user_token(user, "basic")
    assert limit_of(started(c, user, "a", h)) == (1, "plan", "basic")

    r = c.put(f"/v1/users/{user}/plan", json={"plan": "premium"}, headers=admin)
    assert ok(r) == {"user_id": user, "limit": 4, "default": True, "limit_source": "plan", "plan": "premium"}
    b = started(c, user, "b", h)  # the token still says basic: the admin's plan wins
    assert (b["active"], *limit_of(b)) == (2, 4, "plan", "premium")

    r = c.put(f"/v1/users/{user}/limit", json={"limit": 2}, headers=admin)
    assert ok(r) == {"user_id": user, "limit": 2, "default": False, "limit_source": "user", "plan": "premium"}
    refused = problem(start(c, user, "c", h), 409, "stream_limit_reached")
    assert (refused["active"], *limit_of(refused)) == (2, 2, "user", "premium")
    assert limit_of(ok(c.get(f"/v1/users/{user}/streams", headers=h))) == (2, "user", "premium")

    r = c.delete(f"/v1/users/{user}/limit", headers=admin)
    assert ok(r) == {"user_id": user, "limit": 4, "default": True, "limit_source": "plan", "plan": "premium"}
    assert limit_of(started(c, user, "c", h)) == (4, "plan", "premium")

    # without the admin's plan the token's claim applies again (an admin's read has no claim)
    r = c.delete(f"/v1/users/{user}/plan", headers=admin)
    assert ok(r) == {"user_id": user, "limit": 3, "default": True, "limit_source": "default", "plan": None}
    mine = ok(c.get(f"/v1/users/{user}/limit", headers=h))
    assert mine == {"user_id": user, "limit": 1, "default": True, "limit_source": "plan", "plan": "basic"}
    refused = problem(start(c, user, "d", h), 409, "stream_limit_reached")
    assert (refused["active"], *limit_of(refused)) == (3, 1, "plan", "basic")
    assert ok(c.get(f"/v1/users/{user}/streams", headers=h))["remaining"] == 0


def test_only_admins_change_plans_and_limits_and_only_to_configured_plans(jwt_svc: httpx.Client) -> None:
    c, user, admin = jwt_svc, uid(), admin_token()
    h = user_token(user, "basic")
    for method, path, body in (
        ("PUT", "plan", {"plan": "premium"}),
        ("DELETE", "plan", None),
        ("PUT", "limit", {"limit": 4}),
        ("DELETE", "limit", None),
    ):
        r = c.request(method, f"/v1/users/{user}/{path}", json=body, headers=h)
        problem(r, 403, "forbidden")
    assert limit_of(ok(c.get(f"/v1/users/{user}/limit", headers=h))) == (1, "plan", "basic")

    for unknown in ("gold", "Basic", ""):  # a string naming no configured plan: no such plan
        r = c.put(f"/v1/users/{user}/plan", json={"plan": unknown}, headers=admin)
        assert problem(r, 422, "unknown_plan")["field"] == "plan", unknown
    for bad in (4, None, ["basic"]):
        r = c.put(f"/v1/users/{user}/plan", json={"plan": bad}, headers=admin)
        assert problem(r, 422, "invalid_body")["field"] == "plan", bad
    problem(
        c.put(f"/v1/users/{user}/plan", json={"plan": "basic", "x": 1}, headers=admin), 422, "invalid_body"
    )
    # nothing was stored by the refused calls
    assert limit_of(ok(c.get(f"/v1/users/{user}/limit", headers=admin))) == (3, "default", None)
    assert limit_of(ok(c.get(f"/v1/users/{user}/limit", headers=h))) == (1, "plan", "basic")
    assert events(c, user, admin) == []  # plan changes are not audited; refused ones certainly not


# --- epoch --------------------------------------------------------------------------------------


def test_epoch_grows_with_every_admission_and_not_with_renewals(jwt_svc: httpx.Client) -> None:
    c, user = jwt_svc, uid()
    h = user_token(user, "premium")
    e1 = started(c, user, "a", h)["epoch"]
    e2 = started(c, user, "b", h)["epoch"]
    assert type(e1) is int
    assert e2 > e1
    for renewed, own in (("b", e2), ("a", e1)):  # a renewal answers the lease's own epoch
        r = start(c, user, renewed, h)
        assert r.status_code == 200, r.text
        assert r.json()["epoch"] == own
    e3 = started(c, user, "c", h)["epoch"]
    assert e3 > e2
    assert ok(c.delete(f"/v1/users/{user}/streams", headers=h)) == {"stopped": 3}
    e4 = started(c, user, "a", h)["epoch"]  # the same id again, after stop-all
    assert e4 > e3
    assert c.delete(f"/v1/users/{user}/streams/a", headers=h).status_code == 204  # the last one
    e5 = started(c, user, "a", h)["epoch"]
    assert e5 > e4
    assert start(c, user, "a", h).json()["epoch"] == e5


# --- events -------------------------------------------------------------------------------------


def test_events_record_who_evicted_stopped_and_changed_limits_newest_first(key_svc: KeyService) -> None:
    c, admin, service = key_svc
    user = uid()
    assert events(c, user, service) == []
    started(c, user, "a", service)
    started(c, user, "b", service)
    r = start(c, user, "c", service, on_limit="evict_oldest")
    assert r.status_code == 201, r.text
    assert r.json()["evicted"]["stream_id"] == "a"
    assert c.delete(f"/v1/users/{user}/streams/b", headers=service).status_code == 204
    assert c.delete(f"/v1/users/{user}/streams/b", headers=service).status_code == 204  # gone: no event
    problem(c.put(f"/v1/users/{user}/limit", json={"limit": 5}, headers=service), 403, "forbidden")
    assert ok(c.put(f"/v1/users/{user}/limit", json={"limit": 5}, headers=admin))["limit"] == 5
    assert ok(c.delete(f"/v1/users/{user}/limit", headers=admin))["limit"] == 2
    started(c, user, "d", service)
    assert ok(c.delete(f"/v1/users/{user}/streams", headers=admin)) == {"stopped": 2}

    found = events(c, user, service)
    assert [(e["action"], e["actor"], sorted(e["streams"])) for e in found] == [
        ("stopped_all", "support-console", ["c", "d"]),
        ("limit_cleared", "support-console", []),
        ("limit_set", "support-console", []),
        ("stopped_by_admin", "billing", ["b"]),
        ("evicted", "billing", ["a"]),
    ]
    stamps = [ms(e["at"]) for e in found]
    assert stamps == sorted(stamps, reverse=True)
    assert abs(stamps[0] - datetime.now(UTC).timestamp() * 1000) < 10_000
    assert events(c, user, admin) == found
    assert events(c, uid(), admin) == []  # another user's trail is separate


def test_users_read_only_their_own_events_and_their_own_stops_are_not_recorded(
    jwt_svc: httpx.Client,
) -> None:
    c, user, other, admin = jwt_svc, uid(), uid(), admin_token()
    h = user_token(user)
    started(c, user, "mine", h)
    started(c, user, "kept", h)
    assert c.delete(f"/v1/users/{user}/streams/mine", headers=h).status_code == 204
    assert events(c, user, h) == []
    assert c.delete(f"/v1/users/{user}/streams/kept", headers=admin).status_code == 204
    # the player sees an operator's action as its role; an admin sees who, with what, from where
    seen_by_player = events(c, user, h)
    assert seen_by_player == [
        {**seen_by_player[0], "action": "stopped_by_admin", "actor": "admin", "role": "admin"}
    ]
    assert set(seen_by_player[0]) == {"at", "action", "actor", "role", "streams"}
    seen_by_admin = events(c, user, admin)
    assert [(e["action"], e["actor"], e["role"], e["streams"]) for e in seen_by_admin] == [
        ("stopped_by_admin", ADMIN, "admin", ["kept"])
    ]
    assert seen_by_admin[0]["client"] == "127.0.0.1"
    assert len(seen_by_admin[0]["request_id"]) == 32

    started(c, other, "x", user_token(other))
    problem(c.get(f"/v1/users/{other}/events", headers=h), 403, "forbidden")
    problem(c.get(f"/v1/users/{user}/events"), 401, "unauthenticated")
    assert ok(c.delete(f"/v1/users/{other}/streams", headers=user_token(other))) == {"stopped": 1}
    by_other = events(c, other, admin)
    assert [(e["action"], e["actor"], e["streams"]) for e in by_other] == [("stopped_all", other, ["x"])]
