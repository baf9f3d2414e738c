"""A py-spy profile of one worker under load, boiled down to where its CPU goes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# which package a frame belongs to, by the folder of its file (py-spy shows paths from there)
PACKAGES = (
    ("redis-py", "redis/"),
    ("starlette", "starlette/"),
    ("uvicorn", "uvicorn/"),
    ("streamlimit", "streamlimit/"),
    ("asyncio", "asyncio/"),
)
OTHER = "other Python (stdlib)"
# a sample whose innermost Python frame is the loop's entry point runs in the loop's own C code
# (uvloop: polling, socket reads and writes, callbacks' C parts, httptools' parser)
LOOP = "event loop (uvloop, C)"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]+?)(?::\d+)?\)$")


def _package(file: str) -> str:
    path = "/" + file
    return next((name for name, folder in PACKAGES if "/" + folder in path), OTHER)


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "src/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m['func']} ({file})"


@dataclass
class Profile:
    samples: int
    seconds: int
    top_self: list[tuple[str, int]]  # leaf frames: where the samples were taken
    self_by_package: list[tuple[str, int]]
    inclusive_by_package: list[tuple[str, int]]  # samples with any frame of the package
    raw_path: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        return cls(
            d["samples"],
            d["seconds"],
            [tuple(x) for x in d["top_self"]],
            [tuple(x) for x in d["self_by_package"]],
            [tuple(x) for x in d["inclusive_by_package"]],
            d["raw_path"],
        )


def parse(raw: str, seconds: int, raw_path: str) -> Profile:
    """py-spy's raw (collapsed stacks) output: 'frame;frame;...;leaf count' per line."""
    leaf: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf[_short(frames[-1])] += n
        m = _FRAME.match(frames[-1])
        in_loop = m is not None and m["func"] == "Runner.run"
        self_pkg[LOOP if in_loop else _package(m["file"]) if m else OTHER] += n
        files = {m["file"] for f in frames if (m := _FRAME.match(f))}
        for pkg in {_package(f) for f in files}:
            incl_pkg[pkg] += n
    return Profile(
        total, seconds, leaf.most_common(15), self_pkg.most_common(), incl_pkg.most_common(), raw_path
    )


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def profile_worker(pid: int, seconds: int, out: Path) -> Profile | None:
    """``py-spy record --nonblocking --function --format raw`` of ``pid`` for ``seconds``."""
    exe = py_spy()
    if exe is None:
        print("py-spy not found: no profile", file=sys.stderr)
        return None
    raw_path = out.with_suffix(".txt")
    cmd = [
        exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
        "--nonblocking", "--function", "--format", "raw", "--output", str(raw_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if proc.returncode != 0 or not raw_path.exists():
        print(f"py-spy failed ({proc.returncode}): {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return parse(raw_path.read_text(), seconds, str(raw_path))
