"""Start-up and shutdown chores of a worker: draining on SIGTERM, sampling the active streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from starlette.applications import Starlette

from streamlimit.errors import StoreUnavailable
from streamlimit.metrics import Metrics
from streamlimit.store.base import Store

log = logging.getLogger("streamlimit.lifecycle")
SAMPLE_EVERY_S = 15.0


def drain_on_sigterm(app: Starlette, *also: Callable[[], None]) -> None:
    """On SIGTERM, answer /readyz with 503 at once, run ``also`` on the event loop (the live
    channels tell their players to reconnect elsewhere, and close: the server waits for open
    responses), then let the server's own handler stop accepting and finish what is in flight
    (uvicorn installed it before the lifespan ran)."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return  # not the server's handler (e.g. a test's event loop): nothing to chain

    def handler(signum: int, frame: FrameType | None) -> Any:
        if not app.state.draining:
            log.info("SIGTERM: draining (readiness 503, finishing in-flight requests)")
        app.state.draining = True
        for call in also:
            loop.call_soon_threadsafe(call)
        return previous(signum, frame)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, handler)


def sample_active_streams(store: Store, metrics: Metrics) -> asyncio.Task[None]:
    """Every SAMPLE_EVERY_S, the store's estimate of active streams into the gauge."""

    async def loop() -> None:
        while True:
            try:
                metrics.active_streams.set(await store.estimate_active())
            except StoreUnavailable as exc:
                log.debug("active-streams sample skipped: %s", exc)
            await asyncio.sleep(SAMPLE_EVERY_S)

    return asyncio.get_running_loop().create_task(loop())
