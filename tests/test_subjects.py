"""Identity providers' real subjects, end to end: a JWT's ``sub`` -> the v1 and compat routes ->
the user's keys on a real Redis Cluster (one hash tag, one slot), eviction records included."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from streamlimit.ids import is_valid_id
from streamlimit.store.keys import user_keys
from tests.auth_helpers import HS_SECRET, bearer, claims, hs256
from tests.servers import Service
from tests.topologies import Cluster, cmd

SUBJECTS = {
    "auth0 database": "auth0|5f7c8ec7c33c6c004bbafe82",
    "auth0 google": "google-oauth2|109352012345678901234",
    "auth0 enterprise saml": "samlp|acme-okta|jane.doe+tv@acme.example",
    "auth0 entra": "waad|R6gVuvZnL0HzBcPjQ8-_Xy3kM2sT1aAb",
    "google": "109352012345678901234",
    "okta": "00u1abcd2EFGhijk3l4",
    "okta login email": "o'brien+tv@example.com",
    "cognito": "5f9c6b1a-2d3e-4f50-8a6b-7c8d9e0f1a2b",
    "entra pairwise": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
    "entra oid-like": "M4r-T_7qv5Xw2eK0nZp9Ls1uYcH3jA6dBgR8fVoWiEk",
    "keycloak": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "keycloak federated": "f:3a6b1c2d-0000-4e5f-9a8b-1c2d3e4f5a6b:jdoe",
    "apple": "001234.8d5fa0e3c1b24f6a9e7d0c3b2a1f4e5d.1234",
    "firebase": "kT3nUq9ZbVfX2yR8wP1oL6mA4sD7",
}
REFUSED = {
    "salesforce url": "https://login.salesforce.com/id/00D/005",
    "brace": "auth0|{u:x}",
    "close brace": "a}b",
    "space": "jane doe",
    "newline": "auth0|a\nb",
    "hash": "a#epoch",
    "percent": "a%7Cb",
}


@pytest.fixture(scope="module")
def svc(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("subjects") / "svc.log"
    s = Service(cluster.url, log, auth="jwt", jwt_secret=HS_SECRET, default_limit=1).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(svc: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        yield c


def path(sub: str) -> str:
    return f"/v1/users/{quote(sub, safe='')}"


@pytest.mark.parametrize("shape", list(SUBJECTS.values()), ids=list(SUBJECTS))
def test_a_providers_subject_works_end_to_end_on_a_cluster(
    cluster: Cluster, client: httpx.Client, shape: str
) -> None:
    sub = f"{shape}{uuid.uuid4().hex[:6]}"  # each run its own user, of the provider's shape
    assert is_valid_id(sub)
    h = bearer(hs256(claims(sub)))
    r = client.post(f"{path(sub)}/streams", json={"stream_id": "tv|1", "device": "tv"}, headers=h)
    assert r.status_code == 201, r.text
    assert (r.json()["user_id"], r.json()["stream_id"]) == (sub, "tv|1")
    tv = f"{path(sub)}/streams/{quote('tv|1', safe='')}"
    assert client.post(f"{tv}/heartbeat", headers=h).status_code == 200
    # the limit is 1: evict the first stream, whose id holds the "|" of the stored values
    r = client.post(f"{path(sub)}/streams?on_limit=evict_oldest", json={"stream_id": "phone|2"}, headers=h)
    assert (r.status_code, r.json()["evicted"]["stream_id"]) == (201, "tv|1"), r.text
    gone = client.post(f"{tv}/heartbeat", headers=h)
    assert (gone.status_code, gone.json()["replaced_by"]) == (410, "phone|2")
    listed = client.get(f"{path(sub)}/streams", headers=h).json()
    assert (listed["user_id"], [s["stream_id"] for s in listed["streams"]]) == (sub, ["phone|2"])
    # the compat routes: query, JSON body and form body
    counted = client.get("/user/stream", params={"userId": sub}, headers=h)
    assert (counted.status_code, counted.json()["activeStreams"]) == (200, 1), counted.text
    r = client.request("DELETE", "/user/stream", data={"userId": sub, "streamId": "phone|2"}, headers=h)
    assert r.status_code == 200, r.text
    r = client.post("/user/stream", json={"userId": sub, "streamId": "web|3"}, headers=h)
    assert (r.status_code, r.json()["streamId"]) == (200, "web|3"), r.text
    # every key of the user is in one slot, on the primary that owns it, named by the whole subject
    leases, info, *_ = user_keys(sub)
    assert leases == f"streamlimit:{{u:{sub}}}:leases"
    owner = cluster.owner_of(leases)
    assert len({cmd(owner, "CLUSTER", "KEYSLOT", k) for k in user_keys(sub)}) == 1
    assert cmd(owner, "ZRANGE", leases, 0, -1) == ["web|3"]
    assert cmd(owner, "EXISTS", info) == 1


@pytest.mark.parametrize("sub", list(REFUSED.values()), ids=list(REFUSED))
def test_subjects_that_would_break_a_key_or_a_path_are_refused(client: httpx.Client, sub: str) -> None:
    h = bearer(hs256(claims(sub)))
    r = client.post(f"{path(sub)}/streams", json={}, headers=h)
    # a "/" decoded from %2F splits the path: no route matches it at all
    want = (404, "not_found") if "/" in sub else (422, "invalid_id")
    assert (r.status_code, r.json()["code"]) == want, r.text
    r = client.post("/user/stream", json={"userId": sub}, headers=h)
    assert (r.status_code, r.json()["field"]) == (400, "userId"), r.text
