"""Prometheus metrics (``streamlimit_*``, and the standard ``process_*``) on a registry owned
by the app. No ``_created`` series: they double the series count and no panel reads them.

With several workers, ``streamlimit serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
folder before any worker starts: each worker writes its values there, and ``/metrics`` (in any
worker) reads them all. The variable must be set before ``prometheus_client`` is imported,
which is why this module is only imported by the app factory and the store, not at start-up.
``process_*`` then come from every live worker's /proc entry, labelled with its ``pid``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from streamlimit import __version__
from streamlimit.errors import STORE_ERROR_KINDS
from streamlimit.webhooks.sender import REASONS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric of the service; one instance per process."""

    def __init__(self) -> None:
        # process-wide in prometheus_client, and the same for every app
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.folder = os.environ.get(MULTIPROC_ENV)
        self.multiprocess = bool(self.folder)
        # in multiprocess mode values go to files and the registry is rebuilt per scrape
        self.registry = CollectorRegistry()
        reg = None if self.multiprocess else self.registry
        if reg is not None:
            ProcessCollector(registry=reg)
        self.requests = Counter(
            "streamlimit_requests", "HTTP requests by route and outcome", ["route", "outcome"], registry=reg
        )
        self.request_seconds = Histogram(
            "streamlimit_request_duration_seconds", "HTTP request latency by route", ["route"],
            buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.store_seconds = Histogram(
            "streamlimit_store_call_duration_seconds", "store round trip by script", ["script"],
            buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.store_errors = Counter(
            "streamlimit_store_errors", "store calls that failed, by kind", ["kind"], registry=reg
        )
        for kind in STORE_ERROR_KINDS:  # 0 from the start, so rate() and alerts see the first error
            self.store_errors.labels(kind)
        self.active_streams = Gauge(
            "streamlimit_active_streams", "active streams (an estimate from a sample of the store)",
            registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.build_info = Gauge(
            "streamlimit_build_info",
            "the running version",
            ["version"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__).set(1)
        self._webhooks(reg)
        # label children by label values: ``labels()`` costs a lock and a tuple build per call,
        # a dict lookup does not; every label set is from a small fixed set (routes, outcomes,
        # scripts, error kinds), so these stay small
        self._requests: dict[tuple[str, str], Any] = {}
        self._request_seconds: dict[str, Any] = {}
        self._store_seconds: dict[str, Any] = {}

    def _webhooks(self, reg: CollectorRegistry | None) -> None:
        self.webhook_sent = Counter(
            "streamlimit_webhook_sent", "webhook attempts answered 2xx (one per event and URL)", registry=reg
        )
        self.webhook_failed = Counter(
            "streamlimit_webhook_failed", "webhook attempts that failed, by reason", ["reason"], registry=reg
        )
        for reason in REASONS:
            self.webhook_failed.labels(reason)
        self.webhook_given_up = Counter(
            "streamlimit_webhook_given_up", "webhook events dropped undelivered: too old, or unusable",
            registry=reg,
        )  # fmt: skip
        self.webhook_queue_depth = Gauge(
            "streamlimit_webhook_queue_depth", "webhook events queued and not yet delivered",
            registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.webhook_oldest_age = Gauge(
            "streamlimit_webhook_oldest_age_seconds", "age of the oldest webhook event not yet delivered",
            registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip

    def request(self, route: str, outcome: str, seconds: float) -> None:
        """One HTTP request answered: counted by route and outcome, timed by route."""
        counter = self._requests.get((route, outcome))
        if counter is None:
            counter = self._requests[route, outcome] = self.requests.labels(route, outcome)
        counter.inc()
        timer = self._request_seconds.get(route)
        if timer is None:
            timer = self._request_seconds[route] = self.request_seconds.labels(route)
        timer.observe(seconds)

    def store_call(self, script: str, seconds: float) -> None:
        """One store call answered, timed by script."""
        timer = self._store_seconds.get(script)
        if timer is None:
            timer = self._store_seconds[script] = self.store_seconds.labels(script)
        timer.observe(seconds)

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        assert self.folder is not None
        registry.register(WorkerProcesses(Path(self.folder)))
        return generate_latest(registry)


class WorkerProcesses:
    """``process_*`` of every live worker, labelled ``pid``: the worker that answers the scrape
    reads the others' /proc entries, finding them by the files they write to the shared folder
    (``counter_<pid>.db`` ...; every worker writes ``streamlimit_build_info`` at start-up)."""

    _PID = re.compile(r"_(\d+)\.db$")

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def pids(self) -> list[int]:
        found = {int(m[1]) for f in self.folder.iterdir() if (m := self._PID.search(f.name))}
        return sorted(pid for pid in found if Path(f"/proc/{pid}").exists())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.pids():
            one = ProcessCollector(pid=_constant(pid), registry=None)
            for family in one.collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid
