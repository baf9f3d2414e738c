"""Grants from a real `streamlimit serve` on a real valkey-server: the answers that carry them, the
JWKS endpoint, verification with a standard JWT library and with streamlimit.grants, fencing of an
evicted device, key rotation, outages, and `streamlimit grant verify`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from streamlimit.cli import main
from streamlimit.grants import EpochFence, GrantRefused, GrantVerifier
from tests.auth_helpers import HS_SECRET, bearer, hs256
from tests.auth_helpers import claims as token_claims
from tests.grant_helpers import AUDIENCE, ISSUER, write_key
from tests.servers import RedisServer, Service, free_port

JWKS = "/.well-known/jwks.json"


def uid() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grant-keys")
    return {"ed": write_key(folder / "ed.pem"), "es": write_key(folder / "es.pem", "es256")}


@pytest.fixture(scope="module")
def granted(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]
) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("grants-api") / "svc.log"
    svc = Service(redis_server.url, log, grant_key_file=keys["ed"], start_rate_per_min=0).start()
    yield svc
    svc.stop()
    assert "Traceback" not in log.read_text()


@pytest.fixture
def c(granted: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=granted.url, timeout=5) as client:
        yield client


def decoded(c: httpx.Client, token: str) -> dict[str, Any]:
    """The grant's claims as a standard JWT library checks them against the service's JWKS."""
    signing_key = jwt.PyJWKClient(f"{c.base_url}{JWKS}").get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, signing_key.key, algorithms=["EdDSA", "ES256"], audience=AUDIENCE, issuer=ISSUER,
        options={"require": ["exp", "iat", "sub"]},
    )  # fmt: skip
    return claims


def start(c: httpx.Client, user: str, stream: str, evict: bool = False) -> dict[str, Any]:
    params = {"on_limit": "evict_oldest"} if evict else None
    r = c.post(f"/v1/users/{user}/streams", json={"stream_id": stream}, params=params)
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def test_starts_and_heartbeats_carry_a_grant_bound_to_the_lease(c: httpx.Client) -> None:
    user = uid()
    started = start(c, user, "tv")
    claims = decoded(c, started["grant"])
    assert {k: claims[k] for k in ("iss", "aud", "sub", "sid", "epoch", "lim")} == {
        "iss": ISSUER, "aud": AUDIENCE, "sub": user, "sid": "tv", "epoch": started["epoch"], "lim": 3,
    }  # fmt: skip
    assert claims["exp"] <= seconds(started["expires_at"]) < claims["exp"] + 1  # never later than the lease
    assert claims["exp"] - claims["iat"] in (89, 90)
    renewed = start(c, user, "tv")  # a renewal (200): a grant too, same epoch
    beat = c.post(f"/v1/users/{user}/streams/tv/heartbeat").json()
    for body in (renewed, beat):
        again = decoded(c, body["grant"])
        assert (again["epoch"], again["sid"]) == (started["epoch"], "tv")
        assert again["jti"] != claims["jti"]


def test_a_heartbeat_that_admits_again_carries_a_grant_with_the_new_epoch(
    c: httpx.Client, redis_server: RedisServer
) -> None:
    user = uid()
    first = start(c, user, "tv")
    redis_server.command("FLUSHALL")  # the store lost the lease (no tombstone): the heartbeat admits it again
    beat = c.post(f"/v1/users/{user}/streams/tv/heartbeat").json()
    assert beat["readmitted"] is True
    claims = decoded(c, beat["grant"])
    assert claims["epoch"] == beat["epoch"] > first["epoch"]


def test_the_grant_s_lim_is_the_user_s_limit_of_the_moment(c: httpx.Client) -> None:
    user = uid()
    start(c, user, "tv")
    assert c.put(f"/v1/users/{user}/limit", json={"limit": 5}).status_code == 200
    beat = c.post(f"/v1/users/{user}/streams/tv/heartbeat").json()
    assert decoded(c, beat["grant"])["lim"] == 5


def test_the_jwks_is_public_cacheable_and_names_the_signing_key_first(c: httpx.Client) -> None:
    r = c.get(JWKS)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["content-type"] == "application/json"
    (key,) = r.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in key  # never the private part
    token = start(c, uid(), "tv")["grant"]
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    assert c.head(JWKS).status_code == 200
    assert c.post(JWKS).status_code == 405


def test_the_verifier_refuses_a_device_evicted_by_watch_here_instead(c: httpx.Client) -> None:
    user = uid()
    assert c.put(f"/v1/users/{user}/limit", json={"limit": 1}).status_code == 200
    verifier = GrantVerifier(f"{c.base_url}{JWKS}", ISSUER, AUDIENCE, fence=EpochFence())
    a = start(c, user, "device-a")["grant"]
    assert verifier.verify(a).stream_id == "device-a"
    b_body = start(c, user, "device-b", evict=True)
    assert b_body["evicted"]["stream_id"] == "device-a"
    assert verifier.verify(a).stream_id == "device-a"  # the verifier has not seen B's grant yet
    assert verifier.verify(b_body["grant"]).stream_id == "device-b"
    with pytest.raises(GrantRefused) as refused:
        verifier.verify(a)  # A's grant has not expired: only the fencing rule refuses it
    assert refused.value.reason == "fenced"
    beat = c.post(f"/v1/users/{user}/streams/device-b/heartbeat").json()
    assert verifier.verify(beat["grant"]).epoch == b_body["epoch"]


def test_grant_verify_on_the_command_line(
    c: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = uid()
    assert c.put(f"/v1/users/{user}/limit", json={"limit": 1}).status_code == 200
    a, b = start(c, user, "a")["grant"], start(c, user, "b", evict=True)["grant"]
    url = f"{c.base_url}{JWKS}"
    assert main(["grant", "verify", a, "--jwks", url]) == 0
    assert capsys.readouterr().out.startswith(f"ok: grant of user {user}, stream a, epoch ")
    assert main(["grant", "verify", b, a, "--jwks", url]) == 1  # in order: b fences a
    out, err = capsys.readouterr()
    assert out.startswith(f"grant 1: ok: grant of user {user}, stream b")
    assert "grant 2: refused: fenced: " in err
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(c.get(JWKS).text)
    assert main(["grant", "verify", b, "--jwks", str(jwks_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sid"] == "b"
    assert main(["grant", "verify", b, "--jwks", str(jwks_file), "--audience", "cdn"]) == 1
    assert "refused: wrong_audience" in capsys.readouterr().err
    assert main(["grant", "verify", b, "--jwks", str(tmp_path / "missing.json")]) == 2
    assert main(["grant", "verify", b, "--jwks", f"http://127.0.0.1:{free_port()}{JWKS}"]) == 3
    assert "keys_unavailable" in capsys.readouterr().err


def test_rotation_a_second_key_publishes_both_and_old_grants_still_verify(
    redis_server: RedisServer, tmp_path: Path, keys: dict[str, Path], c: httpx.Client
) -> None:
    user = uid()
    old_grant = start(c, user, "tv")["grant"]  # signed by the ed key alone
    rotated = Service(redis_server.url, tmp_path / "svc.log", grant_key_file=f"{keys['es']},{keys['ed']}")
    rotated.start()
    try:
        with httpx.Client(base_url=rotated.url, timeout=5) as r:
            published = [k["kid"] for k in r.get(JWKS).json()["keys"]]
            assert published == [k["kid"] for k in (*_jwk(r, "ES256"), *_jwk(c, "EdDSA"))]
            new_grant = r.post(f"/v1/users/{user}/streams/tv/heartbeat").json()["grant"]
            assert jwt.get_unverified_header(new_grant)["alg"] == "ES256"
            for token in (old_grant, new_grant):  # both, with a standard library, against the new JWKS
                assert decoded(r, token)["sid"] == "tv"
            verifier = GrantVerifier(f"{r.base_url}{JWKS}", ISSUER, AUDIENCE, fence=EpochFence())
            assert verifier.verify(old_grant).epoch == verifier.verify(new_grant).epoch
    finally:
        rotated.stop()


def _jwk(c: httpx.Client, alg: str) -> list[dict[str, Any]]:
    return [k for k in c.get(JWKS).json()["keys"] if k["alg"] == alg]


def test_without_a_grant_key_nothing_changes(redis_url: str, tmp_path: Path) -> None:
    svc = Service(redis_url, tmp_path / "svc.log").start()
    try:
        with httpx.Client(base_url=svc.url, timeout=5) as plain:
            body = plain.post(f"/v1/users/{uid()}/streams", json={"stream_id": "tv"}).json()
            assert "grant" not in body
            beat = plain.post(f"/v1/users/{body['user_id']}/streams/tv/heartbeat").json()
            assert "grant" not in beat
            r = plain.get(JWKS)
            assert (r.status_code, r.json()["code"]) == (404, "not_found")
            assert r.headers["cache-control"] == "no-store"
    finally:
        svc.stop()


@pytest.mark.parametrize("when_degraded", [False, True])
def test_during_a_store_outage_grants_only_when_asked_for(
    tmp_path: Path, keys: dict[str, Path], when_degraded: bool
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    svc = Service(
        down, tmp_path / "svc.log", grant_key_file=keys["ed"], store_timeout_ms=50, store_startup_wait_s=0,
        grant_when_degraded=when_degraded, grant_degraded_ttl_s=20,
    ).start()  # fmt: skip
    try:
        with httpx.Client(base_url=svc.url, timeout=5) as d:
            user = uid()
            started = d.post(f"/v1/users/{user}/streams", json={"stream_id": "tv"}).json()
            beat = d.post(f"/v1/users/{user}/streams/tv/heartbeat").json()
            assert started["degraded"] is beat["degraded"] is True
            if not when_degraded:
                assert started["grant"] is beat["grant"] is None
                return
            for body in (started, beat):
                claims = decoded(d, body["grant"])
                assert (claims["deg"], claims["epoch"], claims["sub"]) == (True, None, user)
                assert claims["exp"] - claims["iat"] <= 20
            verifier = GrantVerifier(f"{d.base_url}{JWKS}", ISSUER, AUDIENCE, accept_degraded=False)
            with pytest.raises(GrantRefused, match="degraded"):
                verifier.verify(beat["grant"])
    finally:
        svc.stop()


def test_under_auth_the_jwks_needs_no_credentials_and_grants_name_the_token_s_user(
    redis_url: str, tmp_path: Path, keys: dict[str, Path]
) -> None:
    svc = Service(
        redis_url, tmp_path / "svc.log", auth="jwt", jwt_secret=HS_SECRET, grant_key_file=keys["es"]
    )
    svc.start()
    try:
        with httpx.Client(base_url=svc.url, timeout=5) as a:
            assert a.get(JWKS).status_code == 200
            user = uid()
            headers = bearer(hs256(token_claims(user)))
            body = a.post(f"/v1/users/{user}/streams", json={"stream_id": "tv"}, headers=headers).json()
            assert decoded(a, body["grant"])["sub"] == user
    finally:
        svc.stop()


def test_serve_refuses_a_bad_grant_key_file_in_one_line(tmp_path: Path) -> None:
    rsa = write_key(tmp_path / "rsa.pem", "rsa")
    for value, message in (
        (str(tmp_path / "missing.pem"), "cannot read grant key file"),
        (str(rsa), "must be an Ed25519 or a P-256"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "streamlimit.cli", "serve", "--store-url", "memory://", "--port", "0",
             "--grant-key-file", value],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("streamlimit: "), done.stderr
        assert message in done.stderr, done.stderr
