"""The goals of issue 4 (item 3), as ratios measured in one run on one machine."""

from __future__ import annotations

from dataclasses import dataclass

from bench.grants import GOAL as GRANTS_GOAL
from bench.results import Results
from bench.service_bench import ServiceResult

# the original Node.js service, as quoted in the issue (we cannot run it here)
ORIGINAL_COMPAT_RPS = 3_000.0


@dataclass(frozen=True)
class Goal:
    goal: str
    target: str
    measured: str
    met: bool | None  # None: could not be measured
    margin: str  # by how much it is met or missed


def _ratio_goal(name: str, target: float, value: float, unit: str, text: str) -> Goal:
    met = value >= target
    if met:
        margin = f"met, {value / target - 1:+.0%} over the target"
    else:
        margin = f"missed by {1 - value / target:.0%} (needs {target / value:.2f}x)"
    return Goal(name, f">= {target:g}{unit}", text, met, margin)


def _best(results: Results) -> ServiceResult:
    """The configuration with the most heartbeats/s."""
    return max(results.services, key=lambda s: s.summary("heartbeat").rps)


def goals(results: Results) -> list[Goal]:
    out: list[Goal] = []
    for s in results.services:
        w = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
        healthz, hb, ss = s.summary("healthz").rps, s.summary("heartbeat").rps, s.summary("start_stop").rps
        out.append(_ratio_goal(
            f"heartbeat / `/healthz` ({w})", 0.60, hb / healthz, "",
            f"{hb:,.0f} / {healthz:,.0f} = **{hb / healthz:.2f}**",
        ))  # fmt: skip
        out.append(_ratio_goal(
            f"start/stop cycle / `/healthz` ({w})", 0.50, ss / healthz, "",
            f"{ss:,.0f} / {healthz:,.0f} = **{ss / healthz:.2f}**",
        ))  # fmt: skip
    for s in results.services:
        w = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
        compat = s.summary("compat").rps
        out.append(_ratio_goal(
            f"compat add/remove vs the original's ~3,000/s ({w})", 4.0, compat / ORIGINAL_COMPAT_RPS, "x",
            f"{compat:,.0f} / 3,000 = **{compat / ORIGINAL_COMPAT_RPS:.2f}x** (original not run: "
            "the issue's figure)",
        ))  # fmt: skip
    for s in results.services:
        if s.paced is None or not s.paced.runs:
            continue
        w = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
        p99 = sorted(r.latency_us["p99"] / 1000 for r in s.paced.runs)[len(s.paced.runs) // 2]
        rps = sorted(r.rps for r in s.paced.runs)[len(s.paced.runs) // 2]
        hb = s.summary("heartbeat").rps
        met = p99 <= 10.0
        margin = f"met, {10 - p99:.1f} ms to spare" if met else f"missed by {p99 - 10:.1f} ms"
        out.append(Goal(
            f"heartbeat p99 at half the maximum ({w})", "<= 10 ms",
            f"**{p99:.1f} ms** at {rps:,.0f}/s ({rps / hb:.0%} of {hb:,.0f}/s)", met, margin,
        ))  # fmt: skip
    if results.memory is not None:
        m = results.memory
        out.append(Goal(
            f"store memory per active stream at {m.leases:,} active streams",
            "<= 200 B",
            f"**{m.per_stream:.0f} B** (`used_memory` delta / leases; `MEMORY USAGE` of one user: "
            f"{m.sample_per_stream:.0f} B per stream)",
            m.per_stream <= 200,
            f"met, {200 - m.per_stream:.0f} B to spare" if m.per_stream <= 200
            else f"missed by {m.per_stream - 200:.0f} B",
        ))  # fmt: skip
    if (signed := results.grants) is not None:
        out.append(_ratio_goal(
            "heartbeats with grants / without (1 worker; issue 15)", GRANTS_GOAL, signed.ratio, "x",
            f"{signed.granted.rps:,.0f} / {signed.plain.rps:,.0f} = **{signed.ratio:.2f}x** (a cost of "
            f"{1 - signed.ratio:.0%})",
        ))  # fmt: skip
    one, two = results.service(1), results.service(2)
    if one and two:
        for name in ("heartbeat", "healthz"):
            a, b = one.summary(name), two.summary(name)
            g = _ratio_goal(
                f"2 workers / 1 worker, {name}", 1.7, b.rps / a.rps, "x",
                f"{b.rps:,.0f} / {a.rps:,.0f} = **{b.rps / a.rps:.2f}x**; machine busy "
                f"{b.machine_busy:.0%}, wrk alone {b.cores('wrk'):.2f} of {results.machine['nproc']} cores",
            )  # fmt: skip
            out.append(g)
    return out


def headline(results: Results) -> list[str]:
    """A few lines for the README: the best configuration's ratios."""
    s = _best(results)
    hz, hb = s.summary("healthz").rps, s.summary("heartbeat").rps
    ss, compat = s.summary("start_stop").rps, s.summary("compat").rps
    w = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
    lines = [
        f"heartbeats {hb:,.0f}/s = {hb / hz:.2f} of `/healthz` ({hz:,.0f}/s; goal 0.60), "
        f"start/stop {ss:,.0f}/s = {ss / hz:.2f} (goal 0.50), compat add/remove {compat:,.0f}/s = "
        f"{compat / ORIGINAL_COMPAT_RPS:.1f}x the original's ~3,000/s (goal 4x) — {w}, the best here"
    ]
    if s.paced and s.paced.runs:
        p99 = sorted(r.latency_us["p99"] / 1000 for r in s.paced.runs)[len(s.paced.runs) // 2]
        lines.append(f"heartbeat p99 at half the maximum: {p99:.1f} ms (goal 10 ms)")
    if results.memory:
        lines.append(
            f"store memory per active stream at 1 million: {results.memory.per_stream:.0f} B (goal 200 B)"
        )
    one, two = results.service(1), results.service(2)
    if one and two:
        ratio = two.summary("heartbeat").rps / one.summary("heartbeat").rps
        lines.append(f"2 workers / 1 worker on heartbeats: {ratio:.2f}x (goal 1.7x; wrk shares the 2 cores)")
    return lines
