"""Remote commands: ``streams list|start|heartbeat|stop|stop-all``, ``limit get|set|clear`` and
``events``, run against a streamlimit service over HTTP with :mod:`streamlimit.client`.

Exit codes: 0 success, 1 the service refused or failed (``streamlimit: <code>: <detail>`` on
stderr), 2 usage errors (argparse), 3 the service cannot be reached (``Unavailable``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from streamlimit import tables
from streamlimit.client import (
    AsyncStreamLimitClient,
    LimitReached,
    OnLimit,
    StreamLimitError,
    TooManyStarts,
    Unavailable,
)

DEFAULT_URL = "http://127.0.0.1:3000"
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

# a command: the client and the parsed arguments -> (what --json prints, what a person reads)
Command = Callable[[AsyncStreamLimitClient, argparse.Namespace], Awaitable[tuple[object, str]]]


async def streams_list(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    s = await c.list(a.user)
    return s, tables.stream_list(s)


async def streams_start(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    on_limit: OnLimit | None = "evict_oldest" if a.evict else None
    s = await c.start(a.user, a.stream_id, a.device, on_limit, device_id=a.device_id, replace=a.replace)
    return s, tables.started(s)


async def streams_heartbeat(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    s = await c.heartbeat(a.user, a.stream)
    return s, tables.renewed(s)


async def streams_stop(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    await c.stop(a.user, a.stream)
    return {"user_id": a.user, "stream_id": a.stream, "stopped": True}, f"stopped {a.stream} for {a.user}"


async def streams_stop_all(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    n = await c.stop_all(a.user)
    plural = "" if n == 1 else "s"
    return {"user_id": a.user, "stopped": n}, f"stopped {n} stream{plural} of {a.user}"


async def limit_get(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    i = await c.get_limit(a.user)
    return i, tables.limit(i)


async def limit_set(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    i = await c.set_limit(a.user, a.limit)
    return i, tables.limit(i)


async def limit_clear(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    i = await c.clear_limit(a.user)
    return i, tables.limit(i)


async def events(c: AsyncStreamLimitClient, a: argparse.Namespace) -> tuple[object, str]:
    evs = await c.events(a.user)
    return {"user_id": a.user, "events": evs}, tables.events(a.user, evs)


def _url(args: argparse.Namespace) -> str | None:
    """The service's base URL, or None when it is not an http(s) URL (a usage error)."""
    url: str = args.url or os.environ.get("STREAMLIMIT_URL") or DEFAULT_URL
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return url if parsed.scheme in ("http", "https") and parsed.host else None


async def _call(command: Command, args: argparse.Namespace, url: str) -> tuple[object, str]:
    token = args.token or os.environ.get("STREAMLIMIT_TOKEN") or None
    api_key = args.api_key or os.environ.get("STREAMLIMIT_API_KEY") or None
    async with AsyncStreamLimitClient(url, token=token, api_key=api_key, timeout=args.timeout) as client:
        return await command(client, args)


def _refusal(exc: StreamLimitError) -> str:
    line = f"streamlimit: {exc.code or exc.status or 'error'}: {exc.detail}"
    if isinstance(exc, LimitReached):
        counted = "devices active" if exc.counts == "devices" else "active"
        line += f"\n{exc.active} of {exc.limit} {counted}:\n{tables.streams_table(exc.streams)}"
    elif isinstance(exc, Unavailable | TooManyStarts) and exc.retry_after_s is not None:
        line += f" (retry after {exc.retry_after_s:g}s)"
    return line


def run(args: argparse.Namespace) -> int:
    """Run the parsed remote command; print its answer (or the error) and return the exit code."""
    command: Command = args.remote
    url = _url(args)
    if url is None:
        print("streamlimit: --url (or STREAMLIMIT_URL) must be an http:// or https:// URL", file=sys.stderr)
        return EXIT_USAGE
    try:
        data, text = asyncio.run(_call(command, args, url))
    except Unavailable as exc:
        if exc.status is None:  # no answer at all: most often the wrong address
            print(
                f"streamlimit: cannot reach the service at {url} ({exc.code}: {exc.detail}); "
                "point --url or STREAMLIMIT_URL at it",
                file=sys.stderr,
            )
        else:
            print(_refusal(exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    except StreamLimitError as exc:
        print(_refusal(exc), file=sys.stderr)
        return EXIT_REFUSED
    print(tables.to_json(data) if args.json else text)
    return EXIT_OK


def _common() -> argparse.ArgumentParser:
    """The options every remote command takes. Secrets default to None here (never shown in
    --help); the environment is read when the command runs."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("service")
    g.add_argument("--url", default=None, help=f"the service (env STREAMLIMIT_URL, default {DEFAULT_URL})")
    g.add_argument("--token", default=None, help="a JWT sent as Bearer (env STREAMLIMIT_TOKEN)")
    g.add_argument("--api-key", default=None, help="an API key sent as X-API-Key (env STREAMLIMIT_API_KEY)")
    g.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    g.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    return p


def add_remote_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``streams``, ``limit`` and ``events`` to the ``streamlimit`` parser's subcommands."""
    common = _common()

    def command(parent: Any, name: str, func: Command, help_: str, *, stream: bool = False) -> Any:
        p = parent.add_parser(name, help=help_, parents=[common])
        p.add_argument("user", metavar="USER", help="the user id")
        if stream:
            p.add_argument("stream", metavar="STREAM_ID", help="the stream id")
        p.set_defaults(func=run, remote=func)
        return p

    streams = sub.add_parser("streams", help="a user's streams on a running service")
    s = streams.add_subparsers(dest="action", required=True)
    command(s, "list", streams_list, "the user's active streams")
    start = command(s, "start", streams_start, "start (or renew) a stream")
    start.add_argument("--stream-id", default=None, help="the stream id (default: the service picks one)")
    start.add_argument("--device", default=None, help="a device label, shown in lists")
    start.add_argument(
        "--device-id",
        default=None,
        help="the player installation's stable id: its older active stream is replaced",
    )
    start.add_argument("--evict", action="store_true", help="at the limit, replace the oldest stream")
    start.add_argument(
        "--replace",
        default=None,
        metavar="STREAM_ID",
        help="stop this stream in the new one's favour (watch here instead of there)",
    )
    command(s, "heartbeat", streams_heartbeat, "renew a stream's lease", stream=True)
    command(s, "stop", streams_stop, "stop a stream", stream=True)
    command(s, "stop-all", streams_stop_all, "stop every stream of the user")

    limit = sub.add_parser("limit", help="a user's stream limit on a running service")
    li = limit.add_subparsers(dest="action", required=True)
    command(li, "get", limit_get, "the user's limit and where it comes from")
    setp = command(li, "set", limit_set, "override the user's limit (admin)")
    setp.add_argument("limit", metavar="N", type=int, help="streams allowed at once (0-1000)")
    command(li, "clear", limit_clear, "remove the user's override (admin)")

    command(sub, "events", events, "the user's audit trail, newest first")
