"""A stream held for the length of an ``async with`` block: start, background heartbeats, stop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import uuid
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from streamlimit.client.errors import LeaseLost, StreamLimitError, Unavailable
from streamlimit.client.live import renew_by_channel
from streamlimit.client.types import LeaseInfo, StartInfo

if TYPE_CHECKING:
    from streamlimit.client.aio import AsyncStreamLimitClient

log = logging.getLogger("streamlimit.client")

OnLost = Callable[[StreamLimitError], object]
"""Called with the error that ended a lease; sync, or async (its awaitable is awaited)."""
OnGrant = Callable[[str], object]
"""Called with each new grant of a lease (the start's, then each heartbeat's); sync, or async."""

JITTER = 0.1  # heartbeats and retries at +-10 % of their nominal delay, so players do not align
_rng = random.SystemRandom()


def _jittered(seconds: float) -> float:
    return seconds * _rng.uniform(1 - JITTER, 1 + JITTER)


def _backoff(attempt: int, base: float, cap: float) -> float:
    return _jittered(min(cap, base * 2**attempt))


def _retry_after(exc: StreamLimitError) -> float:
    value = getattr(exc, "retry_after_s", None)
    return float(value) if value is not None else 0.0


class Lease:
    """One stream of ``user_id``, held while an ``async with`` block runs.

    On entry the stream is started (``stream_id`` is generated when None, so retried starts
    renew rather than start twice); transient errors (:attr:`StreamLimitError.transient`) are
    retried for up to ``start_retry_s``, and other errors, such as :class:`LimitReached`, are
    raised. A background task then heartbeats at the interval the service returned (+-10 %),
    retrying transient errors with exponential backoff capped at a quarter of the lease TTL.
    Transient errors never end the lease by themselves: once the service answers again, it
    says whether the lease survived.

    ``device_id`` (default: the client's) goes with the start, so the stream takes over the
    device's older one (``lease.started.replaced``), and ``replace`` names a stream to stop in
    its favour (see :meth:`AsyncStreamLimitClient.start`). A retried start whose first attempt
    did arrive renews the stream it admitted, so a retry never replaces twice.

    When the service says the lease is gone (404 :class:`StreamNotActive`; 410
    :class:`StreamEvicted`, :class:`StreamStopped`, or :class:`StreamReplaced` when another
    start with the same device id took over; or any other non-transient error),
    ``on_lost(error)`` is called and the task running the block is cancelled: the block sees
    ``asyncio.CancelledError`` at its next ``await``, and the ``async with`` raises
    :class:`LeaseLost` (its ``reason`` is the error). On exit otherwise the heartbeats end and
    the stream is stopped (best effort: a stream that cannot be stopped expires after its lease
    TTL).

    When the service signs playback grants, :attr:`grant` is the newest one (each heartbeat
    brings a new one) and ``on_grant(grant)`` is called with each, for a player that hands it to
    its media stack (a licence request, a CDN URL); an answer without one (degraded) keeps the
    previous, which expires by itself.
    """

    def __init__(
        self,
        client: AsyncStreamLimitClient,
        user_id: str,
        stream_id: str | None = None,
        device: str | None = None,
        *,
        on_lost: OnLost | None = None,
        on_limit: Literal["reject", "evict_oldest"] | None = None,
        start_retry_s: float = 10.0,
        device_id: str | None = None,
        replace: str | None = None,
        on_grant: OnGrant | None = None,
        live: bool = False,
    ) -> None:
        self.client = client
        self.live = live  #: renewed by the live channel (heartbeats only when it cannot open)
        self.user_id = user_id
        self.stream_id = stream_id if stream_id is not None else str(uuid.uuid4())
        self.device = device
        self.device_id = device_id if device_id is not None else client.device_id  #: sent with the start
        self.replace = replace  #: the stream the start names to replace, if any
        self.started: StartInfo | None = None  #: the answer to the start
        self.info: LeaseInfo | None = None  #: the latest answer (start or heartbeat)
        self.lost_reason: StreamLimitError | None = None  #: why the lease was lost, if it was
        self._on_lost, self._on_limit, self._start_retry_s = on_lost, on_limit, start_retry_s
        self._on_grant = on_grant
        self._grant: str | None = None
        self._owner: asyncio.Task[Any] | None = None
        self._owner_cancelling = 0
        self._cancelled_owner = False
        self._closing = False
        self._heartbeats: asyncio.Task[None] | None = None

    @property
    def lost(self) -> bool:
        """Whether the service ended the lease (or it could not be renewed)."""
        return self.lost_reason is not None

    @property
    def expires_at(self) -> datetime:
        """When the lease ends unless renewed, as of the latest answer."""
        if self.info is None:
            raise RuntimeError("the lease has not started")
        return self.info.expires_at

    @property
    def epoch(self) -> int | None:
        """The lease's own fencing epoch (see the README's "Fencing"); a new one when a heartbeat
        admitted the stream again; None while the answers are degraded."""
        if self.info is None:
            raise RuntimeError("the lease has not started")
        return self.info.epoch

    @property
    def grant(self) -> str | None:
        """The newest playback grant the service gave this lease; None while it gave none."""
        return self._grant

    async def __aenter__(self) -> Lease:
        owner = asyncio.current_task()
        if owner is None or self._owner is not None:
            raise RuntimeError("a Lease is entered once, from a task")
        self.started = await self._start()
        await self.took(self.started)
        self._owner, self._owner_cancelling = owner, owner.cancelling()
        self._heartbeats = asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat {self.stream_id}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing = True  # from here on a lost lease cancels nobody
        if self._heartbeats is not None:
            if not self._heartbeats.done() and self.lost_reason is None:
                self._heartbeats.cancel()
            await asyncio.wait([self._heartbeats])  # an on_lost in progress may finish
        if self.lost_reason is None:
            await self._stop()
            return
        external = False
        if self._cancelled_owner:
            assert self._owner is not None
            # as asyncio.timeout does: a cancellation of the block from elsewhere stays one
            external = self._owner.uncancel() > self._owner_cancelling
        ours = exc_type is None or (self._cancelled_owner and issubclass(exc_type, asyncio.CancelledError))
        if ours and not external:
            raise LeaseLost(self.lost_reason) from self.lost_reason

    async def _start(self) -> StartInfo:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_retry_s
        attempt = 0
        while True:
            try:
                return await self.client.start(
                    self.user_id,
                    self.stream_id,
                    self.device,
                    self._on_limit,
                    device_id=self.device_id,
                    replace=self.replace,
                )
            except StreamLimitError as exc:
                delay = max(_backoff(attempt, 0.1, 2.0), _retry_after(exc))
                if not exc.transient or loop.time() + delay > deadline:
                    raise
                log.info("start of stream %s failed (%s); retrying in %.2f s", self.stream_id, exc, delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def renew_once(self, current: LeaseInfo) -> LeaseInfo:
        """One heartbeat, retrying transient errors (the live channel's fallback)."""
        return await self._renew(current)

    async def _renew(self, current: LeaseInfo) -> LeaseInfo:
        ttl = current.lease_ttl_s
        cap, base = min(10.0, ttl / 4), min(0.5, ttl / 20)
        wait_s = min(self.client.timeout, max(ttl / 3, 0.05))  # an answer after the lease is no use
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(wait_s):
                    return await self.client.heartbeat(self.user_id, self.stream_id)
            except TimeoutError:
                error: StreamLimitError = Unavailable(None, "timeout", f"no answer within {wait_s:.2f} s")
            except StreamLimitError as exc:
                if not exc.transient:
                    raise
                error = exc
            delay = min(cap, max(_backoff(attempt, base, cap), _retry_after(error)))
            log.info("heartbeat of stream %s failed (%s); retrying in %.2f s", self.stream_id, error, delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def _heartbeat_loop(self) -> None:
        try:
            if self.live:
                await renew_by_channel(self)
            while True:
                assert self.info is not None
                await asyncio.sleep(_jittered(self.info.heartbeat_interval_s))
                await self.took(await self._renew(self.info))
        except StreamLimitError as exc:
            await self._lose(exc)
        except Exception as exc:  # a bug here must not leave the block running without a lease
            log.exception("heartbeats of stream %s failed", self.stream_id)
            await self._lose(StreamLimitError(None, "client_error", repr(exc)))

    async def took(self, info: LeaseInfo) -> None:
        """An answer of the service (a heartbeat's, a live channel's renewal): the lease's latest
        state, and its new grant if it has one."""
        self.info = info
        if info.grant is not None and info.grant != self._grant:
            self._grant = info.grant
            await self._callback(self._on_grant, info.grant, "on_grant")

    async def _callback(self, callback: Callable[[Any], object] | None, arg: object, name: str) -> None:
        """Run a user's callback (sync, or async: awaited); its errors are logged, never raised."""
        if callback is None:
            return
        try:
            result = callback(arg)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s callback of stream %s failed", name, self.stream_id)

    async def _lose(self, reason: StreamLimitError) -> None:
        log.warning("lease of stream %s of user %s lost: %s", self.stream_id, self.user_id, reason)
        self.lost_reason = reason
        await self._callback(self._on_lost, reason, "on_lost")
        if not self._closing and self._owner is not None:
            self._cancelled_owner = True
            self._owner.cancel()

    async def _stop(self) -> None:
        try:
            await self.client.stop(self.user_id, self.stream_id)
        except StreamLimitError as exc:
            log.warning("could not stop stream %s (it expires by itself): %s", self.stream_id, exc)
