"""Fixtures: real Redis-protocol servers and real service processes, all on free loopback ports."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import RedisServer, Service
from tests.topologies import Cluster, SentinelGroup

# modules whose every test is slow: make test runs them, make test-quick (-m "not slow") does not
SLOW_MODULES = {
    "test_schemathesis.py": "fuzzes every operation against real services",
    "test_contention.py": "many processes racing on one store",
    "test_faults.py": "kills and pauses stores and services under load",
    "test_failover.py": "kills Cluster and Sentinel primaries under load",
    "test_faults_store.py": "crashes and restarts stores",
    "test_outage.py": "stores down and paused, waited out in real time",
    "test_topologies.py": "Cluster and Sentinel",
    "test_storm.py": "18 s of storm",
    "test_hostile.py": "slow and hostile clients, cut by real timeouts",
    "test_embedded.py": "starts, kills and restarts embedded servers",
    "test_live_faults.py": "kills and restarts stores and services under live channels",
    "test_live_topologies.py": "live channels on Cluster and Sentinel",
    "test_webhook_cluster.py": "Cluster",
}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m "not slow"`` the slow modules are not even imported (schemathesis builds its
    cases at collection): the same selection, a few seconds less per xdist worker."""
    if config.option.markexpr == "not slow" and collection_path.name in SLOW_MODULES:
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow modules' tests are marked slow. Every test must have its own node id:
    pytest-xdist (``make test``) schedules by node id and runs a duplicate once. schemathesis
    names each operation's item ``test_api[POST /path]`` but, without a parametrize callspec,
    leaves every one the node id ``...::test_api``: such an item gets the id its name says."""
    seen: set[str] = set()
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if item.nodeid.rpartition("::")[2] != item.name and item.parent is not None:
            item._id = item.parent.id.child(item.name)  # pytest 9's structured node id
        assert item.nodeid not in seen, f"two tests share the node id {item.nodeid}"
        seen.add(item.nodeid)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One valkey-server for the session, started from the bundled binary."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server, emptied for this test."""
    redis_server.command("FLUSHALL")
    return redis_server.url


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 6-node Redis Cluster (3 primaries, 3 replicas) for the session; tests must not break it."""
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A primary, a replica and 3 sentinels for the session; tests must not break it."""
    g = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        yield g.start()
    finally:
        g.stop()


def redis_binary() -> str:
    """Debian's redis-server (Redis 7), beside the bundled Valkey: the rules are checked on both."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("Debian's redis-server is not installed (apt-get install redis-server; .ci/run does)")
    return found


@pytest.fixture(scope="session")
def redis7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis 7 server (Debian's redis-server) for the session."""
    server = RedisServer(tmp_path_factory.mktemp("redis7"), binary=redis_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["valkey", "redis"])
def any_private_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, once bundled Valkey and once Redis 7."""
    binary = None if request.param == "valkey" else redis_binary()
    server = RedisServer(tmp_path / "private-store", binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[RedisServer]:
    """A valkey-server of this test's own, to stop, kill or pause; left resumed and stopped."""
    server = RedisServer(tmp_path / "private-store")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.resume()  # a stopped (SIGSTOP) process would not act on SIGTERM
        server.stop()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start ``streamlimit serve`` processes; all are stopped at the end of the test."""
    started: list[Service] = []

    def start(store_url: str, **settings: object) -> Service:
        service = Service(store_url, tmp_path / f"service-{len(started)}.log", **settings)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()
