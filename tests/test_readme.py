"""The README's API walkthrough, run verbatim with bash and curl against a service started as
`make run` starts it (default settings, the embedded store, the demo plans): every `# ->` line is
the status and a part of the JSON body its command must get, so the README cannot drift. And its
webhook receiver, run as it is, given signed, repeated and forged webhooks."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streamlimit.webhooks.payload import message
from streamlimit.webhooks.sender import Sender
from streamlimit.webhooks.signing import Signer
from tests.servers import Service, free_port
from tests.webhook_receiver import SECRET, event

ROOT = Path(__file__).parent.parent
MARK = "tests/test_readme.py runs"


def walkthrough() -> list[str]:
    """The lines of the README's sh block that names this test."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    found: list[str] = [b for b in blocks if MARK in b]
    assert len(found) == 1, "the README has one walkthrough block"
    return found[0].splitlines()


def steps(lines: list[str]) -> tuple[list[str], list[tuple[str, int, Any]]]:
    """(variable assignments, [(command, status, expected body part)])"""
    preamble, out = [], []
    command: str | None = None
    for line in lines:
        if re.fullmatch(r"[A-Z]+=\S.*", line):
            preamble.append(line)
        elif line.startswith("curl "):
            assert command is None, f"no '# ->' line after: {command}"
            command = line.split("  #")[0].strip()
        elif line.startswith("# -> "):
            assert command is not None, f"an expectation without a command: {line}"
            status, _, body = line[5:].partition(" ")
            out.append((command, int(status), json.loads(body) if body else None))
            command = None
    assert command is None, f"no '# ->' line after: {command}"
    return preamble, out


def part_of(expected: Any, actual: Any) -> bool:
    """Every member ``expected`` names is in ``actual`` with that value (lists: item by item)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and part_of(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(part_of(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def demo_plans() -> str:
    """The plans `make run` serves (the Makefile's DEMO_PLANS)."""
    found = re.search(r"^DEMO_PLANS\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert found, "the Makefile names the demo plans make run serves"
    return found.group(1)


def problem_codes() -> set[str]:
    """Every problem ``code`` the API answers with, read from its source: a code follows its
    status, or is a budget's, an HTTP error's or the id/body choice."""
    codes: set[str] = set()
    for path in (ROOT / "src" / "streamlimit" / "api").glob("*.py"):
        text = path.read_text()
        codes |= set(re.findall(r'\b[1-5]\d\d,\s*"([a-z]+(?:_[a-z]+)*)"', text))
        codes |= set(re.findall(r'_budget_spent\("([a-z_]+)"', text))
        for pair in re.findall(r'code = "([a-z_]+)" if .* else "([a-z_]+)"', text):
            codes |= set(pair)
        if table := re.search(r"_HTTP_CODES = \{(.*?)\}", text):
            codes |= set(re.findall(r'"([a-z_]+)"', table.group(1)))
    return codes


def test_the_readme_lists_every_problem_code() -> None:
    codes = problem_codes()
    assert {"stream_limit_reached", "unknown_plan", "invalid_request", "not_found"} <= codes
    text = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`([a-z]+(?:_[a-z]+)*)`", text[text.index("`code` member:") :][:2000]))
    assert codes <= listed, f"not in the README's table of codes: {sorted(codes - listed)}"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_readme_walkthrough_is_true_when_run_verbatim(tmp_path: Path) -> None:
    preamble, calls = steps(walkthrough())
    codes = {c for _, status, body in calls if isinstance(body, dict) for c in [body.get("code")] if c}
    assert {409, 410} <= {status for _, status, _ in calls}
    assert {"stream_limit_reached", "stream_evicted", "stream_stopped"} <= codes
    assert any("evict_oldest" in cmd and body.get("evicted") for cmd, _, body in calls if body)
    svc = Service(f"embedded://{tmp_path / 'store'}", tmp_path / "svc.log", plans=demo_plans()).start()
    try:
        setup = "; ".join([*preamble, f"B={svc.url}"])
        for command, status, expected in calls:
            out = tmp_path / "body"
            run = f"{setup}; {command} -o {out} -w '%{{http_code}}'"
            done = subprocess.run(
                ["bash", "-c", run], capture_output=True, text=True, timeout=30, check=False
            )
            got = int(done.stdout.strip() or 0)
            body = out.read_text() if out.exists() else ""
            assert got == status, f"{command}\n  got {got} {body}"
            if expected is not None:
                assert part_of(expected, json.loads(body)), f"{command}\n  got {body}\n  want {expected}"
            out.unlink(missing_ok=True)
    finally:
        svc.stop()


def receiver_example() -> str:
    """The README's webhook receiver (the python block that names itself receiver.py)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    found: list[str] = [b for b in blocks if b.startswith("# receiver.py")]
    assert len(found) == 1, "the README has one receiver example"
    return found[0]


def test_the_readme_receiver_accepts_signed_webhooks_once_and_refuses_forged_ones(tmp_path: Path) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(receiver_example())
    port = free_port()
    env = {**os.environ, "STREAMLIMIT_WEBHOOK_SECRET": SECRET, "PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        with socket.socket() as probe:  # listening
            for _ in range(250):
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
                time.sleep(0.02)
        raw = json.dumps(event(1_764_790_000_123, "limit_set", value="4"))
        msg = message("evt_1764790000123-0", "alice", raw)

        async def send() -> list[tuple[str, str] | None]:
            sender, forger = Sender(Signer(SECRET), 5), Sender(Signer("another secret of 24+ bytes"), 5)
            try:  # the event twice (a duplicate), then forged
                return [await sender.send(url, msg), await sender.send(url, msg), await forger.send(url, msg)]
            finally:
                await sender.aclose()
                await forger.aclose()

        assert asyncio.run(send()) == [None, None, ("status", "400")]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
    (line,) = out.splitlines()  # handled once
    kind, user, body = line.split(" ", 2)
    assert (kind, user) == ("limit.changed", "alice")
    assert json.loads(body)["limit"] == 4
