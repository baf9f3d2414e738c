"""Control characters and bidi controls: refused in a ``device`` label (422 naming the field),
escaped in what the CLI prints and in text-format log lines, on real `streamlimit serve` processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from streamlimit.auth.mint import mint_token
from streamlimit.cli import main
from streamlimit.client.types import StreamInfo
from streamlimit.tables import streams_table
from tests.servers import Service

SECRET = "control-chars-test-secret-0123456789abcdef"
UNSAFE = {
    "esc (screen clear)": "tv\x1b[2J",
    "bel": "tv\x07",
    "nul": "a\x00b",
    "newline": "tv\nstarted fake for other",
    "carriage return": "tv\rfake",
    "tab": "living\troom",
    "del": "tv\x7f",
    "c1 csi": "tv\x9b2J",
    "line separator": "tv\u2028x",
    "rlo override": "tv\u202eshifted",
    "lre embedding": "\u202atv",
    "rli isolate": "tv\u2067x\u2069",
    "lrm mark": "tv\u200e",
    "arabic letter mark": "tv\u061c",
}
FINE = ["living room", "Zoë's iPad", "電視", "👨\u200d👩\u200d👧 tablet", "tv|2", "\U0001f600" * 32, ""]


def uid() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("control") / "svc.log"
    s = Service("memory://", log, auth="jwt", jwt_secret=SECRET, access_log=True).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(svc: Service) -> Iterator[httpx.Client]:
    admin = mint_token(SECRET, "ops", "streams:admin")
    with httpx.Client(base_url=svc.url, headers={"authorization": f"Bearer {admin}"}, timeout=5) as c:
        yield c


@pytest.mark.parametrize("device", list(UNSAFE.values()), ids=list(UNSAFE))
def test_a_device_with_control_characters_is_422_naming_it(client: httpx.Client, device: str) -> None:
    user = uid()
    r = client.post(f"/v1/users/{user}/streams", json={"stream_id": "s", "device": device})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("invalid_body", "device")
    assert client.get(f"/v1/users/{user}/streams").json()["active"] == 0


@pytest.mark.parametrize("device", FINE)
def test_a_device_in_any_script_with_emoji_is_kept_whole(client: httpx.Client, device: str) -> None:
    user = uid()
    r = client.post(f"/v1/users/{user}/streams", json={"stream_id": "s", "device": device})
    assert (r.status_code, r.json()["device"]) == (201, device)


def test_the_cli_prints_an_actors_control_characters_escaped(
    svc: Service, client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """An admin token's subject is its holder's name in the trail, whatever characters it has."""
    user = uid()
    assert client.post(f"/v1/users/{user}/streams", json={"stream_id": "s"}).status_code == 201
    evil = mint_token(SECRET, "ops\x1b[2J\n2026-01-01 00:00:00Z  limit_set  root", "streams:admin")
    assert (
        client.delete(f"/v1/users/{user}/streams/s", headers={"authorization": f"Bearer {evil}"}).status_code
        == 204
    )
    admin = mint_token(SECRET, "ops", "streams:admin")
    assert main(["events", user, "--url", svc.url, "--token", admin]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "ops\\x1b[2J\\x0a2026-01-01" in out
    assert len(out.strip().splitlines()) == 2, out  # the header and one event: no forged row


def test_device_labels_are_printed_escaped() -> None:
    """A label stored before the rule (or by another writer) is still printed harmlessly."""
    now = datetime.now(UTC)
    table = streams_table([StreamInfo("u", "s1", "tv\x1b[2J\u202e\nfake", now, now, None)])
    assert table.splitlines()[1].split()[:2] == ["s1", "tv\\x1b[2J\\u202e\\x0afake"]
    assert len(table.splitlines()) == 2


def test_a_newline_in_a_path_parameter_cannot_forge_a_log_line(svc: Service, client: httpx.Client) -> None:
    forged = "2026-01-01 00:00:00,000 INFO streamlimit.audit: forged"
    r = client.get("/v1/users/a%0a" + forged.replace(" ", "%20") + "/streams")
    assert r.status_code == 422
    deadline = time.monotonic() + 5  # the line is written just after the answer
    while "forged" not in svc.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = svc.log_path.read_text().splitlines()
    assert not [line for line in lines if line.startswith(forged)]
    mine = [line for line in lines if "streamlimit.access" in line and "forged" in line]
    assert len(mine) == 1, lines[-5:]
    assert 'user_id="a\\x0a2026-01-01 00:00:00,000 INFO streamlimit.audit: forged"' in mine[0]
