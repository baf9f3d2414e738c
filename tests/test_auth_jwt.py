"""Black-box tests of STREAMLIMIT_AUTH=jwt on real `streamlimit serve` processes: HS256 (with and
without iss/aud), RS256 and ES256 public keys, a JWKS file with two keys, the compat routes under
jwt, and `streamlimit token mint`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import jwt
import pytest

from tests.auth_helpers import (
    BEARER,
    HS_SECRET,
    INVALID_BEARER,
    OTHER_SECRET,
    PrivateKey,
    bearer,
    claims,
    clean_env,
    ec_key,
    hmac_signed,
    hs256,
    jwk,
    problem,
    public_pem,
    rsa_key,
    running,
    signed,
    start,
    uid,
    unsigned,
    with_payload,
)
from tests.servers import RedisServer, Service

ISSUER, AUDIENCE = "https://idp.example", "streamlimit-api"


def admin() -> dict[str, str]:
    """Headers with an HS256 admin token (scope streams:admin), made now: it expires in 5 minutes."""
    return bearer(hs256(claims("ops-console", "streams:admin")))


def provider(user: str, scope: str = "streams") -> dict[str, Any]:
    """Claims as an identity provider issues them: with the iss and aud its keys require here."""
    return claims(user, scope, iss=ISSUER, aud=AUDIENCE)


def own(user: str, scope: str | None = "streams", **changes: object) -> dict[str, str]:
    """Headers with an HS256 token for ``user`` (scope streams), with ``changes`` to its claims."""
    return bearer(hs256(claims(user, scope, **changes)))


def active(c: httpx.Client, user: str, admin_headers: dict[str, str] | None = None) -> int:
    r = c.get(f"/v1/users/{user}/streams", headers=admin_headers or admin())
    assert r.status_code == 200, r.text
    n: int = r.json()["active"]
    return n


def unauthenticated(r: httpx.Response, challenge: str = INVALID_BEARER) -> None:
    problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"] == challenge


# --- services: one per configuration, for the module --------------------------------------------


@pytest.fixture(scope="module")
def hs(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("auth-hs256") / "svc.log"
    with running(redis_server.url, log, auth="jwt", jwt_secret=HS_SECRET) as (_, c):
        yield c


@pytest.fixture(scope="module")
def hs_iss_aud(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("auth-iss-aud") / "svc.log"
    settings = {"jwt_secret": HS_SECRET, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    with running(redis_server.url, log, auth="jwt", **settings) as (_, c):
        yield c


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {"rsa": rsa_key(), "rsa-other": rsa_key(), "ec": ec_key(), "ec-other": ec_key()}


def _pem_service(
    name: str, key: PrivateKey, redis_url: str, tmp: pytest.TempPathFactory
) -> AbstractContextManager[tuple[Service, httpx.Client]]:
    """A service verifying with ``key``'s public half, from a PEM file."""
    d = tmp.mktemp(f"auth-{name}")
    (d / "public.pem").write_bytes(public_pem(key))
    settings = {"jwt_public_key_file": d / "public.pem", "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    return running(redis_url, d / "svc.log", auth="jwt", **settings)


@pytest.fixture(scope="module")
def rs256(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, PrivateKey]
) -> Iterator[httpx.Client]:
    with _pem_service("rs256", keys["rsa"], redis_server.url, tmp_path_factory) as (_, c):
        yield c


@pytest.fixture(scope="module")
def es256(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, PrivateKey]
) -> Iterator[httpx.Client]:
    with _pem_service("es256", keys["ec"], redis_server.url, tmp_path_factory) as (_, c):
        yield c


@pytest.fixture(scope="module")
def jwks(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, PrivateKey]
) -> Iterator[httpx.Client]:
    """A JWKS with two keys during a rotation: "2025-rsa" (RSA) and "2026-ec" (EC P-256)."""
    d = tmp_path_factory.mktemp("auth-jwks")
    doc = {"keys": [jwk(keys["rsa"], "2025-rsa"), jwk(keys["ec"], "2026-ec")]}
    (d / "jwks.json").write_text(json.dumps(doc))
    settings = {"jwks_file": d / "jwks.json", "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    with running(redis_server.url, d / "svc.log", auth="jwt", **settings) as (_, c):
        yield c


# --- HS256: own user, other users, admin ------------------------------------------------------


def test_own_token_runs_its_own_streams(hs: httpx.Client) -> None:
    user = uid()
    h = own(user)
    r = hs.post(f"/v1/users/{user}/streams", json={"stream_id": "s1", "device": "tv"}, headers=h)
    assert r.status_code == 201, r.text
    assert hs.post(f"/v1/users/{user}/streams/s1/heartbeat", headers=h).status_code == 200
    assert hs.get(f"/v1/users/{user}/streams/s1", headers=h).json()["device"] == "tv"
    listed = hs.get(f"/v1/users/{user}/streams", headers=h)
    assert listed.status_code == 200, listed.text
    assert [s["stream_id"] for s in listed.json()["streams"]] == ["s1"]
    assert hs.delete(f"/v1/users/{user}/streams/s1", headers=h).status_code == 204
    assert start(hs, user, h, "s2").status_code == 201
    stopped = hs.delete(f"/v1/users/{user}/streams", headers=h)
    assert (stopped.status_code, stopped.json()) == (200, {"stopped": 1})
    limit = hs.get(f"/v1/users/{user}/limit", headers=h)
    assert (limit.status_code, limit.json()["default"]) == (200, True)
    assert active(hs, user) == 0


def test_own_token_on_another_users_paths_is_403(hs: httpx.Client) -> None:
    me, victim = uid(), uid()
    assert start(hs, victim, own(victim)).status_code == 201
    h = own(me)
    for method, path in [
        ("POST", f"/v1/users/{victim}/streams"),
        ("GET", f"/v1/users/{victim}/streams"),
        ("DELETE", f"/v1/users/{victim}/streams"),
        ("POST", f"/v1/users/{victim}/streams/s1/heartbeat"),
        ("GET", f"/v1/users/{victim}/streams/s1"),
        ("DELETE", f"/v1/users/{victim}/streams/s1"),
        ("GET", f"/v1/users/{victim}/limit"),
    ]:
        problem(hs.request(method, path, json={} if method == "POST" else None, headers=h), 403, "forbidden")
    assert active(hs, victim) == 1


def test_scope_with_streams_among_others_is_accepted(hs: httpx.Client) -> None:
    user = uid()
    assert start(hs, user, own(user, scope="openid profile streams")).status_code == 201


@pytest.mark.parametrize("scope", ["streams:read", "profile", "", None])
def test_a_token_without_a_streams_scope_is_403(hs: httpx.Client, scope: str | None) -> None:
    user = uid()
    token = hs256(claims(user, scope=scope))
    problem(start(hs, user, bearer(token)), 403, "forbidden")
    assert active(hs, user) == 0


def test_admin_token_acts_on_any_user_and_sets_limits(hs: httpx.Client) -> None:
    user = uid()
    assert start(hs, user, admin(), "by-admin").status_code == 201
    r = hs.put(f"/v1/users/{user}/limit", json={"limit": 1}, headers=admin())
    assert r.status_code == 200, r.text
    assert (r.json()["user_id"], r.json()["limit"], r.json()["default"]) == (user, 1, False)
    problem(start(hs, user, own(user), "second"), 409, "stream_limit_reached")
    r = hs.delete(f"/v1/users/{user}/limit", headers=admin())
    assert (r.status_code, r.json()["default"]) == (200, True)
    assert start(hs, user, own(user), "second").status_code == 201
    assert hs.delete(f"/v1/users/{user}/streams", headers=admin()).json() == {"stopped": 2}


def test_own_token_may_not_change_its_limit(hs: httpx.Client) -> None:
    user = uid()
    problem(hs.put(f"/v1/users/{user}/limit", json={"limit": 99}, headers=own(user)), 403, "forbidden")
    problem(hs.delete(f"/v1/users/{user}/limit", headers=own(user)), 403, "forbidden")
    assert hs.get(f"/v1/users/{user}/limit", headers=admin()).json()["default"] is True


# --- HS256: rejected credentials -----------------------------------------------------------------


def test_no_credentials_is_401_with_a_bearer_challenge(hs: httpx.Client) -> None:
    user = uid()
    unauthenticated(start(hs, user, {}), BEARER)
    unauthenticated(hs.get(f"/v1/users/{user}/limit"), BEARER)


def test_a_garbage_token_is_401_invalid_token(hs: httpx.Client) -> None:
    unauthenticated(start(hs, uid(), bearer("not.a.jwt")))


def test_an_over_long_token_is_401_before_it_is_parsed(hs: httpx.Client) -> None:
    """Longer than nginx's 8 KiB header line, yet within the server's 16 KiB: the app refuses it."""
    user = uid()
    token = hs256(claims(user, pad="x" * 9000))
    body = problem(start(hs, user, bearer(token)), 401, "unauthenticated")
    assert "longer than 8192 bytes" in body["detail"]
    assert start(hs, user, bearer(hs256(claims(user, pad="x" * 5000)))).status_code == 201


def test_two_authorization_headers_are_400_not_first_wins(hs: httpx.Client) -> None:
    user = uid()
    good, other = own(user)["authorization"], own(uid())["authorization"]
    for pair in ([good, other], [good, good], ["Bearer x", good]):
        r = hs.post(f"/v1/users/{user}/streams", headers=[("authorization", v) for v in pair])
        assert problem(r, 400, "duplicate_credentials")["field"] == "authorization"
        r = hs.post("/user/stream", json={"userId": user}, headers=[("authorization", v) for v in pair])
        problem(r, 400, "duplicate_credentials")
    assert active(hs, user) == 0


@pytest.mark.parametrize("keys", ["jwt_public_key_file", "jwks_file"])
@pytest.mark.parametrize(
    ("given", "missing"),
    [({}, "JWT_ISSUER and STREAMLIMIT_JWT_AUDIENCE"), ({"jwt_issuer": ISSUER}, "JWT_AUDIENCE"),
     ({"jwt_audience": AUDIENCE}, "JWT_ISSUER")],
)  # fmt: skip
def test_a_providers_keys_need_issuer_and_audience_at_start_up(
    tmp_path: Any, keys: str, given: dict[str, str], missing: str
) -> None:
    """RFC 8725 3.9: a provider's keys also sign tokens minted for its other APIs."""
    (tmp_path / "k").write_text("unread: settings are checked first")
    env = {f"STREAMLIMIT_{k.upper()}": v for k, v in {keys: str(tmp_path / "k"), **given}.items()}
    done = subprocess.run(
        [sys.executable, "-m", "streamlimit.cli", "check"],
        env=clean_env(STREAMLIMIT_AUTH="jwt", STREAMLIMIT_STORE_URL="memory://", **env),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{keys.upper()} needs STREAMLIMIT_{missing}:" in lines[0], lines


def at(offset_s: int) -> int:
    """Now plus ``offset_s``, as a NumericDate claim."""
    return int(time.time()) + offset_s


REJECTED: dict[str, Callable[[str], dict[str, str]]] = {
    "expired beyond the leeway": lambda u: own(u, iat=at(-600), nbf=at(-600), exp=at(-60)),
    "nbf beyond the leeway": lambda u: own(u, nbf=at(120), exp=at(600)),
    "without exp": lambda u: own(u, exp=None),
    "without sub": lambda u: own(u, sub=None),
    "sub not a string": lambda u: own(u, sub=12345),
    "payload changed (sub)": lambda u: bearer(with_payload(hs256(claims(uid())), sub=u)),
    "payload changed (scope)": lambda u: bearer(
        with_payload(hs256(claims(u, "profile")), scope="streams:admin")
    ),
    "alg none": lambda u: bearer(unsigned(claims(u))),
    "alg none, signature kept": lambda u: bearer(unsigned(claims(u)) + hs256(claims(u)).split(".")[2]),
    "another secret": lambda u: bearer(hs256(claims(u), OTHER_SECRET)),
    "HS512 (not allowed)": lambda u: bearer(jwt.encode(claims(u), HS_SECRET + HS_SECRET, "HS512")),
    "not Bearer": lambda u: {"authorization": hs256(claims(u))},
    "Basic": lambda u: {"authorization": "Basic dXNlcjpwYXNz"},
    "Bearer without token": lambda u: {"authorization": "Bearer"},
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_token_is_401_invalid_token(hs: httpx.Client, case: str) -> None:
    user = uid()
    unauthenticated(start(hs, user, REJECTED[case](user)))
    assert active(hs, user) == 0


def test_exp_and_nbf_within_the_leeway_are_accepted(hs: httpx.Client) -> None:
    user = uid()
    assert start(hs, user, own(user, iat=at(-600), nbf=at(-600), exp=at(-5)), "late").status_code == 201
    assert start(hs, user, own(user, nbf=at(5)), "early").status_code == 201


# --- iss and aud, when configured -----------------------------------------------------------------


def test_right_issuer_and_audience_are_accepted(hs_iss_aud: httpx.Client) -> None:
    user = uid()
    assert start(hs_iss_aud, user, own(user, iss=ISSUER, aud=AUDIENCE)).status_code == 201
    assert start(hs_iss_aud, user, own(user, iss=ISSUER, aud=["other", AUDIENCE]), "s2").status_code == 201


@pytest.mark.parametrize(
    ("iss", "aud"),
    [("https://evil.example", AUDIENCE), (ISSUER, "another-api"), (None, AUDIENCE), (ISSUER, None)],
)
def test_wrong_or_missing_issuer_or_audience_is_401(
    hs_iss_aud: httpx.Client, iss: str | None, aud: str | None
) -> None:
    user = uid()
    unauthenticated(start(hs_iss_aud, user, own(user, iss=iss, aud=aud)))


# --- RS256 and ES256 with a PEM public key -----------------------------------------------------


def test_rs256_accepts_its_key_pair_only(rs256: httpx.Client, keys: dict[str, PrivateKey]) -> None:
    user = uid()
    assert start(rs256, user, bearer(signed(provider(user), keys["rsa"]))).status_code == 201
    unauthenticated(start(rs256, user, bearer(signed(provider(user), keys["rsa-other"])), "s2"))
    unauthenticated(start(rs256, user, bearer(signed(provider(user), keys["ec"])), "s2"))
    unauthenticated(start(rs256, user, own(user), "s2"))  # HS256: not allowed with a public key
    assert active(rs256, user, bearer(signed(provider("ops", "streams:admin"), keys["rsa"]))) == 1


def test_rs256_refuses_hs256_signed_with_its_public_key(
    rs256: httpx.Client, keys: dict[str, PrivateKey]
) -> None:
    """The algorithm-confusion attack: the public PEM (known to all) used as an HMAC secret."""
    user = uid()
    token = hmac_signed({"alg": "HS256", "typ": "JWT"}, provider(user), public_pem(keys["rsa"]))
    unauthenticated(start(rs256, user, bearer(token)))


def test_es256_accepts_its_key_pair_only(es256: httpx.Client, keys: dict[str, PrivateKey]) -> None:
    user = uid()
    assert start(es256, user, bearer(signed(provider(user), keys["ec"]))).status_code == 201
    unauthenticated(start(es256, user, bearer(signed(provider(user), keys["ec-other"])), "s2"))
    unauthenticated(start(es256, user, bearer(signed(provider(user), keys["rsa"])), "s2"))
    assert active(es256, user, bearer(signed(provider("ops", "streams:admin"), keys["ec"]))) == 1


# --- JWKS: two keys at once (rotation), chosen by kid -------------------------------------------


def test_jwks_accepts_both_keys_of_a_rotation(jwks: httpx.Client, keys: dict[str, PrivateKey]) -> None:
    user = uid()
    old, new = signed(provider(user), keys["rsa"], "2025-rsa"), signed(provider(user), keys["ec"], "2026-ec")
    assert start(jwks, user, bearer(old), "old").status_code == 201
    assert start(jwks, user, bearer(new), "new").status_code == 201
    assert active(jwks, user, bearer(signed(provider("ops", "streams:admin"), keys["ec"], "2026-ec"))) == 2


@pytest.mark.parametrize(
    ("key", "kid"),
    [
        ("rsa-other", "2024-retired"),  # unknown kid
        ("rsa", None),  # no kid
        ("rsa-other", "2025-rsa"),  # a known kid, another key
        ("rsa", "2026-ec"),  # RS256 under the EC key's kid
    ],
)
def test_jwks_refuses_unknown_kids_and_wrong_keys(
    jwks: httpx.Client, keys: dict[str, PrivateKey], key: str, kid: str | None
) -> None:
    user = uid()
    unauthenticated(start(jwks, user, bearer(signed(provider(user), keys[key], kid))))


# --- the compat routes (/user/stream) under jwt ------------------------------------------------


def test_compat_routes_act_for_the_tokens_own_user(hs: httpx.Client) -> None:
    user = uid()
    h = own(user)
    r = hs.post("/user/stream", json={"userId": user}, headers=h)
    assert (r.status_code, r.json()["message"]) == (200, "Stream added successfully")
    r = hs.get("/user/stream", params={"userId": user}, headers=h)
    assert (r.status_code, r.json()["activeStreams"]) == (200, 1)
    r = hs.request("DELETE", "/user/stream", json={"userId": user}, headers=h)
    assert (r.status_code, r.json()["message"]) == (200, "Stream removed successfully")


def test_compat_routes_refuse_another_userid(hs: httpx.Client) -> None:
    me, victim = uid(), uid()
    assert hs.post("/user/stream", json={"userId": victim}, headers=admin()).status_code == 200
    h = own(me)
    problem(hs.get("/user/stream", params={"userId": victim}, headers=h), 403, "forbidden")
    problem(hs.post("/user/stream", json={"userId": victim}, headers=h), 403, "forbidden")
    problem(hs.request("DELETE", "/user/stream", json={"userId": victim}, headers=h), 403, "forbidden")
    assert active(hs, victim) == 1


def test_compat_routes_need_a_token(hs: httpx.Client) -> None:
    user = uid()
    unauthenticated(hs.get("/user/stream", params={"userId": user}), BEARER)
    unauthenticated(hs.post("/user/stream", json={"userId": user}), BEARER)
    unauthenticated(hs.request("DELETE", "/user/stream", json={"userId": user}), BEARER)
    assert active(hs, user) == 0


def test_compat_401_comes_before_the_body_is_read(hs: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    unauthenticated(hs.post("/user/stream", content=b"{not json", headers=json_type), BEARER)
    unauthenticated(hs.request("DELETE", "/user/stream", content=b"{not json", headers=json_type), BEARER)
    # with a token the same body is read, and refused
    h = {"content-type": "application/json", **own(uid())}
    assert hs.post("/user/stream", content=b"{not json", headers=h).status_code == 400


# --- streamlimit token mint ------------------------------------------------------------------


def test_minted_token_is_accepted_for_its_subject(hs: httpx.Client) -> None:
    user = uid()
    done = subprocess.run(
        [sys.executable, "-m", "streamlimit.cli", "token", "mint", "--sub", user],
        env=clean_env(STREAMLIMIT_JWT_SECRET=HS_SECRET),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    minted = jwt.decode(token, HS_SECRET, algorithms=["HS256"])
    assert (minted["sub"], minted["scope"], minted["exp"] - minted["iat"]) == (user, "streams", 3600)
    assert start(hs, user, bearer(token)).status_code == 201
    problem(start(hs, uid(), bearer(token)), 403, "forbidden")
