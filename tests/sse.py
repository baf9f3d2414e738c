"""Reading a live channel (Server-Sent Events) in tests, event by event, with httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    """One frame: an event (name and JSON data), a ``retry``, or a comment; when it was read."""

    event: str | None
    data: Any = None
    retry_ms: int | None = None
    comment: str | None = None
    at: float = 0.0  # time.monotonic() when its last line was read


class Channel:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def frame(self) -> Frame:
        """The next frame (blocks up to the client's read timeout)."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if fields:
                    break
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        else:
            raise EOFError("the channel closed")
        at = time.monotonic()
        data = json.loads(fields["data"]) if "data" in fields else None
        retry = int(fields["retry"]) if "retry" in fields else None
        return Frame(fields.get("event"), data, retry, fields.get(""), at)

    def event(self) -> Frame:
        """The next frame that is an event (comments and bare retry frames skipped)."""
        while True:
            f = self.frame()
            if f.event is not None:
                return f

    def closed(self) -> bool:
        """Whether the server ends the response now (nothing more comes)."""
        try:
            self.frame()
        except EOFError:
            return True
        return False


@contextmanager
def open_channel(client: httpx.Client, user: str, stream: str, **headers: str) -> Iterator[Channel]:
    """The channel, after checking it opened (200, text/event-stream)."""
    with client.stream("GET", f"/v1/users/{user}/streams/{stream}/live", headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield Channel(r)
