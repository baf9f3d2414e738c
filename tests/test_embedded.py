"""embedded://: a supervised child server with AOF, shared by every process using the same path."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from streamlimit.models import StartStatus
from streamlimit.settings import Settings
from streamlimit.store.connect import open_store, redis_client
from streamlimit.store.embedded import EmbeddedServer, ping_unix
from streamlimit.store.redis import RedisStore
from tests.servers import Service


def _server_pid(path: Path) -> int:
    """The pid of the valkey-server serving ``path`` (read from INFO server)."""

    async def info() -> int:
        client = redis_client(f"unix://{path / 'valkey.sock'}", Settings(store_url="memory://"))
        try:
            return int((await client.info("server"))["process_id"])
        finally:
            await client.aclose()

    return asyncio.run(info())


def test_two_stores_on_one_path_share_one_server(tmp_path: Path) -> None:
    settings = Settings(store_url=f"embedded://{tmp_path}")

    async def main() -> None:
        first, second = await open_store(settings), await open_store(settings)
        try:
            assert (await first.start("u", "a", None, 60_000, 1)).status is StartStatus.ADMITTED
            assert (await second.start("u", "b", None, 60_000, 1)).status is StartStatus.REFUSED
        finally:
            await second.close()
            await first.close()

    asyncio.run(main())
    assert not asyncio.run(ping_unix(tmp_path / "valkey.sock"))  # the owner stopped it


def test_leases_survive_a_clean_restart_from_the_aof(tmp_path: Path) -> None:
    settings = Settings(store_url=f"embedded://{tmp_path}")

    async def admit() -> None:
        store = await open_store(settings)
        await store.start("u", "a", "tv", 60_000, 3)
        await store.set_limit("u", 7, 3)
        await store.close()

    async def reopen() -> tuple[list[str], int]:
        store = await open_store(settings)
        try:
            listed = await store.list("u", 3)
            return [s.stream_id for s in listed.streams], listed.limit
        finally:
            await store.close()

    asyncio.run(admit())
    assert (tmp_path / "appendonlydir").is_dir()
    assert asyncio.run(reopen()) == (["a"], 7)


def test_the_supervisor_restarts_a_killed_server(tmp_path: Path) -> None:
    async def main() -> None:
        server = EmbeddedServer(tmp_path)
        await server.ensure_running()
        server.supervise(interval_s=0.1)
        store = RedisStore(redis_client(server.url, Settings(store_url="memory://")), 0.5, server.aclose)
        try:
            await store.start("u", "a", None, 60_000, 3)
            await asyncio.sleep(1.1)  # the AOF is fsynced every second
            os.kill(await asyncio.to_thread(_server_pid, tmp_path), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    listed = await store.list("u", 3)
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
