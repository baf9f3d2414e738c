"""Start-up and the CLI as a person meets them: one start-up line, --version, help that fits
the command, yes/no flags (test_cli_remote: an unreachable service, JSON times)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from streamlimit import __version__
from streamlimit.cli import main
from tests.servers import Service

Factory = Callable[..., Service]


def _startup_lines(svc: Service) -> list[str]:
    return [line for line in svc.log_path.read_text().splitlines() if f"streamlimit {__version__} " in line]


@pytest.mark.slow  # three service processes and an embedded server
def test_start_up_says_once_the_version_urls_and_store(service_factory: Factory, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = service_factory(f"embedded://{store}", workers=2)
    second = service_factory(f"embedded://{store}")  # the first one's server is running
    for svc, state in ((first, f"starting a server in {store}"), (second, "adopting the server already")):
        lines = _startup_lines(svc)
        url = svc.url
        assert len(lines) == 1, lines  # once, not once per worker
        assert lines[0].endswith(
            f"streamlimit {__version__} serving {url}"
            + (", 2 workers" if svc is first else "")
            + f"; API docs {url}/docs, console {url}/console; store embedded://{store}, {state}"
            + ("" if svc is first else f" running in {store}")
        )
        assert "starting embedded store" not in svc.log_path.read_text()  # the worker says no more
        for path in ("/docs", "/console"):
            assert httpx.get(url + path, timeout=5).status_code == 200


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert (done.value.code, capsys.readouterr().out) == (0, f"streamlimit {__version__}\n")


def test_token_mint_help_shows_only_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["token", "mint", "--help"])
    flags = set(re.findall(r"--[a-z-]+", capsys.readouterr().out))
    assert flags == {
        "--help",
        "--jwt-secret",
        "--jwt-issuer",
        "--jwt-audience",
        "--sub",
        "--scope",
        "--plan",
        "--ttl",
    }


def test_yes_no_flags_work_alone(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "check",
        "--store-url",
        "memory://",
        "--ready-without-store",
        "--access-log",
        "--metrics",
        "false",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "STREAMLIMIT_ACCESS_LOG, STREAMLIMIT_METRICS, STREAMLIMIT_READY_WITHOUT_STORE" in out
