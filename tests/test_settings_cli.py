"""Settings validation and the CLI's start-up errors: one clear line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from streamlimit.api.render import rfc3339
from streamlimit.cli import main
from streamlimit.ids import is_valid_id
from streamlimit.settings import Settings, describe_error
from streamlimit.startup import shown_url


def test_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STREAMLIMIT_"):
            monkeypatch.delenv(name)
    s = Settings()
    assert (s.host, s.port, s.store_url) == ("127.0.0.1", 3000, "embedded://./.streamlimit")
    assert (s.default_limit, s.lease_ttl_s, s.heartbeat_interval_s) == (3, 90, 30)
    assert (s.legacy_lease_ttl_s, s.on_store_error, s.store_timeout_ms, s.workers) == (
        21600,
        "allow",
        500,
        1,
    )


def test_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLIMIT_DEFAULT_LIMIT", "5")
    monkeypatch.setenv("STREAMLIMIT_ON_STORE_ERROR", "deny")
    s = Settings()
    assert (s.default_limit, s.on_store_error) == (5, "deny")


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("STREAMLIMIT_PORT", "not-a-port"),
        ("STREAMLIMIT_DEFAULT_LIMIT", "-1"),
        ("STREAMLIMIT_ON_STORE_ERROR", "maybe"),
        ("STREAMLIMIT_STORE_TIMEOUT_MS", "0"),
        ("STREAMLIMIT_WORKERS", "0"),
    ],
)
def test_an_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert describe_error(exc.value).startswith(f"invalid setting {env}:")


def test_heartbeat_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValidationError) as exc:
        Settings(lease_ttl_s=10, heartbeat_interval_s=10)
    assert describe_error(exc.value) == (
        "invalid settings: STREAMLIMIT_HEARTBEAT_INTERVAL_S must be shorter than "
        "STREAMLIMIT_LEASE_TTL_S (10.0 >= 10.0)"
    )


def test_ready_without_store_needs_the_allow_policy() -> None:
    with pytest.raises(ValidationError) as exc:
        Settings(on_store_error="deny", ready_without_store=True)
    wanted = "STREAMLIMIT_READY_WITHOUT_STORE needs STREAMLIMIT_ON_STORE_ERROR=allow"
    assert wanted in describe_error(exc.value)


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIMIT_")}
    return subprocess.run(
        [sys.executable, "-m", "streamlimit.cli", "serve", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_an_invalid_setting_with_one_line() -> None:
    done = _serve(STREAMLIMIT_LEASE_TTL_S="soon")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "streamlimit: invalid setting STREAMLIMIT_LEASE_TTL_S: "
        "Input should be a valid number, unable to parse string as a number"
    ]


def test_serve_flags_are_validated_like_the_environment() -> None:
    done = _serve("--default-limit", "1001")
    assert done.returncode == 2
    assert "invalid setting STREAMLIMIT_DEFAULT_LIMIT" in done.stderr


def test_an_unknown_store_scheme_lists_the_valid_ones() -> None:
    done = _serve("--store-url", "mongodb://x")
    assert done.returncode == 2
    assert "unknown store URL scheme 'mongodb'" in done.stderr
    assert "embedded://" in done.stderr


def test_memory_store_refuses_several_workers() -> None:
    assert main(["serve", "--store-url", "memory://", "--workers", "2"]) == 2


def test_check_reports_an_unreachable_store(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--store-url", "redis://127.0.0.1:1/0", "--store-timeout-ms", "200"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("ok: settings valid")
    assert err[1].startswith("FAILED: store redis://127.0.0.1:1/0 is not usable: cannot connect")


def test_check_says_what_it_checked(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--store-url", redis_url, "--default-limit", "4"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: settings valid ({len(Settings.model_fields)} settings; given: "
        "STREAMLIMIT_DEFAULT_LIMIT, STREAMLIMIT_STORE_URL; the rest default)",
        f"ok: store {redis_url} answers and holds the service's Lua scripts",
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://app:pw@h:6379/0", "rediss://app:***@h:6379/0"),
        (
            "redis+sentinel://s1:26379/m?sentinel_password=pw&x=1",
            "redis+sentinel://s1:26379/m?sentinel_password=***&x=1",
        ),
        ("redis://h:6379/0?password=pw", "redis://h:6379/0?password=***"),
        ("embedded://./.streamlimit", "embedded://./.streamlimit"),
    ],
)
def test_store_urls_are_shown_without_their_passwords(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_check_of_an_embedded_store_says_it_started_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--store-url", f"embedded://{tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert f"(started, and stopped again, a server in {tmp_path})" in out, out


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1_795_860_000_007) == "2026-11-28T10:00:00.007Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("good", ["a", "user-1", "A.b_c:d@e+f-g", "x" * 128])
def test_valid_ids(good: str) -> None:
    assert is_valid_id(good)


@pytest.mark.parametrize("bad", ["", ".", "..", "x" * 129, "a b", "{u}", "a/b", "é", "a\n", 5, None])
def test_invalid_ids(bad: object) -> None:
    assert not is_valid_id(bad)
