"""The history-checked storm from the command line.

    python -m tests.storm.soak --seconds N [--processes 4 --clients 500 --users 100]

Starts one valkey-server and ``--processes`` ``streamlimit serve`` processes on free loopback
ports, runs the driver for N seconds, checks the history, prints a summary table and ends with
the line ``violations: N``; exits 1 when N > 0. Every process it started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import RedisServer, Service
from tests.storm import History
from tests.storm.checker import Report, check
from tests.storm.driver import SERVICE_SETTINGS, Plan, config_of, run_storm


@contextmanager
def servers(workdir: Path, processes: int) -> Iterator[list[str]]:
    """A valkey-server and ``processes`` services sharing it; yields the services' URLs."""
    redis = RedisServer(workdir / "redis")
    services = [
        Service(redis.url, workdir / f"service-{i}.log", **SERVICE_SETTINGS) for i in range(processes)
    ]
    try:
        redis.start()
        for service in services:
            service.start()
        yield [service.url for service in services]
    finally:
        for service in services:
            service.stop()
        redis.stop()


def storm(urls: list[str], plan: Plan) -> tuple[History, Report]:
    history = asyncio.run(run_storm(urls, plan, config_of(SERVICE_SETTINGS)))
    return history, check(history)


def summary(history: History, report: Report, processes: int, clients: int, users: int) -> str:
    """The table: operations by kind and outcome with latencies, what was exercised, violations."""
    took = history.ended - history.started
    total = len(history.ops)
    c = history.config
    lines = [
        f"storm: {took:.1f} s, {processes} processes, {clients} clients, {users} users, "
        f"{total} requests ({total / max(took, 1e-9):.0f}/s)",
        f"service: default limit {c.default_limit} (set to 0-4 during the run), lease {c.lease_ttl_s:g} s, "
        f"heartbeat every {c.heartbeat_interval_s:g} s, compat lease {c.legacy_lease_ttl_s:g} s",
        "",
        f"{'operation':<14}{'total':>8}  {'outcomes':<40}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    kinds = sorted({kind for kind, _ in report.ops})
    for kind in kinds:
        outcomes = {o: n for (k, o), n in report.ops.items() if k == kind}
        text = " ".join(f"{o}:{n}" for o, n in sorted(outcomes.items()))
        p50, p99 = report.latency_ms.get(kind, (float("nan"), float("nan")))
        lines.append(f"{kind:<14}{sum(outcomes.values()):>8}  {text:<40}{p50:>9.1f}{p99:>9.1f}")
    exercised = ", ".join(f"{k} {v}" for k, v in sorted(report.exercised.items()))
    driver = ", ".join(f"{k} {v}" for k, v in sorted(history.notes.items()))
    by_kind = report.by_kind()
    lines += [
        "",
        f"exercised: {exercised}",
        f"driver: {driver}",
        f"refusals: {report.exercised['refusals']}",
        f"5xx: {report.server_errors}   transport errors: {report.transport_errors}   "
        f"degraded: {report.degraded}   unknown outcomes: {report.unknown_outcomes}",
        "violations by kind: " + (", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())) or "none"),
    ]
    for v in report.violations[:10]:
        lines.append(f"  {v.kind} user={v.user} op={v.op}: {v.detail[:600]}")
    lines.append(f"violations: {len(report.violations)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.storm.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="streamlimit-soak-"))
    plan = Plan(seconds=args.seconds, clients=args.clients, users=args.users, seed=args.seed)
    with servers(workdir, args.processes) as urls:
        history, report = storm(urls, plan)
    if report.violations:
        print(f"service logs kept in {workdir}", file=sys.stderr, flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(summary(history, report, args.processes, args.clients, args.users), flush=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
