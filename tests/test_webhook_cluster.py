"""Webhooks on a real Redis Cluster: one queue per slot, in the slot of its users; each process
finds the queues that hold entries (a scan of every slot, and the slots of its own calls at
once), and ids stay unique across slots whose entries have the same stream id."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamlimit.models import Limits
from streamlimit.settings import Settings
from streamlimit.store.connect import store_client
from streamlimit.store.keys import hooks_key
from streamlimit.store.redis import RedisStore
from streamlimit.webhooks.backoff import Backoff
from streamlimit.webhooks.delivery import Delivery
from streamlimit.webhooks.sender import Sender
from streamlimit.webhooks.setup import queue_of, start_delivery
from streamlimit.webhooks.signing import Signer
from tests.topologies import Cluster, cmd
from tests.webhook_receiver import SECRET, Receiver, event, running

FAST: dict[str, Any] = {
    "webhook_secret": SECRET,
    "webhook_timeout_s": 0.3,
    "webhook_retry_base_s": 0.4,
    "webhook_retry_max_s": 0.8,
    "webhook_poll_interval_s": 0.02,
}


@pytest.fixture
def flushed(cluster: Cluster) -> Cluster:
    cluster.flush()
    return cluster


def queue_at(cluster: Cluster, user: str, entry_id: str, action: str = "plan_cleared") -> str:
    """An event of ``user`` in its slot's queue, with the stream id ``entry_id``; the queue's key."""
    key = hooks_key(user, True)
    raw = json.dumps(event(int(time.time() * 1000), action))
    cmd(cluster.owner_of(key), "XADD", key, "MAXLEN", "~", 1000, entry_id, "u", user, "e", raw)
    return key


async def until(check: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.02)


def test_each_slots_queue_is_found_and_ids_stay_unique_across_slots(flushed: Cluster) -> None:
    receiver = Receiver(answer=lambda n, path: 500 if n < 2 else 204)
    users = [f"user-{i}" for i in range(12)]
    same_id = f"{int(time.time() * 1000)}-0"  # the same stream id in every slot's queue
    keys = {queue_at(flushed, u, same_id) for u in users}
    assert len({cmd(flushed.owner_of(k), "CLUSTER", "KEYSLOT", k) for k in keys}) == len(users)
    settings = Settings(store_url=flushed.url, webhook_url=receiver.url, webhook_scan_interval_s=0.2, **FAST)

    async def main() -> None:
        store = RedisStore(store_client(flushed.url, settings), hooks_max_len=1000, hooks_per_slot=True)
        delivery = start_delivery(settings, store, None)
        assert delivery is not None
        try:
            await until(lambda: len({a.id for a in receiver.delivered()}) == len(users), "every user's event")
            # the receiver records an attempt before its answer reaches the sender, which then
            # deletes the entry: wait for that too, rather than stopping it mid-way
            await until(lambda: all(cmd(flushed.owner_of(k), "XLEN", k) == 0 for k in keys), "queues emptied")
        finally:
            await delivery.stop(0)
            await store.close()

    with running(receiver):
        asyncio.run(main())
    delivered = {a.verified()["user_id"]: a.id for a in receiver.delivered()}
    assert set(delivered) == set(users)
    assert len(set(delivered.values())) == len(users)
    for user, event_id in delivered.items():
        slot = cmd(flushed.owner_of(hooks_key(user, True)), "CLUSTER", "KEYSLOT", hooks_key(user, True))
        assert event_id == f"evt_{slot}_{same_id}"


def test_the_slot_of_a_processs_own_call_is_looked_at_before_the_next_scan(flushed: Cluster) -> None:
    receiver = Receiver()
    settings = Settings(store_url=flushed.url, webhook_url=receiver.url, webhook_scan_interval_s=3600, **FAST)

    async def main() -> None:
        store = RedisStore(store_client(flushed.url, settings), hooks_max_len=1000, hooks_per_slot=True)
        queue = queue_of(store, settings)
        assert queue is not None
        signer = Signer(SECRET)
        delivery = Delivery(
            queue, (receiver.url,), Sender(signer, 0.3), Backoff(400, 800, 86_400_000), consumer="c"
        )
        try:  # polled by hand: the first poll scans every slot (nothing yet), the next scan is in an hour
            await delivery.poll()
            queue_at(flushed, "carol", "*", "limit_cleared")  # as carol's call below would queue it
            await delivery.poll()
            assert not delivery._inflight, "found without a hint: the test proves nothing"
            await store.get_limit("carol", Limits(3))
            await delivery.poll()
            await until(lambda: receiver.delivered(), "carol's event, from the hint of her call")
        finally:
            await delivery.stop(0)
            await store.close()

    with running(receiver):
        asyncio.run(main())
    assert receiver.delivered()[0].verified()["type"] == "limit.changed"
