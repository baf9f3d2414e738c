"""One attempt to deliver one webhook to one URL: a signed POST, answered 2xx or failed."""

from __future__ import annotations

import asyncio
import time

import httpx

from streamlimit import __version__
from streamlimit.webhooks.payload import Message
from streamlimit.webhooks.signing import Signer

REASONS = ("status", "timeout", "connection")  # why an attempt failed (metrics label)


class Sender:
    """``send`` returns None when the receiver answered 2xx within ``timeout_s`` (the whole
    attempt: connecting, sending, the answer's head), else why not. Redirects are not followed
    (a 3xx is a failure: the URL is what the operator configured), and the answer's body is not
    read."""

    def __init__(self, signer: Signer, timeout_s: float) -> None:
        self._signer = signer
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            headers={"user-agent": f"streamlimit/{__version__} (webhooks)"},
        )

    async def send(self, url: str, message: Message) -> tuple[str, str] | None:
        """None, or (reason, detail): the status, or the error's class (never the URL's secrets)."""
        headers = {"content-type": "application/json"}
        # the signature's timestamp is the attempt's (receivers refuse stale ones): wall-clock time
        headers |= self._signer.headers(message.id, message.body, time.time())
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._client.stream("POST", url, content=message.body, headers=headers) as response,
            ):
                status = response.status_code
        except (TimeoutError, httpx.TimeoutException) as exc:
            return "timeout", type(exc).__name__
        except (httpx.HTTPError, OSError) as exc:
            return "connection", type(exc).__name__
        if 200 <= status < 300:
            return None
        return "status", str(status)

    async def aclose(self) -> None:
        await self._client.aclose()
