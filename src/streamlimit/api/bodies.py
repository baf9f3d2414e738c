"""Request bodies: size-limited reads (chunked too), JSON objects and field checks."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec
from starlette.requests import Request

from streamlimit.api.problems import Problem

MAX_BODY_BYTES = 16 * 1024


def _too_large() -> Problem:
    return Problem(413, "body_too_large", f"request body exceeds {MAX_BODY_BYTES} bytes")


async def read_body(request: Request) -> bytes:
    """The whole body, refusing anything over ``MAX_BODY_BYTES`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "malformed_json", "request body is nested too deeply") from None


async def json_object(request: Request, allowed: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` members; an empty body is ``{}``."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise Problem(422, "invalid_body", "request body must be a JSON object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise Problem(
            422,
            "invalid_body",
            f"unknown member {unknown[0]!r}; allowed: {', '.join(allowed)}",
            field=unknown[0],
        )
    return value


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise Problem(422, "invalid_body", f"{name} must be a string or null", field=name)
    return value
