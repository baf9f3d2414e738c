"""Logging set-up for the CLI and for worker processes (human-readable, one line per event)."""

from __future__ import annotations

import logging


def configure(level: str = "info") -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
