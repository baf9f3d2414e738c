"""Real servers for tests: a Redis-protocol server (the bundled valkey-server) and the service."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from streamlimit.store.embedded import server_binary

# polls services starting up; plain HTTP, no connection kept between polls
_PROBE = httpx.Client(timeout=0.5, limits=httpx.Limits(max_keepalive_connections=0))


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: every socket stays bound until all are chosen, so the
    kernel cannot hand the same port out twice."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait(check: object, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not come up within {timeout_s} s")


class RedisServer:
    """valkey-server (or ``binary``, e.g. Debian's redis-server) on a loopback port; may be
    stopped, killed, paused and started again."""

    def __init__(
        self, data_dir: Path, port: int | None = None, *extra: str, binary: str | None = None
    ) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.extra = extra
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary or server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(self.data_dir / "server.log"),
            *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
        _wait(self.answers, f"{Path(self.binary or server_binary()).name} on :{self.port}")

    def start_sentinel(self, conf: Path) -> None:
        """Run as a Sentinel with the (writable) config file ``conf``."""
        args = [server_binary(), str(conf), "--sentinel", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--logfile", str(self.data_dir / "sentinel.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
        _wait(self.answers, f"sentinel on :{self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one inline command and return the raw first reply chunk."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(65536)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


class Service:
    """``streamlimit serve`` in its own process on a free port."""

    def __init__(self, store_url: str, log_path: Path, **settings: object) -> None:
        self.port = free_port()
        self.store_url = store_url
        self.log_path = log_path
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIMIT_")}
        env["STREAMLIMIT_LOG_FORMAT"] = "text"  # the tests read the log lines; test_observe checks json
        env |= {f"STREAMLIMIT_{k.upper()}": str(v) for k, v in self.settings.items()}
        env |= {"STREAMLIMIT_PORT": str(self.port), "STREAMLIMIT_STORE_URL": self.store_url}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlimit.cli", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(self.healthy, f"streamlimit on :{self.port} (log: {self.log_path})", 30)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"service exited with {self.proc.returncode}: {self.log_path.read_text()}")
        try:  # one client for every poll: httpx.get builds a TLS context each call (~40 ms of CPU)
            return _PROBE.get(f"{self.url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


@contextmanager
def client_of_new_service(store_url: str, log_dir: Path, **settings: object) -> Iterator[httpx.Client]:
    """A service started for the block, and a client bound to it."""
    svc = Service(store_url, log_dir / "svc.log", **settings).start()
    try:
        with httpx.Client(base_url=svc.url, timeout=5) as c:
            yield c
    finally:
        svc.stop()
