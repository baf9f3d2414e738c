"""A blocking client: the asyncio client run on a private event loop in a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from streamlimit.client.aio import AsyncStreamLimitClient
from streamlimit.client.lease import Lease, OnGrant, OnLost

T = TypeVar("T")


class StreamLimitClient:
    """The blocking twin of :class:`AsyncStreamLimitClient`, taking the same arguments.

    Every coroutine method of the async client is available here as a blocking method of the
    same name and signature (``start``, ``heartbeat``, ``stop``, ``list``, ``stop_all``,
    ``get_limit``, ``set_limit``, ...): the call runs on the client's own event loop thread and
    its result or exception is returned or raised here. Safe to call from several threads.
    ``with client.stream(...) as lease:`` holds a stream while the calling thread works.
    Use as ``with``, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        device_id: str | None = None,
    ) -> None:
        # built first: an invalid device_id raises ValueError before the loop thread starts
        aio = AsyncStreamLimitClient(
            base_url, token=token, api_key=api_key, timeout=timeout, transport=transport, device_id=device_id
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="streamlimit-client", daemon=True)
        self._thread.start()
        self.aio = aio  #: the async client, whose coroutines must run on this client's loop (see :meth:`run`)
        self._closed = False

    @property
    def device_id(self) -> str | None:
        """The device id sent with starts that name none (see :class:`AsyncStreamLimitClient`)."""
        return self.aio.device_id

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and wait for its result (the typed form of the
        generic methods: ``client.run(client.aio.list("alice"))``)."""
        if self._closed or threading.current_thread() is self._thread:
            coro.close()
            # from the loop's own thread (an on_lost callback) waiting for the loop would deadlock
            raise RuntimeError(
                "the client is closed" if self._closed else "a blocking call on the client's thread"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        aio = self.__dict__.get("aio")  # None while __init__ runs
        method = getattr(aio, name, None) if aio is not None and not name.startswith("_") else None
        if method is None or not inspect.iscoroutinefunction(method):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        @functools.wraps(method)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self.run(method(*args, **kwargs))

        return blocking

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        names.update(
            n
            for n in dir(self.aio)
            if not n.startswith("_") and inspect.iscoroutinefunction(getattr(self.aio, n))
        )
        return sorted(names)

    @contextmanager
    def stream(
        self,
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
    ) -> Iterator[Lease]:
        """Hold a stream for a ``with`` block: started on entry (errors such as ``LimitReached``
        are raised here), heartbeated on the client's thread while the block runs, stopped on exit.

        The calling thread is not interrupted when the lease is lost: ``on_lost(error)`` is
        called on the client's thread (keep it short; e.g. set a ``threading.Event``), and
        ``lease.lost`` turns True. A block that ends after its lease was lost raises
        ``LeaseLost`` (unless it raised an exception of its own). ``on_grant(grant)`` is called on
        the client's thread with each new playback grant; ``lease.grant`` is the newest.
        """
        lease = self.aio.stream(
            user_id, stream_id, device,
            on_lost=on_lost, on_limit=on_limit, start_retry_s=start_retry_s, device_id=device_id,
            replace=replace, on_grant=on_grant, live=live,
        )  # fmt: skip
        entered: concurrent.futures.Future[asyncio.Event] = concurrent.futures.Future()
        futures: list[concurrent.futures.Future[Any]] = [entered]

        async def hold() -> None:
            release = asyncio.Event()
            async with lease:
                entered.set_result(release)
                await release.wait()

        held = asyncio.run_coroutine_threadsafe(hold(), self._loop)
        futures.append(held)
        try:
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        except BaseException:  # e.g. KeyboardInterrupt: no block will release the lease, so end it
            held.cancel()
            raise
        if not entered.done():
            held.result()  # the start's error
            raise RuntimeError("the lease ended before it started")  # pragma: no cover
        release = entered.result()
        try:
            yield lease
        except BaseException:
            self._loop.call_soon_threadsafe(release.set)
            concurrent.futures.wait([held])  # stopped, or lost; the block's own error wins
            raise
        self._loop.call_soon_threadsafe(release.set)
        held.result()  # LeaseLost if the lease was lost meanwhile

    def close(self) -> None:
        """Close the connections and stop the loop thread. Idempotent."""
        if self._closed:
            return
        try:
            self.run(self.aio.aclose())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> StreamLimitClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
