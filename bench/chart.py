"""The chart: throughput (median, min-max) and p99 per workload, one bar per service config."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render straight to PNG

import matplotlib.pyplot as plt

from bench.results import Results
from bench.service_bench import WORKLOADS


def draw(results: Results, path: Path) -> None:
    names = [w.name for w in WORKLOADS]
    wrap = {" (ceiling)": "\n(ceiling)", " cycle": "\ncycle", "1 heartbeat": "1\nheartbeat"}
    labels = []
    for w in WORKLOADS:
        label = w.title
        for old, new in wrap.items():
            label = label.replace(old, new)
        labels.append(label)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    n = max(len(results.services), 1)
    width = 0.8 / n
    for i, s in enumerate(results.services):
        xs = [k + (i - (n - 1) / 2) * width for k in range(len(names))]
        summaries = [s.summary(name) for name in names]
        rps = [m.rps for m in summaries]
        err = [[m.rps - m.rps_min for m in summaries], [m.rps_max - m.rps for m in summaries]]
        label = f"{s.workers} worker{'s' if s.workers > 1 else ''}"
        bars = top.bar(xs, rps, width, yerr=err, capsize=3, label=label)
        top.bar_label(bars, labels=[f"{v:,.0f}" for v in rps], fontsize=7, padding=2)
        p99 = [m.latency_ms("p99") for m in summaries]
        bars = bottom.bar(xs, p99, width, label=label)
        bottom.bar_label(bars, labels=[f"{v:.1f}" for v in p99], fontsize=7, padding=2)
    cfg = results.config
    top.set_ylabel("requests/s (median, min-max)")
    top.set_title(
        f"streamlimit, wrk -t{cfg['threads']} -c{cfg['connections']}, {cfg['runs']} x {cfg['seconds']} s, "
        f"{results.machine['nproc']} cores ({results.started_at})",
        fontsize=10,
    )
    top.legend()
    top.grid(axis="y", alpha=0.3)
    bottom.set_ylabel("p99 latency, ms (median of runs)")
    bottom.grid(axis="y", alpha=0.3)
    bottom.set_xticks(range(len(names)), labels, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
