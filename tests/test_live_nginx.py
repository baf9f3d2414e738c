"""compose's nginx (deploy/compose/nginx.conf, Debian's nginx) in front of two services: a live
channel passes through it unbuffered: each comment as it comes, an eviction within the bound."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Service, free_port
from tests.sse import open_channel

CONF = Path(__file__).parent.parent / "deploy" / "compose" / "nginx.conf"


@pytest.fixture
def nginx(tmp_path: Path, redis_url: str, service_factory: Callable[..., Service]) -> Iterator[str]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("Debian's nginx is not installed (apt-get install nginx; .ci/run does)")
    a = service_factory(redis_url, live_keepalive_s=0.5, start_rate_per_min=0)
    b = service_factory(redis_url, live_keepalive_s=0.5, start_rate_per_min=0)
    port = free_port()
    site = CONF.read_text()
    site = site.replace("streamlimit-a:3000", f"127.0.0.1:{a.port}").replace(
        "streamlimit-b:3000", f"127.0.0.1:{b.port}"
    )
    site = re.sub(r"listen 3000;", f"listen 127.0.0.1:{port};", site)
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path}/body;\n"
        f"proxy_temp_path {tmp_path}/proxy;\n"
        f"{site}\n}}\n"
    )
    proc = subprocess.Popen(
        [binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=0.5)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, (tmp_path / "logs" / "error.log").read_text()
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_live_channel_passes_through_the_load_balancer_unbuffered(nginx: str) -> None:
    with httpx.Client(base_url=nginx, timeout=5) as c:
        assert c.post("/v1/users/alice/streams", json={"stream_id": "tv"}).status_code == 201
        with open_channel(c, "alice", "tv") as ch:
            assert ch.event().event == "renewed"
            comment = ch.frame()  # a comment every 0.5 s, each passed on as it comes
            assert comment.comment == "keepalive"
            sent = time.monotonic()  # through either instance (round robin): the kick reaches both
            r = c.post("/v1/users/alice/streams", json={"stream_id": "phone"}, params={"replace": "tv"})
            assert r.status_code == 201
            f = ch.event()
            while f.event == "renewed":
                f = ch.event()
            assert (f.event, f.data["replaced_by"]) == ("evicted", "phone")
            assert f.at - sent < 0.25
