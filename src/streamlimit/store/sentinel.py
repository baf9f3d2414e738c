"""Sentinel: ask the sentinels for the current primary whenever a connection is (re)opened.

The client then checks ROLE on the server it reached and refuses a replica, and drops its
connection on a READONLY reply (a primary demoted under it), so no decision is made from a
replica's data.
"""

from __future__ import annotations

from streamlimit.errors import StoreUnavailable
from streamlimit.store.endpoint import Endpoint
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.resp import ReplyError


class PrimaryLocator:
    """Callable: the current primary of ``service``, from the first sentinel that knows it."""

    def __init__(self, sentinels: list[Endpoint], service: str, primary: Endpoint, timeout_s: float) -> None:
        self._sentinels = [PipelinedClient(s, timeout_s) for s in sentinels]
        self._service = service
        self._primary = primary  # credentials, database and TLS of the data nodes
        self._first = 0  # the sentinel that answered last is asked first

    async def __call__(self) -> Endpoint:
        errors = []
        n = len(self._sentinels)
        for k in range(n):
            i = (self._first + k) % n
            sentinel = self._sentinels[i]
            try:
                addr = await sentinel.execute("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._service)
            except (StoreUnavailable, ReplyError) as exc:
                errors.append(str(exc))
                continue
            if not addr:
                errors.append(f"sentinel does not know {self._service!r}")
                continue
            self._first = i
            return self._primary.at(addr[0], int(addr[1]))
        raise StoreUnavailable(f"no sentinel named the primary of {self._service!r}: {'; '.join(errors)}")

    async def aclose(self) -> None:
        for sentinel in self._sentinels:
            await sentinel.aclose()
