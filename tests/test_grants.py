"""Grants without a server: keys, signing, the verifier's checks and the fencing rule, on a fake clock."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from streamlimit.errors import ConfigurationError
from streamlimit.grants import EpochFence, GrantRefused, GrantVerifier, StaticJwks
from streamlimit.grants.issuer import GrantIssuer
from streamlimit.grants.keys import SigningKey, load_keys, thumbprint
from tests.grant_helpers import AUDIENCE, ISSUER, lease, pem, private_key, write_key

EXP_S = 1_800_000_090  # lease() expires then
NOW_S = EXP_S - 60


def issuer(*keys: SigningKey, **options: object) -> GrantIssuer:
    return GrantIssuer(keys or (SigningKey.of(private_key()),), ISSUER, AUDIENCE, 90, **options)  # type: ignore[arg-type]


def verifier(
    source: GrantIssuer, now: Callable[[], float] = lambda: NOW_S, **options: object
) -> GrantVerifier:
    return GrantVerifier(source.jwks, ISSUER, AUDIENCE, clock=now, **options)  # type: ignore[arg-type]


def signed(source: GrantIssuer, **claims: object) -> str:
    token = source.grant(lease(), 3)
    assert token is not None
    return token


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_a_grant_is_a_standard_jws_with_the_issue_s_claims() -> None:
    key = SigningKey.of(private_key())
    token = issuer(key).grant(lease("alice", "tv", epoch=42, expires_ms=1_800_000_090_999), 3)
    assert token is not None
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    claims = jwt.decode(
        token, key.private.public_key(), algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )  # fmt: skip
    assert list(claims) == ["iss", "aud", "sub", "sid", "epoch", "lim", "iat", "exp", "jti"]
    assert (claims["sub"], claims["sid"], claims["epoch"], claims["lim"]) == ("alice", "tv", 42, 3)
    assert claims["exp"] == 1_800_000_090  # the lease's expiry rounded down: never later
    assert claims["iat"] == 1_800_000_000  # the store's time of the answer: expiry - lease TTL


def test_es256_keys_sign_raw_r_s_signatures_that_pyjwt_verifies() -> None:
    key = SigningKey.of(private_key("es256"))
    token = issuer(key).grant(lease(), 2)
    assert token is not None
    assert key.alg == "ES256"
    assert len(base64.urlsafe_b64decode(token.split(".")[2] + "==")) == 64
    claims = jwt.decode(
        token, key.private.public_key(), algorithms=["ES256"], audience=AUDIENCE,
        options={"verify_exp": False, "verify_iat": False},
    )  # fmt: skip
    assert claims["lim"] == 2
    assert verifier(issuer(key)).verify(token).limit == 2


def test_every_grant_has_its_own_jti() -> None:
    source = issuer()
    assert len({claims_of(signed(source))["jti"] for _ in range(100)}) == 100


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037, appendix A.3: the thumbprint of its Ed25519 example key
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    key = SigningKey.of(private_key("es256"))
    assert key.kid == thumbprint(key.public_jwk)
    assert set(key.public_jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}


def test_the_verifier_accepts_a_valid_grant_and_says_what_it_holds() -> None:
    source = issuer()
    grant = verifier(source).verify(signed(source))
    assert (grant.user_id, grant.stream_id, grant.epoch, grant.limit) == ("alice", "tv", 1_000, 3)
    assert (grant.expires_at, grant.degraded, grant.kid) == (EXP_S, False, source.signer.kid)


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        (EXP_S - 1, True),
        (EXP_S + 9, True),  # within the 10 s leeway
        (EXP_S + 10, False),
        (EXP_S - 90 - 3600, True),  # issued "in the future" by a clock ahead: not refused for it
    ],
)
def test_expiry_is_checked_with_a_leeway(now: float, ok: bool) -> None:
    source = issuer()
    check = verifier(source, lambda: now)
    if ok:
        check.verify(signed(source))
        return
    with pytest.raises(GrantRefused) as refused:
        check.verify(signed(source))
    assert refused.value.reason == "expired"


def test_an_nbf_is_checked_with_the_leeway() -> None:
    key = SigningKey.of(private_key())
    claims = claims_of(signed(issuer(key)))
    for nbf, ok in ((NOW_S + 10, True), (NOW_S + 11, False)):
        token = jwt.encode(claims | {"nbf": nbf}, key.private, algorithm="EdDSA", headers={"kid": key.kid})
        if ok:
            verifier(issuer(key)).verify(token)
            continue
        with pytest.raises(GrantRefused) as refused:
            verifier(issuer(key)).verify(token)
        assert refused.value.reason == "not_yet_valid"


@pytest.mark.parametrize(
    ("issuer_name", "audience", "reason"),
    [("someone-else", AUDIENCE, "wrong_issuer"), (ISSUER, "another-api", "wrong_audience")],
)
def test_issuer_and_audience_must_match(issuer_name: str, audience: str, reason: str) -> None:
    key = SigningKey.of(private_key())
    token = GrantIssuer([key], issuer_name, audience, 90).grant(lease(), 3)
    assert token is not None
    with pytest.raises(GrantRefused) as refused:
        verifier(issuer(key)).verify(token)
    assert refused.value.reason == reason


def test_a_changed_claim_breaks_the_signature() -> None:
    source = issuer()
    head, payload, sig = signed(source).split(".")
    claims = claims_of(f"{head}.{payload}.{sig}") | {"lim": 1000}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(GrantRefused) as refused:
        verifier(source).verify(f"{head}.{forged}.{sig}")
    assert refused.value.reason == "bad_signature"


def test_unknown_keys_other_algorithms_and_garbage_are_refused() -> None:
    source, stranger = issuer(), issuer()
    claims = claims_of(signed(source))
    cases = {
        signed(stranger): "unknown_key",
        jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256"): "malformed",
        jwt.encode(claims, "", algorithm="none"): "malformed",
        "not-a-token": "malformed",
    }
    for token, reason in cases.items():
        with pytest.raises(GrantRefused) as refused:
            verifier(source).verify(token)
        assert refused.value.reason == reason, token


def test_missing_or_mistyped_claims_are_refused() -> None:
    key = SigningKey.of(private_key())
    good = claims_of(signed(issuer(key)))
    for broken in ({k: v for k, v in good.items() if k != "sid"}, good | {"epoch": "7"}, good | {"lim": 0}):
        token = jwt.encode(broken, key.private, algorithm="EdDSA", headers={"kid": key.kid})
        with pytest.raises(GrantRefused) as refused:
            verifier(issuer(key)).verify(token)
        assert refused.value.reason == "invalid_claims"


def test_degraded_grants_only_when_configured_short_and_never_fenced() -> None:
    key = SigningKey.of(private_key())
    assert issuer(key).grant(lease(epoch=None), 3, degraded=True) is None
    source = issuer(key, when_degraded=True, degraded_ttl_s=20)
    now_ms = 1_800_000_000_000
    token = source.grant(lease(epoch=None, expires_ms=now_ms + 90_000), 3, degraded=True)
    assert token is not None
    claims = claims_of(token)
    assert (claims["deg"], claims["epoch"]) == (True, None)
    assert int(claims["exp"]) - int(claims["iat"]) <= 20  # type: ignore[call-overload]
    at = float(claims["iat"])  # type: ignore[arg-type]
    fence = EpochFence()
    fence.admit("alice", 10**18, 1, 0)  # a newer admission seen: a degraded grant is still honoured
    grant = verifier(source, lambda: at, fence=fence).verify(token)
    assert (grant.degraded, grant.epoch) == (True, None)
    with pytest.raises(GrantRefused) as refused:
        verifier(source, lambda: at, accept_degraded=False).verify(token)
    assert refused.value.reason == "degraded"


def test_a_lease_from_before_epochs_gets_a_grant_that_is_not_fenced() -> None:
    source = issuer()
    fence = EpochFence()
    fence.admit("alice", 10**18, 1, 0)
    token = source.grant(lease(epoch=None), 1)  # renewed since an upgrade: no epoch of its own
    assert token is not None
    assert claims_of(token)["epoch"] is None
    grant = verifier(source, fence=fence).verify(token)
    assert (grant.epoch, grant.degraded) == (None, False)


def test_no_grant_without_a_known_limit() -> None:
    assert issuer().grant(lease(), None) is None


def _grant(source: GrantIssuer, stream: str, epoch: int, lim: int, expires_ms: int = EXP_S * 1000) -> str:
    token = source.grant(lease("alice", stream, epoch, expires_ms), lim)
    assert token is not None
    return token


def test_fencing_refuses_an_evicted_device_once_the_newer_grant_was_seen() -> None:
    source = issuer()
    check = verifier(source, fence=EpochFence())
    old, new = _grant(source, "tv", 100, 1), _grant(source, "phone", 200, 1)
    check.verify(old)  # alone, the old grant is fine: nothing newer was seen yet
    check.verify(new)
    with pytest.raises(GrantRefused) as refused:
        check.verify(old)
    assert refused.value.reason == "fenced"
    check.verify(new)  # the newest stays valid, heartbeat after heartbeat


def test_fencing_keeps_the_limit_s_number_of_newest_admissions() -> None:
    source = issuer()
    check = verifier(source, fence=EpochFence())
    grants = {epoch: _grant(source, f"s{epoch}", epoch, 3) for epoch in (10, 20, 30, 40)}
    for epoch in (10, 20, 30):
        check.verify(grants[epoch])
    check.verify(grants[40])
    for epoch in (20, 30, 40):
        check.verify(grants[epoch])
    with pytest.raises(GrantRefused):
        check.verify(grants[10])
    assert check.fence is not None
    assert check.fence.highest("alice") == (40, 30, 20)


def test_a_lowered_limit_fences_with_the_newest_grant_s_limit() -> None:
    source = issuer()
    check = verifier(source, fence=EpochFence())
    before = _grant(source, "tv", 100, 3, expires_ms=EXP_S * 1000 - 5000)  # issued 5 s earlier
    check.verify(before)
    check.verify(_grant(source, "phone", 200, 1))  # the limit is 1 now
    with pytest.raises(GrantRefused) as refused:
        check.verify(before)  # its own lim says 3, but it is older than the grant that says 1
    assert refused.value.reason == "fenced"


def test_the_fence_forgets_the_least_recently_seen_users_first() -> None:
    fence = EpochFence(max_users=2)
    assert fence.admit("a", 2, 1, 0)
    assert fence.admit("b", 2, 1, 0)
    assert fence.admit("a", 3, 1, 0)  # a is the most recent now
    assert fence.admit("c", 2, 1, 0)  # b is forgotten
    assert len(fence) == 2
    assert fence.highest("b") == ()
    assert fence.admit("b", 1, 1, 0)  # starts again from nothing; a, the least recent, is forgotten
    assert fence.highest("a") == ()
    assert not fence.admit("c", 1, 1, 0)  # c is still remembered


def test_the_fence_keeps_at_most_max_epochs_per_user() -> None:
    fence = EpochFence(max_epochs=4)
    for epoch in range(1, 11):
        assert fence.admit("a", epoch, 1000, 0)
    assert fence.highest("a") == (10, 9, 8, 7)
    assert not fence.admit("a", 6, 1000, 0)  # below what is remembered: refused


def test_the_fence_is_safe_across_threads() -> None:
    fence = EpochFence(max_users=50)

    def work(base: int) -> None:
        for n in range(2000):
            fence.admit(f"u{n % 80}", base + n, 3, n)

    threads = [threading.Thread(target=work, args=(k * 10_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fence) == 50
    assert all(len(fence.highest(f"u{n}")) <= 3 for n in range(80))


def test_rotation_old_grants_verify_with_the_new_key_set_until_they_expire() -> None:
    old_key, new_key = SigningKey.of(private_key()), SigningKey.of(private_key("es256"))
    before = issuer(old_key)
    during = issuer(new_key, old_key)  # the new key signs, the old one is still published
    old_grant, new_grant = signed(before), signed(during)
    assert jwt.get_unverified_header(new_grant)["kid"] == new_key.kid
    assert [k["kid"] for k in during.jwks["keys"]] == [new_key.kid, old_key.kid]
    for token in (old_grant, new_grant):
        verifier(during).verify(token)
    with pytest.raises(GrantRefused) as refused:
        verifier(during, lambda: EXP_S + 10).verify(old_grant)
    assert refused.value.reason == "expired"
    with pytest.raises(GrantRefused) as refused:
        verifier(issuer(new_key)).verify(old_grant)  # after the old key is removed
    assert refused.value.reason == "unknown_key"


def test_key_files_several_keys_comma_separated_in_order(tmp_path: Path) -> None:
    a, b, c = private_key(), private_key("es256"), private_key()
    (tmp_path / "two.pem").write_bytes(pem(a, b))
    (tmp_path / "one.pem").write_bytes(pem(c))
    keys = load_keys(f"{tmp_path / 'two.pem'}, {tmp_path / 'one.pem'}")
    assert [k.alg for k in keys] == ["EdDSA", "ES256", "EdDSA"]
    assert keys[2].kid == SigningKey.of(c).kid


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read grant key file"),
        (b"hello", "holds no PEM private key"),
        ("rsa", "must be an Ed25519 or a P-256"),
        ("encrypted", "cannot be loaded"),
        ("twice", "the same key twice"),
    ],
)
def test_bad_key_files_are_configuration_errors(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "key.pem"
    if content == "rsa":
        write_key(path, "rsa")
    elif content == "encrypted":
        path.write_bytes(pem(private_key(), password=b"secret"))
    elif content == "twice":
        write_key(path)
        path.write_bytes(path.read_bytes() * 2)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=message):
        load_keys(str(path))


def test_a_static_jwks_from_a_file(tmp_path: Path) -> None:
    source = issuer()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(source.jwks))
    assert GrantVerifier(str(path), ISSUER, AUDIENCE, clock=lambda: NOW_S).verify(signed(source)).limit == 3
    assert StaticJwks.from_file(path).key(source.signer.kid).key_id == source.signer.kid


def test_the_verifier_imports_nothing_of_the_server() -> None:
    server: tuple[str, ...] = (
        "starlette",
        "redis",
        "uvicorn",
        "msgspec",
        "streamlimit.api",
        "streamlimit.store",
    )
    server += ("streamlimit.service", "streamlimit.settings")
    code = (
        "import sys, streamlimit.grants\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {server!r} or m.startswith({server!r})])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"
