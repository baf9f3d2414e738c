"""The two downstream integrations of examples/, each started for real: the licence server, and
the edge gate (Debian's nginx with auth_request to the grant verifier) in front of media files.

Each is fed real grants from a real `streamlimit serve`: a valid one is honoured, none and an
expired one are refused, and a device evicted by "watch here instead" is refused once the device
that took its place has been seen. The nginx test is skipped when nginx is not installed
(apt-get install nginx; .ci/run does)."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamlimit.grants.issuer import GrantIssuer
from streamlimit.grants.keys import load_keys
from tests.grant_helpers import AUDIENCE, ISSUER, lease, write_key
from tests.servers import RedisServer, Service, _wait, free_port

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
SEGMENT = b"\x47" + bytes(187)  # one MPEG-TS packet


def uid() -> str:
    return f"x-{uuid.uuid4().hex[:12]}"


class Process:
    """A process of the test's own, in its own session, answering HTTP on ``port`` once up."""

    def __init__(self, args: list[str], log: Path, port: int, ready_path: str) -> None:
        self.port, self.log = port, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: self._answers(ready_path), f"{args[0]} on :{port} (log: {log})", 20)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self, path: str) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"exited with {self.proc.returncode}: {self.log.read_text()}")
        try:
            httpx.get(f"{self.url}{path}", timeout=0.5)
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("example-keys") / "grant.pem")


@pytest.fixture(scope="module")
def streamlimit(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, key_file: Path
) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("examples-service") / "svc.log"
    svc = Service(redis_server.url, log, grant_key_file=key_file, start_rate_per_min=0).start()
    yield svc
    svc.stop()


def example(script: str, tmp_path: Path, jwks: str, ready_path: str) -> Process:
    port = free_port()
    args = [sys.executable, str(EXAMPLES / script), "--port", str(port), "--jwks", jwks]
    return Process(args, tmp_path / f"{Path(script).stem}.log", port, ready_path)


def user_at_limit_1(svc: Service) -> str:
    user = uid()
    assert httpx.put(f"{svc.url}/v1/users/{user}/limit", json={"limit": 1}, timeout=5).status_code == 200
    return user


def grant(svc: Service, user: str, stream: str, evict: bool = False) -> str:
    params = {"on_limit": "evict_oldest"} if evict else None
    r = httpx.post(f"{svc.url}/v1/users/{user}/streams", json={"stream_id": stream}, params=params, timeout=5)
    assert r.status_code == 201, r.text
    token: str = r.json()["grant"]
    return token


def expired_grant(key_file: Path, user: str) -> str:
    """A grant signed with the service's own key for a lease that ended an hour ago."""
    issuer = GrantIssuer(load_keys(str(key_file)), ISSUER, AUDIENCE, 90)
    token = issuer.grant(lease(user, "old", epoch=1, expires_ms=int(time.time() - 3600) * 1000), 1)
    assert token is not None
    return token


def test_the_licence_server_serves_keys_only_for_valid_grants(
    streamlimit: Service, key_file: Path, tmp_path: Path
) -> None:
    server = example(
        "licence-server/licence_server.py", tmp_path, f"{streamlimit.url}/.well-known/jwks.json", "/"
    )
    try:

        def licence(token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.post(f"{server.url}/licence/movie-1", headers=headers, timeout=10)

        user = user_at_limit_1(streamlimit)
        a = grant(streamlimit, user, "device-a")
        got = licence(a)
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        assert (body["content_id"], body["user_id"], len(body["key"])) == ("movie-1", user, 32)
        b = grant(streamlimit, user, "device-b", evict=True)  # "watch here instead" on device B
        assert licence(b).json()["key"] == body["key"]
        refused = licence(a)  # A's grant has not expired, but B's is newer
        assert (refused.status_code, refused.json()["refused"]) == (403, "fenced")
        assert licence(None).status_code == 401
        old = licence(expired_grant(key_file, uid()))
        assert (old.status_code, old.json()["refused"]) == (403, "expired")
        assert licence("garbage").json()["refused"] == "malformed"
    finally:
        server.stop()
    assert "Traceback" not in server.log.read_text()


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip("Debian's nginx is not installed (apt-get install nginx; .ci/run does)")
    return found


def render_nginx_conf(prefix: Path, port: int, verifier: str, media_root: Path) -> Path:
    """examples/edge-gate/nginx.conf.template with its values: everything under ``prefix``."""
    text = (EXAMPLES / "edge-gate" / "nginx.conf.template").read_text()
    # as root, nginx's workers would run as nobody, who cannot read the test's private folders
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    values = {"PREFIX": prefix, "PORT": port, "VERIFIER": verifier, "MEDIA_ROOT": media_root, "USER": user}
    for name, value in values.items():
        text = text.replace(f"{{{{{name}}}}}", str(value))
    assert re.search(r"\{\{[A-Z_]+\}\}", text) is None, "a value of the template is not filled in"
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


@pytest.fixture
def edge(streamlimit: Service, tmp_path: Path) -> Iterator[str]:
    """nginx on a free port, gating tmp_path/www/media/ with the edge verifier: its base URL."""
    binary = nginx_binary()
    verifier = example(
        "edge-gate/edge_verifier.py", tmp_path, f"{streamlimit.url}/.well-known/jwks.json", "/auth"
    )
    nginx: Process | None = None
    try:
        media = tmp_path / "www" / "media"
        media.mkdir(parents=True)
        (media / "seg1.ts").write_bytes(SEGMENT)
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        port = free_port()
        conf = render_nginx_conf(prefix, port, f"127.0.0.1:{verifier.port}", tmp_path / "www")
        args = [
            binary,
            "-p",
            str(prefix),
            "-e",
            str(prefix / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
        ]
        nginx = Process(args, prefix / "stdout.log", port, "/")
        yield nginx.url
    finally:
        if nginx is not None:
            nginx.stop()
        verifier.stop()
    assert "Traceback" not in verifier.log.read_text()


def test_the_edge_gate_serves_segments_only_for_valid_grants(
    streamlimit: Service, key_file: Path, edge: str
) -> None:
    def fetch(token: str | None = None, how: str = "query") -> httpx.Response:
        url = f"{edge}/media/seg1.ts"
        if token is None:
            return httpx.get(url, timeout=10)
        if how == "query":
            return httpx.get(url, params={"grant": token}, timeout=10)
        if how == "cookie":
            return httpx.get(url, headers={"Cookie": f"grant={token}"}, timeout=10)
        return httpx.get(url, headers={"X-Playback-Grant": token}, timeout=10)

    user = user_at_limit_1(streamlimit)
    a = grant(streamlimit, user, "device-a")
    for how in ("query", "header", "cookie"):
        ok = fetch(a, how)
        assert (ok.status_code, ok.content) == (200, SEGMENT), (how, ok.text)
    assert ok.headers["content-type"] == "video/mp2t"
    assert fetch().status_code == 401
    expired = fetch(expired_grant(key_file, uid()))
    assert (expired.status_code, expired.headers.get("x-grant-refused")) == (403, "expired")
    assert fetch("garbage").status_code == 403
    b = grant(streamlimit, user, "device-b", evict=True)
    assert fetch(a).status_code == 200  # the edge has not seen device B yet
    assert fetch(b).status_code == 200
    evicted = fetch(a)
    assert (evicted.status_code, evicted.headers.get("x-grant-refused")) == (403, "fenced")
    assert fetch(b).status_code == 200
