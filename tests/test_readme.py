"""The README's API walkthrough, run verbatim with bash and curl against a service started as
`make run` starts it (default settings, the embedded store, the demo plans): every `# ->` line is
the status and a part of the JSON body its command must get, so the README cannot drift."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Service

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
