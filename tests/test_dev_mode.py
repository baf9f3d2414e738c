"""STREAMLIMIT_AUTH=none and the browser and the network: loopback only however the app is started
(a real ``uvicorn --factory`` process bound to 0.0.0.0), loopback Host names only (DNS
rebinding), and v1 bodies labelled JSON (a cross-site form or text/plain POST is a 415)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth_helpers import clean_env
from tests.servers import Service, free_port


def uid() -> str:
    return f"d-{uuid.uuid4().hex[:12]}"


def non_loopback_address() -> str:
    """An address of this machine's that is not loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))  # TEST-NET-1: only the routing table is consulted
        except OSError:
            pytest.skip("this machine has no route off loopback")
        address = str(s.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no address off loopback")
    return address


def _healthz(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def uvicorn_on_all(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """``uvicorn --factory ...create_app_from_env --host 0.0.0.0``: no STREAMLIMIT_HOST to check."""
    port, log = free_port(), tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    app = "streamlimit.api.app:create_app_from_env"
    env = clean_env(STREAMLIMIT_STORE_URL="memory://", STREAMLIMIT_LOG_FORMAT="text")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "0.0.0.0", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _healthz(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield port, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def test_uvicorn_on_all_interfaces_serves_loopback_only(uvicorn_on_all: tuple[int, Path]) -> None:
    port, log = uvicorn_on_all
    address = non_loopback_address()
    user = uid()
    r = httpx.post(f"http://{address}:{port}/v1/users/{user}/streams", json={})
    assert (r.status_code, r.json()["code"]) == (403, "auth_none_off_loopback"), r.text
    assert httpx.get(f"http://{address}:{port}/healthz").status_code == 403
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as local:
        assert local.get(f"/v1/users/{user}/streams").json()["active"] == 0  # nothing was started
        assert local.post(f"/v1/users/{user}/streams", json={}).status_code == 201
    text = log.read_text()
    refusals = [line for line in text.splitlines() if " ERROR " in line and "AUTH=none" in line]
    assert len(refusals) == 1, text  # once per address, naming the address the request reached
    assert f"{address}:{port}" in refusals[0]
    warning = next(line for line in text.splitlines() if " WARNING " in line and "AUTH=none" in line)
    assert "127.0.0.1:3000" not in warning  # the HOST setting's default is not where it listens


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service("memory://", tmp_path_factory.mktemp("dev") / "svc.log").start()
    yield svc
    svc.stop()


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:3000", "127.0.0.1.nip.io", "10.0.0.1"]
)
def test_a_rebound_host_name_is_421(dev: Service, host: str) -> None:
    user = uid()
    with httpx.Client(base_url=dev.url) as c:
        r = c.post(f"/v1/users/{user}/streams", json={}, headers={"host": host})
        assert (r.status_code, r.json()["code"]) == (421, "host_not_loopback"), r.text
        assert c.get(f"/v1/users/{user}/streams", headers={"host": host}).status_code == 421
        assert c.get(f"/v1/users/{user}/streams").json()["active"] == 0


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:3000", "app.localhost:80", "127.0.0.1", "127.1.2.3:9", "[::1]:3000"]
)
def test_loopback_host_names_are_served(dev: Service, host: str) -> None:
    with httpx.Client(base_url=dev.url) as c:
        assert c.post(f"/v1/users/{uid()}/streams", json={}, headers={"host": host}).status_code == 201


def test_insecure_no_auth_serves_any_address_and_host(service_factory: Callable[..., Service]) -> None:
    svc = service_factory("memory://", host="0.0.0.0", insecure_no_auth=1)
    address = non_loopback_address()
    r = httpx.post(
        f"http://{address}:{svc.port}/v1/users/{uid()}/streams", json={}, headers={"host": "sl:3000"}
    )
    assert r.status_code == 201, r.text


CROSS_SITE = {
    "form": ("application/x-www-form-urlencoded", b"stream_id=s"),
    "text/plain JSON": ("text/plain", b'{"stream_id": "s"}'),
    "multipart": (
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--',
    ),
    "no type": (None, b'{"stream_id": "s"}'),
}


@pytest.mark.parametrize(("ctype", "raw"), list(CROSS_SITE.values()), ids=list(CROSS_SITE))
def test_a_v1_body_not_labelled_json_is_415(dev: Service, ctype: str | None, raw: bytes) -> None:
    user = uid()
    headers = {"content-type": ctype} if ctype else {}
    with httpx.Client(base_url=dev.url) as c:
        for method, path in [
            ("POST", f"/v1/users/{user}/streams"),
            ("POST", f"/v1/users/{user}/streams/s/heartbeat"),
            ("PUT", f"/v1/users/{user}/limit"),
            ("DELETE", f"/v1/users/{user}/streams"),
        ]:
            r = c.request(method, path, content=raw, headers=headers)
            assert (r.status_code, r.json()["code"]) == (415, "unsupported_media_type"), (
                method,
                path,
                r.text,
            )
        assert c.get(f"/v1/users/{user}/streams").json()["active"] == 0


@pytest.mark.parametrize(
    "ctype", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_labelled_and_bodiless_v1_requests_are_served(dev: Service, ctype: str) -> None:
    user = uid()
    with httpx.Client(base_url=dev.url) as c:
        r = c.post(
            f"/v1/users/{user}/streams", content=b'{"stream_id": "s"}', headers={"content-type": ctype}
        )
        assert r.status_code == 201, r.text
        assert c.post(f"/v1/users/{user}/streams/s/heartbeat").status_code == 200  # no body, no type
        assert c.post(f"/v1/users/{user}/streams", headers={"content-type": "text/plain"}).status_code == 201
        assert c.get(f"/v1/users/{user}/streams").json()["active"] == 2


def test_compat_routes_keep_accepting_forms(dev: Service) -> None:
    user = uid()
    with httpx.Client(base_url=dev.url) as c:
        assert c.post("/user/stream", data={"userId": user}).status_code == 200
        assert (
            c.post(
                "/user/stream",
                content=f'{{"userId": "{user}"}}'.encode(),
                headers={"content-type": "text/plain"},
            ).status_code
            == 200
        )
        assert c.get("/user/stream", params={"userId": user}).json()["activeStreams"] == 2
