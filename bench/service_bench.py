"""The HTTP workloads against one ``streamlimit serve`` configuration (1 or N workers)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import Config
from bench.procs import Processes, Service, Valkey
from bench.profile import Profile, profile_worker
from bench.wrk_runner import Run, Summary, wait_quiet, wrk


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    path: str
    script: str
    args: Callable[[Config, str], list[str]]  # (config, run id) -> wrk script arguments
    expect: str


def _users(cfg: Config, run_id: str) -> list[str]:
    return [str(cfg.users)]


WORKLOADS = (
    Workload("healthz", "GET /healthz (ceiling)", "/healthz", "healthz.lua", lambda c, r: [], "200"),
    Workload("heartbeat", "heartbeat", "/", "heartbeat.lua", _users, "200"),
    Workload("start_stop", "start/stop cycle", "/", "start_stop.lua", lambda c, r: [r], "201, 204"),
    Workload("list", "list", "/", "list.lua", _users, "200"),
    Workload("compat", "compat add/remove cycle", "/", "compat.lua", lambda c, r: [r], "200"),
    Workload("mix", "90/9/1 heartbeat/start/stop", "/", "mix.lua", lambda c, r: [str(c.users), r], "2xx"),
)


@dataclass
class Paced:
    """Heartbeats offered at about half the measured maximum (wrk's per-request pause)."""

    target_rps: float
    connections: int
    pause_ms: float  # mean of the exponentially distributed pauses
    runs: list[Run] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "runs": [r.as_dict() for r in self.runs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Paced:
        return cls(d["target_rps"], d["connections"], d["pause_ms"], [Run.from_dict(r) for r in d["runs"]])


@dataclass
class ServiceResult:
    workers: int
    summaries: list[Summary]
    paced: Paced | None
    profile: Profile | None

    def summary(self, name: str) -> Summary:
        return next(s for s in self.summaries if s.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "summaries": [s.as_dict() for s in self.summaries],
            "paced": self.paced.as_dict() if self.paced else None,
            "profile": self.profile.as_dict() if self.profile else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServiceResult:
        return cls(
            d["workers"],
            [Summary.from_dict(s) for s in d["summaries"]],
            Paced.from_dict(d["paced"]) if d["paced"] else None,
            Profile.from_dict(d["profile"]) if d["profile"] else None,
        )


def _put_limit(service: Service, user: str, limit: int) -> None:
    req = urllib.request.Request(  # noqa: S310 (loopback)
        f"{service.url}/v1/users/{user}/limit",
        data=json.dumps({"limit": limit}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310
        r.read()


def _prepare(w: Workload, service: Service, cfg: Config, run_id: str) -> None:
    if w.name == "compat":  # one user per wrk thread, holding up to a stream per connection
        for thread in range(cfg.threads):
            _put_limit(service, f"compat-{run_id}-{thread}", 1000)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run(w: Workload, service: Service, store: Valkey, cfg: Config, run_id: str, seconds: int) -> Run:
    _prepare(w, service, cfg, run_id)
    run = wrk(service, store, w.path, w.script, w.args(cfg, run_id), seconds, cfg.threads, cfg.connections)
    wait_quiet()
    return run


def _paced(service: Service, store: Valkey, cfg: Config, max_rps: float) -> Paced:
    """p99 at half the maximum: random pauses before each request, calibrated by one probe run."""
    target = max_rps / 2
    # about 40 ms per request cycle and connection: many connections, each mostly pausing
    conns = max(cfg.threads, round(target * 0.040 / cfg.threads) * cfg.threads)
    pause = conns * 1000 / target - 1.0  # assume 1 ms of latency, then measure it

    def once(seconds: int) -> Run:
        args = [str(cfg.users), f"{pause:.2f}"]
        return wrk(service, store, "/", "heartbeat_paced.lua", args, seconds, cfg.threads, conns)

    probe = once(max(3, cfg.seconds // 2))
    latency_ms = max(0.0, conns * 1000 / probe.rps - pause)  # the cycle beyond the pause
    pause = max(0.0, conns * 1000 / target - latency_ms)
    paced = Paced(target, conns, round(pause, 2))
    for _ in range(cfg.runs):
        paced.runs.append(once(cfg.seconds))
        wait_quiet()
    return paced


def measure(procs: Processes, store: Valkey, cfg: Config, workers: int, workdir: Path) -> ServiceResult:
    """Start the service, warm up, run every workload ``cfg.runs`` times (interleaved), stop it."""
    service = Service(procs, store.url, workers, **cfg.service_settings)
    try:
        summaries = [Summary(w.name, workers) for w in WORKLOADS]
        for w in WORKLOADS:  # warm-up: every route, code path and connection, unrecorded
            _log(f"[{workers}w] warm-up {w.name} ({cfg.warmup_s} s)")
            _run(w, service, store, cfg, f"{workers}w-warm", cfg.warmup_s)
        for i in range(cfg.runs):  # interleaved, so slow drift hits every workload alike
            for w, summary in zip(WORKLOADS, summaries, strict=True):
                run = _run(w, service, store, cfg, f"{workers}w{i}", cfg.seconds)
                summary.runs.append(run)
                _log(
                    f"[{workers}w] {w.name} run {i + 1}/{cfg.runs}: {run.rps:,.0f}/s "
                    f"p99 {run.latency_us['p99'] / 1000:.1f} ms, non-2xx {run.unexpected}, "
                    f"socket errors {run.socket_errors}, wrk {run.wrk_cpu_s / run.seconds:.2f} cores"
                )
        heartbeat = next(s for s in summaries if s.name == "heartbeat")
        _log(f"[{workers}w] heartbeats at half of {heartbeat.rps:,.0f}/s")
        paced = _paced(service, store, cfg, heartbeat.rps)
        profile = None
        if cfg.profile_s > 0:
            _log(f"[{workers}w] py-spy of one worker under the heartbeat load ({cfg.profile_s} s)")
            load = subprocess.Popen(
                ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}", f"-d{cfg.profile_s + 4}s",
                 "-s", str(Path(__file__).parent / "wrk" / "heartbeat.lua"), f"{service.url}/",
                 "--", str(cfg.users)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                profile = profile_worker(
                    service.worker_pids()[0], cfg.profile_s, workdir / f"py-spy-{workers}w"
                )
            finally:
                try:
                    load.wait(cfg.profile_s + 30)
                except subprocess.TimeoutExpired:
                    load.kill()
                    load.wait()
            wait_quiet()
        return ServiceResult(workers, summaries, paced, profile)
    finally:
        procs.stop(service.proc)
