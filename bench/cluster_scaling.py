"""Per-shard cost as a cluster grows: 1, 2 and 3 primaries, the same heartbeat load.

    python -m bench.cluster_scaling [HEARTBEATS] [USERS]

For each size, starts a cluster of that many primaries (bundled valkey-server, no replicas, no
AOF), seeds USERS users with one stream each through the service's store, then sends
HEARTBEATS heartbeats (64 at a time, users in turn) through the same store and prints, per
primary, the calls it served and its CPU per call (utime+stime of the process / EVALSHA calls
in its commandstats). Two cores cannot run three busy shards side by side, so this measures
what capacity planning needs instead: whether a shard's cost per call changes as shards are
added. If it stays flat, N shards on N cores serve N times one shard's ceiling.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import uvloop
from tests.servers import RedisServer
from tests.topologies import Cluster, cmd

from bench.procs import cpu_seconds
from streamlimit.models import Limits, Start
from streamlimit.settings import Settings
from streamlimit.store.base import Store
from streamlimit.store.connect import open_store

LIMITS = Limits(3)
DAY_MS = 86_400_000


def _evalsha_calls(node: RedisServer) -> int:
    stats = cmd(node, "INFO", "commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def _load(store: Store, users: int, heartbeats: int) -> None:
    async def caller(c: int) -> None:
        for i in range(c, heartbeats, 64):
            beat = await store.heartbeat(f"scale-{i % users}", "s", DAY_MS, LIMITS)
            # the path measured is a renewal: a re-admission or a tombstone would be another one
            assert beat.stream is not None, beat
            assert not beat.readmitted, beat

    await asyncio.gather(*(caller(c) for c in range(64)))


async def _seed_and_load(url: str, users: int, heartbeats: int, before: Callable[[], None]) -> None:
    store = await open_store(Settings(store_url=url))
    try:
        for i in range(users):
            await store.start(f"scale-{i}", "s", None, DAY_MS, LIMITS, Start())
        before()  # counters start after the seeding
        await _load(store, users, heartbeats)
    finally:
        await store.close()


def measure(shards: int, heartbeats: int, users: int, workdir: Path) -> list[tuple[int, float]]:
    cluster = Cluster(workdir / f"cluster-{shards}", primaries=shards, replicas=0).start()
    try:
        nodes = cluster.primaries()
        start: dict[int, tuple[float, int]] = {}

        def snapshot() -> None:
            for n in nodes:
                assert n.proc is not None
                start[n.port] = (cpu_seconds(n.proc.pid), _evalsha_calls(n))

        uvloop.run(_seed_and_load(cluster.url, users, heartbeats, snapshot))
        out = []
        for n in nodes:
            assert n.proc is not None
            cpu0, calls0 = start[n.port]
            calls = _evalsha_calls(n) - calls0
            out.append((calls, (cpu_seconds(n.proc.pid) - cpu0) / max(calls, 1) * 1e6))
        return out
    finally:
        cluster.stop()


def main(argv: list[str]) -> int:
    heartbeats = int(argv[0]) if argv else 60_000
    users = int(argv[1]) if len(argv) > 1 else 3_000
    print(f"{heartbeats:,} heartbeats over {users:,} users, 64 in flight, through the service's store")
    with tempfile.TemporaryDirectory(prefix="streamlimit-scaling-") as tmp:
        for shards in (1, 2, 3):
            per_shard = measure(shards, heartbeats, users, Path(tmp))
            text = ", ".join(f"{calls:,} calls at {us:.1f} µs" for calls, us in per_shard)
            mean = sum(us * c for c, us in per_shard) / sum(c for c, _ in per_shard)
            print(f"{shards} primar{'y' if shards == 1 else 'ies'}: {text}; mean {mean:.1f} µs CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
