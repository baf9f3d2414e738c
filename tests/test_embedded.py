"""embedded://: a supervised child server with AOF, shared by every process using the same path."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from streamlimit.errors import StoreUnavailable
from streamlimit.models import Limits, Start, StartStatus
from streamlimit.settings import Settings
from streamlimit.store.connect import open_store
from streamlimit.store.embedded import EmbeddedServer, ping_unix
from streamlimit.store.pipelined import PipelinedClient
from streamlimit.store.redis import RedisStore
from tests.servers import Service


def _server_pid(path: Path) -> int:
    """The pid of the valkey-server serving ``path`` (read from INFO server)."""

    async def info() -> int:
        client = PipelinedClient.from_url(f"unix://{path / 'valkey.sock'}", 2.0)
        try:
            info: str = await client.execute("INFO", "server")
            return int(info.split("process_id:", 1)[1].split()[0])
        finally:
            await client.aclose()

    return asyncio.run(info())


def test_stores_on_one_path_share_one_server_until_the_last_leaves(tmp_path: Path) -> None:
    settings = Settings(store_url=f"embedded://{tmp_path}")
    sock = tmp_path / "valkey.sock"

    async def main() -> None:
        first, second = await open_store(settings), await open_store(settings)
        try:
            assert (
                await first.start("u", "a", None, 60_000, Limits(1), Start())
            ).status is StartStatus.ADMITTED
            assert (
                await second.start("u", "b", None, 60_000, Limits(1), Start())
            ).status is StartStatus.REFUSED
        finally:
            await first.close()  # the process that started the server leaves first
        try:
            assert await ping_unix(sock)
            assert (await second.list("u", Limits(1))).active == 1
        finally:
            await second.close()
        assert not await ping_unix(sock)  # the last user shut it down
        assert not EmbeddedServer(tmp_path).server_alive()

    asyncio.run(main())


def test_a_stale_pid_or_socket_file_does_not_stop_a_start(tmp_path: Path) -> None:
    (tmp_path / "valkey.sock").write_text("not a socket")
    (tmp_path / "valkey.pid").write_text(str(os.getpid()))  # a live, unrelated pid

    async def main() -> None:
        store = await open_store(Settings(store_url=f"embedded://{tmp_path}"))
        try:
            await store.ping()
        finally:
            await store.close()

    asyncio.run(main())


def test_an_embedded_server_that_cannot_start_is_an_outage_not_a_crash(tmp_path: Path) -> None:
    settings = Settings(store_url=f"embedded://{tmp_path}", embedded_server_bin="false")

    async def main() -> None:
        store = await open_store(settings)
        try:
            with pytest.raises(StoreUnavailable):
                await store.ping()
        finally:
            await store.close()

    asyncio.run(main())


def test_leases_survive_a_clean_restart_from_the_aof(tmp_path: Path) -> None:
    settings = Settings(store_url=f"embedded://{tmp_path}")

    async def admit() -> None:
        store = await open_store(settings)
        await store.start("u", "a", "tv", 60_000, Limits(3), Start())
        await store.set_limit("u", 7, Limits(3))
        await store.close()

    async def reopen() -> tuple[list[str], int]:
        store = await open_store(settings)
        try:
            listed = await store.list("u", Limits(3))
            return [s.stream_id for s in listed.streams], listed.limit
        finally:
            await store.close()

    asyncio.run(admit())
    assert (tmp_path / "appendonlydir").is_dir()
    assert asyncio.run(reopen()) == (["a"], 7)


def test_the_supervisor_restarts_a_killed_server(tmp_path: Path) -> None:
    async def main() -> None:
        server = EmbeddedServer(tmp_path)
        await server.join()
        server.supervise(interval_s=0.1)
        store = RedisStore(PipelinedClient.from_url(server.url, 0.5), server.aclose)
        try:
            await store.start("u", "a", None, 60_000, Limits(3), Start())
            await asyncio.sleep(1.1)  # the AOF is fsynced every second
            os.kill(await asyncio.to_thread(_server_pid, tmp_path), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    listed = await store.list("u", Limits(3))
                    break
                except Exception:  # StoreUnavailable while it restarts
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("embedded server not restarted within 5 s")
            assert [s.stream_id for s in listed.streams] == ["a"]
        finally:
            await store.close()

    asyncio.run(main())


def test_workers_of_one_service_share_the_embedded_store(
    tmp_path: Path, service_factory: Callable[..., Service]
) -> None:
    svc = service_factory(f"embedded://{tmp_path / 'store'}", workers=2)

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=svc.url, limits=limits, timeout=10) as client:
            replies = await asyncio.gather(
                *(client.post("/v1/users/w/streams", json={"stream_id": f"s{i}"}) for i in range(60))
            )
        return [r.status_code for r in replies]

    codes = asyncio.run(burst())
    assert codes.count(201) == 3
    assert codes.count(409) == 57
    assert httpx.get(f"{svc.url}/v1/users/w/streams").json()["active"] == 3
