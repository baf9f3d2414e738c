"""Logging set-up for the CLI and worker processes: one JSON object per line (``json``), or a
human-readable line (``text``); ``auto`` picks text on a terminal (``make run``), JSON otherwise.

Fields: ``ts`` (RFC 3339, ms), ``level``, ``logger``, ``msg``, and whatever a caller passes in
``extra={"fields": {...}}`` (request id, user id, stream id, outcome, latency).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from streamlimit.text import escaped, field_value

_HANDLER_MARK = "_streamlimit"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """One line per record: the message with control characters escaped, then ``key=value``
    fields (quoted when not plain), so no value a caller chose can start a line of its own; only
    a traceback, the server's own text, follows on further lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += " " + " ".join(f"{k}={field_value(v)}" for k, v in fields.items())
        return escaped(line)


def configure(level: str = "info", fmt: str = "auto") -> None:
    root = logging.getLogger()
    if not any(getattr(h, _HANDLER_MARK, False) for h in root.handlers):
        text = fmt == "text" or (fmt == "auto" and sys.stderr.isatty())
        handler = logging.StreamHandler()
        handler.setFormatter(TextFormatter() if text else JsonFormatter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
