"""What a bench run does, from ``BENCH_*`` environment variables (defaults: the full run)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    runs: int = 3  # wrk runs per workload (median, min-max)
    seconds: int = 12  # length of each wrk run
    warmup_s: int = 3  # unrecorded wrk run before each workload's first run
    threads: int = 2  # wrk -t
    connections: int = 64  # wrk -c
    workers: tuple[int, ...] = (1, 2)  # service configurations measured
    users: int = 10_000  # seeded users x 1 active stream (heartbeat, list, mix)
    store_requests: int = 50_000  # redis-benchmark -n per run, script and pipelining depth
    memory_leases: int = 1_000_000  # active leases loaded for the memory figure
    profile_s: int = 10  # py-spy of one worker under the heartbeat load (0: no profile)
    live_channels: int = 10_000  # live channels held on one worker (0: no live channel figures)
    out_dir: str = "docs"
    service_settings: dict[str, str] = field(
        default_factory=lambda: {
            # the longest lease allowed: nothing seeded expires during the run
            "lease_ttl_s": "86400",
            # the per-user start budget would turn the compat and mix workloads' repeated starts
            # for one user into 429s; a benchmark measures throughput, not the abuse limit
            "start_rate_per_min": "0",
            "log_level": "warning",
        }
    )

    @classmethod
    def from_env(cls) -> Config:
        d = cls()
        workers = os.environ.get("BENCH_WORKERS", " ".join(map(str, d.workers)))
        return cls(
            runs=_int("BENCH_RUNS", d.runs),
            seconds=_int("BENCH_SECONDS", d.seconds),
            warmup_s=_int("BENCH_WARMUP_S", d.warmup_s),
            threads=_int("BENCH_THREADS", d.threads),
            connections=_int("BENCH_CONNECTIONS", d.connections),
            workers=tuple(int(w) for w in workers.replace(",", " ").split()),
            users=_int("BENCH_USERS", d.users),
            store_requests=_int("BENCH_STORE_REQUESTS", d.store_requests),
            memory_leases=_int("BENCH_MEMORY_LEASES", d.memory_leases),
            profile_s=_int("BENCH_PROFILE_S", d.profile_s),
            live_channels=_int("BENCH_LIVE_CHANNELS", d.live_channels),
            out_dir=os.environ.get("BENCH_OUT", d.out_dir),
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "workers": list(self.workers)}

    def env_line(self) -> str:
        """The non-default settings, as the environment that reproduces them."""
        d = Config()
        names = {
            "runs": "BENCH_RUNS",
            "seconds": "BENCH_SECONDS",
            "warmup_s": "BENCH_WARMUP_S",
            "threads": "BENCH_THREADS",
            "connections": "BENCH_CONNECTIONS",
            "users": "BENCH_USERS",
            "store_requests": "BENCH_STORE_REQUESTS",
            "memory_leases": "BENCH_MEMORY_LEASES",
            "profile_s": "BENCH_PROFILE_S",
        }
        parts = [f"{env}={getattr(self, k)}" for k, env in names.items() if getattr(self, k) != getattr(d, k)]
        if self.workers != d.workers:
            parts.append(f"BENCH_WORKERS='{' '.join(map(str, self.workers))}'")
        return " ".join(parts)
