"""Webhook bodies from queued events, their Standard Webhooks signatures (checked with the
specification's library and with a plain HMAC), the secret and URL settings, and the backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from streamlimit.settings import Settings, describe_error
from streamlimit.webhooks.backoff import Backoff, entry_ms
from streamlimit.webhooks.payload import Undeliverable, message
from streamlimit.webhooks.signing import Signer, secret_key
from streamlimit.webhooks.targets import parse_urls, shown
from tests.webhook_receiver import SECRET, event

AT = 1_764_790_000_123  # 2025-12-03T19:26:40.123Z
ACTOR = {"name": "ops", "role": "admin"}


def body(action: str, streams: list[str] | None = None, **more: object) -> dict[str, object]:
    raw = json.dumps(event(AT, action, streams, **more))
    return dict(json.loads(message("evt_1-0", "alice", raw).body))


def test_each_action_becomes_its_webhook_type_with_its_fields() -> None:
    common = {"id": "evt_1-0", "time": "2025-12-03T19:26:40.123Z", "user_id": "alice", "actor": ACTOR}
    assert body("evicted", ["tv"], value="tablet") == {
        **common, "type": "stream.evicted", "stream_id": "tv", "replaced_by": "tablet",
    }  # fmt: skip
    assert body("replaced", ["tv"], value="tv2", device_id="den") == {
        **common, "type": "stream.replaced", "stream_id": "tv", "replaced_by": "tv2", "device_id": "den",
    }  # fmt: skip
    stopped = {**common, "type": "streams.stopped_all", "stream_ids": ["a", "b"]}
    assert body("stopped_all", ["a", "b"]) == stopped
    assert body("limit_set", value="4") == {**common, "type": "limit.changed", "limit": 4}
    assert body("limit_cleared") == {**common, "type": "limit.changed", "limit": None}
    assert body("plan_set", value="premium") == {**common, "type": "plan.changed", "plan": "premium"}
    assert body("plan_cleared") == {**common, "type": "plan.changed", "plan": None}
    assert body("limit_reached", ["tablet"], value="3", active=3) == {
        **common, "type": "limit.reached", "stream_id": "tablet", "limit": 3, "active": 3,
    }  # fmt: skip
    assert body("limit_reached", ["t"], value="3", active=3, device_id="d")["device_id"] == "d"


def test_lua_empty_lists_and_actors_are_read_as_empty() -> None:
    raw = json.dumps({"at": AT, "action": "stopped_all", "actor": {}, "streams": {}})
    got = json.loads(message("evt_1-0", "bob", raw).body)
    assert (got["actor"], got["stream_ids"]) == ({}, [])


@pytest.mark.parametrize(
    "raw",
    ["not json", json.dumps({"at": AT, "action": "stopped"}), json.dumps({"action": "limit_set"}), "[]"],
)
def test_an_entry_no_receiver_could_use_is_undeliverable(raw: str) -> None:
    with pytest.raises(Undeliverable):
        message("evt_1-0", "alice", raw)


def test_the_signature_verifies_with_the_specifications_library_and_a_plain_hmac() -> None:
    msg = message("evt_7-1", "alice", json.dumps(event(AT, "limit_set", value="2")))
    now = time.time()
    headers = Signer(SECRET).headers(msg.id, msg.body, now)
    assert headers["webhook-id"] == "evt_7-1"
    assert headers["webhook-timestamp"] == str(int(now))
    assert Webhook(SECRET).verify(msg.body, headers)["limit"] == 2
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"evt_7-1.{int(now)}.".encode() + msg.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == expected
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(msg.body.replace(b"2", b"3"), headers)
    with pytest.raises(WebhookVerificationError):  # a replay 10 minutes later is refused
        Webhook(SECRET).verify(msg.body, Signer(SECRET).headers(msg.id, msg.body, now - 600))


def test_a_raw_secret_is_its_utf8_bytes() -> None:
    raw = "a raw secret of more than 24 bytes"
    assert secret_key(raw) == raw.encode()
    assert secret_key(SECRET.rstrip("=")) == secret_key(SECRET)  # base64 padding is optional
    msg = message("evt_1-0", "alice", json.dumps(event(AT, "plan_cleared")))
    headers = Signer(raw).headers(msg.id, msg.body, time.time())
    Webhook(raw.encode()).verify(msg.body, headers)


@pytest.mark.parametrize(
    ("secret", "says"),
    [("short", "at least 24 bytes"), ("whsec_c2hvcnQ=", "at least 24"), ("whsec_not base64!", "base64")],
)
def test_weak_or_unreadable_secrets_are_refused(secret: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        secret_key(secret)


def test_urls_are_http_or_https_with_a_host_and_are_shown_without_secrets() -> None:
    assert parse_urls(" https://a.example/x , http://b.example:8080/y,https://a.example/x") == (
        "https://a.example/x",
        "http://b.example:8080/y",
    )
    assert parse_urls("") == ()
    for bad in ("ftp://a.example/", "a.example/hook", "mailto:x@y"):
        with pytest.raises(ValueError, match="http:// or https://, not "):
            parse_urls(bad)
    for bad in ("https:///path", "http://a.example:99999/"):
        with pytest.raises(ValueError, match="URL"):
            parse_urls(bad)
    assert shown("https://user:pw@hooks.example:8443/T0K3N?sig=x") == "https://hooks.example:8443"


def test_webhook_settings_are_checked_at_start_up() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_URL needs STREAMLIMIT_WEBHOOK_SECRET"):
        Settings(webhook_url="https://a.example/hook")
    with pytest.raises(ValidationError, match="http:// or https://, not ftp"):
        Settings(webhook_url="ftp://a.example/hook", webhook_secret=SECRET)
    with pytest.raises(ValidationError, match="longer than STREAMLIMIT_WEBHOOK_TIMEOUT_S"):
        Settings(webhook_url="https://a.example/", webhook_secret=SECRET, webhook_timeout_s=10)
    with pytest.raises(ValidationError, match="at least STREAMLIMIT_WEBHOOK_RETRY_BASE_S"):
        Settings(webhook_retry_base_s=20, webhook_retry_max_s=15)
    with pytest.raises(ValidationError) as refused:
        Settings(webhook_url="https://a.example/", webhook_secret="whsec_c2hvcnQ=")
    said = describe_error(refused.value)  # what start-up prints: one line, never the secret
    assert said.startswith("invalid setting STREAMLIMIT_WEBHOOK_SECRET: ")
    assert said.endswith("the webhook secret must be at least 24 bytes (got 5)")
    assert "\n" not in said
    s = Settings(webhook_url="https://a.example/a,https://b.example/b", webhook_secret=SECRET)
    assert s.webhook_urls == ("https://a.example/a", "https://b.example/b")
    assert SECRET not in repr(s)
    assert SECRET not in str(s.model_dump())


def test_retries_wait_longer_each_time_up_to_the_cap_with_a_stable_jitter() -> None:
    b = Backoff(base_ms=10_000, max_ms=3_600_000, max_age_ms=86_400_000)
    waits = [b.wait_ms("1764790000123-0", n) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        plain = min(10_000 * 2 ** (n - 1), 3_600_000)
        assert plain <= wait <= min(plain * 1.25, 3_600_000)
    assert waits[-1] == 3_600_000
    assert b.wait_ms("1764790000123-0", 3) == waits[2]  # the same on every instance
    assert len({b.wait_ms(f"1764790000123-{i}", 1) for i in range(20)}) > 10  # spread between entries
    assert entry_ms("1764790000123-7") == 1764790000123
    assert not b.expired(1764790000123, 1764790000123 + 86_399_999)
    assert b.expired(1764790000123, 1764790000123 + 86_400_000)
