"""Request heads of bounded size: 431 Request Header Fields Too Large, as nginx, Envoy and Node answer.

Neither uvicorn nor httptools bounds a request head. httptools joins the pieces of a header
value that arrive in separate reads by concatenating bytes, so one 16 MB header costs time
quadratic in the number of reads (about 1 s of one worker's CPU, measured in
``docs/reliability.md``), and an unfinished one holds its memory until the request timeout.

``HeadLimitProtocol`` is the slow-clients protocol plus two caps, checked as bytes arrive:

- the whole head (request line and every header) may be at most ``MAX_HEAD_BYTES`` (Envoy's
  ``max_request_headers_kb`` is 60 KiB, Node's ``--max-http-header-size`` 16 KiB): checked
  line by line as the parser completes them, and after each read while a line is unfinished
  (so a multi-megabyte line is cut one read, at most 256 KiB, past the limit);
- one header line at most ``MAX_FIELD_BYTES``, and the request target too (nginx's
  ``large_client_header_buffers`` is 8 KiB a line; 414 URI Too Long for the target, as nginx).

A refused request is answered with a problem by the protocol itself, and its connection closed.
``streamlimit serve`` passes this class to uvicorn by reference (``http="module:Class"``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from streamlimit.api.slow_clients import SlowClientProtocol, early_answer

log = logging.getLogger("streamlimit.api")

PROTOCOL = "streamlimit.api.head_limits:HeadLimitProtocol"
MAX_HEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 16 * 1024


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; httptools re-raises it wrapped in
    ``HttpParserCallbackError``, and uvicorn then calls ``send_400_response``."""


class HeadLimitProtocol(SlowClientProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes = 0  # of the unfinished head: never more than received, at most one read less
        self._lines_bytes = 0  # of the header lines parsed so far, "name: value\r\n" each
        self._refusal: tuple[int, str, str] | None = None

    def data_received(self, data: bytes) -> None:
        before = self._receiving
        super().data_received(data)
        if self._receiving == "head" and not self.transport.is_closing():
            if before == "head":
                self._head_bytes += len(data)
            else:  # begun in this read, maybe after other requests: count what is parsed of it
                self._head_bytes = self._lines_bytes + len(self.url)
            if self._head_bytes > MAX_HEAD_BYTES:
                detail = f"the request head exceeds {MAX_HEAD_BYTES} bytes"
                self._refuse(431, "header_fields_too_large", detail)

    def on_message_begin(self) -> None:
        self._head_bytes = self._lines_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_FIELD_BYTES:
            self._refusal = (414, "uri_too_long", f"the request target exceeds {MAX_FIELD_BYTES} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_FIELD_BYTES:
            shown = name[:64].decode("latin-1")
            detail = f"header {shown!r} exceeds {MAX_FIELD_BYTES} bytes (name and value)"
            self._refusal = (431, "header_fields_too_large", detail)
            raise _Refused
        # a head that arrived whole in one read is counted here, line by line
        self._lines_bytes += len(name) + len(value) + 4
        if self._lines_bytes + len(self.url) > MAX_HEAD_BYTES:
            detail = f"the request head exceeds {MAX_HEAD_BYTES} bytes"
            self._refusal = (431, "header_fields_too_large", detail)
            raise _Refused
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        self._refuse(*self._refusal)

    def _refuse(self, status: int, code: str, detail: str) -> None:
        log.info(
            "refused a request head from %s: %s",
            f"{self.client[0]}:{self.client[1]}" if self.client else "?",
            detail,
        )
        self.transport.write(early_answer(status, code, detail, None, self.server_state.default_headers))
        self.transport.close()
