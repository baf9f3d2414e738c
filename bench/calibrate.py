"""Machine calibration: the issue's bare Starlette endpoint, re-measured on this machine."""

from __future__ import annotations

import sys
import urllib.request

from bench.config import Config
from bench.procs import Processes, Valkey, free_port, tree_cpu_seconds, wait_for
from bench.wrk_runner import Summary, wait_quiet, wrk

# the issue's figure for a bare Starlette JSON endpoint under uvicorn, 1 worker, wrk -t2 -c64
ISSUE_BARE_RPS = 17_000.0


class _Bare:
    """The bare app under uvicorn (1 worker), a ``wrk_runner.Target``."""

    def __init__(self, procs: Processes) -> None:
        self.port = free_port()
        args = [
            sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self.proc = procs.start("bare-starlette", args)
        wait_for(self.ready, "bare Starlette app")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def ready(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError("bare Starlette app exited")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:  # noqa: S310 (loopback)
                return bool(r.status == 200)
        except OSError:
            return False


def bare_starlette(procs: Processes, store: Valkey, cfg: Config) -> Summary:
    """``cfg.runs`` runs of GET /healthz on the bare app (1 worker), after a warm-up."""
    bare = _Bare(procs)
    try:
        summary = Summary("bare_starlette", 1)
        wrk(bare, store, "/healthz", "healthz.lua", [], cfg.warmup_s, cfg.threads, cfg.connections)
        for i in range(cfg.runs):
            run = wrk(bare, store, "/healthz", "healthz.lua", [], cfg.seconds, cfg.threads, cfg.connections)
            summary.runs.append(run)
            print(f"[calibration] bare Starlette run {i + 1}/{cfg.runs}: {run.rps:,.0f}/s", file=sys.stderr)
            wait_quiet()
        return summary
    finally:
        procs.stop(bare.proc)
