"""Each Lua script's reply, decoded in one place into the typed values the stores answer with.

The reply layouts are the ones named in each script's header (lua/*.lua); a rule change touches
the script, its decoder here, the memory store and the model, and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from streamlimit.models import (
    Actor,
    Beat,
    Ended,
    EndReason,
    Event,
    Kick,
    LimitInfo,
    Renewal,
    StartResult,
    StartStatus,
    StoppedAll,
    StopResult,
    Stream,
    UserStreams,
)

_START_STATUS = {
    0: StartStatus.REFUSED,
    1: StartStatus.ADMITTED,
    2: StartStatus.RENEWED,
    3: StartStatus.TOO_MANY,
    4: StartStatus.TARGET_NOT_ACTIVE,
}


def info(device: str | None, legacy: bool) -> tuple[str, str]:
    """A start's ARGV for its lease's info field: (device suffix, kind)."""
    return ("" if device is None else f"|{device}"), ("l" if legacy else "v")


_INFO = re.compile(r"(\d+)\|(\d+)\|([vl])(?:(\d+):)?(.*)", re.DOTALL)
_OLD_INFO = re.compile(r"(\d+)(?:\|(.*))?", re.DOTALL)  # before epochs were per lease


def stream(user_id: str, stream_id: str, expires_ms: int, raw: str) -> Stream:
    """A lease from its info field ``<started_ms>|<e>|<kind>[<n>:<device_id>][|<device>]``, its
    epoch being ``started_ms * 1000 + e``, n the device id's length (or, written by an earlier
    version and still renewed since, ``<started_ms>[|<device>]``: no epoch of its own)."""
    if m := _INFO.fullmatch(raw):
        started, extra, kind, n, rest = m.groups()
        device_id = None
        if n is not None:
            device_id, rest = rest[: int(n)], rest[int(n) :]
        device = rest[1:] if rest.startswith("|") else None
        epoch = int(started) * 1000 + int(extra)
        return Stream(
            user_id, stream_id, device, int(started), int(expires_ms), epoch, kind == "l", device_id
        )
    old = _OLD_INFO.fullmatch(raw)
    started, device = old.groups() if old else ("0", None)
    return Stream(user_id, stream_id, device, int(started), int(expires_ms))


def streams(user_id: str, flat: Sequence[Any]) -> tuple[Stream, ...]:
    """``id, expires_ms, info, ...`` (oldest first, as every script lists them)."""
    return tuple(stream(user_id, flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3))


def start(user_id: str, stream_id: str, reply: Sequence[Any]) -> StartResult:
    """``{status, now_ms, limit, active, source, plan, *rest}`` (lua/start.lua)."""
    code, _now, limit, active, source, plan, *rest = reply
    status = _START_STATUS[code]
    common: dict[str, Any] = {"limit_source": source, "plan": plan or None}
    if status is StartStatus.REFUSED:
        return StartResult(status, None, active, limit, streams(user_id, rest), **common)
    if status is StartStatus.TOO_MANY:
        return StartResult(status, None, active, limit, retry_after_ms=int(rest[0]), **common)
    if status is StartStatus.TARGET_NOT_ACTIVE:
        return StartResult(status, None, active, limit, **common)
    if status is StartStatus.RENEWED:
        return StartResult(status, stream(user_id, stream_id, rest[0], rest[1]), active, limit, **common)
    expires, raw, n_evicted, *ended = rest
    lease = stream(user_id, stream_id, expires, raw)
    gone = streams(user_id, ended)
    evicted, replaced = gone[: int(n_evicted)], gone[int(n_evicted) :]
    return StartResult(status, lease, active, limit, evicted=evicted, replaced=replaced, **common)


def heartbeat(user_id: str, stream_id: str, reply: Sequence[Any]) -> Beat:
    """``{1|3, now_ms, expires_ms, info}``, ``{2, now_ms, at_ms, reason, by}`` or ``{0, now_ms}``
    (lua/heartbeat.lua)."""
    code = reply[0]
    if code in (1, 3):
        return Beat(stream(user_id, stream_id, reply[2], reply[3]), readmitted=code == 3)
    if code == 2:
        _, _now, at, reason, by = reply
        return Beat(ended=Ended(stream_id, int(at), EndReason(reason), by or None))
    return Beat()


def renew(stream_ids: Sequence[str], reply: Sequence[Any]) -> tuple[Renewal, ...]:
    """``{now_ms, r, ...}`` (lua/renew.lua), one r per lease in the order asked (``stream_ids``):
    its expiry, ``<at_ms>|<reason>|<by>`` (its tombstone) or 0."""
    out = []
    for sid, r in zip(stream_ids, reply[1:], strict=True):
        if isinstance(r, str):
            at, reason, by = r.split("|", 2)
            out.append(Renewal(ended=Ended(sid, int(at), EndReason(reason), by or None)))
        else:
            out.append(Renewal(int(r)) if r else Renewal())
    return tuple(out)


def kick(user_id: str, raw: str) -> Kick:
    """A message of a user's live channel: JSON ``{at, reason, by, streams}`` (lua/_prelude.lua's
    ``kick``)."""
    d = json.loads(raw)
    by = d.get("by") or None
    reason = None if d["reason"] == "admitted" else EndReason(d["reason"])
    return Kick(user_id, int(d["at"]), reason, tuple(str(s) for s in d["streams"]), by)


def stop(user_id: str, reply: Sequence[Any]) -> StopResult:
    """``{1, now_ms, active_after, id, expires_ms, info}`` or ``{0, now_ms, active}`` (lua/stop.lua)."""
    if reply[0] == 1:
        _, now, active, sid, expires, raw = reply
        return StopResult(stream(user_id, sid, expires, raw), int(active), at_ms=int(now))
    return StopResult(None, int(reply[2]), at_ms=int(reply[1]))


def stop_all(reply: Sequence[Any]) -> StoppedAll:
    """``{now_ms, retry_after_ms, id, ...}`` (lua/stop_all.lua): the ids stopped, oldest first."""
    now, wait, *ids = reply
    return StoppedAll(int(now), tuple(ids), int(wait))


def list_(user_id: str, reply: Sequence[Any], counts: str = "streams") -> UserStreams:
    """``{now_ms, limit, source, plan, id, expires_ms, info, ...}`` (lua/list.lua)."""
    _now, limit, source, plan, *flat = reply
    return UserStreams(user_id, int(limit), source, streams(user_id, flat), plan or None, counts)


def limit(user_id: str, reply: Sequence[Any]) -> LimitInfo:
    """``{limit, source, plan}`` (lua/limit.lua)."""
    value, source, plan = reply
    return LimitInfo(user_id, int(value), source, plan or None)


def actor(who: Actor) -> str:
    """An actor as the JSON object the scripts record (lua/_prelude.lua's ``record``), without
    the members that have their default value (nobody: ``{}``)."""
    fields = {"name": who.name or None, "role": None if who.role == "player" else who.role}
    fields |= {"credential": who.credential, "request_id": who.request_id, "client": who.client}
    return json.dumps({k: v for k, v in fields.items() if v is not None}, separators=(",", ":"))


def event(raw: str) -> Event:
    """One JSON event of lua/events.lua."""
    d = json.loads(raw)
    ids = d.get("streams") or []  # Lua's cjson encodes an empty list as {}
    who = d.get("actor") or {}
    if isinstance(who, str):  # written before actors were objects
        who = {"name": who}
    by = Actor(
        str(who.get("name", "")),
        str(who.get("role", "player")),
        who.get("credential"),
        who.get("request_id"),
        who.get("client"),
    )
    value, device_id = d.get("value"), d.get("device_id")
    return Event(
        int(d["at"]),
        str(d["action"]),
        by,
        tuple(str(s) for s in ids),
        None if value is None else str(value),
        None if device_id is None else str(device_id),
    )
