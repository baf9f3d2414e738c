"""Lua scripts as package files, each with the shared prelude (lua/_prelude.lua): prepended, or
where the script has a line ``-- @prelude`` (what comes before it runs without the prelude's work:
a script's hot path), or not at all (WITHOUT_PRELUDE)."""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = ("start", "heartbeat", "stop", "list", "stop_all", "limit", "events", "renew")
WITHOUT_PRELUDE = frozenset({"renew"})  # it needs none of the prelude's keys or functions
MARK = "-- @prelude\n"


@cache
def source(name: str) -> str:
    lua = resources.files("streamlimit.store") / "lua"
    own = (lua / f"{name}.lua").read_text()
    if name in WITHOUT_PRELUDE:
        return own
    prelude = (lua / "_prelude.lua").read_text()
    before, mark, after = own.partition(MARK)
    return before + prelude + "\n" + after if mark else prelude + "\n" + own
