"""The processes the bench runs: a valkey-server and ``streamlimit serve``, on loopback only.

Everything started here is registered in ``Processes`` and stopped by ``Processes.close``,
which ``bench.__main__`` calls in a ``finally`` (also on KeyboardInterrupt and errors).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from streamlimit.store.embedded import server_binary

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not come up within {timeout_s:.0f} s")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on (the name may hold spaces)


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of one process (all its threads); with ``children``, of its reaped children too."""
    try:
        f = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
    if children:
        ticks += int(f[13]) + int(f[14])  # cutime, cstime
    return ticks / CLK_TCK


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = int(_stat_fields(int(entry))[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += frontier
    return found


def tree_cpu_seconds(root: int) -> float:
    return sum(cpu_seconds(pid) for pid in descendants(root))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, already counted in user
    return float(total - idle), float(total)


class Proc:
    """A child in its own session, so it and its children can be signalled as a group."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass


class Processes:
    """Registry of everything the bench started; ``close`` stops them, newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[Proc] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, self.workdir / f"{name}.log", env)
        self._procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self._procs:
            self._procs.remove(proc)

    def close(self) -> None:
        while self._procs:
            self._procs.pop().stop()


class Valkey:
    """The bundled valkey-server on a loopback port; ``aof`` as documented for production."""

    def __init__(self, procs: Processes, name: str, aof: bool, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.aof = aof
        data = procs.workdir / name
        data.mkdir(parents=True, exist_ok=True)
        config = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(data),
            "save": "",
            "appendonly": "yes" if aof else "no",
            "appendfsync": "everysec",
            "logfile": str(data / "server.log"),
        }
        args = [server_binary(), *(a for k, v in config.items() for a in (f"--{k}", v)), *extra]
        self.proc = procs.start(name, args)
        wait_for(self.answers, f"valkey-server on :{self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid, children=True)  # with its AOF rewrite children

    def wait_synced(self) -> None:
        """A replica: wait until its link to the primary is up."""

        def synced() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"INFO replication\r\n")
                return b"master_link_status:up" in s.recv(4096)

        wait_for(synced, f"replica on :{self.port} in sync")

    def answers(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError(f"valkey-server exited with {self.proc.popen.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class Service:
    """``streamlimit serve`` with ``workers`` workers, pointed at ``store_url``."""

    def __init__(self, procs: Processes, store_url: str, workers: int, **settings: object) -> None:
        self.port = free_port()
        self.workers = workers
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIMIT_")}
        values = {**settings, "store_url": store_url, "workers": workers, "port": self.port}
        env |= {f"STREAMLIMIT_{k.upper()}": str(v) for k, v in values.items()}
        args = [sys.executable, "-m", "streamlimit.cli", "serve", "--host", "127.0.0.1"]
        self.proc = procs.start(f"service-{workers}w", args, env)
        wait_for(self.ready, f"streamlimit serve on :{self.port}")
        # every worker must be up before measuring (uvicorn's supervisor + `workers` children)
        wait_for(lambda: workers == 1 or len(self.worker_pids()) >= workers, "all workers")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the supervisor's Python children, or itself."""
        if self.workers == 1:
            return [self.proc.pid]
        pids = descendants(self.proc.pid)[1:]
        return [p for p in pids if _is_worker(p)]

    def cpu(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def ready(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError(f"streamlimit serve exited with {self.proc.popen.returncode}")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:  # noqa: S310 (loopback)
                return bool(r.status == 200)
        except OSError:
            return False


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return b"multiprocessing" in cmd and b"spawn_main" in cmd and b"resource_tracker" not in cmd


@contextmanager
def temporary_processes(prefix: str) -> Iterator[Processes]:
    """A ``Processes`` in a fresh temporary folder: everything started is stopped, the folder removed."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        procs = Processes(Path(tmp))
        try:
            yield procs
        finally:
            procs.close()
