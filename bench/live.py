"""Live channels on one worker (issue 16): memory and idle CPU per channel, store calls per
renewal round, service CPU per held stream against an HTTP heartbeat's, and the kick-to-event
latency with the channel held by one process and the eviction made through another.

    python -m bench.live      # this part alone, printed as JSON (BENCH_LIVE_CHANNELS, ...)

The channels are held by this process: one asyncio connection each, reading and counting what
comes (a player's EventSource). The service runs with its defaults (lease 90 s, renewals every
30 s, a comment every 15 s), so the idle window sees what production would.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import data
from bench.procs import CLK_TCK, Service, Valkey, temporary_processes

WINDOW_ROUNDS = int(os.environ.get("BENCH_LIVE_ROUNDS", "2"))  # the idle window, in renewal intervals
KICK_SAMPLES = 200
OPEN_AT_ONCE = 200  # channels being opened at a time


@dataclass
class LiveResult:
    channels: int
    interval_s: float
    open_s: float
    rss_before_kb: int
    rss_after_kb: int
    window_s: float
    service_cpu_s: float  # the worker, over the window with the channels open
    service_sys_s: float  # ... of which in the kernel (socket writes)
    baseline_cpu_s: float  # the same worker over as long a window before any channel opened
    store_cpu_s: float
    evalsha_calls: int  # over the window
    renew_calls: int  # lua/renew.lua calls over the window
    renewed_events: int  # renewed events the channels received over the window
    comments: int  # keepalive comments received over the window
    kick_ms: list[float] = field(default_factory=list)

    @property
    def per_channel_kb(self) -> float:
        return (self.rss_after_kb - self.rss_before_kb) / self.channels

    @property
    def idle_core_share(self) -> float:
        return self.service_cpu_s / self.window_s

    @property
    def channels_cpu_s(self) -> float:
        """What the channels add to the worker's idle CPU (its own chores, such as the metrics'
        sample of active streams every 15 s, run without them too)."""
        return max(0.0, self.service_cpu_s - self.baseline_cpu_s)

    @property
    def rounds(self) -> float:
        return self.window_s / self.interval_s

    @property
    def calls_per_round(self) -> float:
        return self.renew_calls / self.rounds

    @property
    def cpu_us_per_stream_per_interval(self) -> float:
        return self.channels_cpu_s / self.rounds / self.channels * 1e6

    def kick(self, q: float) -> float:
        ordered = sorted(self.kick_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LiveResult:
        return cls(**d)


class _Held(asyncio.Protocol):
    """One channel, as a player holds it: counts renewed events and comments, notes an eviction."""

    def __init__(self, path: str, host: str) -> None:
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.renewed = self.comments = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        self.renewed += chunk.count(b"event: renewed")
        self.comments += chunk.count(b": keepalive")
        if not self.opened.done():
            if b"event: renewed" in chunk:
                self.opened.set_result(None)
            elif chunk.startswith(b"HTTP/1.1 ") and not chunk.startswith(b"HTTP/1.1 200"):
                self.opened.set_exception(RuntimeError(chunk[:200].decode(errors="replace")))
        if b"event: evicted" in chunk and not self.ended.done():
            self.ended.set_result(time.monotonic())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(RuntimeError(f"closed before it opened: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _open(port: int, user: str) -> _Held:
    loop = asyncio.get_running_loop()
    _, held = await loop.create_connection(
        lambda: _Held(f"/v1/users/{user}/streams/s/live", f"127.0.0.1:{port}"), "127.0.0.1", port
    )
    await asyncio.wait_for(held.opened, 30)
    return held


async def _post(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"stream_id":"phone"}'
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _cpu(pid: int) -> tuple[float, float]:
    """(utime + stime, stime) of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[12]) / CLK_TCK


def _commandstats(store: Any) -> int:
    return int(store.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


async def _measure(
    holding: Service, evicting: Service, valkey: Valkey, channels: int, interval_s: float
) -> LiveResult:
    r = data.connect(valkey.url)
    pid = holding.worker_pids()[0]
    warm = [await _open(holding.port, data.bench_user(i, "live")) for i in range(100)]
    for h in warm:
        h.close()
    await asyncio.sleep(1)
    window = WINDOW_ROUNDS * interval_s
    base0 = _cpu(pid)[0]
    await asyncio.sleep(window)
    baseline = _cpu(pid)[0] - base0
    print(f"[live] baseline {window:.0f} s without channels: worker CPU {baseline:.2f} s", file=sys.stderr)
    rss_before = _rss_kb(pid)
    started = time.monotonic()
    held: list[_Held] = []
    for k in range(0, channels, OPEN_AT_ONCE):
        users = [data.bench_user(i, "live") for i in range(k, min(channels, k + OPEN_AT_ONCE))]
        held += await asyncio.gather(*(_open(holding.port, u) for u in users))
    open_s = time.monotonic() - started
    print(f"[live] {channels:,} channels open in {open_s:.1f} s", file=sys.stderr, flush=True)
    await asyncio.sleep(2)
    rss_after = _rss_kb(pid)
    renewed0, comments0 = sum(h.renewed for h in held), sum(h.comments for h in held)
    (cpu0, sys0), store0, calls0 = _cpu(pid), valkey.cpu(), _commandstats(r)
    t0 = time.monotonic()
    spy = None
    if profile := os.environ.get("BENCH_LIVE_PROFILE"):  # collapsed stacks of the worker's busy time
        spy = await asyncio.create_subprocess_exec(
            "py-spy", "record", "-p", str(pid), "-d", str(int(window) - 1), "-f", "raw", "-o", profile,
            "-r", "200", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    await asyncio.sleep(window)
    if spy is not None:
        await spy.wait()
    window = time.monotonic() - t0
    (cpu1, sys1), store1, calls1 = _cpu(pid), valkey.cpu(), _commandstats(r)
    renewed = sum(h.renewed for h in held) - renewed0
    print(f"[live] idle window {window:.0f} s: worker CPU {cpu1 - cpu0:.2f} s", file=sys.stderr, flush=True)
    # while the channels are held: evictions through the other process
    kick_ms: list[float] = []
    for i in range(KICK_SAMPLES):
        h = held[i]
        sent = time.monotonic()
        status = await _post(evicting.port, f"/v1/users/{data.bench_user(i, 'live')}/streams?replace=s")
        if status != 201:
            raise RuntimeError(f"eviction answered {status}")
        kick_ms.append((await asyncio.wait_for(h.ended, 10) - sent) * 1000)
    for h in held:
        h.close()
    r.close()
    evalsha = calls1 - calls0
    return LiveResult(
        channels=channels,
        interval_s=interval_s,
        open_s=open_s,
        rss_before_kb=rss_before,
        rss_after_kb=rss_after,
        window_s=window,
        service_cpu_s=cpu1 - cpu0,
        service_sys_s=sys1 - sys0,
        baseline_cpu_s=baseline,
        store_cpu_s=store1 - store0,
        evalsha_calls=evalsha,
        renew_calls=evalsha,  # nothing else calls the store while the channels idle
        renewed_events=renewed,
        comments=sum(h.comments for h in held) - comments0,
        kick_ms=kick_ms,
    )


def measure(procs: Any, valkey: Valkey, channels: int, settings: dict[str, str]) -> LiveResult:
    """``channels`` channels on one worker of a service on ``valkey``, held and then evicted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < channels + 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, channels + 1024), hard))
    r = data.connect(valkey.url)
    shas = data.load_scripts(r)
    data.seed(r, shas["start"], (data.bench_user(i, "live") for i in range(channels)), ttl_ms=90_000)
    r.close()
    own = {**settings, "live_max_channels": str(channels + 200)}
    own.pop("lease_ttl_s", None)  # the default lease: renewals every 30 s, as in production
    holding = Service(procs, valkey.url, 1, **own)
    evicting = Service(procs, valkey.url, 1, **own)
    try:
        return asyncio.run(_measure(holding, evicting, valkey, channels, 30.0))
    finally:
        procs.stop(holding.proc)
        procs.stop(evicting.proc)


def main() -> int:
    channels = int(os.environ.get("BENCH_LIVE_CHANNELS", "10000"))
    with temporary_processes("streamlimit-live-") as procs:
        valkey = Valkey(procs, "valkey-live", aof=True)
        result = measure(procs, valkey, channels, {"start_rate_per_min": "0", "log_level": "warning"})
    out = result.as_dict() | {
        "per_channel_kb": result.per_channel_kb,
        "idle_core_share": result.idle_core_share,
        "calls_per_round": result.calls_per_round,
        "channels_cpu_s": result.channels_cpu_s,
        "cpu_us_per_stream_per_interval": result.cpu_us_per_stream_per_interval,
        "kick_p50_ms": result.kick(0.5),
        "kick_p99_ms": result.kick(0.99),
        "kick_median_ms": statistics.median(result.kick_ms),
    }
    out.pop("kick_ms")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
