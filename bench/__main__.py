"""``python -m bench``: run the whole benchmark and write docs/benchmarks.md and its chart.

    python -m bench                      # everything (what `make bench` runs)
    python -m bench --render RESULTS     # re-render the docs from a saved results.json

Settings come from BENCH_* variables (bench/config.py), e.g. a quick look:
    BENCH_RUNS=1 BENCH_SECONDS=3 BENCH_WARMUP_S=1 BENCH_STORE_REQUESTS=20000 \
    BENCH_MEMORY_LEASES=100000 BENCH_PROFILE_S=3 make bench

Starts its own valkey-server and ``streamlimit serve`` on free loopback ports, in a temporary
folder; everything it started is stopped at the end, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from bench import calibrate, data, grants, live, report, service_bench, store_bench
from bench.config import Config
from bench.procs import Processes, Valkey
from bench.results import Results


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(cfg: Config, workdir: Path) -> Results:
    env = cfg.env_line()
    results = Results(cfg.as_dict(), f"{env} make bench" if env else "make bench")
    started = time.monotonic()
    procs = Processes(workdir)
    try:
        # the production store: AOF, fsync every second
        store = Valkey(procs, "valkey-aof", aof=True)
        r = data.connect(store.url)
        shas = data.load_scripts(r)
        _log(f"seeding {cfg.users:,} users x 1 active stream (lease 1 day)")
        data.seed(r, shas["start"], (data.bench_user(i) for i in range(cfg.users)), limit=3)
        r.close()
        _log("calibration: the issue's bare Starlette endpoint on this machine")
        results.calibration = calibrate.bare_starlette(procs, store, cfg)
        for workers in cfg.workers:
            results.services.append(service_bench.measure(procs, store, cfg, workers, workdir))
        if cfg.live_channels:
            _log(f"live channels: {cfg.live_channels:,} on one worker")
            results.live = live.measure(procs, store, cfg.live_channels, cfg.service_settings)
        _log("heartbeats with and without grants (issue 15)")
        results.grants = grants.measure(procs, store, cfg, results.command)
        _log("store ceilings (AOF everysec)")
        results.ceilings += store_bench.ceilings(store, cfg.store_requests, cfg.runs)
        procs.stop(store.proc)
        plain = Valkey(procs, "valkey-plain", aof=False)
        _log("store ceilings (no AOF)")
        results.ceilings += store_bench.ceilings(plain, cfg.store_requests, cfg.runs)
        _log(f"memory at {cfg.memory_leases:,} active leases")
        r = data.connect(plain.url)
        results.memory = data.memory_per_stream(r, cfg.memory_leases, 3, uuid_ids=True)
        r.close()
    finally:
        procs.close()
        for aof in workdir.glob("*/appendonlydir"):  # hundreds of MB after a full run
            shutil.rmtree(aof, ignore_errors=True)
    results.runtime_s = time.monotonic() - started
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON", help="only re-render the docs")
    args = parser.parse_args(argv)
    cfg = Config.from_env()
    out = Path(cfg.out_dir)
    if args.render:
        report.write(Results.load(args.render), out)
        return 0
    missing = [tool for tool in ("wrk", "redis-benchmark") if shutil.which(tool) is None]
    if missing:
        _log(f"missing {' and '.join(missing)}: apt-get install wrk redis-tools (make bench does, as root)")
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="streamlimit-bench-"))
    _log(f"bench: logs, profiles and results.json in {workdir}")
    try:
        results = run(cfg, workdir)
    except KeyboardInterrupt:
        _log("bench: interrupted; everything it started is stopped")
        return 130
    results.save(workdir / "results.json")
    report.write(results, out)
    _log(f"bench: wrote {out}/benchmarks.md and {out}/benchmarks.png in {results.runtime_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
