"""Lua scripts as package files, each prefixed with the shared prelude."""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = ("start", "heartbeat", "stop", "list", "stop_all", "limit", "events")


@cache
def source(name: str) -> str:
    lua = resources.files("streamlimit.store") / "lua"
    return (lua / "_prelude.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()
