"""One wrk run, with the CPU that the service, the store and wrk itself spent during it."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.procs import machine_cpu

WRK_DIR = Path(__file__).parent / "wrk"


class Measured(Protocol):
    def cpu(self) -> float:
        """CPU seconds used so far (a process and its workers)."""
        ...


class Target(Measured, Protocol):
    @property
    def url(self) -> str: ...


@dataclass
class Run:
    requests: int
    seconds: float
    latency_us: dict[str, float]
    errors: dict[str, int]
    ops: dict[str, int]
    answers: dict[str, int]
    service_cpu_s: float
    store_cpu_s: float
    wrk_cpu_s: float
    machine_busy: float  # fraction of all cores busy during the run
    command: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def unexpected(self) -> int:
        """Non-2xx answers (wrk counts > 399; scripts reading answers count every non-2xx)."""
        return max(self.errors["status"], self.answers.get("other", 0))

    @property
    def socket_errors(self) -> int:
        return sum(n for k, n in self.errors.items() if k != "status")

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "rps": self.rps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        return cls(**{k: v for k, v in d.items() if k != "rps"})


def wrk(
    service: Target,
    store: Measured,
    path: str,
    script: str,
    args: list[str],
    seconds: int,
    threads: int,
    connections: int,
) -> Run:
    """``wrk -tT -cC -dS --latency -s bench/wrk/SCRIPT URL -- ARGS``, parsed from its done() line."""
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(WRK_DIR / script), f"{service.url}{path}", "--", *args,
    ]  # fmt: skip
    svc0, store0 = service.cpu(), store.cpu()
    busy0, total0 = machine_cpu()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = machine_cpu()
    svc1, store1 = service.cpu(), store.cpu()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(line.removeprefix("BENCH_JSON "))
    shown = [c if "/" not in c else c.replace(str(WRK_DIR.parent.parent) + "/", "") for c in cmd]
    return Run(
        requests=out["requests"],
        seconds=out["duration_us"] / 1e6,
        latency_us=out["latency_us"],
        errors=out["errors"],
        ops=out["ops"],
        answers=out["answers"],
        service_cpu_s=svc1 - svc0,
        store_cpu_s=store1 - store0,
        wrk_cpu_s=(ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        machine_busy=(busy1 - busy0) / max(total1 - total0, 1.0),
        command=" ".join(shown),
    )


@dataclass
class Summary:
    """Median and min-max over the runs of one workload on one service configuration."""

    name: str
    workers: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    def _median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def rps(self) -> float:
        return self._median([r.rps for r in self.runs])

    @property
    def rps_min(self) -> float:
        return min(r.rps for r in self.runs)

    @property
    def rps_max(self) -> float:
        return max(r.rps for r in self.runs)

    def latency_ms(self, key: str) -> float:
        return self._median([r.latency_us[key] / 1000 for r in self.runs])

    def per_1k(self, what: str) -> float:
        """CPU seconds per 1,000 requests (median over runs) of 'service', 'store' or 'wrk'."""
        return self._median([getattr(r, f"{what}_cpu_s") / r.requests * 1000 for r in self.runs])

    def cores(self, what: str) -> float:
        """Cores busy on average (CPU seconds / wall seconds) of 'service', 'store' or 'wrk'."""
        return self._median([getattr(r, f"{what}_cpu_s") / r.seconds for r in self.runs])

    @property
    def machine_busy(self) -> float:
        return self._median([r.machine_busy for r in self.runs])

    @property
    def unexpected(self) -> int:
        return sum(r.unexpected for r in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(r.socket_errors for r in self.runs)

    @property
    def flagged(self) -> bool:
        return self.unexpected > 0 or self.socket_errors > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "workers": self.workers,
            "note": self.note,
            "runs": [r.as_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        return cls(d["name"], d["workers"], [Run.from_dict(r) for r in d["runs"]], d.get("note", ""))


def wait_quiet(seconds: float = 1.0) -> None:
    """A pause between runs, so one run's tail (closing connections, AOF fsync) is not the next's."""
    time.sleep(seconds)
