"""History-checked contention storms.

``driver`` runs many simulated players against real service processes and records every
request as an `Op`; ``checker`` proves the limiter's promises from that `History` alone;
``soak`` is the command-line entry point (``python -m tests.storm.soak --seconds N``).

Times are wall-clock seconds (``time.time()``): the store's ``TIME`` reads the same clock of
the same machine, so the times a response reports can be compared with the send and receive
times the driver recorded, within a small epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal[
    "start",  # POST /v1/users/{u}/streams {"stream_id", "device_id"}[?replace=]
    "heartbeat",  # POST /v1/users/{u}/streams/{s}/heartbeat
    "stop",  # DELETE /v1/users/{u}/streams/{s}
    "stop_all",  # DELETE /v1/users/{u}/streams
    "list",  # GET /v1/users/{u}/streams
    "set_limit",  # PUT /v1/users/{u}/limit {"limit": arg}
    "clear_limit",  # DELETE /v1/users/{u}/limit
    "compat_start",  # POST /user/stream {"userId"} (the server picks the stream id)
    "compat_stop",  # DELETE /user/stream {"userId"[, "streamId"]}: that stream, or the oldest
    "compat_count",  # GET /user/stream?userId=
]


@dataclass(frozen=True, slots=True)
class Config:
    """What the servers were started with: the checker needs the limits and lease lengths."""

    default_limit: int
    lease_ttl_s: float
    heartbeat_interval_s: float
    legacy_lease_ttl_s: float


@dataclass(slots=True)
class Op:
    """One request: who sent what, when it left, when (and what) came back.

    ``recv``/``status`` are None when no response came (timeout, transport error): the
    request's outcome is then unknown, and it may take effect at any time after ``send``.
    """

    index: int
    client: int
    user: str
    kind: Kind
    stream_id: str | None
    send: float
    arg: int | None = None  # the limit sent by set_limit
    device_id: str | None = None  # start: the player's device id
    replace: str | None = None  # start: the stream it names to replace
    recv: float | None = None
    status: int | None = None
    body: dict[str, Any] | None = None  # the parsed JSON object, if the response had one
    degraded: bool = False  # X-StreamLimit-Degraded or "degraded": true
    error: str | None = None  # transport error or unparseable body

    @property
    def latency(self) -> float | None:
        return None if self.recv is None else self.recv - self.send


@dataclass(slots=True)
class History:
    config: Config
    ops: list[Op] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    notes: dict[str, int] = field(default_factory=dict)  # driver-side counts (vanished players...)
