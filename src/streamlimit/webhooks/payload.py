"""A queued event (store/hooks.py's entry: the user and the audit event's JSON) -> the webhook's
JSON body: ``id``, ``type``, ``time``, ``user_id``, ``actor`` and the type's own fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamlimit.times import rfc3339

Fields = Callable[[dict[str, Any]], dict[str, Any]]


def _first(event: dict[str, Any]) -> str | None:
    ids = event.get("streams") or []  # Lua's cjson encodes an empty list as {}
    return str(ids[0]) if isinstance(ids, list) and ids else None


def _ids(event: dict[str, Any]) -> list[str]:
    ids = event.get("streams") or []
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _evicted(e: dict[str, Any]) -> dict[str, Any]:
    return {"stream_id": _first(e), "replaced_by": _str_or_none(e.get("value"))}


def _replaced(e: dict[str, Any]) -> dict[str, Any]:
    return {**_evicted(e), "device_id": e.get("device_id")}


def _reached(e: dict[str, Any]) -> dict[str, Any]:
    out = {"stream_id": _first(e), "limit": _int_or_none(e.get("value")), "active": e.get("active")}
    if e.get("device_id") is not None:
        out["device_id"] = e["device_id"]
    return out


# audit action -> (webhook type, its own fields)
TYPES: dict[str, tuple[str, Fields]] = {
    "evicted": ("stream.evicted", _evicted),
    "replaced": ("stream.replaced", _replaced),
    "stopped_all": ("streams.stopped_all", lambda e: {"stream_ids": _ids(e)}),
    "limit_set": ("limit.changed", lambda e: {"limit": _int_or_none(e.get("value"))}),
    "limit_cleared": ("limit.changed", lambda e: {"limit": None}),
    "plan_set": ("plan.changed", lambda e: {"plan": _str_or_none(e.get("value"))}),
    "plan_cleared": ("plan.changed", lambda e: {"plan": None}),
    "limit_reached": ("limit.reached", _reached),
}


class Undeliverable(ValueError):
    """An entry no receiver could use (not JSON, an action that is no webhook): given up."""


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    type: str
    at_ms: int
    body: bytes  # the same bytes on every attempt, so every copy has the same signature input


def message(event_id: str, user_id: str, raw: str) -> Message:
    """The webhook of one queued event; ``event_id`` is stable across attempts and instances."""
    try:
        event = json.loads(raw)
        kind, fields = TYPES[event["action"]]
        at_ms = int(event["at"])
        actor = event.get("actor") or {}
        body: dict[str, Any] = {
            "id": event_id,
            "type": kind,
            "time": rfc3339(at_ms),
            "user_id": user_id,
            "actor": actor if isinstance(actor, dict) else {"name": str(actor)},
            **fields(event),
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise Undeliverable(f"event {event_id} cannot be sent: {exc!r}") from exc
    return Message(event_id, kind, at_ms, json.dumps(body, separators=(",", ":")).encode())
