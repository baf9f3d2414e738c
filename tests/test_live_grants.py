"""Grants on live channels: the opening event and every renewed event carry a new grant bound to
the lease (its epoch, its latest expiry), verified against the service's JWKS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import jwt

from streamlimit.client import AsyncStreamLimitClient
from tests.grant_helpers import AUDIENCE, ISSUER, write_key
from tests.servers import Service
from tests.sse import open_channel


def test_renewed_events_carry_a_fresh_grant_of_the_lease(
    redis_url: str, tmp_path: Path, service_factory: Callable[..., Service]
) -> None:
    key = write_key(tmp_path / "ed.pem")
    svc = service_factory(redis_url, grant_key_file=key, lease_ttl_s=2, heartbeat_interval_s=0.3)
    with httpx.Client(base_url=svc.url, timeout=5) as c:
        started = c.post("/v1/users/gina/streams", json={"stream_id": "tv"}).json()
        signing = jwt.PyJWKClient(f"{svc.url}/.well-known/jwks.json")
        seen = set()
        with open_channel(c, "gina", "tv") as ch:
            for _ in range(3):  # the opening event, then two batch renewals
                f = ch.event()
                assert f.event == "renewed"
                token = f.data["grant"]
                claims = jwt.decode(
                    token, signing.get_signing_key_from_jwt(token).key, algorithms=["EdDSA"],
                    audience=AUDIENCE, issuer=ISSUER,
                )  # fmt: skip
                assert (claims["sub"], claims["sid"], claims["epoch"], claims["lim"]) == (
                    "gina", "tv", started["epoch"], 3,
                )  # fmt: skip
                expires = datetime.fromisoformat(f.data["expires_at"]).timestamp()
                assert claims["exp"] <= expires < claims["exp"] + 1  # never later than the lease
                seen.add(claims["jti"])
        assert len(seen) == 3


def test_a_live_client_lease_gets_each_renewal_s_grant(
    redis_url: str, tmp_path: Path, service_factory: Callable[..., Service]
) -> None:
    key = write_key(tmp_path / "ed.pem")
    svc = service_factory(redis_url, grant_key_file=key, lease_ttl_s=2, heartbeat_interval_s=0.3)
    grants: list[str] = []

    async def hold() -> None:
        async with (
            AsyncStreamLimitClient(svc.url) as client,
            client.stream("hank", "tv", live=True, on_grant=grants.append) as lease,
        ):
            await asyncio.sleep(1.0)  # the start's grant, the channel's opening one, then renewals'
            assert lease.grant == grants[-1]

    asyncio.run(hold())
    assert len(set(grants)) >= 4, grants
