"""The audit trail end to end, on a real service: who acted (credential, request id, client address,
through a trusted proxy only), what changed (limits and plans with their values), what a player
sees of an operator, the structured log lines, and the stop-all budget that keeps the trail from
being flooded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_helpers import (
    HS_SECRET,
    bearer,
    claims,
    hs256,
    key,
    new_api_key,
    problem,
    running,
    uid,
)
from tests.servers import RedisServer

PROXY_HOP = "203.0.113.7"


def events(c: httpx.Client, user: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = c.get(f"/v1/users/{user}/events", headers=headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


def audit_lines(log: Path, user: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [x for x in lines if x.get("logger") == "streamlimit.audit" and x.get("user_id") == user]


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, str]:
    ops_key, line = new_api_key("ops-console", admin=True)
    path = tmp_path / "keys"
    path.write_text(line + "\n")
    return path, ops_key


def test_events_record_who_with_what_from_where_and_players_see_only_the_role(
    redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "svc.log"
    with running(
        redis_url, log, auth="jwt", jwt_secret=HS_SECRET, trusted_proxies="127.0.0.1/32",
        stop_all_rate_per_min=2, log_format="json",
    ) as (_, c):  # fmt: skip
        user = uid()
        player = bearer(hs256(claims(user, jti="tok-player-1")))
        ops = bearer(hs256(claims("ops@example.com", "streams streams:admin", jti="tok-ops-7")))
        forwarded = {"x-forwarded-for": f"{PROXY_HOP}, 127.0.0.1"}  # the client, then a trusted hop
        assert c.post(f"/v1/users/{user}/streams", json={"stream_id": "a"}, headers=player).status_code == 201
        put = c.put(
            f"/v1/users/{user}/limit", json={"limit": 4},
            headers={**ops, **forwarded, "x-request-id": "req-limit-1"},
        )  # fmt: skip
        assert put.status_code == 200, put.text
        plan = c.put(f"/v1/users/{user}/plan", json={"plan": "nope"}, headers=ops)
        assert plan.status_code in (404, 422), plan.text  # no plan configured: nothing recorded
        gone = c.delete(f"/v1/users/{user}/streams", headers={**player, "x-forwarded-for": "10.9.9.9"})
        assert gone.json() == {"stopped": 1}
        assert c.delete(f"/v1/users/{user}/streams", headers=player).json() == {"stopped": 0}

        seen_by_ops = events(c, user, ops)
        assert [(e["action"], e["actor"], e["role"], e.get("value")) for e in seen_by_ops] == [
            ("stopped_all", user, "player", None),
            ("limit_set", "ops@example.com", "admin", "4"),
        ]
        stop_all, limit_set = seen_by_ops
        assert (stop_all["credential"], stop_all["streams"]) == ("tok-player-1", ["a"])
        assert stop_all["client"] == "10.9.9.9"  # what the trusted proxy (this test) forwarded
        assert (limit_set["credential"], limit_set["client"]) == ("tok-ops-7", PROXY_HOP)
        assert limit_set["request_id"] == "req-limit-1"
        assert len(stop_all["request_id"]) == 32  # made by the service

        seen_by_player = events(c, user, player)
        assert seen_by_player[0] == stop_all  # its own action, whole
        assert {k: seen_by_player[1][k] for k in ("action", "actor", "role")} == {
            "action": "limit_set",
            "actor": "admin",
            "role": "admin",
        }
        assert not {"credential", "client", "request_id"} & set(seen_by_player[1])

        # a third stop-all within the minute: the budget (2) is spent
        refused = problem(c.delete(f"/v1/users/{user}/streams", headers=player), 429, "too_many_stop_alls")
        assert refused["retry_after_s"] >= 1
        time.sleep(0.2)  # the log lines are written as the answers go out
    lines = audit_lines(log, user)
    assert [(x["action"], x["actor"], x["credential"], x["client"]) for x in lines] == [
        ("limit_set", "ops@example.com", "tok-ops-7", PROXY_HOP),
        ("stopped_all", user, "tok-player-1", "10.9.9.9"),
    ]
    assert lines[0]["value"] == "4"
    assert lines[1]["streams"] == ["a"]
    assert all(x["msg"] == f"audit {x['action']}" for x in lines)  # members, not JSON in msg


def test_without_a_trusted_proxy_forwarded_for_is_ignored_and_api_keys_are_named(
    redis_server: RedisServer, tmp_path: Path, keys_file: tuple[Path, str]
) -> None:
    redis_server.command("FLUSHALL")
    path, ops_key = keys_file
    with running(
        redis_server.url, tmp_path / "svc.log", auth="api_key", api_keys_file=str(path),
        plans="basic=1,family=4",
    ) as (_, c):  # fmt: skip
        user, ops = uid(), {**key(ops_key), "x-forwarded-for": "198.51.100.99"}
        assert c.put(f"/v1/users/{user}/plan", json={"plan": "family"}, headers=ops).status_code == 200
        assert c.delete(f"/v1/users/{user}/plan", headers=ops).status_code == 200
        found = events(c, user, key(ops_key))
        assert [(e["action"], e.get("value"), e["actor"], e["credential"], e["client"]) for e in found] == [
            ("plan_cleared", None, "ops-console", "ops-console", "127.0.0.1"),
            ("plan_set", "family", "ops-console", "ops-console", "127.0.0.1"),
        ]
