"""Hostile input against a real service process and a real store.

No invalid input reaches the store as a key (every key is inspected), ids made of the allowed
``:`` and ``@`` never touch another user's keys, nothing yields a 5xx, and a client that
trickles its request cannot hold a connection or the worker: it is cut after
``REQUEST_TIMEOUT_S`` while everyone else is served.

test_api_bad_input.py covers the basic refusals (invalid ids in v1 paths, malformed or
deeply nested JSON, bodies over the limit, unknown routes and methods, byte and JSON fuzzing);
this module adds the other places an id can hide, the key layout, transport-level abuse and
slow clients.
"""

from __future__ import annotations

import json
import re
import select
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import redis

from streamlimit.api.render import rfc3339
from streamlimit.ids import is_valid_id
from streamlimit.settings import Settings
from streamlimit.store.keys import KINDS, PATTERN, TYPES, user_keys
from tests.servers import RedisServer, Service

TIMEOUT_S = 1.0  # the service's REQUEST_TIMEOUT_S: short, so no test sleeps long
CUT_MARGIN_S = 1.5  # how late past TIMEOUT_S a cut may come on a loaded 2-core machine
JSON_TYPE = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
# a key of the layout (store/keys.py): the user part is checked with is_valid_id
KEY = PATTERN
# the module's service runs with the default start budget: every admission sets the user's
# "rate" key, which lives at least one budget period after the admission, then expires
START_PERIOD_S = 60 / Settings.model_fields["start_rate_per_min"].default
# _prelude.lua's touch(): an info hash left with only '#epoch' by the end of the last lease
# expires this soon after
EPOCH_LINGER_MS = 1000

# ids outside the rule: each must be refused wherever it is sent, and never become a key
BAD_IDS = {
    "open_brace": "{",
    "close_brace": "}",
    "hash_tag": "{u:a}",
    "tag_breakout": "x}:{u:y",
    "star": "*",
    "glob": "a*",
    "question_glob": "a?",
    "space": "a b",
    "tab": "a\tb",
    "crlf": "a\r\nb",
    "nul": "a\x00b",
    "nul_only": "\x00",
    "e_acute": "é",
    "snowman": "☃",
    "astral": "\U0001d518",
    "fullwidth_a": "ａ",  # noqa: RUF001 - NFKC-folds to "a": must not be taken as it
    "kelvin_sign": "\u212a",  # case-folds to "k"
    "rtl_override": "a\u202eb",
    "percent": "a%3Ab",  # an encoded ":" arriving still encoded: never decoded twice
    "slash": "a/b",
    "10_kib": "x" * 10 * 1024,
}
BAD = pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))


def uid() -> str:
    return f"h-{uuid.uuid4().hex[:12]}"


def seg(value: str) -> str:
    """``value`` as one path segment, every reserved character percent-encoded."""
    return quote(value, safe="")


@pytest.fixture(scope="module")
def service(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    redis_server.command("FLUSHALL")
    log = tmp_path_factory.mktemp("hostile") / "svc.log"
    svc = Service(redis_server.url, log, request_timeout_s=TIMEOUT_S).start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=5) as c:
        yield c


@pytest.fixture(scope="module")
def store(redis_server: RedisServer) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield r
    r.close()


def keys(store: redis.Redis) -> set[str]:
    return set(store.scan_iter(count=1000))


def key(user: str, kind: str) -> str:
    return dict(zip(KINDS, user_keys(user), strict=True))[kind]


def of_layout(k: str) -> re.Match[str] | None:
    """The match of a key of the layout whose user part is a valid id, else None."""
    m = KEY.fullmatch(k)
    return m if m is not None and is_valid_id(m["user"]) else None


def rate_keys_check(found: set[str], admitted: dict[str, float], scanned: float) -> set[str]:
    """The start-budget keys in ``found``, checked: only users in ``admitted`` (user -> monotonic
    time just before their last admission was sent) have one, and each whose last admission
    is less than a budget period before ``scanned`` (when the scan began) certainly has."""
    rate = {k for k in found if k.endswith(":rate")}
    assert rate <= {key(u, "rate") for u in admitted}, "a start-budget key of a user never admitted"
    must = {key(u, "rate") for u, t in admitted.items() if scanned - t < START_PERIOD_S - 0.05}
    assert must <= rate, f"start-budget keys gone within {START_PERIOD_S} s: {must - rate}"
    return rate


def lingering_epochs(store: redis.Redis, found: set[str], idle: set[str]) -> set[str]:
    """The info keys in ``found`` of ``idle`` users (without leases), checked: each holds only
    '#epoch' and expires within EPOCH_LINGER_MS (or has expired since the scan)."""
    info = {k for k in found if k in {key(u, "info") for u in idle}}
    for k in info:
        assert set(store.hkeys(k)) <= {"#epoch"}, k
        ttl = store.pttl(k)
        assert ttl == -2 or 0 < ttl <= EPOCH_LINGER_MS, (k, ttl)
    return info


def info_value(store: redis.Redis, user: str, stream_id: str) -> tuple[str, str | None]:
    """The info hash's "<started_ms>|<e>|<kind>[|<device>]" of a stream: start, device."""
    value = store.hget(key(user, "info"), stream_id)
    assert isinstance(value, str), (user, stream_id, value)
    parts = value.split("|", 3)
    assert parts[0].isdigit(), value
    assert parts[1].isdigit(), value
    assert parts[2] in ("v", "l"), value
    return parts[0], parts[3] if len(parts) == 4 else None


def epoch_of(store: redis.Redis, user: str) -> int:
    value = store.hget(key(user, "info"), "#epoch")
    assert isinstance(value, str), (user, value)
    assert value.isdigit(), (user, value)
    return int(value)


def actions(store: redis.Redis, user: str) -> list[tuple[str, list[str]]]:
    """The user's audit trail as stored, newest first: (action, sorted stream ids)."""
    # Lua's cjson encodes an empty list as {}
    return [
        (e["action"], sorted(e["streams"] or []))
        for e in map(json.loads, store.lrange(key(user, "events"), 0, -1))
    ]


@contextmanager
def no_new_key(store: redis.Redis) -> Iterator[None]:
    """The block creates no key (keys may expire meanwhile, none may appear)."""
    before = keys(store)
    yield
    assert keys(store) - before == set()


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body = r.json()
    assert (body["status"], body["code"]) == (status, code), body


# ---------------------------------------------------------------- ids the rule refuses, everywhere


@BAD
def test_bad_id_in_v1_paths_is_422(client: httpx.Client, store: redis.Redis, bad: str) -> None:
    user = uid()
    with no_new_key(store):
        for method, path in [
            ("POST", f"/v1/users/{seg(bad)}/streams"),
            ("GET", f"/v1/users/{seg(bad)}/streams"),
            ("DELETE", f"/v1/users/{seg(bad)}/streams"),
            ("PUT", f"/v1/users/{seg(bad)}/limit"),
            ("POST", f"/v1/users/{user}/streams/{seg(bad)}/heartbeat"),
            ("GET", f"/v1/users/{user}/streams/{seg(bad)}"),
            ("DELETE", f"/v1/users/{user}/streams/{seg(bad)}"),
        ]:
            r = client.request(method, path, json={"limit": 1} if method == "PUT" else None)
            if "/" in bad:  # an encoded "/" splits the segment: no route, or another one
                refused(r, r.status_code, {404: "not_found", 405: "method_not_allowed"}[r.status_code])
            else:
                refused(r, 422, "invalid_id")


@BAD
def test_bad_stream_id_in_v1_json_body_is_422(client: httpx.Client, store: redis.Redis, bad: str) -> None:
    user = uid()
    with no_new_key(store):
        r = client.post(f"/v1/users/{user}/streams", json={"stream_id": bad, "device": "tv"})
        refused(r, 422, "invalid_id")
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 0


@BAD
def test_bad_user_id_in_compat_query_is_400(client: httpx.Client, store: redis.Redis, bad: str) -> None:
    with no_new_key(store):
        r = client.get("/user/stream", params={"userId": bad})
        refused(r, 400, "invalid_request")
        assert r.json()["field"] == "userId"


@BAD
@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("field", ["userId", "streamId"])
def test_bad_id_in_compat_json_and_form_bodies_is_400(
    client: httpx.Client, store: redis.Redis, bad: str, method: str, field: str
) -> None:
    user = uid()
    body = {"userId": user, field: bad}
    with no_new_key(store):
        r = client.request(method, "/user/stream", content=json.dumps(body).encode(), headers=JSON_TYPE)
        refused(r, 400, "invalid_request")
        assert r.json()["field"] == field
        r = client.request(method, "/user/stream", content=urlencode(body).encode(), headers=FORM)
        refused(r, 400, "invalid_request")
        assert r.json()["field"] == field
    assert client.get("/user/stream", params={"userId": user}).json()["activeStreams"] == 0


@pytest.mark.parametrize(
    ("name", "request_line"),
    [
        ("raw NUL", b"GET /v1/users/a\x00b/streams HTTP/1.1"),
        ("raw space", b"GET /v1/users/a b/streams HTTP/1.1"),
        ("raw UTF-8", "GET /v1/users/é/streams HTTP/1.1".encode()),
        ("raw 0xFF", b"GET /v1/users/\xff/streams HTTP/1.1"),
        ("raw CR", b"GET /v1/users/a\rb/streams HTTP/1.1"),
        ("NUL in query", b"GET /user/stream?userId=a\x00b HTTP/1.1"),
    ],
)
def test_raw_bytes_in_the_request_line_are_400(
    service: Service, store: redis.Redis, name: str, request_line: bytes
) -> None:
    """Bytes no client may put in a URL: the HTTP parser refuses them before the app."""
    with no_new_key(store):
        status, answer, _ = exchange(
            service.port, request_line + b"\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
    assert status == 400, answer


def test_raw_braces_in_the_path_reach_the_id_check(service: Service, store: redis.Redis) -> None:
    with no_new_key(store):
        status, answer, _ = exchange(
            service.port, b"POST /v1/users/{u:a}*/streams HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
    assert status == 422, answer
    assert b'"code":"invalid_id"' in answer


# ---------------------------------------------------------------- key layout: ":" and "@" collide nowhere

# users whose ids look like other users' keys or ids, and the stream ids each starts
NEIGHBOURS: dict[str, list[str]] = {
    "a": ["b", "leases", "b:leases", "a:b", "info"],
    "a:b": ["leases", "x"],
    "a:leases": ["y"],
    "a:info": ["z"],
    "a:limit": ["w"],
    "a:b:leases": ["v"],
    "u:a": ["a", "u"],
    "a@b": ["b@a"],
    "b": ["a"],
    "streamlimit": ["u:a"],
}


def neighbour_keys(store: redis.Redis) -> set[str]:
    """The keys of NEIGHBOURS' users, read back from the key names themselves."""
    found = {k: of_layout(k) for k in keys(store)}
    return {k for k, m in found.items() if m is not None and m["user"] in NEIGHBOURS}


def test_ids_with_colons_and_ats_touch_only_their_own_keys(client: httpx.Client, store: redis.Redis) -> None:
    assert neighbour_keys(store) == set()
    limits = {user: 10 + i for i, user in enumerate(NEIGHBOURS)}
    cleared: set[str] = set()
    ended: dict[str, list[str]] = {}  # user -> its stopped streams' tombstones
    signed_out: set[str] = set()  # users who stopped all their streams
    admitted: dict[str, float] = {}  # user -> just before their last admission was sent
    epochs: dict[str, int] = {}  # user -> the epoch of their last v1 admission
    trails: dict[str, list[tuple[str, list[str]]]] = {user: [("limit_set", [])] for user in NEIGHBOURS}
    for user, streams in NEIGHBOURS.items():
        assert client.put(f"/v1/users/{user}/limit", json={"limit": limits[user]}).status_code == 200
        for sid in streams:
            admitted[user] = time.monotonic()
            r = client.post(f"/v1/users/{user}/streams", json={"stream_id": sid, "device": f"{user}|{sid}"})
            assert r.status_code == 201, r.text
            assert r.json()["epoch"] > epochs.get(user, 0), r.json()
            epochs[user] = r.json()["epoch"]
    admitted["a:b"] = time.monotonic()
    compat = client.post("/user/stream", content=urlencode({"userId": "a:b"}).encode(), headers=FORM)
    assert compat.status_code == 200, compat.text
    compat_stream = ("a:b", compat.json()["streamId"])
    active = {**NEIGHBOURS, "a:b": [*NEIGHBOURS["a:b"], compat_stream[1]]}

    def device_of(user: str, sid: str) -> str | None:
        return None if (user, sid) == compat_stream else f"{user}|{sid}"

    def each_user_sees_only_its_own(expected: dict[str, list[str]]) -> None:
        for user, streams in expected.items():
            listing = client.get(f"/v1/users/{seg(user)}/streams").json()
            assert sorted(s["stream_id"] for s in listing["streams"]) == sorted(streams), user
            for stream in listing["streams"]:  # the device text "<user>|<stream>" came back whole
                assert stream["user_id"] == user
                assert stream["device"] == device_of(user, stream["stream_id"])
            source = "default" if user in cleared else "user"
            limit = {"limit": limits[user], "limit_source": source, "plan": None}
            assert {k: listing[k] for k in limit} == limit, user
            assert client.get(f"/v1/users/{user}/limit").json() == {
                "user_id": user,
                **limit,
                "default": user in cleared,
            }
            count = client.get("/user/stream", params={"userId": user}).json()
            assert (count["activeStreams"], count["limit"]) == (len(streams), limits[user])
            trail = client.get(f"/v1/users/{user}/events").json()
            assert trail["user_id"] == user
            assert [(e["action"], sorted(e["streams"])) for e in trail["events"]] == trails[user], user

    def the_store_holds_exactly(expected: dict[str, list[str]]) -> None:
        """Each user's keys, named by the whole id inside the hash tag, and nobody else's: leases
        and info while it has streams, its limit while one is set, its audit trail (every user
        had a limit set), its start budget (for a while after an admission) and the tombstones of
        its stopped streams."""
        scanned = time.monotonic()
        found = neighbour_keys(store)
        rate = rate_keys_check(found, admitted, scanned)
        lingering = lingering_epochs(store, found, {u for u, streams in expected.items() if not streams})
        fixed = {key(u, k) for u, streams in expected.items() if streams for k in ("leases", "info")}
        fixed |= {key(u, "limit") for u in expected if u not in cleared}
        fixed |= {key(u, "events") for u in expected}
        fixed |= {key(u, "evicted") for u in ended}
        fixed |= {key(u, "stops") for u in signed_out}  # the stop-all budget, for a while
        assert found - rate - lingering == fixed
        for user, stopped in ended.items():  # a tombstone per stopped stream, in its own key
            assert sorted(store.hkeys(key(user, "evicted"))) == sorted(stopped), user
        for user, streams in expected.items():
            assert sorted(store.zrange(key(user, "leases"), 0, -1)) == sorted(streams), user
            if streams:  # the info hash: one field per lease, and the epoch
                assert sorted(store.hkeys(key(user, "info"))) == sorted([*streams, "#epoch"]), user
            for sid in streams:
                assert info_value(store, user, sid)[1] == device_of(user, sid)
            if streams and user != compat_stream[0]:
                assert epoch_of(store, user) == epochs[user], user
            elif streams:  # the compat start came after the last v1 start
                assert epoch_of(store, user) > epochs[user], user
            override = {} if user in cleared else {"limit": str(limits[user])}
            assert store.hgetall(key(user, "limit")) == override, user
            assert actions(store, user) == trails[user], user

    each_user_sees_only_its_own(active)
    the_store_holds_exactly(active)

    # changing one user changes no neighbour: stop all of "a", clear the limit of "a:b"
    assert client.delete("/v1/users/a/streams").json() == {"stopped": len(NEIGHBOURS["a"])}
    assert client.delete("/v1/users/a:b/limit").json()["default"] is True
    assert client.delete("/v1/users/u:a/streams/a").status_code == 204  # the user's own: no event
    limits["a:b"], cleared = 3, {"a:b"}
    ended.update({"a": NEIGHBOURS["a"], "u:a": ["a"]})
    signed_out.add("a")
    trails["a"].insert(0, ("stopped_all", sorted(NEIGHBOURS["a"])))
    trails["a:b"].insert(0, ("limit_cleared", []))
    after = {**active, "a": [], "u:a": ["u"]}
    each_user_sees_only_its_own(after)
    the_store_holds_exactly(after)


def test_an_encoded_id_is_the_same_user_decoded_once(client: httpx.Client, store: redis.Redis) -> None:
    user = f"{uid()}:x@y"
    assert client.post(f"/v1/users/{seg(user)}/streams", json={"stream_id": "s"}).status_code == 201
    assert [s["stream_id"] for s in client.get(f"/v1/users/{user}/streams").json()["streams"]] == ["s"]
    with no_new_key(store):  # "%253A" is "%3A" after one decoding: not an id
        refused(client.get(f"/v1/users/{quote(seg(user), safe='')}/streams"), 422, "invalid_id")
    assert f"streamlimit:{{u:{user}}}:leases" in keys(store)


@pytest.mark.parametrize("device", ["a|b", "|123", "a\\x00b", "\U0001f600" * 32, "", "{u:x}:leases"])
def test_device_text_is_a_value_never_a_key(client: httpx.Client, store: redis.Redis, device: str) -> None:
    user = uid()
    sent = time.monotonic()
    r = client.post(f"/v1/users/{user}/streams", json={"stream_id": "s", "device": device})
    assert r.status_code == 201, r.text
    assert r.json()["device"] == device
    assert client.get(f"/v1/users/{user}/streams/s").json()["device"] == device
    scanned = time.monotonic()
    found = keys(store)
    mine = {k for k in found if user in k}
    rate = rate_keys_check(mine, {user: sent}, scanned)
    assert mine - rate == {key(user, "leases"), key(user, "info")}
    if device:  # ... and no key names it, e.g. "{u:x}:leases" as another user's key
        assert {k for k in found if device in k} == set()
    # the info hash holds "<started_ms>|<e>|v|<device>", the device text whole, and the epoch
    assert set(store.hkeys(key(user, "info"))) == {"s", "#epoch"}
    started, stored_device = info_value(store, user, "s")
    assert (rfc3339(int(started)), stored_device) == (r.json()["started_at"], device)
    assert epoch_of(store, user) == r.json()["epoch"]


# ---------------------------------------------------------------- repeated and misplaced parameters


def test_query_parameters_never_choose_the_user_or_stream(client: httpx.Client, store: redis.Redis) -> None:
    user, victim = uid(), uid()
    assert client.put(f"/v1/users/{victim}/limit", json={"limit": 5}).status_code == 200
    hostile = {"user_id": victim, "userId": victim, "stream_id": "evil"}
    r = client.post(f"/v1/users/{user}/streams", params=hostile, json={"stream_id": "mine"})
    assert (r.status_code, r.json()["user_id"], r.json()["stream_id"]) == (201, user, "mine")
    repeated = httpx.QueryParams(
        [("userId", victim), ("userId", user), ("user_id", victim), ("user_id", user)]
    )
    assert client.get(f"/v1/users/{user}/streams", params=repeated).json()["user_id"] == user
    assert client.get(f"/v1/users/{user}/limit", params=repeated).json()["limit"] == 3
    # compat: the body names the user; a userId in the query string of a POST or DELETE is ignored
    r = client.post(f"/user/stream?userId={victim}", json={"userId": user})
    assert r.status_code == 200, r.text
    r = client.request("DELETE", f"/user/stream?userId={victim}&streamId=x", json={"userId": user})
    assert r.status_code == 200, r.text
    assert client.get(f"/v1/users/{victim}/streams").json()["active"] == 0
    # the victim has the limit and the audit trail of its PUT: no lease, and no start-budget key
    assert {k for k in keys(store) if victim in k} == {key(victim, "limit"), key(victim, "events")}
    assert store.hgetall(key(victim, "limit")) == {"limit": "5"}
    assert actions(store, victim) == [("limit_set", [])]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_repeated_stream_id_in_compat_bodies_is_400(client: httpx.Client, method: str) -> None:
    user = uid()
    assert client.post(f"/v1/users/{user}/streams", json={"stream_id": "keep"}).status_code == 201
    form = f"userId={user}&streamId=keep&streamId=other".encode()
    refused(client.request(method, "/user/stream", content=form, headers=FORM), 400, "invalid_request")
    raw = f'{{"userId": "{user}", "streamId": "keep", "streamId": "keep"}}'.encode()
    refused(client.request(method, "/user/stream", content=raw, headers=JSON_TYPE), 400, "invalid_request")
    assert [s["stream_id"] for s in client.get(f"/v1/users/{user}/streams").json()["streams"]] == ["keep"]


def test_repeated_compat_query_values_of_another_name_are_ignored(client: httpx.Client) -> None:
    user = uid()
    r = client.get(f"/user/stream?userId={user}&userid=x&userid=y&streamId=a&streamId=b")
    assert r.status_code == 200, r.text
    assert r.json()["activeStreams"] == 0


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/v1/users/{user}/streams", b'{"stream_id": "a", "stream_id": "b"}'),
        ("PUT", "/v1/users/{user}/limit", b'{"limit": 1, "limit": 1000}'),
    ],
)
def test_repeated_members_in_a_v1_body_are_refused(
    client: httpx.Client, method: str, path: str, raw: bytes
) -> None:
    r = client.request(method, path.format(user=uid()), content=raw, headers=JSON_TYPE)
    refused(r, 422, "invalid_body")


# ---------------------------------------------------------------- JSON of the wrong types


@pytest.mark.parametrize("value", [{"id": "a"}, 1.5, -1, 10**30, [["a"]], False, {}], ids=repr)
def test_wrong_json_types_for_the_v1_stream_id_are_422(
    client: httpx.Client, store: redis.Redis, value: Any
) -> None:
    user = uid()
    with no_new_key(store):
        refused(client.post(f"/v1/users/{user}/streams", json={"stream_id": value}), 422, "invalid_body")


def test_null_v1_stream_id_means_generate_one(client: httpx.Client) -> None:
    r = client.post(f"/v1/users/{uid()}/streams", json={"stream_id": None, "device": None})
    assert r.status_code == 201, r.text
    assert uuid.UUID(r.json()["stream_id"])
    assert r.json()["device"] is None


@pytest.mark.parametrize("value", [["a"], {"id": "a"}, True, 1.5, "", [], {}], ids=repr)
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_wrong_json_types_for_the_compat_stream_id_are_400(
    client: httpx.Client, store: redis.Redis, method: str, value: Any
) -> None:
    with no_new_key(store):
        r = client.request(method, "/user/stream", json={"userId": uid(), "streamId": value})
        refused(r, 400, "invalid_request")
        assert r.json()["field"] == "streamId"


def test_compat_integer_and_null_ids_follow_the_document(client: httpx.Client, store: redis.Redis) -> None:
    """An integer id is its decimal text (negative too); a null streamId is none; a null userId is refused."""
    user = -int(uuid.uuid4().int % 10**12)
    r = client.post("/user/stream", json={"userId": user, "streamId": 42})
    assert (r.status_code, r.json()["streamId"]) == (200, "42")
    r = client.post("/user/stream", json={"userId": user, "streamId": None})
    assert r.status_code == 200, r.text
    assert uuid.UUID(r.json()["streamId"])
    assert f"streamlimit:{{u:{user}}}:leases" in keys(store)
    assert client.get("/user/stream", params={"userId": str(user)}).json()["activeStreams"] == 2
    with no_new_key(store):
        refused(client.post("/user/stream", json={"userId": None, "streamId": "s"}), 400, "invalid_request")
        for huge in (10**130, -(10**130)):  # more than 128 digits
            refused(client.post("/user/stream", json={"userId": huge}), 400, "invalid_request")
        raw = b'{"userId": ' + b"9" * 5000 + b"}"  # past the stdlib's digit limit
        refused(client.post("/user/stream", content=raw, headers=JSON_TYPE), 400, "invalid_request")


# ---------------------------------------------------------------- encodings and content types


NOT_UTF8 = {
    "latin-1": b'{"stream_id": "caf\xe9"}',
    "overlong": b'{"stream_id": "\xc0\xaf"}',
    "lone surrogate escape": b'{"stream_id": "\\ud800"}',
    "cesu-8 surrogate": b'{"stream_id": "\xed\xa0\x80"}',
    "utf-16": '{"stream_id": "s"}'.encode("utf-16"),
    "utf-8 bom": b'\xef\xbb\xbf{"stream_id": "s"}',
    "truncated": b'{"stream_id": "\xe2\x98',
}


@pytest.mark.parametrize("raw", list(NOT_UTF8.values()), ids=list(NOT_UTF8))
def test_non_utf8_v1_bodies_are_400(client: httpx.Client, store: redis.Redis, raw: bytes) -> None:
    user = uid()
    with no_new_key(store):
        refused(
            client.post(f"/v1/users/{user}/streams", content=raw, headers=JSON_TYPE), 400, "malformed_json"
        )
        limit = raw.replace(b"stream_id", b"limit")
        refused(
            client.put(f"/v1/users/{user}/limit", content=limit, headers=JSON_TYPE), 400, "malformed_json"
        )


@pytest.mark.parametrize(
    ("raw", "ctype"),
    [
        (b'{"userId": "caf\xe9"}', JSON_TYPE),
        (b'{"userId": "\\ud800"}', JSON_TYPE),
        ('{"userId": "caf\u00e9"}'.encode("utf-16"), JSON_TYPE),
        ('{"userId": "a", "streamId": "\u2603"}'.encode("utf-32"), JSON_TYPE),
        (b"userId=caf\xe9", FORM),
        (b"userId=caf%E9", FORM),
        (b"userId=%C3%A9", FORM),
        (b"userId=a&streamId=\xff\xfe", FORM),
    ],
    ids=[
        "latin-1",
        "surrogate",
        "utf-16",
        "utf-32",
        "form latin-1",
        "form %E9",
        "form %C3%A9",
        "form 0xFFFE",
    ],
)
def test_non_utf8_or_non_ascii_compat_bodies_are_400(
    client: httpx.Client, store: redis.Redis, raw: bytes, ctype: dict[str, str]
) -> None:
    with no_new_key(store):
        for method in ("POST", "DELETE"):
            refused(
                client.request(method, "/user/stream", content=raw, headers=ctype), 400, "invalid_request"
            )


MULTIPART = b'--x\r\nContent-Disposition: form-data; name="userId"\r\n\r\nmp\r\n--x--\r\n'
WRONG_TYPES = {
    "multipart": (MULTIPART, "multipart/form-data; boundary=x"),
    "xml": (b"<userId>a</userId>", "application/xml"),
    "form as v1 body": (b"stream_id=s&limit=3", "application/x-www-form-urlencoded"),
    "form without type": (b"userId=a", None),
    "text": (b"userId a", "text/plain"),
}


@pytest.mark.parametrize(("raw", "ctype"), list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
def test_bodies_that_are_not_json_under_any_content_type_are_refused(
    client: httpx.Client, store: redis.Redis, raw: bytes, ctype: str | None
) -> None:
    headers = {"content-type": ctype} if ctype else {}
    user = uid()
    with no_new_key(store):
        # v1 asks for a JSON label first (415); the compat routes read the content (400)
        refused(
            client.post(f"/v1/users/{user}/streams", content=raw, headers=headers),
            415,
            "unsupported_media_type",
        )
        refused(
            client.put(f"/v1/users/{user}/limit", content=raw, headers=headers), 415, "unsupported_media_type"
        )
        if ctype != "application/x-www-form-urlencoded":
            for method in ("POST", "DELETE"):
                r = client.request(method, "/user/stream", content=raw, headers=headers)
                refused(r, 400, "invalid_request")


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "multipart/form-data", None])
def test_compat_reads_a_json_body_whatever_its_label_v1_wants_it_labelled(
    client: httpx.Client, ctype: str | None
) -> None:
    """The compat routes are lenient on purpose (curl -d labels JSON as a form), as the original
    was; v1 is not: a browser sends unlabelled and form bodies cross-site without asking."""
    headers = {"content-type": ctype} if ctype else {}
    user = uid()
    r = client.post(f"/v1/users/{user}/streams", content=b'{"stream_id": "s"}', headers=headers)
    refused(r, 415, "unsupported_media_type")
    r = client.post("/user/stream", content=json.dumps({"userId": user}).encode(), headers=headers)
    assert r.status_code == 200, r.text
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 1


# ---------------------------------------------------------------- framing and size abuse


@pytest.mark.parametrize(
    ("name", "head", "status"),
    [
        ("content-length and chunked", b"Content-Length: 2\r\nTransfer-Encoding: chunked", 400),
        ("two content-lengths", b"Content-Length: 2\r\nContent-Length: 3", 400),
        ("negative content-length", b"Content-Length: -1", 400),
        ("content-length past 2**64", b"Content-Length: 99999999999999999999999", 400),
        ("a terabyte declared", b"Content-Length: 1099511627776", 413),
        ("a megabyte, expect 100-continue", b"Content-Length: 1048576\r\nExpect: 100-continue", 413),
    ],
)
@pytest.mark.parametrize("path", [b"/v1/users/u/streams", b"/user/stream"])
def test_hostile_framing_is_refused_at_once(
    service: Service, store: redis.Redis, name: str, head: bytes, path: bytes, status: int
) -> None:
    started = time.monotonic()
    with no_new_key(store):
        got, answer, _ = exchange(
            service.port,
            b"POST "
            + path
            + b" HTTP/1.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
            + head
            + b"\r\n\r\n",
        )
    assert got == status, answer
    assert time.monotonic() - started < TIMEOUT_S * 0.9, "refused without waiting for the body"
    if status == 413:
        assert b'"code":"body_too_large"' in answer
        assert b"100 Continue" not in answer


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/user/stream"), ("PUT", "/v1/users/u/limit")])
def test_form_and_json_bodies_over_the_limit_are_413(client: httpx.Client, method: str, path: str) -> None:
    raw = b"userId=a&streamId=" + b"x" * (16 * 1024)
    if path.startswith("/v1/"):  # a form is no v1 body at any size
        refused(client.request(method, path, content=raw, headers=FORM), 415, "unsupported_media_type")
    else:
        refused(client.request(method, path, content=raw, headers=FORM), 413, "body_too_large")
    refused(
        client.request(method, path, content=b" " * (16 * 1024 + 1), headers=JSON_TYPE), 413, "body_too_large"
    )


# ---------------------------------------------------------------- slow clients


def exchange(
    port: int, at_once: bytes, trickled: bytes = b"", *, interval_s: float = 0.0, cap_s: float = 10.0
) -> tuple[int, bytes, float]:
    """Send ``at_once``, then ``trickled`` one byte per ``interval_s``, and read until the server closes.

    Returns the answer's status (0 when there was none), the answer, and the seconds from
    connecting until the server closed the connection. Sending stops as soon as it has.
    """
    answer = b""
    closed_at: float | None = None
    with socket.create_connection(("127.0.0.1", port)) as s:
        started = time.monotonic()
        pieces = [at_once] if at_once else []
        pieces += [trickled[i : i + 1] for i in range(len(trickled))]
        for piece in pieces:
            try:
                s.sendall(piece)
            except OSError:  # reset: the server closed
                closed_at = time.monotonic()
                break
            readable, _, _ = select.select([s], [], [], interval_s)
            if readable:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    chunk = b""
                answer += chunk
                if not chunk:
                    closed_at = time.monotonic()
                    break
        s.settimeout(0.2)
        while closed_at is None and time.monotonic() - started < cap_s:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            answer += chunk
            if not chunk:
                closed_at = time.monotonic()
    assert closed_at is not None, f"the server kept the connection over {cap_s} s; got {answer!r}"
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return (int(match.group(1)) if match else 0), answer, closed_at - started


def cut_in_time(elapsed_s: float) -> None:
    assert TIMEOUT_S * 0.9 <= elapsed_s <= TIMEOUT_S + CUT_MARGIN_S, elapsed_s


def timed_out(status: int, answer: bytes) -> None:
    """A request cut short is answered 408 with a problem, then the connection is closed."""
    assert status == 408, answer
    assert b"content-type: application/problem+json" in answer
    assert b'"code":"request_timeout"' in answer
    assert b"connection: close" in answer


HEAD = b"POST /v1/users/{user}/streams HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"p" * 64 + b"\r\n\r\n"


def test_a_trickled_request_head_is_cut_with_408(service: Service, client: httpx.Client) -> None:
    user = uid()
    status, answer, elapsed = exchange(
        service.port, b"", HEAD.replace(b"{user}", user.encode()), interval_s=0.05
    )
    cut_in_time(elapsed)
    timed_out(status, answer)
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 0


def test_a_trickled_body_is_cut_with_408_and_has_no_effect(service: Service, client: httpx.Client) -> None:
    user = uid()
    body = json.dumps({"stream_id": "slow", "device": "d" * 60}).encode()
    head = f"POST /v1/users/{user}/streams HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
    head += "Content-Type: application/json\r\n\r\n"
    # the head arrives at once, so the handler starts and waits for the body, which trickles
    status, answer, elapsed = exchange(service.port, head.encode(), body, interval_s=0.05)
    cut_in_time(elapsed)
    timed_out(status, answer)
    assert b'"instance":"/v1/users/' in answer
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 0


def test_a_connection_that_sends_nothing_is_closed_silently(service: Service) -> None:
    status, answer, elapsed = exchange(service.port, b"")
    cut_in_time(elapsed)
    assert (status, answer) == (0, b"")


def test_a_body_left_unread_after_an_early_answer_is_cut_too(service: Service) -> None:
    """A 413 is answered from Content-Length at once; trickling the body after it is cut."""
    head = b"POST /user/stream HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000\r\n\r\n"
    status, answer, elapsed = exchange(service.port, head, b"x" * 200, interval_s=0.02)
    assert status == 413, answer
    assert answer.count(b"HTTP/1.1 ") == 1, "no 408 after the answer"
    cut_in_time(elapsed)


def test_many_slow_clients_hold_neither_the_worker_nor_other_clients(
    service: Service, client: httpx.Client
) -> None:
    """40 connections trickle heads and bodies on the one worker; every other request is served."""
    user = uid()
    slow_head = HEAD.replace(b"{user}", user.encode())
    body = b'{"stream_id": "never"}'
    slow_body = (
        f"POST /v1/users/{user}/streams HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
    )
    slow_body += "Content-Type: application/json\r\n\r\n"
    jobs = [(b"", slow_head)] * 20 + [(slow_body.encode(), body)] * 20
    with ThreadPoolExecutor(len(jobs)) as pool:
        cuts = [pool.submit(exchange, service.port, *job, interval_s=0.05) for job in jobs]
        time.sleep(0.2)  # every slow connection is open and trickling
        served = []
        for _ in range(10):  # well inside the 1 s the slow clients are given
            began = time.monotonic()
            r = client.post(f"/v1/users/{uid()}/streams", json={"stream_id": "fast"})
            assert r.status_code == 201, r.text
            served.append(time.monotonic() - began)
        assert not any(c.done() for c in cuts), "all that was served while the slow clients trickled"
        results = [c.result() for c in cuts]
    assert max(served) < TIMEOUT_S, served  # not held until the slow clients were cut
    for status, answer, elapsed in results:
        cut_in_time(elapsed)
        timed_out(status, answer)
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 0


def test_a_slow_but_complete_request_is_served(service: Service) -> None:
    """Pauses that end within the timeout are fine; the deadline is per request, not per connection."""
    with socket.create_connection(("127.0.0.1", service.port)) as s:
        s.settimeout(5)
        started = time.monotonic()
        for _ in range(3):  # three requests over more than the timeout, each well within it
            user = uid()
            body = b'{"stream_id": "s"}'
            head = f"POST /v1/users/{user}/streams HTTP/1.1\r\nHost: localhost\r\n"
            head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n"
            for piece in (head[:10].encode(), head[10:].encode(), body[:5], body[5:]):
                s.sendall(piece)
                time.sleep(TIMEOUT_S / 10)
            answer = s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 201 "), answer
            time.sleep(TIMEOUT_S / 5)
        assert time.monotonic() - started > TIMEOUT_S * 1.5


def test_slow_clients_are_cut_with_several_workers(redis_server: RedisServer, tmp_path: Path) -> None:
    """With --workers 2 each worker process imports the protocol by reference."""
    svc = Service(redis_server.url, tmp_path / "svc.log", request_timeout_s=TIMEOUT_S, workers=2).start()
    try:
        head = HEAD.replace(b"{user}", uid().encode())
        with ThreadPoolExecutor(8) as pool:
            cuts = [pool.submit(exchange, svc.port, b"", head, interval_s=0.05) for _ in range(8)]
            results = [c.result() for c in cuts]
        for status, answer, elapsed in results:
            cut_in_time(elapsed)
            timed_out(status, answer)
        assert httpx.get(f"{svc.url}/healthz", timeout=5).status_code == 200
    finally:
        svc.stop()
    log = (tmp_path / "svc.log").read_text()
    assert "Traceback" not in log
    assert log.count("request head not received within 1 s") == 8


# ---------------------------------------------------------------- at the end of the module


def test_no_invalid_input_ever_became_a_key(
    service: Service, store: redis.Redis, client: httpx.Client
) -> None:
    found = keys(store)
    assert found, "the tests above created users"
    assert {k for k in found if not of_layout(k)} == set()
    for k in found:  # each of the kind its name says ("none": it expired since the scan)
        m = of_layout(k)
        assert m is not None
        assert store.type(k) in (TYPES[m["kind"]], "none"), k
    assert client.get("/healthz").status_code == 200
    log = service.log_path.read_text()
    assert "Traceback" not in log
    assert " ERROR " not in log
