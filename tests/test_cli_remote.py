"""The remote CLI commands (streams, limit, events) against real `streamlimit serve` processes.

Most tests call ``streamlimit.cli.main`` in-process and read its output with capsys; one runs
``python -m streamlimit.cli`` to check the exit status of the real entry point.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streamlimit.auth.mint import mint_token
from streamlimit.cli import main
from tests.servers import Service, free_port

SECRET = "cli-remote-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An open (auth=none) service with a limit of 2 per user."""
    s = Service("memory://", tmp_path_factory.mktemp("cli") / "svc.log", default_limit=2).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def jwt_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service("memory://", tmp_path_factory.mktemp("cli-jwt") / "svc.log", auth="jwt", jwt_secret=SECRET)
    yield s.start()
    s.stop()


@pytest.fixture(autouse=True)
def _no_cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMLIMIT_URL", "STREAMLIMIT_TOKEN", "STREAMLIMIT_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, *args, "--json")
    assert (code, err) == (0, "")
    assert len(out.strip().splitlines()) == 1  # one object, one line
    body: dict[str, Any] = json.loads(out)
    return body


def test_round_trip_human(svc: Service, capsys: pytest.CaptureFixture[str]) -> None:
    u, url = user(), ("--url", svc.url)
    code, out, _ = cli(capsys, "streams", "start", u, "--stream-id", "tv-1", "--device", "living room", *url)
    assert code == 0
    assert out.splitlines()[0] == f"started tv-1 for {u} (1 of 2 active, limit from default)"
    assert cli(capsys, "streams", "start", u, "--stream-id", "tv-1", *url)[1].startswith(
        f"renewed tv-1 for {u}"
    )
    code, out, _ = cli(capsys, "streams", "list", u, *url)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"{u}: 1 of 2 active, limit from default, 1 remaining"
    assert lines[1].split() == ["STREAM", "ID", "DEVICE", "DEVICE", "ID", "STARTED", "EXPIRES", "IN"]
    assert lines[2].startswith("tv-1       living room  ")  # aligned under the header
    assert lines[1].index("DEVICE") == lines[2].index("living room")
    assert lines[2].endswith(("90s", "89s"))
    code, out, _ = cli(capsys, "streams", "heartbeat", u, "tv-1", *url)
    assert code == 0
    assert out in (f"renewed tv-1 for {u}: expires in {n}s\n" for n in (90, 89))
    assert cli(capsys, "streams", "stop", u, "tv-1", *url)[:2] == (0, f"stopped tv-1 for {u}\n")
    code, out, _ = cli(capsys, "streams", "list", u, *url)
    assert out.splitlines()[1:] == ["(no active streams)"]


def test_round_trip_json(svc: Service, capsys: pytest.CaptureFixture[str]) -> None:
    u, url = user(), ("--url", svc.url)
    started = cli_json(capsys, "streams", "start", u, "--device", "phone", *url)
    sid = started["stream_id"]
    assert started["admitted"] is True
    assert started["user_id"] == u
    assert started["device"] == "phone"
    assert (started["active"], started["limit"], started["limit_source"], started["evicted"]) == (
        1,
        2,
        "default",
        [],
    )
    listed = cli_json(capsys, "streams", "list", u, *url)
    assert (listed["active"], listed["remaining"]) == (1, 1)
    assert [s["stream_id"] for s in listed["streams"]] == [sid]
    assert listed["streams"][0]["started_at"] == started["started_at"]
    beat = cli_json(capsys, "streams", "heartbeat", u, sid, *url)
    assert beat["stream_id"] == sid
    assert beat["expires_at"] >= started["expires_at"]
    assert cli_json(capsys, "streams", "stop", u, sid, *url) == {
        "user_id": u,
        "stream_id": sid,
        "stopped": True,
    }
    assert cli_json(capsys, "streams", "list", u, *url)["streams"] == []
    code, _, err = cli(capsys, "streams", "heartbeat", u, sid, *url, "--json")
    assert code == 1
    assert err.startswith("streamlimit: stream_stopped: ")


def test_limit_reached_exits_1_and_shows_the_active_streams(
    svc: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    u, url = user(), ("--url", svc.url)
    for sid in ("a-1", "a-2"):
        assert cli(capsys, "streams", "start", u, "--stream-id", sid, *url)[0] == 0
    code, out, err = cli(capsys, "streams", "start", u, "--stream-id", "a-3", *url)
    assert (code, out) == (1, "")
    assert err.startswith("streamlimit: stream_limit_reached: ")
    assert "2 of 2 active" in err
    assert "a-1" in err
    assert "a-2" in err
    code, out, _ = cli(capsys, "streams", "start", u, "--stream-id", "a-3", "--evict", *url)
    assert code == 0
    assert "; evicted a-1" in out.splitlines()[0]
    code, out, _ = cli(capsys, "events", u, *url)
    assert code == 0
    assert out.splitlines()[0].split() == ["AT", "ACTION", "ACTOR", "STREAMS", "VALUE", "DEVICE", "ID"]
    assert "evicted" in out.splitlines()[1]
    assert "a-1" in out.splitlines()[1]
    assert cli_json(capsys, "events", u, *url)["events"][0]["streams"] == ["a-1"]
    assert cli_json(capsys, "streams", "stop-all", u, *url) == {"user_id": u, "stopped": 2}
    assert cli(capsys, "streams", "stop-all", u, *url)[1] == f"stopped 0 streams of {u}\n"


def test_devices_in_starts_lists_and_events(svc: Service, capsys: pytest.CaptureFixture[str]) -> None:
    u, url = user(), ("--url", svc.url)
    code, out, _ = cli(
        capsys, "streams", "start", u, "--stream-id", "tv-1", "--device", "TV", "--device-id", "tv-inst", *url
    )
    assert (code, out.splitlines()[0]) == (
        0,
        f"started tv-1 for {u} on device tv-inst (1 of 2 active, limit from default)",
    )
    # the same installation starts again (a restart): its old stream is replaced, not counted twice
    code, out, _ = cli(
        capsys, "streams", "start", u, "--stream-id", "tv-2", "--device", "TV", "--device-id", "tv-inst", *url
    )
    assert (code, out.splitlines()[0]) == (
        0,
        f"started tv-2 for {u} on device tv-inst (1 of 2 active, limit from default); replaced tv-1 (TV)",
    )
    assert (
        cli(capsys, "streams", "start", u, "--stream-id", "ph-1", "--device-id", "phone-inst", *url)[0] == 0
    )

    code, out, _ = cli(capsys, "streams", "list", u, *url)
    lines = out.splitlines()
    assert code == 0
    assert [line.split()[:3] for line in lines[2:]] == [
        ["tv-2", "TV", "tv-inst"],
        ["ph-1", "-", "phone-inst"],
    ]
    assert lines[1].index("DEVICE ID") == lines[2].index("tv-inst")
    listed = cli_json(capsys, "streams", "list", u, *url)
    assert listed["counts"] == "streams"
    assert [(s["stream_id"], s["device"], s["device_id"]) for s in listed["streams"]] == [
        ("tv-2", "TV", "tv-inst"),
        ("ph-1", None, "phone-inst"),
    ]

    # at the limit: the refusal lists each device; --replace picks the one to stop
    code, _, err = cli(capsys, "streams", "start", u, "--stream-id", "lap-1", "--device-id", "lap-inst", *url)
    assert code == 1
    assert [line.split()[:3] for line in err.splitlines()[3:]] == [
        ["tv-2", "TV", "tv-inst"],
        ["ph-1", "-", "phone-inst"],
    ]
    started = cli_json(
        capsys,
        "streams",
        "start",
        u,
        "--stream-id",
        "lap-1",
        "--device-id",
        "lap-inst",
        "--replace",
        "ph-1",
        *url,
    )
    assert (started["device_id"], started["replaced"], started["counts"]) == ("lap-inst", [], "streams")
    assert [(s["stream_id"], s["device_id"]) for s in started["evicted"]] == [("ph-1", "phone-inst")]
    code, _, err = cli(capsys, "streams", "start", u, "--stream-id", "x", "--replace", "ph-1", *url)
    assert code == 1
    assert err.startswith("streamlimit: stream_not_active: the stream to replace, 'ph-1', is not active")
    code, _, err = cli(capsys, "streams", "start", u, "--device-id", "not an id", *url)
    assert code == 1
    assert err.startswith("streamlimit: invalid_id: device_id must be ")

    code, out, _ = cli(capsys, "events", u, *url)
    rows = [line.split() for line in out.splitlines()]
    assert code == 0
    assert rows[0] == ["AT", "ACTION", "ACTOR", "STREAMS", "VALUE", "DEVICE", "ID"]
    assert [r[2:] for r in rows[1:]] == [  # newest first; AT is two words
        ["evicted", "anonymous", "ph-1", "lap-1", "-"],
        ["replaced", "anonymous", "tv-1", "tv-2", "tv-inst"],
    ]
    replaced = cli_json(capsys, "events", u, *url)["events"][1]
    assert (replaced["action"], replaced["streams"], replaced["value"], replaced["device_id"]) == (
        "replaced",
        ["tv-1"],
        "tv-2",
        "tv-inst",
    )
    cli(capsys, "streams", "stop-all", u, *url)


def test_limit_get_set_clear(
    svc: Service, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    u = user()
    monkeypatch.setenv("STREAMLIMIT_URL", svc.url)  # no --url: the environment names the service
    assert cli(capsys, "limit", "get", u) == (0, f"{u}: limit 2 (limit from default)\n", "")
    assert cli(capsys, "limit", "set", u, "5") == (0, f"{u}: limit 5 (limit from user)\n", "")
    got = cli_json(capsys, "limit", "get", u)
    assert (got["user_id"], got["limit"], got["limit_source"], got["default"]) == (u, 5, "user", False)
    assert cli_json(capsys, "limit", "clear", u)["limit_source"] == "default"
    assert cli(capsys, "limit", "get", u)[1] == f"{u}: limit 2 (limit from default)\n"
    code, out, err = cli(capsys, "limit", "set", u, "5000")
    assert (code, out) == (1, "")
    assert err.startswith("streamlimit: ")


def test_events_json_writes_times_as_the_api_does(svc: Service, capsys: pytest.CaptureFixture[str]) -> None:
    u, url = user(), ("--url", svc.url)
    assert cli(capsys, "limit", "set", u, "4", *url)[0] == 0
    events = cli_json(capsys, "events", u, *url)["events"]
    api = httpx.get(f"{svc.url}/v1/users/{u}/events", timeout=5).json()["events"]
    assert [e["at"] for e in events] == [e["at"] for e in api]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", events[0]["at"])


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["streams", "list"], ["limit", "set", "alice", "many"], ["streams", "heartbeat", "alice"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err
    for bad in ("notaurl", "ftp://example.com", "http://[::bad"):
        assert cli(capsys, "limit", "get", "alice", "--url", bad) == (
            2,
            "",
            "streamlimit: --url (or STREAMLIMIT_URL) must be an http:// or https:// URL\n",
        )


def test_unreachable_service_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "streamlimit.cli", "streams", "list", "alice", "--url", url, "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (3, "")
    # names the URL it tried and how to point it elsewhere
    assert proc.stderr.startswith(f"streamlimit: cannot reach the service at {url} (ConnectError: ")
    assert proc.stderr.endswith("; point --url or STREAMLIMIT_URL at it\n")


def test_jwt_token_is_sent_and_never_printed(
    jwt_svc: Service, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    u, url = user(), ("--url", jwt_svc.url)
    token = mint_token(SECRET, u, "streams")
    admin = mint_token(SECRET, "ops", "streams:admin")
    outputs: list[str] = []

    def run(*args: str) -> tuple[int, str, str]:
        result = cli(capsys, *args)
        outputs.extend(result[1:])
        return result

    code, _, err = run("streams", "list", u, *url)
    assert code == 1
    assert err.startswith("streamlimit: unauthenticated: ")
    code, _, err = run("streams", "list", u, *url, "--token", "not-a-jwt")
    assert code == 1
    assert err.startswith("streamlimit: unauthenticated: ")
    code, out, _ = run("streams", "start", u, "--stream-id", "tv", *url, "--token", token)
    assert code == 0
    assert out.startswith(f"started tv for {u} ")
    assert run("streams", "list", u, *url, "--token", token, "--json")[0] == 0
    code, _, err = run("streams", "list", "someone-else", *url, "--token", token)
    assert code == 1
    assert err.startswith("streamlimit: forbidden: ")
    code, _, err = run("limit", "set", u, "4", *url, "--token", token)
    assert code == 1
    assert err.startswith("streamlimit: forbidden: ")
    assert run("limit", "set", u, "4", *url, "--token", admin)[:2] == (0, f"{u}: limit 4 (limit from user)\n")
    monkeypatch.setenv("STREAMLIMIT_TOKEN", token)  # the environment works as --token does
    assert run("streams", "stop", u, "tv", *url)[:2] == (0, f"stopped tv for {u}\n")
    assert run("limit", "get", u, *url, "--json")[0] == 0
    for text in outputs:
        assert token not in text
        assert admin not in text
        assert token.split(".")[2] not in text  # not even the signature
