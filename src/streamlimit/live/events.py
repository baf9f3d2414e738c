"""A live channel's events, as bytes: renewed (the heartbeat's answer), degraded, and the end of the
stream (evicted, stopped, lost: the problem a heartbeat would answer, as data)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import msgspec

from streamlimit.api.problems import ended_fields, problem_body
from streamlimit.api.render import rfc3339, stream_body
from streamlimit.errors import StreamNotActive
from streamlimit.live import sse
from streamlimit.live.channel import Channel
from streamlimit.service import Policy

# the event each kind of end is told with: a replaced stream is an evicted one to its player
# (the data's code, stream_replaced, tells them apart)
_EVENT = {"stream_evicted": "evicted", "stream_replaced": "evicted", "stream_stopped": "stopped"}


def lease(channel: Channel, policy: Policy, readmitted: bool) -> dict[str, Any]:
    """The renewed event's data: the heartbeat's answer (the lease, with its latest expiry)."""
    return {
        **stream_body(replace(channel.stream, expires_at_ms=channel.expires_ms)),
        "heartbeat_interval_s": policy.heartbeat_interval_s,  # as a heartbeat answers
        "lease_ttl_s": policy.lease_ttl_ms / 1000,
        "readmitted": readmitted,
        "degraded": False,
    }


def renewed_template(channel: Channel, policy: Policy) -> tuple[bytes, bytes]:
    """A renewal's event but its expires_at, made once per channel, so that a renewal only joins
    three byte strings (the lease's other members do not change while it lives)."""
    frame = sse.event("renewed", lease(channel, policy, False))
    head, mark, tail = frame.partition(b'"expires_at":"')
    assert mark, frame
    return head + mark, tail[tail.index(b'"') :]


def with_grant(frame: bytes, grant: str | None) -> bytes:
    """A renewed event with the lease's new grant (data's last member)."""
    if grant is None:
        return frame
    return frame[: -len(b"}\n\n")] + b',"grant":' + msgspec.json.encode(grant) + b"}\n\n"


def degraded(channel: Channel, policy: Policy, grant: str | None = None) -> bytes:
    """The store did not answer: per the outage policy, keep playing (allow: a lease of a TTL
    from now, as a degraded heartbeat answers) or only until the last ``expires_at`` (deny)."""
    data: dict[str, Any] = {
        "user_id": channel.stream.user_id,
        "stream_id": channel.stream.stream_id,
        "degraded": True,
        "on_store_error": policy.on_store_error,
    }
    if policy.on_store_error == "allow":
        data["expires_at"] = rfc3339(time.time_ns() // 1_000_000 + policy.lease_ttl_ms)
    if grant is not None:
        data["grant"] = grant
    return sse.event("degraded", data)


def ended(channel: Channel, exc: StreamNotActive) -> bytes:
    status, code, detail, extra = ended_fields(exc)
    body = problem_body(channel.instance, status, code, detail, extra)
    return sse.event(_EVENT.get(code, "lost"), body)
