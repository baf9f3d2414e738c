"""Live channels on a Cluster (sharded pub/sub on the node of each user's slot, renewals grouped
by slot) and on Sentinel (the subscription follows the primary): two services, channels held by
one, evictions made through the other, users on every Cluster primary."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from redis.crc import key_slot

from streamlimit.store.keys import user_keys
from tests.servers import Service
from tests.sse import open_channel
from tests.topologies import Cluster, SentinelGroup

FAST = {"lease_ttl_s": 2, "heartbeat_interval_s": 0.2, "start_rate_per_min": 0}


def users_on_every_primary(shards: int) -> list[str]:
    """One user per primary (slots are split evenly among ``shards``)."""
    found: dict[int, str] = {}
    per = -(-16384 // shards)
    n = 0
    while len(found) < shards:
        user = f"u{n}"
        found.setdefault(key_slot(user_keys(user)[0].encode()) // per, user)
        n += 1
    return list(found.values())


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_kicks_and_renewals_reach_channels_held_by_another_process(
    topology: str, request: pytest.FixtureRequest, service_factory: Callable[..., Service]
) -> None:
    store: Cluster | SentinelGroup = request.getfixturevalue(
        "cluster" if topology == "cluster" else "sentinel_group"
    )
    users = users_on_every_primary(store.shards if isinstance(store, Cluster) else 1)
    users = [f"live-{topology}-{u}" for u in users] if topology == "sentinel" else users
    holding = service_factory(store.url, **FAST)
    evicting = service_factory(store.url, **FAST)
    with (
        httpx.Client(base_url=holding.url, timeout=5) as b,
        httpx.Client(base_url=evicting.url, timeout=5) as a,
    ):
        for user in users:
            assert a.post(f"/v1/users/{user}/streams", json={"stream_id": "tv"}).status_code in (200, 201)
        for user in users:
            with open_channel(b, user, "tv") as ch:
                assert ch.event().event == "renewed"
                renewed = ch.event()  # a batch renewal, on this user's node
                assert renewed.event == "renewed"
                r = a.post(f"/v1/users/{user}/streams", json={"stream_id": "phone"}, params={"replace": "tv"})
                assert r.status_code == 201
                f = ch.event()
                while f.event == "renewed":
                    f = ch.event()
                assert (f.event, f.data["replaced_by"]) == ("evicted", "phone")
                assert ch.closed()
            assert a.delete(f"/v1/users/{user}/streams").status_code == 200  # for the next run
