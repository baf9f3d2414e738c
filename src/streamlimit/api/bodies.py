"""Request bodies: size-limited reads (chunked too), JSON objects and field checks."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

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


class Members(list[tuple[str, Any]]):
    """A JSON object as its (member, value) pairs, repeats included."""


def _members(pairs: list[tuple[str, Any]]) -> Members:
    # the stdlib parser lets "\ud800" through: a lone surrogate is no text and could not be stored
    for name, value in pairs:
        for text in (name, value) if isinstance(value, str) else (name,):
            if not text.isascii():
                text.encode("utf-8")  # UnicodeEncodeError, a ValueError, on a lone surrogate
    return Members(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity); objects become ``Members`` so repeats stay visible."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_members, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise Problem(400, "malformed_json", f"request body is not valid JSON: {exc}") from None


def as_object(members: Members, allowed: Collection[str]) -> dict[str, Any]:
    """A dict of the members, refusing repeated members and any not in ``allowed``."""
    body: dict[str, Any] = {}
    for name, value in members:
        if name not in allowed:
            raise Problem(
                422, "invalid_body", f"unknown member {name!r}; allowed: {', '.join(allowed)}", field=name
            )
        if name in body:
            raise Problem(422, "invalid_body", f"member {name!r} is given more than once", field=name)
        body[name] = value
    return body


def _is_json_type(content_type: bytes) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters allowed."""
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def refuse_unlabelled_body(headers: list[tuple[bytes, bytes]]) -> None:
    """415 for a request that carries a body (a Content-Length above 0, or chunked) not labelled
    JSON: a browser sends a cross-site form or text/plain POST without asking, never JSON."""
    length, chunked, ctype = b"", False, b""
    for name, value in headers:
        if name == b"content-length":
            length = value.strip().lstrip(b"0")
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type":
            ctype = value
    if (length or chunked) and not _is_json_type(ctype):
        raise Problem(
            415, "unsupported_media_type", "a request body must be JSON (Content-Type: application/json)"
        )


async def json_object(request: Request, allowed: Collection[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` members, each once; an empty body is ``{}``."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    value = parse_json(raw)
    if not isinstance(value, Members):
        raise Problem(422, "invalid_body", "request body must be a JSON object")
    return as_object(value, allowed)


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise Problem(422, "invalid_body", f"{name} must be a string or null", field=name)
    return value
