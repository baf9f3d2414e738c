"""Black-box tests of the original API (/user/stream), kept unchanged for its clients."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.servers import RedisServer, client_of_new_service

FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON_TYPE = {"content-type": "application/json"}
NONE_ACTIVE = {"message": "Operation failed! - You have 0 stream active"}


def uid() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def add(c: httpx.Client, user: str) -> str:
    r = c.post("/user/stream", json={"userId": user})
    assert r.status_code == 200, r.text
    stream_id: str = r.json()["streamId"]
    return stream_id


def remove(c: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return c.request("DELETE", "/user/stream", json=body)


def v1_ids(c: httpx.Client, user: str) -> list[str]:
    r = c.get(f"/v1/users/{user}/streams")
    assert r.status_code == 200, r.text
    return [s["stream_id"] for s in r.json()["streams"]]


def v1_start(c: httpx.Client, user: str, *ids: str) -> None:
    for sid in ids:
        assert c.post(f"/v1/users/{user}/streams", json={"stream_id": sid}).status_code in (200, 201)
        time.sleep(0.005)  # distinct started_at


def bad_request(r: httpx.Response) -> None:
    assert r.status_code == 400, r.text
    assert "json" in r.headers["content-type"]
    message = r.json()["message"]
    assert isinstance(message, str)
    assert message


@pytest.fixture(scope="module")
def client(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with client_of_new_service(redis_server.url, tmp_path_factory.mktemp("api-compat")) as c:
        yield c


def test_count_of_a_fresh_user(client: httpx.Client) -> None:
    r = client.get("/user/stream", params={"userId": uid()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"message", "activeStreams", "limit", "quotaExhausted"}
    assert (body["activeStreams"], body["limit"], body["quotaExhausted"]) == (0, 3, False)
    assert isinstance(body["message"], str)
    assert "warning" not in body["message"].lower()


def test_add_with_json_and_form_bodies(client: httpx.Client) -> None:
    user = uid()
    r = client.post("/user/stream", json={"userId": user})
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Stream added successfully"
    assert r.json()["activeStreams"] == 1
    first = r.json()["streamId"]
    r = client.post("/user/stream", data={"userId": user})
    assert r.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert r.status_code == 200, r.text
    assert (r.json()["message"], r.json()["activeStreams"]) == ("Stream added successfully", 2)
    second = r.json()["streamId"]
    assert isinstance(first, str)
    assert isinstance(second, str)
    assert first != second
    assert client.get("/user/stream", params={"userId": user}).json()["activeStreams"] == 2
    assert set(v1_ids(client, user)) == {first, second}  # both APIs see the same streams


def test_quota_exceeded_is_403_and_count_warns(client: httpx.Client) -> None:
    user = uid()
    for _ in range(3):
        add(client, user)
    r = client.post("/user/stream", json={"userId": user})
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "Quota of max 3 per user exceeded"
    assert len(v1_ids(client, user)) == 3
    r = client.get("/user/stream", params={"userId": user})
    assert r.status_code == 200
    body = r.json()
    assert (body["activeStreams"], body["limit"], body["quotaExhausted"]) == (3, 3, True)
    assert "warning" in body["message"].lower()


@pytest.mark.parametrize("limit", [0, 1, 5])
def test_quota_message_names_the_users_real_limit(client: httpx.Client, limit: int) -> None:
    user = uid()
    assert client.put(f"/v1/users/{user}/limit", json={"limit": limit}).status_code == 200
    for _ in range(limit):
        add(client, user)
    r = client.post("/user/stream", data={"userId": user})
    assert r.status_code == 403, r.text
    assert r.json()["message"] == f"Quota of max {limit} per user exceeded"
    body = client.get("/user/stream", params={"userId": user}).json()
    assert (body["activeStreams"], body["limit"], body["quotaExhausted"]) == (limit, limit, True)


def test_remove_without_stream_id_removes_the_oldest_legacy_stream_never_a_v1_one(
    client: httpx.Client,
) -> None:
    """A v1 player (a heartbeating TV) is never stopped by a compat DELETE without ``streamId``:
    it removes the oldest legacy (compat-started) stream, and with none it is the original 403."""
    user = uid()
    v1_start(client, user, "tv")
    legacy = [add(client, user), add(client, user)]
    v1_start(client, user, "tv")  # renewed: still the oldest of all
    r = remove(client, {"userId": user})
    assert r.status_code == 200, r.text
    assert (r.json()["message"], r.json()["activeStreams"], r.json()["streamId"]) == (
        "Stream removed successfully",
        2,
        legacy[0],
    )
    r = client.request("DELETE", "/user/stream", content=f"userId={user}".encode(), headers=FORM)
    assert r.status_code == 200, r.text
    assert (r.json()["activeStreams"], r.json()["streamId"]) == (1, legacy[1])
    r = remove(client, {"userId": user})
    assert r.status_code == 403, r.text
    assert r.json() == {"message": "Operation failed! - You have 0 stream active"}
    assert v1_ids(client, user) == ["tv"]
    assert client.post(f"/v1/users/{user}/streams/tv/heartbeat").status_code == 200
    listed = client.get(f"/v1/users/{user}/streams").json()["streams"]
    assert [s["legacy"] for s in listed] == [False]


def test_remove_oldest_of_compat_streams(client: httpx.Client) -> None:
    user = uid()
    first = add(client, user)
    time.sleep(0.005)
    second = add(client, user)
    assert remove(client, {"userId": user}).json()["activeStreams"] == 1
    assert v1_ids(client, user) == [second]
    assert first != second


def test_remove_given_stream(client: httpx.Client) -> None:
    user = uid()
    v1_start(client, user, "s-1", "s-2", "s-3")
    r = remove(client, {"userId": user, "streamId": "s-2"})
    assert r.status_code == 200, r.text
    assert (r.json()["message"], r.json()["activeStreams"]) == ("Stream removed successfully", 2)
    assert v1_ids(client, user) == ["s-1", "s-3"]
    legacy = add(client, user)
    r = client.request(
        "DELETE", "/user/stream", content=f"userId={user}&streamId={legacy}".encode(), headers=FORM
    )
    assert r.status_code == 200, r.text
    assert v1_ids(client, user) == ["s-1", "s-3"]


def test_remove_with_no_active_stream_is_403(client: httpx.Client) -> None:
    user = uid()
    r = remove(client, {"userId": user})
    assert r.status_code == 403, r.text
    assert r.json() == NONE_ACTIVE
    add(client, user)
    assert remove(client, {"userId": user}).status_code == 200
    assert remove(client, {"userId": user}).json() == NONE_ACTIVE


def test_remove_of_an_inactive_stream_id_is_404_and_removes_nothing(client: httpx.Client) -> None:
    user = uid()
    v1_start(client, user, "s-1", "s-2")
    for sid in ("nope", "s-3"):
        r = remove(client, {"userId": user, "streamId": sid})
        assert r.status_code == 404, r.text
        assert r.json()["message"] == "Stream not found"
    assert v1_ids(client, user) == ["s-1", "s-2"]
    r = remove(client, {"userId": uid(), "streamId": "s-1"})
    assert (r.status_code, r.json()["message"]) == (404, "Stream not found")


def test_integer_user_id_is_its_decimal_text(client: httpx.Client) -> None:
    number = random.randint(10**12, 10**15)
    r = client.post("/user/stream", json={"userId": number})
    assert r.status_code == 200, r.text
    stream_id = r.json()["streamId"]
    assert client.get("/user/stream", params={"userId": str(number)}).json()["activeStreams"] == 1
    assert v1_ids(client, str(number)) == [stream_id]
    assert remove(client, {"userId": number, "streamId": stream_id}).status_code == 200
    assert v1_ids(client, str(number)) == []


@pytest.mark.parametrize(
    "query",
    ["", "?userId=a&userId=b", "?userId=", "?userId=a%20b", "?userId=%7B%7D", "?userId=" + "x" * 129, "?x=1"],
)
def test_count_with_bad_user_id_is_400(client: httpx.Client, query: str) -> None:
    bad_request(client.get("/user/stream" + query))


BAD_JSON_BODIES: list[Any] = [
    {},
    {"userId": ""},
    {"userId": None},
    {"userId": ["a"]},
    {"userId": {"id": "a"}},
    {"userId": True},
    {"userId": 1.5},
    {"userId": "a b"},
    {"userId": "a/b"},
    {"userId": "x" * 129},
    ["userId"],
    "userId",
]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("body", BAD_JSON_BODIES, ids=repr)
def test_bad_user_id_in_json_body_is_400(client: httpx.Client, method: str, body: Any) -> None:
    bad_request(client.request(method, "/user/stream", json=body))


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("form", ["", "userId=", "userId=a%20b", "other=1", "userId=" + "x" * 129])
def test_bad_user_id_in_form_body_is_400(client: httpx.Client, method: str, form: str) -> None:
    bad_request(client.request(method, "/user/stream", content=form.encode(), headers=FORM))


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_repeated_user_id_is_400_and_changes_nothing(client: httpx.Client, method: str) -> None:
    user = uid()
    v1_start(client, user, "keep")
    form = f"userId={user}&userId={user}".encode()
    bad_request(client.request(method, "/user/stream", content=form, headers=FORM))
    other = f"userId={user}&userId={uid()}".encode()
    bad_request(client.request(method, "/user/stream", content=other, headers=FORM))
    bad_request(client.get(f"/user/stream?userId={user}&userId={user}"))
    repeated_json = f'{{"userId": "{user}", "userId": "{uid()}"}}'.encode()
    bad_request(client.request(method, "/user/stream", content=repeated_json, headers=JSON_TYPE))
    assert v1_ids(client, user) == ["keep"]


def test_exactly_128_character_user_id_is_accepted(client: httpx.Client) -> None:
    user = "u" + uuid.uuid4().hex + "x" * 95
    assert len(user) == 128
    add(client, user)
    assert client.get("/user/stream", params={"userId": user}).json()["activeStreams"] == 1
