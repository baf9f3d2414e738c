"""CPU per store call of the service's client against redis-py asyncio + hiredis, side by side.

    python -m bench.client_cost [CALLS] [CONCURRENCY]

Starts a plain valkey-server, seeds one stream per caller, then has CONCURRENCY coroutines
(default 64, like wrk -c64) send CALLS heartbeat-script calls in total through each client,
and prints calls/s and the process's CPU per call. One process, one core: the figure is the
client's cost, which is what bounds the service (the store spends ~6 µs per script call).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from redis.asyncio import Redis

from bench import data
from bench.procs import Valkey, temporary_processes
from streamlimit.models import Limits
from streamlimit.store import argv, scripts
from streamlimit.store.keys import script_keys
from streamlimit.store.pipelined import PipelinedClient

HEARTBEAT = argv.heartbeat("s", 90_000, Limits(3))  # a renewal: every stream is seeded
COMMON = argv.common("cost", 0)  # every script's last ARGV: a user for webhook events, none queued

Call = Callable[[int], Awaitable[Any]]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _measure(name: str, call: Call, calls: int, concurrency: int) -> None:
    async def caller(i: int) -> None:
        for _ in range(calls // concurrency):
            await call(i)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))  # warm-up
    cpu0, t0 = _cpu_s(), time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    cpu, wall = _cpu_s() - cpu0, time.perf_counter() - t0
    n = calls // concurrency * concurrency
    print(f"{name:44s} {n / wall:9,.0f} calls/s {cpu / n * 1e6:7.1f} µs CPU per call")


async def _main(url: str, calls: int, concurrency: int) -> None:
    ours = PipelinedClient.from_url(url, 2.0)
    theirs = Redis.from_url(url, decode_responses=True, max_connections=concurrency)
    sha = await ours.execute("SCRIPT", "LOAD", scripts.source("heartbeat"))
    keys = [script_keys(f"cost-{i}") for i in range(concurrency)]
    start_sha = await ours.execute("SCRIPT", "LOAD", scripts.source("start"))
    for k in keys:
        await ours.execute("EVALSHA", start_sha, len(k), *k, *data.start_argv("s", 86_400_000, 3), *COMMON)

    async def pipelined(i: int) -> Any:
        return await ours.execute("EVALSHA", sha, len(keys[i]), *keys[i], *HEARTBEAT, *COMMON)

    async def redis_py(i: int) -> Any:
        return await theirs.evalsha(sha, len(keys[i]), *keys[i], *HEARTBEAT, *COMMON)

    print(f"heartbeat script, {concurrency} concurrent callers, {calls:,} calls each way")
    await _measure("streamlimit PipelinedClient (1 connection)", pipelined, calls, concurrency)
    await _measure(f"redis-py asyncio + hiredis (pool of {concurrency})", redis_py, calls, concurrency)
    await ours.aclose()
    await theirs.aclose()


def main(argv: list[str]) -> int:
    calls = int(argv[0]) if argv else 50_000
    concurrency = int(argv[1]) if len(argv) > 1 else 64
    with temporary_processes("streamlimit-client-cost-") as procs:
        store = Valkey(procs, "valkey", aof=False)
        uvloop.run(_main(store.url, calls, concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
