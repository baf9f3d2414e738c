"""The pipelined store client against a real valkey-server: ordering, errors, reconnects, URLs."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

from streamlimit.errors import ConfigurationError, StoreUnavailable
from streamlimit.models import Limits, Start
from streamlimit.store.endpoint import endpoint
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore
from streamlimit.store.resp import ReplyError
from tests.servers import RedisServer


def _clients(info: str) -> int:
    return sum(1 for line in info.splitlines() if "cmd=" in line)


def test_concurrent_calls_share_one_connection_and_each_gets_its_own_reply(redis_url: str) -> None:
    async def main() -> None:
        client = PipelinedClient.from_url(redis_url, 2.0)
        try:
            replies = await asyncio.gather(*(client.execute("ECHO", f"m{i}") for i in range(2000)))
            assert replies == [f"m{i}" for i in range(2000)]
            # the CLIENT LIST call itself is the only connection this client holds
            assert _clients(await client.execute("CLIENT", "LIST", "TYPE", "normal")) == 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_cancelled_and_failed_calls_do_not_shift_the_replies_of_others(redis_url: str) -> None:
    async def main() -> None:
        client = PipelinedClient.from_url(redis_url, 2.0)
        try:
            tasks = [asyncio.ensure_future(client.execute("ECHO", f"m{i}")) for i in range(300)]
            await asyncio.sleep(0)  # every command is queued
            for t in tasks[::3]:
                t.cancel()
            bad = [client.execute("INCR", "not-a-number-key", "extra") for _ in range(5)]
            done = await asyncio.gather(*tasks, *bad, return_exceptions=True)
            for i, result in enumerate(done[:300]):
                expected = asyncio.CancelledError if i % 3 == 0 else str
                assert isinstance(result, expected), (i, result)
                if isinstance(result, str):
                    assert result == f"m{i}"
            assert all(isinstance(r, ReplyError) for r in done[300:])
            assert await client.execute("ECHO", "after") == "after"
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_connection_the_server_drops_is_replaced_on_the_next_call(redis_url: str) -> None:
    async def main() -> None:
        client = PipelinedClient.from_url(redis_url, 2.0)
        try:
            assert await client.execute("PING") == "PONG"
            await client.execute("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
            await asyncio.sleep(0.05)  # the close reaches the client
            assert await client.execute("PING") == "PONG"
        finally:
            await client.aclose()

    asyncio.run(main())


def test_several_connections_are_used_in_turn(redis_url: str) -> None:
    async def main() -> None:
        client = PipelinedClient.from_url(redis_url, 2.0, connections=3)
        try:
            await asyncio.gather(*(client.execute("PING") for _ in range(30)))
            assert _clients(await client.execute("CLIENT", "LIST", "TYPE", "normal")) == 3
        finally:
            await client.aclose()

    asyncio.run(main())


def test_no_server_is_store_unavailable_fast(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = PipelinedClient.from_url("redis://127.0.0.1:1/0", 0.5)
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            await client.execute("PING")
        await client.aclose()

    asyncio.run(main())


def test_a_call_with_little_time_left_waits_no_longer_for_a_connection() -> None:
    """A server that accepts TCP but never answers the connection's set-up (here: ROLE): a call
    given 0.1 s of a caller's deadline (the cluster client's retries) fails after 0.1 s, not
    after the client's whole 2 s timeout, and sends nothing."""

    async def main() -> None:
        silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
        port = silent.getsockname()[1]
        client = PipelinedClient(endpoint(f"redis://127.0.0.1:{port}/0")[0], 2.0, primary_only=True)
        try:
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailable, match="no store connection"):
                await client.execute("PING", timeout_s=0.1)
            assert time.monotonic() - t0 < 1.0
        finally:
            await client.aclose()
            silent.close()

    asyncio.run(main())


def test_password_and_database_from_the_url(private_store: RedisServer) -> None:
    private_store.command("CONFIG", "SET", "requirepass", "s3cret")
    base = f"127.0.0.1:{private_store.port}"

    async def main() -> None:
        client = PipelinedClient.from_url(f"redis://:s3cret@{base}/2", 1.0)
        try:
            await client.execute("SET", "where", "db2")
            assert await client.execute("GET", "where") == "db2"
            await client.execute("SELECT", 0)  # on this client's one connection
            assert await client.execute("GET", "where") is None
        finally:
            await client.aclose()
        wrong = PipelinedClient.from_url(f"redis://:nope@{base}/0", 1.0)
        with pytest.raises(StoreUnavailable) as info:
            await wrong.execute("PING")
        assert "WRONGPASS" in str(info.value)
        assert "nope" not in str(info.value)
        await wrong.aclose()

    asyncio.run(main())


def test_unknown_url_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="socket_keepalive"):
        PipelinedClient.from_url("redis://127.0.0.1:6379/0?socket_keepalive=1", 1.0)
    with pytest.raises(ConfigurationError, match="ssl_cert_reqs"):
        PipelinedClient.from_url("rediss://127.0.0.1:6379/0?ssl_cert_reqs=maybe", 1.0)


def test_a_store_that_forgot_its_scripts_reloads_them(redis_url: str) -> None:
    async def main() -> None:
        store = RedisStore(PipelinedClient.from_url(redis_url, 2.0))
        try:
            await store.load_scripts()
            await store.start("u", "a", None, 60_000, Limits(3), Start())
            await store._client.execute("SCRIPT", "FLUSH")  # as after a restart or failover
            assert [s.stream_id for s in (await store.list("u", Limits(3))).streams] == ["a"]
            assert await store._client.execute("SCRIPT", "EXISTS", store._shas["list"]) == [1]
        finally:
            await store.close()

    asyncio.run(main())


@asynccontextmanager
async def tls_proxy(ca: trustme.CA, target_port: int) -> AsyncIterator[int]:
    """A TLS terminator in front of the plain server (the bundled binary is built without TLS)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_rediss_verifies_the_server_certificate(redis_server: RedisServer, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def main() -> None:
        async with tls_proxy(ca, redis_server.port) as port:
            trusted = PipelinedClient.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca_file}", 2.0)
            try:
                assert await trusted.execute("ECHO", "over tls") == "over tls"
            finally:
                await trusted.aclose()
            untrusted = PipelinedClient.from_url(f"rediss://127.0.0.1:{port}/0", 2.0)  # system CAs only
            with pytest.raises(StoreUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.execute("PING")
            await untrusted.aclose()

    asyncio.run(main())


def test_one_slow_call_on_an_idle_connection_keeps_it_and_a_silent_peer_loses_it(
    private_store: RedisServer,
) -> None:
    """A call that times out on a connection that was idle before is a slow call: the connection
    stays (its late reply is skipped). Calls owed for a whole timeout with nothing back: dropped."""

    async def main() -> None:
        client = PipelinedClient.from_url(private_store.url, 0.2)
        try:
            assert await client.execute("PING") == "PONG"
            first = client._conns[0]
            assert first is not None
            await asyncio.sleep(0.3)  # idle for longer than a timeout
            private_store.pause()
            with pytest.raises(StoreUnavailable, match="timed out"):
                await client.execute("PING")
            private_store.resume()
            assert await client.execute("ECHO", "same connection") == "same connection"
            assert client._conns[0] is first
            assert first.lost is None
            private_store.pause()  # now silent while owing: two calls, the second 0.1 s later
            calls = [asyncio.ensure_future(client.execute("PING"))]
            await asyncio.sleep(0.1)
            calls.append(asyncio.ensure_future(client.execute("PING")))
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, StoreUnavailable) for r in results), results
            assert first.lost is not None  # dropped: a dead peer
        finally:
            private_store.resume()
            await client.aclose()

    asyncio.run(main())
