"""Lua scripts as package files, each prefixed with the shared prelude (but those that need none)."""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = ("start", "heartbeat", "stop", "list", "stop_all", "limit", "events", "renew")
# scripts that stand alone: the prelude's keys and functions would cost them more than their work
WITHOUT_PRELUDE = frozenset({"renew"})


@cache
def source(name: str) -> str:
    lua = resources.files("streamlimit.store") / "lua"
    own = (lua / f"{name}.lua").read_text()
    return own if name in WITHOUT_PRELUDE else (lua / "_prelude.lua").read_text() + "\n" + own
