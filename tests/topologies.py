"""Real multi-server topologies from the bundled binary: a Redis Cluster and a Sentinel group."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.servers import RedisServer, free_ports

NODE_TIMEOUT_MS = 1000  # a failed cluster primary is replaced within a few seconds
DOWN_AFTER_MS = 1000  # the sentinels' view of a failed primary


def cmd(server: RedisServer, *args: str | int) -> Any:
    """One command to one server, on a connection of its own."""
    with redis.Redis(port=server.port, decode_responses=True, socket_timeout=2) as c:
        return c.execute_command(*args)


def until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> float:
    """Wait for ``check``; returns the seconds it took."""
    t0 = time.monotonic()
    last: object = None
    while time.monotonic() < t0 + timeout_s:
        try:
            if check():
                return time.monotonic() - t0
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout_s} s (last error: {last})")


def _live(servers: list[RedisServer]) -> list[RedisServer]:
    return [s for s in servers if s.proc is not None]


class Cluster:
    """``primaries`` primaries (3) with ``replicas`` replica each (1), slots split evenly, on
    free loopback ports."""

    def __init__(self, data_dir: Path, primaries: int = 3, replicas: int = 1) -> None:
        args = ("--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
        n = primaries * (1 + replicas)
        self.shards = primaries
        # the bus port is set too: by default it is port + 10000, past 65535 for ephemeral ports
        ports = free_ports(2 * n)  # distinct: client and bus ports of every node
        self.bus_ports = ports[n:]
        self.nodes = [
            RedisServer(data_dir / f"node-{i}", port, *args, "--cluster-port", str(bus))
            for i, (port, bus) in enumerate(zip(ports[:n], self.bus_ports, strict=True))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[: self.shards])

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        per = -(-16384 // self.shards)
        for i, node in enumerate(self.nodes[: self.shards]):
            cmd(node, "CLUSTER", "ADDSLOTSRANGE", i * per, min(16383, (i + 1) * per - 1))
        for node, bus in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
            cmd(self.nodes[0], "CLUSTER", "MEET", "127.0.0.1", node.port, bus)
        n = len(self.nodes)
        until(lambda: all(len(cmd(x, "CLUSTER", "NODES").splitlines()) == n for x in self.nodes), "meet")
        for i, replica in enumerate(self.nodes[self.shards :]):
            primary = self.nodes[i % self.shards]
            cmd(replica, "CLUSTER", "REPLICATE", cmd(primary, "CLUSTER", "MYID"))
        until(self.healthy, "a healthy cluster")
        return self

    def primaries(self) -> list[RedisServer]:
        return [n for n in _live(self.nodes) if cmd(n, "ROLE")[0] == "master"]

    def healthy(self) -> bool:
        """Every live node says ok, and every primary has a replica attached (if it should)."""
        if any("cluster_state:ok" not in cmd(n, "CLUSTER", "INFO") for n in _live(self.nodes)):
            return False
        primaries = self.primaries()
        with_replicas = len(self.nodes) > self.shards
        return len(primaries) == self.shards and all(
            cmd(p, "ROLE")[2] or not with_replicas for p in primaries
        )

    def serving(self) -> bool:
        """Every slot has a live primary and every live node agrees the cluster is ok."""
        return len(self.primaries()) == self.shards and all(
            "cluster_state:ok" in cmd(n, "CLUSTER", "INFO") for n in _live(self.nodes)
        )

    def flush(self) -> None:
        for node in self.primaries():
            cmd(node, "FLUSHALL")

    def owner_of(self, key: str) -> RedisServer:
        """The primary serving ``key``'s slot now."""
        any_node = self.primaries()[0]
        slot = cmd(any_node, "CLUSTER", "KEYSLOT", key)
        ranges = cmd(any_node, "CLUSTER", "SLOTS")
        port = next(int(r[2][1]) for r in ranges if r[0] <= slot <= r[1])
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for node in _live(self.nodes):
            node.resume()
            node.stop()


class SentinelGroup:
    """A primary, one replica and three sentinels watching them as ``mymaster``."""

    SERVICE = "mymaster"

    def __init__(self, data_dir: Path) -> None:
        ports = free_ports(5)  # distinct
        self.primary = RedisServer(data_dir / "primary", ports[0])
        self.replica = RedisServer(data_dir / "replica", ports[1])
        self.sentinels = [RedisServer(data_dir / f"sentinel-{i}", port) for i, port in enumerate(ports[2:])]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}"

    def start(self) -> SentinelGroup:
        self.primary.start()
        self.replica.extra = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replica.start()
        for s in self.sentinels:
            s.data_dir.mkdir(parents=True, exist_ok=True)
            conf = s.data_dir / "sentinel.conf"
            conf.write_text(
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
            )
            s.start_sentinel(conf)
        until(self.healthy, "sentinels agreeing on a primary with a replica")
        return self

    def current_primary(self) -> RedisServer:
        _, port = cmd(self.sentinels[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE)
        return self.primary if int(port) == self.primary.port else self.replica

    def healthy(self) -> bool:
        """Every sentinel sees the others, a replica, and a primary it does not think is down."""
        for s in self.sentinels:
            reply = cmd(s, "SENTINEL", "MASTER", self.SERVICE)
            fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
            if int(fields["num-other-sentinels"]) < 2 or int(fields["num-slaves"]) < 1:
                return False
            if "s_down" in str(fields["flags"]) or "o_down" in str(fields["flags"]):
                return False
        return True

    def flush(self) -> None:
        primary = self.current_primary()
        cmd(primary, "FLUSHALL")
        cmd(primary, "WAIT", 1, 2000)

    def stop(self) -> None:
        for server in _live([*self.sentinels, self.primary, self.replica]):
            server.resume()
            server.stop()
