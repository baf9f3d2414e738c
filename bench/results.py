"""Everything one bench run measured, saved as JSON so the report can be rendered again."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.data import Memory
from bench.grants import GrantsResult
from bench.live import LiveResult
from bench.service_bench import ServiceResult
from bench.store_bench import Ceiling
from bench.wrk_runner import Summary
from streamlimit.store.embedded import server_binary


def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not found"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) else "?"


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    versions = {name: metadata.version(name) for name in (
        "streamlimit", "starlette", "uvicorn", "uvloop", "httptools", "redis", "hiredis", "msgspec",
    )}  # fmt: skip
    versions["python"] = platform.python_version()
    versions["valkey-server"] = _first_line([server_binary(), "--version"])
    versions["wrk"] = _first_line(["wrk", "-v"]).split(" Copyright")[0]
    versions["redis-benchmark"] = _first_line(["redis-benchmark", "--version"])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "versions": versions,
    }


@dataclass
class Results:
    config: dict[str, Any]
    command: str
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    machine: dict[str, Any] = field(default_factory=machine)
    services: list[ServiceResult] = field(default_factory=list)
    ceilings: list[Ceiling] = field(default_factory=list)
    memory: Memory | None = None
    calibration: Summary | None = None  # the bare Starlette endpoint on this machine
    live: LiveResult | None = None  # live channels on one worker (issue 16)
    grants: GrantsResult | None = None  # heartbeats with and without grants (issue 15)
    runtime_s: float = 0.0

    def service(self, workers: int) -> ServiceResult | None:
        return next((s for s in self.services if s.workers == workers), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "command": self.command,
            "started_at": self.started_at,
            "machine": self.machine,
            "services": [s.as_dict() for s in self.services],
            "ceilings": [c.as_dict() for c in self.ceilings],
            "memory": self.memory.__dict__ if self.memory else None,
            "calibration": self.calibration.as_dict() if self.calibration else None,
            "live": self.live.as_dict() if self.live else None,
            "grants": self.grants.as_dict() if self.grants else None,
            "runtime_s": self.runtime_s,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> Results:
        d = json.loads(path.read_text())
        return cls(
            config=d["config"],
            command=d["command"],
            started_at=d["started_at"],
            machine=d["machine"],
            services=[ServiceResult.from_dict(s) for s in d["services"]],
            ceilings=[Ceiling.from_dict(c) for c in d["ceilings"]],
            memory=Memory(**d["memory"]) if d["memory"] else None,
            calibration=Summary.from_dict(d["calibration"]) if d.get("calibration") else None,
            live=LiveResult.from_dict(d["live"]) if d.get("live") else None,
            grants=GrantsResult.from_dict(d["grants"]) if d.get("grants") else None,
            runtime_s=d["runtime_s"],
        )
