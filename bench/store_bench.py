"""The store's ceiling per Lua script: redis-benchmark EVALSHA, unpipelined and 16-deep.

redis-benchmark 7.0 replaces every ``__rand_int__`` with its own random number, so KEYS[1],
KEYS[2] and KEYS[3] of one call name three random users of the same keyspace. Every seeded
user has the same shape (one active stream ``s``), so each call runs the same commands on
keys of the same size as a call for one user would.
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any

from bench import data
from bench.procs import Valkey
from streamlimit.models import Limits, Start
from streamlimit.store import argv
from streamlimit.store.keys import live_channel, renewal_keys, script_keys
from streamlimit.store.redis import RENEW_BATCH

CLIENTS = 50
DEPTHS = (1, 16)


@dataclass(frozen=True)
class Script:
    name: str
    prefix: str  # user prefix; a fresh one per destructive run
    args: tuple[str, ...]
    seeded: bool  # the users exist (one stream "s" each)
    destructive: bool  # reseed its users before each run
    leases: int = 1  # leases per call (renew: a live channels' batch of random users)

    def tail(self) -> list[str]:
        """numkeys, KEYS and ARGV as the service sends them (store/redis.py)."""
        user = f"{self.prefix}__rand_int__"
        if self.name == "renew":
            keys = [k for _ in range(self.leases) for k in renewal_keys(user)]
            return [str(len(keys)), *keys, *self.args]
        keys = list(script_keys(user))
        return [str(len(keys)), *keys, *self.args, *_args(argv.common(user, 0, live_channel(user)))]


def _args(values: argv.Argv) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


SCRIPTS = (  # each script's ARGV as the service builds it (store/argv.py)
    Script("heartbeat", "u", _args(argv.heartbeat("s", data.DAY_MS, Limits(3))), True, False),
    Script("list", "u", _args(argv.listing(Limits(3))), True, False),
    Script("limit", "u", _args(argv.limit("get", 0, Limits(3))), True, False),
    Script("start", "n", _args(argv.start("s", None, data.DAY_MS, Limits(3), Start())), False, False),
    Script("stop", "d", _args(argv.stop("s", data.DAY_MS)), True, True),
    Script("stop_all", "a", _args(argv.stop_all(data.DAY_MS)), True, True),
    # the live channels' batch: 100 random users' leases a call, each extended by a day more
    Script("renew", "u", _args(argv.renew(2 * data.DAY_MS, ["s"] * RENEW_BATCH)), True, False, RENEW_BATCH),
)


@dataclass
class Ceiling:
    script: str
    aof: bool
    depth: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float  # valkey-server CPU per call (all threads, /proc)
    evalsha_us: float  # INFO commandstats usec_per_call of EVALSHA
    changed: float  # fraction of calls that admitted / removed something (-1: not applicable)
    command: str
    leases: int = 1  # leases per call: per lease, server_cpu_us / leases
    runs: int = 1  # the figures above are medians over this many runs
    rps_min: float = 0.0
    rps_max: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ceiling:
        return cls(**d)


def _evalsha_us(store: Any) -> float:
    stats = store.info("commandstats")
    return float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", float("nan")))


def _one(valkey: Valkey, r: Any, sha: str, script: Script, depth: int, n: int, keyspace: int) -> Ceiling:
    cmd = [
        "redis-benchmark", "-h", "127.0.0.1", "-p", str(valkey.port), "-n", str(n), "-c", str(CLIENTS),
        "-r", str(keyspace), "-P", str(depth), "--csv",
        "EVALSHA", sha, *script.tail(),
    ]  # fmt: skip
    r.config_resetstat()
    keys0, cpu0 = r.dbsize(), valkey.cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    cpu1, keys1 = valkey.cpu(), r.dbsize()
    rows = list(csv.reader(proc.stdout.strip().splitlines()))
    if proc.returncode != 0 or len(rows) < 2:
        raise RuntimeError(f"redis-benchmark failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    row = dict(zip(rows[0], rows[1], strict=False))
    changed = -1.0
    if script.name == "start":
        changed = (keys1 - keys0) / 2 / n  # a fresh user gains 2 keys (leases, info)
    elif script.name == "stop":
        changed = (keys0 - keys1) / 2 / n  # a user's last stream gone: both keys gone
    # stop_all: its audit event adds a key as it removes two, so the key count tells nothing
    shown = " ".join(c if c != sha else f"<sha1 of {script.name}>" for c in cmd)
    return Ceiling(
        script=script.name,
        aof=valkey.aof,
        depth=depth,
        requests=n,
        rps=float(row["rps"]),
        p50_ms=float(row["p50_latency_ms"]),
        p99_ms=float(row["p99_latency_ms"]),
        server_cpu_us=(cpu1 - cpu0) / n * 1e6,
        evalsha_us=_evalsha_us(r),
        changed=changed,
        command=shown.replace(str(valkey.port), "PORT"),
        leases=script.leases,
    )


def _median(runs: list[Ceiling]) -> Ceiling:
    def med(name: str) -> float:
        return float(statistics.median(getattr(c, name) for c in runs))

    rps = [c.rps for c in runs]
    return replace(
        runs[0],
        rps=med("rps"),
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        server_cpu_us=med("server_cpu_us"),
        evalsha_us=med("evalsha_us"),
        changed=med("changed"),
        runs=len(runs),
        rps_min=min(rps),
        rps_max=max(rps),
    )


def ceilings(valkey: Valkey, n: int, runs: int) -> list[Ceiling]:
    """Every script x depth, ``runs`` times, on ``valkey`` (flushed first); destructive ones on
    freshly seeded users each time."""
    r = data.connect(valkey.url)
    try:
        data.flushall(r)
        shas = data.load_scripts(r)
        users = n  # keyspace = requests: a destructive run finds ~63 % of its users still there
        data.seed(r, shas["start"], (data.bench_user(i) for i in range(users)))
        out = []
        for script in SCRIPTS:
            for depth in DEPTHS:
                found = []
                for _ in range(runs):
                    if script.destructive:
                        seeded = (data.bench_user(i, script.prefix) for i in range(users))
                        data.seed(r, shas["start"], seeded)
                    keyspace = 100_000_000 if script.name == "start" else users
                    found.append(_one(valkey, r, shas[script.name], script, depth, n, keyspace))
                c = _median(found)
                aof = "AOF everysec" if valkey.aof else "no AOF"
                text = (
                    f"{c.rps:,.0f}/s ({c.rps_min:,.0f}-{c.rps_max:,.0f}), {c.server_cpu_us:.1f} us CPU/call"
                )
                print(f"[store {aof}] {c.script} -P {depth}: {text}", file=sys.stderr, flush=True)
                out.append(c)
        data.flushall(r)
        return out
    finally:
        r.close()
