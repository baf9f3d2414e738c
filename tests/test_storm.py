"""The history-checked storm, fast version: 4 service processes sharing one valkey-server,
500 simultaneous players on 100 users with small limits, for 18 s; then the checker proves
from the recorded history that no user was over-admitted, no start was refused while a slot
was certainly free (a restarted device's own lease frees its slot at once), no count went negative
and no answer was a 5xx (``tests/storm/``). Players restart (reclaims) and pick which stream to
replace when refused.

``python -m tests.storm.soak --seconds N`` is the long version (``make soak``).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.servers import Service
from tests.storm.driver import SERVICE_SETTINGS, Plan
from tests.storm.soak import storm, summary

PROCESSES, CLIENTS, USERS, SECONDS = 4, 500, 100, 18.0


# what the run must have gone through, at least: every situation the checker reasons about
EXERCISED = {
    "admissions": 300,
    "refusals": 300,
    "renewals": 1,  # a start of an active stream id: 200, not a second admission
    "heartbeats": 1,
    "heartbeats_ended": 1,  # 410: the lease was stopped or evicted by someone else
    "readmissions": 1,  # a heartbeat of a lease that expired, taking a free slot again
    "stops": 1,
    "vanished": 1,  # players that left without stopping...
    "expired": 1,  # ...and leases that ran out with nothing that could have removed them
    "stop_alls": 1,
    "stopped_by_stop_all": 1,
    "limit_changes": 1,
    "compat": 1,
    "reclaims": 1,  # a restarted player's start replacing its device's old lease at once
    "replaced_by_choice": 1,  # a start naming the stream to stop ("replace=")
    "replaced_targets_gone": 1,  # ...one whose named stream was already gone: 404, nothing started
}


def test_storm_across_processes_keeps_every_promise(
    redis_url: str, service_factory: Callable[..., Service]
) -> None:
    urls = [service_factory(redis_url, **SERVICE_SETTINGS).url for _ in range(PROCESSES)]
    history, report = storm(urls, Plan(seconds=SECONDS, clients=CLIENTS, users=USERS))
    table = summary(history, report, PROCESSES, CLIENTS, USERS)
    print(table)
    assert report.violations == [], table
    assert (report.server_errors, report.degraded) == (0, 0), table
    assert report.transport_errors <= len(history.ops) // 1000, table  # loopback: none expected
    done = report.exercised | {"vanished": history.notes.get("vanished", 0)}
    short = {what: done[what] for what, least in EXERCISED.items() if done[what] < least}
    assert not short, f"not exercised enough: {short}\n{table}"
