"""The report's reading of the figures: what limits throughput, and how fast this machine is."""

from __future__ import annotations

from bench.calibrate import ISSUE_BARE_RPS
from bench.goals import ORIGINAL_COMPAT_RPS
from bench.results import Results


def _w(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def limits(results: Results) -> list[str]:
    one = results.service(1) or results.services[0]
    hb, hz = one.summary("heartbeat"), one.summary("healthz")
    store_us = next(
        (c.server_cpu_us for c in results.ceilings if c.script == "heartbeat" and c.aof and c.depth == 1),
        float("nan"),
    )
    cores = hb.cores("service")
    bound = "is CPU-bound" if cores >= 0.9 * one.workers else "is not CPU-bound"
    lines = [
        f"- With {_w(one.workers)}, the service {bound}: {cores:.2f} cores busy under heartbeats "
        f"({hz.cores('service'):.2f} under `/healthz`), while the store uses {hb.cores('store'):.2f} and "
        f"wrk {hb.cores('wrk'):.2f}; the machine is {hb.machine_busy:.0%} busy.",
        f"- A heartbeat costs the service **{hb.per_1k('service'):.2f} ms** of CPU, `/healthz` "
        f"{hz.per_1k('service'):.2f} ms: the heartbeat's route, store call and reply add "
        f"{hb.per_1k('service') - hz.per_1k('service'):.2f} ms of service CPU per request, while the store "
        f"spends {hb.per_1k('store'):.3f} ms per request under this load ({store_us:.0f} µs of server CPU "
        "per heartbeat script in the unpipelined ceiling below).",
        f"- While the worker's CPU is what saturates, throughput ratios are inverse CPU-cost ratios: "
        f"heartbeats at 0.60 of `/healthz` need a heartbeat to cost at most "
        f"{hz.per_1k('service') / 0.6:.2f} ms of service CPU (now {hb.per_1k('service'):.2f} ms), "
        f"and start/stop at 0.50 at most {hz.per_1k('service') / 0.5:.2f} ms per request (now "
        f"{one.summary('start_stop').per_1k('service'):.2f} ms).",
    ]
    p = one.profile
    if p and p.samples:
        incl = {name: n / p.samples for name, n in p.inclusive_by_package}
        own = {name: n / p.samples for name, n in p.self_by_package}
        shares = ", ".join(f"{name} {share:.0%}" for name, share in own.items())
        lines.append(
            f"- Where the worker's CPU goes (py-spy, self time by package, below): {shares}. On the stack "
            f"(inclusive): redis-py in {incl.get('redis-py', 0):.0%} of the samples, uvicorn "
            f"{incl.get('uvicorn', 0):.0%}, Starlette {incl.get('starlette', 0):.0%}, streamlimit "
            f"{incl.get('streamlimit', 0):.0%}, asyncio {incl.get('asyncio', 0):.0%}."
        )
    two = results.service(2)
    if two and results.service(1):
        t = two.summary("heartbeat")
        lines.append(
            f"- With 2 workers on {results.machine['nproc']} cores the machine is {t.machine_busy:.0%} busy: "
            f"the workers take {t.cores('service'):.2f} cores, the store {t.cores('store'):.2f} and wrk "
            f"{t.cores('wrk'):.2f}. wrk is not the bottleneck (it uses {t.cores('wrk'):.2f} of a core and "
            f"{t.per_1k('wrk') * 1000:.0f} µs per request), but the shared cores are: the workers cannot get "
            "more than what the store and wrk leave, so the 2-worker ratio is a lower bound of how the "
            "service would scale on cores of its own."
        )
    target = 4 * ORIGINAL_COMPAT_RPS
    best_hz = max(s.summary("healthz").rps for s in results.services)
    if best_hz < target:
        bare = (
            f", and the issue's bare Starlette endpoint {results.calibration.rps:,.0f}/s"
            if results.calibration
            else ""
        )
        lines.append(
            f"- 4x the original's add/remove cycle is {target:,.0f} requests/s; this stack's own `/healthz`, "
            f"with no store call at all, does {best_hz:,.0f}/s at best here{bare}: on this machine the goal "
            "needs a request that costs less service CPU than `/healthz` does now (the calibration below "
            "compares this machine with the issue's)."
        )
    lines.append(
        "- Already done, each measured (docs/performance.md): every store call of an event-loop turn is "
        "pipelined on one connection (hiredis parses the replies), which took a heartbeat from ~0.56 ms to "
        "~0.1 ms of service CPU; commands packed in C, cached timestamp formatting, no proxy-headers "
        "middleware; fewer nested ASGI layers per request (security headers and request id in one "
        "middleware, resources as plain ASGI apps, cached metric children). Tried and not kept: granian "
        "(faster on body-less requests, but not on JSON POSTs, and our 408-on-slow-clients protection is "
        "built on uvicorn's protocol)."
    )
    lines.append(
        "- Every saving that is not specific to the store call (the layers above) makes `/healthz` "
        "cheaper too, in proportion more: such work raises throughput and lowers these ratios. What is "
        "left between the two is the heartbeat's own work: path parameters, the service, the store "
        "round trip, during which the request's coroutine stack is suspended and then resumed in a later "
        "loop turn (`/healthz` never suspends), and the lease body. Closing the ratios needs that "
        "resumption to cost less (a server that runs the app with fewer Python frames per request) or "
        "a heartbeat path that skips the framework, which we chose not to build (docs/performance.md)."
    )
    return lines


def calibration(results: Results) -> list[str]:
    c = results.calibration
    if c is None:
        return []
    scale = c.rps / ISSUE_BARE_RPS
    one = results.service(1)
    lines = [
        "## Calibration: this machine vs the issue's",
        "",
        "The issue's bare Starlette JSON endpoint (`bench/bare_app.py`, uvicorn with uvloop and "
        f"httptools, 1 worker), measured like the workloads: **{c.rps:,.0f}/s** "
        f"({c.rps_min:,.0f}-{c.rps_max:,.0f}), p99 {c.latency_ms('p99'):.1f} ms, "
        f"{c.per_1k('service'):.3f} CPU s / 1k requests. The issue measured about "
        f"{ISSUE_BARE_RPS:,.0f}/s: this machine runs the same stack at **{scale:.2f}x** the speed of "
        "the machine behind the issue's figures.",
    ]
    if one:
        hz = one.summary("healthz").rps
        lines.append("")
        lines.append(
            f"The service's own `/healthz` (1 worker) does {hz:,.0f}/s, {hz / c.rps:.2f} of the bare "
            "endpoint: the cost of the app's stack around any route (its exception handlers, the "
            "slow-client protocol, msgspec responses)."
        )
    original_here = ORIGINAL_COMPAT_RPS * scale
    best = max(s.summary("compat").rps for s in results.services)
    lines += [
        "",
        f"Scaled the same way, the original's ~{ORIGINAL_COMPAT_RPS:,.0f}/s add/remove cycle would be "
        f"about {original_here:,.0f}/s here (an estimate: Node.js is not Python, and the original was "
        f"not run), which puts the best compat cycle measured here at about "
        f"{best / original_here:.1f}x the original; the goals table keeps the unscaled comparison.",
    ]
    return lines
