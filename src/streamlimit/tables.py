"""Output of the remote CLI commands: aligned tables and one-line summaries for people, JSON for scripts.

Every value from the server is printed escaped (``text.escaped``): a device label or an actor's
name cannot clear the terminal, add a row, or reorder a line."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from streamlimit.client.types import Event, LeaseInfo, LimitInfo, StartInfo, StreamInfo, StreamList
from streamlimit.text import escaped


def to_json(value: object) -> str:
    """One JSON object: dataclasses as objects, tuples as arrays, times as the API writes them
    (RFC 3339, UTC, milliseconds: ``2026-11-28T10:00:00.007Z``)."""

    def default(o: object) -> Any:
        if isinstance(o, datetime):
            utc = o.astimezone(UTC)
            return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, default=default, sort_keys=False)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns left-aligned to their widest cell, two spaces apart."""
    lines = [list(header), *([escaped(cell) for cell in r] for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def expires_in(at: datetime, now: datetime | None = None) -> str:
    left = (at - (now or datetime.now(UTC))).total_seconds()
    return f"{max(0, round(left))}s"


def streams_table(streams: Sequence[StreamInfo]) -> str:
    if not streams:
        return "(no active streams)"
    now = datetime.now(UTC)
    rows = [
        (s.stream_id, s.device or "-", s.device_id or "-", stamp(s.started_at), expires_in(s.expires_at, now))
        for s in streams
    ]
    return table(("STREAM ID", "DEVICE", "DEVICE ID", "STARTED", "EXPIRES IN"), rows)


def _counted(active: object, limit: int, counts: str) -> str:
    """``2 of 3 active``, or ``2 of 3 devices active`` when the limit counts devices."""
    return f"{active} of {limit} devices active" if counts == "devices" else f"{active} of {limit} active"


def _source(limit_source: str, plan: str | None) -> str:
    return f"limit from plan {plan}" if limit_source == "plan" and plan else f"limit from {limit_source}"


def stream_list(s: StreamList) -> str:
    head = f"{s.user_id}: {_counted(s.active, s.limit, s.counts)}, {_source(s.limit_source, s.plan)}"
    return escaped(f"{head}, {s.remaining} remaining") + f"\n{streams_table(s.streams)}"


def started(s: StartInfo) -> str:
    verb = "started" if s.admitted else "renewed"
    count = "?" if s.active is None else s.active
    on = f" on device {s.device_id}" if s.device_id else ""
    line = f"{verb} {s.stream_id} for {s.user_id}{on} ({_counted(count, s.limit, s.counts)}, "
    line += f"{_source(s.limit_source, s.plan)})"
    for what, ended in [("evicted", e) for e in s.evicted] + [("replaced", r) for r in s.replaced]:
        device = f" ({ended.device})" if ended.device else ""
        line += f"; {what} {ended.stream_id}{device}"
    if s.degraded:
        line += "; degraded: the store is down, the stream was not recorded"
    return (
        escaped(line)
        + f"\nheartbeat every {s.heartbeat_interval_s:g}s; expires in {expires_in(s.expires_at)}"
        + _grant(s)
    )


def _grant(s: LeaseInfo) -> str:
    return f"\ngrant: {escaped(s.grant)}" if s.grant else ""


def renewed(s: LeaseInfo) -> str:
    verb = "admitted again" if s.readmitted else "renewed"
    line = f"{verb} {s.stream_id} for {s.user_id}: expires in {expires_in(s.expires_at)}"
    return escaped(line + ("; degraded: the store is down" if s.degraded else "")) + _grant(s)


def limit(i: LimitInfo) -> str:
    return escaped(f"{i.user_id}: limit {i.limit} ({_source(i.limit_source, i.plan)})")


def _event_row(e: Event) -> tuple[str, ...]:
    streams = ",".join(e.streams) or "-"
    return (stamp(e.at), e.action, e.actor or "-", streams, e.value or "-", e.device_id or "-")


def events(user_id: str, evs: Sequence[Event]) -> str:
    """VALUE: a new limit or plan, or the stream that took an evicted or replaced one's slot;
    DEVICE ID: for ``replaced``, the device whose newer stream took over."""
    if not evs:
        return escaped(f"{user_id}: no events")
    return table(("AT", "ACTION", "ACTOR", "STREAMS", "VALUE", "DEVICE ID"), [_event_row(e) for e in evs])
