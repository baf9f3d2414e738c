"""What STREAMLIMIT_REPLICA_ACK costs: starts through the store, with and without WAIT.

    python -m bench.replica_ack [CALLS] [CONCURRENCY]

Starts a primary with one replica (bundled valkey-server, loopback), then sends CALLS starts
(CONCURRENCY at a time, fresh users) through the service's store with replica_ack 0 and 1,
and prints starts/s and the p50/p99 latency of each.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

import uvloop

from bench.procs import Valkey, temporary_processes
from streamlimit.models import Limits, Start
from streamlimit.settings import Settings
from streamlimit.store.connect import open_store


async def _measure(url: str, ack: int, calls: int, concurrency: int) -> None:
    store = await open_store(Settings(store_url=url, replica_ack=ack, replica_ack_timeout_ms=200))
    run = uuid.uuid4().hex[:6]
    took: list[float] = []

    async def caller(c: int) -> None:
        for i in range(calls // concurrency):
            t0 = time.perf_counter()
            await store.start(f"ack-{run}-{c}-{i}", "s", None, 60_000, Limits(3), Start())
            took.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(concurrency)))
    wall = time.perf_counter() - t0
    await store.close()
    q = statistics.quantiles(took, n=100)
    print(
        f"replica_ack={ack}: {len(took) / wall:8,.0f} starts/s  "
        f"p50 {q[49] * 1000:.2f} ms  p99 {q[98] * 1000:.2f} ms"
    )


def main(argv: list[str]) -> int:
    calls = int(argv[0]) if argv else 20_000
    concurrency = int(argv[1]) if len(argv) > 1 else 64
    with temporary_processes("streamlimit-ack-") as procs:
        primary = Valkey(procs, "primary", aof=False)
        replica = Valkey(procs, "replica", aof=False, extra=("--replicaof", "127.0.0.1", str(primary.port)))
        replica.wait_synced()
        for ack in (0, 1, 0, 1):
            uvloop.run(_measure(primary.url, ack, calls, concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
