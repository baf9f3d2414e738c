"""``python -m bench.quick [ROUNDS] [WORKERS]``: a two-minute look at the hot path of this checkout.

Short wrk runs of ``/healthz``, heartbeat and the start/stop cycle, alternating (so the box's
drift hits all three alike), against a plain valkey-server and ``streamlimit serve``; prints
each workload's median requests/s and service CPU per request. For an A/B of a change, run it
on both commits, in turns, and compare CPU per request first: on a shared 2-core VM it moves
less than requests/s does. ``make bench`` remains the measurement of record.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

from bench import data
from bench.config import Config
from bench.procs import Service, Valkey, temporary_processes
from bench.wrk_runner import wait_quiet, wrk

USERS = 10_000
SECONDS = 5
WORKLOADS: dict[str, tuple[str, str, Callable[[str], list[str]]]] = {
    # name -> (path, wrk script, its arguments for a run id)
    "healthz": ("/healthz", "healthz.lua", lambda run: []),
    "heartbeat": ("/", "heartbeat.lua", lambda run: [str(USERS)]),
    "start_stop": ("/", "start_stop.lua", lambda run: [run]),
}


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 3
    workers = int(argv[1]) if len(argv) > 1 else 1
    cfg = Config()
    rps: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    cpu_us: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    with temporary_processes("streamlimit-quick-") as procs:
        store = Valkey(procs, "valkey", aof=False)
        r = data.connect(store.url)
        data.seed(r, data.load_scripts(r)["start"], (data.bench_user(i) for i in range(USERS)), limit=3)
        r.close()
        service = Service(procs, store.url, workers, **cfg.service_settings)
        threads, conns = cfg.threads, cfg.connections
        for path, script, args in WORKLOADS.values():  # warm-up
            wrk(service, store, path, script, args("warm"), 2, threads, conns)
        for i in range(rounds):
            for name, (path, script, args) in WORKLOADS.items():
                run = wrk(service, store, path, script, args(f"q{i}"), SECONDS, threads, conns)
                rps[name].append(run.rps)
                cpu_us[name].append(run.service_cpu_s * 1e6 / run.requests)
                wait_quiet()
    median = {name: statistics.median(values) for name, values in rps.items()}
    for name in WORKLOADS:
        runs = ", ".join(f"{v:,.0f}" for v in rps[name])
        print(
            f"{name:<11} {median[name]:>8,.0f}/s ({runs})   "
            f"service CPU {statistics.median(cpu_us[name]):.0f} us/request"
        )
    hz = median["healthz"]
    hb, ss = median["heartbeat"] / hz, median["start_stop"] / hz
    print(f"heartbeat/healthz {hb:.2f}   start_stop/healthz {ss:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
